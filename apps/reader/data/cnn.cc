#include "cnn.h"

#include <fstream>
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

}  // namespace linattn::reader
