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

}  // namespace linattn::reader
