#include "babi.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "linattn/core/error.h"
#include "text_file.h"

namespace linattn::reader {
namespace fs = std::filesystem;

std::vector<std::string> tokenize(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(cur), cur.clear();
  };
  for (char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (std::isspace(c)) {
      flush();
    } else if (c == '.' || c == '?' || c == ',' || c == '!' || c == ';' || c == ':') {
      flush();
      out.emplace_back(1, ch);
    } else {
      cur.push_back(static_cast<char>(std::tolower(c)));
    }
  }
  flush();
  return out;
}

namespace {

[[noreturn]] void bad(const std::string& source, int64_t line, const std::string& problem) {
  throw FormatError(source + ":" + std::to_string(line) + ": " + problem);
}

std::string read_file(const fs::path& path) { return read_text_file(path.string()); }

// qa<task>_<name>_<split>.txt in dir, or nullopt.
std::optional<fs::path> task_file(const fs::path& dir, int task, const std::string& split, std::string* name) {
  if (!fs::is_directory(dir)) return std::nullopt;
  const std::string prefix = "qa" + std::to_string(task) + "_", suffix = "_" + split + ".txt";
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f.rfind(prefix, 0) == 0 && f.size() > prefix.size() + suffix.size() &&
        f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0) {
      if (name) *name = f.substr(prefix.size(), f.size() - prefix.size() - suffix.size());
      return e.path();
    }
  }
  return std::nullopt;
}

}  // namespace

std::vector<BabiExample> parse_babi(const std::string& text, const std::string& source) {
  std::vector<BabiExample> out;
  std::vector<std::vector<std::string>> statements;  // of the current story
  std::vector<int64_t> statement_of_line;            // line number -> statement index (-1: question)
  int64_t story = -1, expected = 1, line_no = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    size_t i = 0;
    while (i < line.size() && std::isdigit(static_cast<unsigned char>(line[i]))) ++i;
    if (i == 0 || i > 9 || i >= line.size() || line[i] != ' ') bad(source, line_no, "expected 'N text' with a line number N");
    const int64_t n = std::stoll(line.substr(0, i));
    if (n == 1) {  // a new story
      ++story;
      statements.clear();
      statement_of_line.assign(1, -1);
      expected = 1;
    }
    if (story < 0 || n != expected)
      bad(source, line_no, "line number " + std::to_string(n) + " where " + std::to_string(expected) + " was expected");
    ++expected;
    const std::string body = line.substr(i + 1);
    const size_t tab = body.find('\t');
    if (tab == std::string::npos) {  // a statement
      statements.push_back(tokenize(body));
      statement_of_line.push_back(static_cast<int64_t>(statements.size()) - 1);
      continue;
    }
    // question<TAB>answer<TAB>supporting
    const size_t tab2 = body.find('\t', tab + 1);
    BabiExample ex;
    ex.story_id = story;
    ex.question = tokenize(body.substr(0, tab));
    ex.answer = body.substr(tab + 1, tab2 == std::string::npos ? std::string::npos : tab2 - tab - 1);
    while (!ex.answer.empty() && std::isspace(static_cast<unsigned char>(ex.answer.back()))) ex.answer.pop_back();
    std::transform(ex.answer.begin(), ex.answer.end(), ex.answer.begin(), [](unsigned char c) { return std::tolower(c); });
    if (ex.question.empty() || ex.answer.empty()) bad(source, line_no, "a question line needs a question and an answer");
    if (tab2 != std::string::npos) {
      std::istringstream sup(body.substr(tab2 + 1));
      for (std::string tok; sup >> tok;) {
        if (tok.find_first_not_of("0123456789") != std::string::npos || tok.size() > 9)
          bad(source, line_no, "supporting fact '" + tok + "' is not a line number");
        const int64_t ref = std::stoll(tok);
        if (ref < 1 || ref >= n || statement_of_line[static_cast<size_t>(ref)] < 0)
          bad(source, line_no, "supporting fact " + tok + " is not an earlier statement of this story");
        ex.supporting.push_back(statement_of_line[static_cast<size_t>(ref)]);
      }
    }
    for (const auto& s : statements) {
      ex.story.insert(ex.story.end(), s.begin(), s.end());
      ex.sentence_ends.push_back(static_cast<int64_t>(ex.story.size()));
    }
    statement_of_line.push_back(-1);
    out.push_back(std::move(ex));
  }
  if (out.empty())
    throw FormatError(source + ": no questions (the file is empty or has no question lines, "
                      "'<n> <question>\\t<answer>\\t<supporting facts>')");
  return out;
}

BabiTask load_babi(const std::string& root, int task, bool ten_k, double valid_fraction, uint64_t seed) {
  if (task < 1 || task > 20) throw Error("bAbI task must be 1-20, got " + std::to_string(task));
  if (!(valid_fraction >= 0.0 && valid_fraction < 1.0)) throw Error("the validation fraction must be in [0, 1)");
  BabiTask t;
  t.task = task;
  const fs::path dir = fs::path(root) / (ten_k ? "en-10k" : "en");
  auto train = task_file(dir, task, "train", &t.name);
  if (!train && ten_k) {  // en-10k lacks task 3's training file: en's stands in
    train = task_file(fs::path(root) / "en", task, "train", &t.name);
    if (train) t.notes.push_back("en-10k has no training file for task " + std::to_string(task) + ": using " + train->string());
  }
  const auto test = task_file(dir, task, "test", nullptr);
  if (!train || !test)
    throw Error("bAbI task " + std::to_string(task) + " not found under " + dir.string() + " (expected qa" +
                std::to_string(task) + "_<name>_train.txt and _test.txt)");
  std::vector<BabiExample> all = parse_babi(read_file(*train), train->string());
  t.test = parse_babi(read_file(*test), test->string());
  // The split is by story: several questions share one story.
  std::set<int64_t> stories;
  for (const auto& e : all) stories.insert(e.story_id);
  std::vector<int64_t> ids(stories.begin(), stories.end());
  std::mt19937_64 rng(seed);
  std::shuffle(ids.begin(), ids.end(), rng);
  const std::set<int64_t> valid(ids.begin(), ids.begin() + static_cast<long>(valid_fraction * static_cast<double>(ids.size())));
  for (auto& e : all) (valid.count(e.story_id) ? t.valid : t.train).push_back(std::move(e));
  return t;
}

std::string find_babi_root(const std::optional<std::string>& explicit_path) {
  auto usable = [](const fs::path& p) { return fs::is_directory(p / "en") || fs::is_directory(p / "en-10k"); };
  if (explicit_path) {
    if (!usable(*explicit_path))
      throw Error("--data " + *explicit_path + ": no en/ or en-10k/ directory of bAbI files there");
    return *explicit_path;
  }
  if (const char* env = std::getenv("LINATTN_BABI_DIR")) {
    if (!usable(env)) throw Error(std::string("LINATTN_BABI_DIR=") + env + ": no en/ or en-10k/ directory of bAbI files there");
    return env;
  }
  std::vector<fs::path> candidates = {fs::current_path() / ".." / "shared" / "data" / "babi"};
  std::error_code ec;
  for (fs::path p = fs::read_symlink("/proc/self/exe", ec).parent_path(); !ec && !p.empty() && p != p.root_path();
       p = p.parent_path())
    candidates.push_back(p / ".." / "shared" / "data" / "babi");
  for (const auto& c : candidates)
    if (usable(c)) return fs::weakly_canonical(c).string();
  throw Error(
      "the bAbI data was not found. It is the bAbI tasks v1.2 (Weston et al. 2015, Facebook AI Research, CC BY 3.0), "
      "a directory holding en/ and en-10k/; linattn looks in ../shared/data/babi. Point to it with --data DIR or "
      "LINATTN_BABI_DIR=DIR");
}

}  // namespace linattn::reader
