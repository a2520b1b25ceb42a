// The bAbI question-answering tasks v1.2 (Weston et al. 2015, Facebook AI Research; CC BY 3.0).
// Files: <root>/<en|en-10k>/qa<N>_<name>_<train|test>.txt, numbered lines, numbering restarting at
// 1 for each story; a question line is "N question?<TAB>answer<TAB>supporting line numbers".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace linattn::reader {

struct BabiExample {
  int64_t story_id = 0;                  // index of the story in its file
  std::vector<std::string> story;        // every statement before the question, tokenised, in order
  std::vector<std::string> question;     // tokenised
  std::string answer;                    // one word (task 8 and 19: a comma-separated list, one token)
  std::vector<int64_t> supporting;       // indices into the story's statements (0-based)
  std::vector<int64_t> sentence_ends;    // token offsets in `story` where each statement ends
};

struct BabiTask {
  int task = 0;
  std::string name;                      // e.g. "single-supporting-fact"
  std::vector<BabiExample> train, valid, test;
  std::vector<std::string> notes;        // e.g. the en-10k task-3 fallback
};

// Lower-cases and splits on white space and on the punctuation . ? , ! ; :
std::vector<std::string> tokenize(const std::string& text);

// Parses one file; errors (FormatError) name the file and line.
std::vector<BabiExample> parse_babi(const std::string& text, const std::string& source);

// Loads task 1-20 from `root`. ten_k selects en-10k (its missing task-3 training file is replaced
// by en's, and said so in notes). valid_fraction of the training *stories* (never questions of
// one story on both sides) go to valid, chosen with `seed`.
BabiTask load_babi(const std::string& root, int task, bool ten_k, double valid_fraction = 0.1, uint64_t seed = 1);

// The data directory: `explicit_path` if given, else $LINATTN_BABI_DIR, else ../shared/data/babi
// (from the working directory, then from the executable's directory and its parents). When none
// exists, the error says where the data comes from and how to point to it.
std::string find_babi_root(const std::optional<std::string>& explicit_path = std::nullopt);

// Where a user obtains the bAbI tasks v1.2 (the archive unpacks to tasks_1-20_v1-2/en, en-10k, ...).
inline constexpr const char* kBabiDownload = "http://www.thespermwhale.com/jaseweston/babi/tasks_1-20_v1-2.tar.gz";

}  // namespace linattn::reader
