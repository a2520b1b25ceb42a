// The CNN / Daily Mail cloze QA format (Hermann et al. 2015), the paper's own data, for users who
// have it (it is not shipped here). A ".question" file holds, separated by blank lines: the source
// URL; the story (one line, entities anonymised as @entityN); the query with @placeholder; the
// answer (@entityN); then one line per entity, "@entityN:Name".
#pragma once

#include <map>
#include <string>
#include <vector>

namespace linattn::reader {

struct CnnExample {
  std::string url;
  std::vector<std::string> story, query;   // white-space tokens, as the files are tokenised
  std::string answer;                      // an @entityN
  std::vector<std::string> candidates;     // the entities of the story, in order of appearance
  std::map<std::string, std::string> entity_names;
};

// Parses one ".question" file's text; FormatError names the source and line of any problem.
CnnExample parse_cnn_question(const std::string& text, const std::string& source);
CnnExample load_cnn_question(const std::string& path);

// The ".question" files of one split of the DeepMind layout, DIR/questions/{training,validation,
// test}, sorted by name; at most `max_files` of them (-1: all). FormatError when the directory
// is missing or holds none.
std::vector<std::string> cnn_question_files(const std::string& dir, const std::string& split, int64_t max_files = -1);

// Renames the example's entities @entity0..@entityR-1 by a random injection into [0, range)
// drawn from `seed` (the authors' set-up: the markers carry no identity across documents, so the
// reader must find the answer in the document). Returns the new name of each old marker.
// FormatError when the example has more than `range` entities.
std::map<std::string, std::string> shuffle_entities(CnnExample& example, int64_t range, uint64_t seed);

// Every distinct @entityN of the story, query and answer.
int64_t entity_count(const CnnExample& example);

}  // namespace linattn::reader
