#include "cnn.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include "babi.h"
#include "linattn/core/error.h"
#include "text_file.h"

namespace linattn::reader {
namespace {

std::vector<std::string> split_ws(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string t; in >> t;) out.push_back(t);
  return out;
}

}  // namespace

CnnExample parse_cnn_question(const std::string& text, const std::string& source) {
  // Blocks of non-blank lines, each with the line number it starts on.
  std::vector<std::vector<std::pair<int64_t, std::string>>> blocks(1);
  std::istringstream in(text);
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {
      if (!blocks.back().empty()) blocks.emplace_back();
    } else {
      blocks.back().emplace_back(n, line);
    }
  }
  if (blocks.back().empty()) blocks.pop_back();
  auto bad = [&](int64_t line, const std::string& problem) -> void {
    throw FormatError(source + ":" + std::to_string(line) + ": " + problem);
  };
  if (blocks.size() < 4)
    bad(n, "expected URL, story, query, answer and entity blocks separated by blank lines, found " +
               std::to_string(blocks.size()) + " block(s)");
  for (size_t b = 0; b < 4; ++b)
    if (blocks[b].size() != 1) bad(blocks[b][1].first, "this block must be a single line");
  CnnExample ex;
  ex.url = blocks[0][0].second;
  ex.story = split_ws(blocks[1][0].second);
  ex.query = split_ws(blocks[2][0].second);
  ex.answer = blocks[3][0].second;
  if (ex.story.empty()) bad(blocks[1][0].first, "empty story");
  bool placeholder = false;
  for (const auto& t : ex.query) placeholder |= t == "@placeholder";
  if (!placeholder) bad(blocks[2][0].first, "the query has no @placeholder");
  if (ex.answer.rfind("@entity", 0) != 0 || ex.answer.find(' ') != std::string::npos)
    bad(blocks[3][0].first, "the answer must be one @entityN");
  for (size_t b = 4; b < blocks.size(); ++b)
    for (const auto& [line, s] : blocks[b]) {
      const size_t colon = s.find(':');
      if (s.rfind("@entity", 0) != 0 || colon == std::string::npos) bad(line, "expected '@entityN:Name'");
      ex.entity_names[s.substr(0, colon)] = s.substr(colon + 1);
    }
  std::set<std::string> seen;
  for (const auto& t : ex.story)
    if (t.rfind("@entity", 0) == 0 && seen.insert(t).second) ex.candidates.push_back(t);
  if (!seen.count(ex.answer)) bad(blocks[3][0].first, "the answer " + ex.answer + " does not occur in the story");
  return ex;
}

CnnExample load_cnn_question(const std::string& path) {
  return parse_cnn_question(read_text_file(path), path);
}

std::vector<std::string> cnn_question_files(const std::string& dir, const std::string& split, int64_t max_files) {
  namespace fs = std::filesystem;
  const fs::path folder = fs::path(dir) / "questions" / split;
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    throw FormatError(folder.string() + " is not a directory: --cnn wants the DeepMind layout, DIR/questions/{training,validation,test}/*.question");
  std::vector<std::string> files;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".question" && it->is_regular_file(ec)) files.push_back(it->path().string());
  if (ec) throw FormatError("cannot list " + folder.string() + ": " + ec.message());
  if (files.empty()) throw FormatError(folder.string() + " holds no .question files");
  std::sort(files.begin(), files.end());
  if (max_files >= 0 && static_cast<int64_t>(files.size()) > max_files) files.resize(static_cast<size_t>(max_files));
  return files;
}

namespace {
bool is_entity(const std::string& t) { return t.rfind("@entity", 0) == 0; }
}  // namespace

int64_t entity_count(const CnnExample& ex) {
  std::set<std::string> seen;
  for (const auto* tokens : {&ex.story, &ex.query})
    for (const auto& t : *tokens)
      if (is_entity(t)) seen.insert(t);
  seen.insert(ex.answer);
  return static_cast<int64_t>(seen.size());
}

std::map<std::string, std::string> shuffle_entities(CnnExample& ex, int64_t range, uint64_t seed) {
  // Old markers in order of first appearance, so the draw depends only on the text and the seed.
  std::vector<std::string> order;
  std::set<std::string> seen;
  auto note = [&](const std::string& t) {
    if (is_entity(t) && seen.insert(t).second) order.push_back(t);
  };
  for (const auto& t : ex.story) note(t);
  for (const auto& t : ex.query) note(t);
  note(ex.answer);
  if (static_cast<int64_t>(order.size()) > range)
    throw FormatError(ex.url + ": " + std::to_string(order.size()) + " entities, more than the " + std::to_string(range) +
                      " entity markers the model knows");
  std::vector<int64_t> ids(static_cast<size_t>(range));
  std::iota(ids.begin(), ids.end(), 0);
  std::mt19937_64 rng(seed);
  // A partial Fisher-Yates: the first order.size() draws of a random permutation.
  for (size_t i = 0; i < order.size(); ++i)
    std::swap(ids[i], ids[i + std::uniform_int_distribution<size_t>(0, ids.size() - 1 - i)(rng)]);
  std::map<std::string, std::string> rename;
  for (size_t i = 0; i < order.size(); ++i) rename[order[i]] = "@entity" + std::to_string(ids[i]);
  auto apply = [&](std::string& t) {
    if (const auto it = rename.find(t); it != rename.end()) t = it->second;
  };
  for (auto& t : ex.story) apply(t);
  for (auto& t : ex.query) apply(t);
  for (auto& t : ex.candidates) apply(t);
  apply(ex.answer);
  std::map<std::string, std::string> names;
  for (const auto& [old_marker, name] : ex.entity_names)  // a name of an entity the text lacks is dropped
    if (const auto it = rename.find(old_marker); it != rename.end()) names[it->second] = name;
  ex.entity_names = std::move(names);
  return rename;
}

}  // namespace linattn::reader
