// Token <-> id for the reader. Id 0 is padding, id 1 stands for tokens never seen in training.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace linattn::reader {

class Vocabulary {
 public:
  static constexpr int64_t kPad = 0, kUnknown = 1;
  Vocabulary() : tokens_{"<pad>", "<unk>"} {}

  // The id of `token`, adding it if new.
  int64_t add(const std::string& token) {
    auto [it, inserted] = ids_.emplace(token, static_cast<int64_t>(tokens_.size()));
    if (inserted) tokens_.push_back(token);
    return it->second;
  }
  // The id of `token`, kUnknown if never added.
  int64_t id(const std::string& token) const {
    const auto it = ids_.find(token);
    return it == ids_.end() ? kUnknown : it->second;
  }
  bool contains(const std::string& token) const { return ids_.count(token) > 0; }
  const std::string& token(int64_t id) const { return tokens_.at(static_cast<size_t>(id)); }
  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  const std::vector<std::string>& tokens() const { return tokens_; }

 private:
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> ids_;
};

}  // namespace linattn::reader
