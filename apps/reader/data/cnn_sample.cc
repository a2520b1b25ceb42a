#include "cnn_sample.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <utility>
#include <vector>

#include "linattn/core/error.h"

namespace linattn::reader {

void write_cnn_sample(const std::string& dir, const CnnSampleOptions& f) {
  namespace fs = std::filesystem;
  const char* verbs[] = {"met", "called", "praised", "visited", "thanked", "joined"};
  const char* places[] = {"london", "paris", "lagos", "lima", "oslo", "delhi", "seoul", "cairo"};
  std::mt19937 rng(static_cast<uint32_t>(f.seed));
  auto pick = [&](int n) { return static_cast<int>(std::uniform_int_distribution<int>(0, n - 1)(rng)); };
  const std::pair<const char*, int> splits[] = {{"training", f.train}, {"validation", f.valid}, {"test", f.test}};
  int file = 0;
  for (const auto& [split, count] : splits) {
    fs::create_directories(fs::path(dir) / "questions" / split);
    for (int q = 0; q < count; q += f.questions_per_document) {
      // One document: entities numbered at random out of 40, as the real data's are.
      struct Fact {
        int a, b, verb, place;
      };
      std::vector<Fact> facts;
      std::string story;
      for (int s = 0; s < f.sentences; ++s) {
        Fact fact{pick(40), pick(40), pick(6), pick(8)};
        while (fact.b == fact.a) fact.b = pick(40);
        facts.push_back(fact);
        story += "@entity" + std::to_string(fact.a) + " " + verbs[fact.verb] + " @entity" + std::to_string(fact.b) +
                 " in " + places[fact.place] + " . ";
      }
      const std::string url = "http://example.org/" + std::string(split) + "/" + std::to_string(q);
      for (int k = 0; k < f.questions_per_document && q + k < count; ++k) {
        const Fact& asked = facts[static_cast<size_t>(pick(f.sentences))];
        std::ofstream out(fs::path(dir) / "questions" / split / ("q" + std::to_string(100000 + file++) + ".question"));
        out << url << "\n\n"
            << story << "\n\n"
            << "@entity" << asked.a << " " << verbs[asked.verb] << " @placeholder in " << places[asked.place] << "\n\n"
            << "@entity" << asked.b << "\n\n";
        for (const Fact& fact : facts)
          out << "@entity" << fact.a << ":Person " << fact.a << "\n@entity" << fact.b << ":Person " << fact.b << "\n";
        if (!out.flush()) throw FormatError("cannot write the sample file for " + url + " under " + dir);
      }
    }
  }
}

}  // namespace linattn::reader
