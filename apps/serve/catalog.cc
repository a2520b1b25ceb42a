#include "catalog.h"

#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "linattn/core/error.h"
#include "linattn/memory/memory_file.h"

namespace linattn::serve {

const CatalogEntry* Catalog::find(const std::string& name) const {
  const auto it = by_name.find(name);
  return it == by_name.end() ? nullptr : &memories[static_cast<size_t>(it->second)];
}

Library::FileStamp Library::stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {st.st_ino, st.st_size, static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

std::shared_ptr<const Catalog> Library::build(std::vector<std::shared_ptr<const Bank>> banks) {
  auto c = std::make_shared<Catalog>();
  c->banks = std::move(banks);
  for (size_t b = 0; b < c->banks.size(); ++b) {
    const Bank& bank = *c->banks[b];
    struct stat st {};
    if (::stat(bank.path().c_str(), &st) == 0) c->mapped_bytes += st.st_size;
    for (int64_t i = 0; i < bank.size(); ++i) {
      const auto [it, fresh] = c->by_name.emplace(bank.name(i), static_cast<int64_t>(c->memories.size()));
      if (!fresh)
        throw Error("memory '" + bank.name(i) + "' is in two banks: " +
                    c->banks[static_cast<size_t>(c->memories[static_cast<size_t>(it->second)].bank)]->path() + " and " +
                    bank.path() + " (names must be unique across the banks served)");
      c->memories.push_back({bank.name(i), static_cast<int64_t>(b), i, &bank.memory(i)});
    }
  }
  for (const CatalogEntry& e : c->memories) c->views.push_back(e.view);
  return c;
}

Library::Library(std::vector<std::string> paths, bool verify) : paths_(std::move(paths)), verify_(verify) {
  if (paths_.empty()) throw Error("no bank to serve: give at least one bank file (linattn bank create makes one)");
  std::vector<std::shared_ptr<const Bank>> banks;
  for (const std::string& p : paths_) {
    stamps_.push_back(stamp_of(p));
    banks.push_back(std::make_shared<const Bank>(Bank::open(p, verify_)));
  }
  current_ = build(std::move(banks));
}

std::shared_ptr<const Catalog> Library::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

std::vector<std::string> Library::refresh() {
  std::vector<std::string> problems;
  std::lock_guard write_lock(write_mutex_);  // never interleaved with our own appends
  std::shared_ptr<const Catalog> now = current();
  for (size_t b = 0; b < paths_.size(); ++b) {
    const FileStamp stamp = stamp_of(paths_[b]);
    {
      std::lock_guard lock(mutex_);
      if (stamp == stamps_[b]) continue;
    }
    try {
      auto banks = now->banks;
      banks[b] = std::make_shared<const Bank>(Bank::open(paths_[b], verify_));
      auto next = build(std::move(banks));
      std::lock_guard lock(mutex_);
      current_ = next;
      stamps_[b] = stamp;
      now = next;
    } catch (const std::exception& e) {
      // Keep serving what was there; the stamp stays old so that the next refresh tries again.
      problems.push_back(std::string("reloading ") + paths_[b] + ": " + e.what());
    }
  }
  return problems;
}

std::optional<int64_t> Library::writable_bank() const {
  for (size_t b = 0; b < paths_.size(); ++b)
    if (::access(paths_[b].c_str(), W_OK) == 0) return static_cast<int64_t>(b);
  return std::nullopt;
}

Library::PutOutcome Library::put(const std::string& name, const Memory& memory) {
  std::lock_guard write_lock(write_mutex_);
  PutOutcome out;
  const std::optional<int64_t> target = writable_bank();
  if (!target) throw Error("no bank this server may write: every bank served is read-only");
  // A fresh open sees appends of other processes; the bank's lock makes ours atomic with them.
  Bank bank = Bank::open(paths_[static_cast<size_t>(*target)], false);
  std::shared_ptr<const Catalog> now = current();
  if (now->find(name) || bank.find(name)) {
    out.exists = true;
    return out;
  }
  bank.append(name, memory);  // throws on a name the other banks gained since, via build below
  auto banks = now->banks;
  banks[static_cast<size_t>(*target)] = std::make_shared<const Bank>(std::move(bank));
  auto next = build(std::move(banks));
  {
    // The bank's stamp stays old: the next refresh reopens it once more, and so also sees an
    // append another process made between ours and now.
    std::lock_guard lock(mutex_);
    current_ = next;
  }
  out.catalog = next;
  out.entry = *next->find(name);
  return out;
}

}  // namespace linattn::serve
