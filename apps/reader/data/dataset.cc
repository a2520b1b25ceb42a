#include "dataset.h"

#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "linattn/core/error.h"
#include "mqar.h"

namespace linattn::reader {

std::vector<int64_t> to_ids(const Vocabulary& words, const std::vector<std::string>& tokens, int64_t* unknown) {
  std::vector<int64_t> ids;
  ids.reserve(tokens.size());
  for (const auto& t : tokens) {
    ids.push_back(words.id(t));
    if (unknown && ids.back() == Vocabulary::kUnknown) ++*unknown;
  }
  return ids;
}

namespace {

std::vector<Example> encode_split(const std::vector<BabiExample>& split, const Vocabulary& words,
                                  const Vocabulary& answers) {
  std::vector<Example> out;
  out.reserve(split.size());
  for (const auto& e : split)
    out.push_back({e.story_id, to_ids(words, e.story), to_ids(words, e.question), answers.id(e.answer)});
  return out;
}

}  // namespace

Dataset babi_dataset(const BabiTask& task) {
  Dataset d;
  for (const auto& e : task.train) {
    for (const auto& t : e.story) d.words.add(t);
    for (const auto& t : e.question) d.words.add(t);
    d.answers.add(e.answer);
  }
  return babi_dataset(task, d.words, d.answers);
}

Dataset babi_dataset(const BabiTask& task, const Vocabulary& words, const Vocabulary& answers) {
  Dataset d{words, answers, {}, {}, {}};
  d.train = encode_split(task.train, d.words, d.answers);
  d.valid = encode_split(task.valid, d.words, d.answers);
  d.test = encode_split(task.test, d.words, d.answers);
  return d;
}

Dataset mqar_dataset(const MqarReaderOptions& o, uint64_t seed) {
  if (o.train_sequences < 1 || o.valid_sequences < 0 || o.test_sequences < 0)
    throw Error("MQAR: needs at least one training sequence and no negative split sizes");
  Dataset d;
  // Every token gets its id up front, so that the ids do not depend on the draws.
  for (int64_t t = 1; t < o.vocab; ++t) d.words.add(std::to_string(t));
  for (int64_t t = o.vocab / 2; t < o.vocab; ++t) d.answers.add(std::to_string(t));
  MqarOptions gen;
  gen.vocab = o.vocab;
  gen.pairs = o.pairs;
  gen.length = 4 * o.pairs;
  int64_t story_id = 0;
  auto split = [&](int64_t sequences, uint64_t split_seed) {
    std::vector<Example> out;
    const MqarBatch b = generate_mqar(gen, sequences, split_seed);
    for (int64_t s = 0; s < sequences; ++s, ++story_id) {
      const int64_t* in = &b.inputs[static_cast<size_t>(s * b.length)];
      std::vector<int64_t> story;
      for (int64_t i = 0; i < 2 * o.pairs; ++i) story.push_back(d.words.id(std::to_string(in[i])));
      for (int64_t i = 0; i < o.pairs; ++i) {
        const std::string value = std::to_string(in[2 * i + 1]);
        out.push_back({story_id, story, {d.words.id(std::to_string(in[2 * i]))}, d.answers.id(value)});
      }
    }
    return out;
  };
  // Different seeds per split: no sequence is shared between them (up to chance repeats).
  d.train = split(o.train_sequences, seed * 3 + 0);
  d.valid = split(o.valid_sequences, seed * 3 + 1);
  d.test = split(o.test_sequences, seed * 3 + 2);
  return d;
}

namespace {

// Reads `files` one at a time (a split of CNN does not fit in memory as text), printing a
// progress line every two seconds.
template <typename Each>
void for_each_question(const std::vector<std::string>& files, const std::string& what, std::FILE* log, Each each) {
  using Clock = std::chrono::steady_clock;
  auto last = Clock::now();
  for (size_t i = 0; i < files.size(); ++i) {
    each(load_cnn_question(files[i]), i);
    if (log && Clock::now() - last > std::chrono::seconds(2)) {
      last = Clock::now();
      std::fprintf(log, "  %s: %zu/%zu files\n", what.c_str(), i + 1, files.size());
      std::fflush(log);
    }
  }
}

// Training examples get a renaming each; validation and test ones one per document (its URL).
uint64_t shuffle_seed(uint64_t seed, bool per_example, size_t index, const std::string& url) {
  return per_example ? seed * 0x9E3779B97F4A7C15ull + index : XXH64(url.data(), url.size(), seed);
}

Example cnn_example(const CnnExample& ex, const Vocabulary& words, const Vocabulary& answers, int64_t story_id) {
  Example e{story_id, to_ids(words, ex.story), to_ids(words, ex.query), answers.id(ex.answer), {}};
  for (const auto& c : ex.candidates) e.candidates.push_back(answers.id(c));
  return e;
}

}  // namespace

std::vector<Example> cnn_examples(const std::vector<std::string>& files, const Vocabulary& words,
                                  const Vocabulary& answers, uint64_t seed,
                                  std::vector<std::map<std::string, std::string>>* renames) {
  std::vector<Example> out;
  std::map<std::string, int64_t> documents;
  for (size_t i = 0; i < files.size(); ++i) {
    CnnExample ex = load_cnn_question(files[i]);
    auto rename = shuffle_entities(ex, answers.size() - 2, shuffle_seed(seed, false, i, ex.url));
    if (renames) renames->push_back(std::move(rename));
    const auto doc = documents.emplace(ex.url, static_cast<int64_t>(documents.size())).first->second;
    out.push_back(cnn_example(ex, words, answers, doc));
  }
  return out;
}

Dataset cnn_dataset(const CnnReaderOptions& o, uint64_t seed, const Vocabulary* words, const Vocabulary* answers,
                    std::FILE* log) {
  const char* const splits[3] = {"training", "validation", "test"};
  std::vector<std::string> files[3];
  const bool need_training = !(words && answers) || o.read_training;
  for (int s = need_training ? 0 : 1; s < 3; ++s) files[s] = cnn_question_files(o.dir, splits[s], o.max_examples);
  Dataset d;
  if (words && answers) {
    d.words = *words;
    d.answers = *answers;
  } else {
    // First pass: the most entities of any example, and the training split's words.
    int64_t range = 0;
    for (int s = 0; s < 3; ++s)
      for_each_question(files[s], std::string("counting ") + splits[s], log, [&](const CnnExample& ex, size_t) {
        range = std::max(range, entity_count(ex));
        if (s == 0)
          for (const auto* tokens : {&ex.story, &ex.query})
            for (const auto& t : *tokens)
              if (t.rfind("@entity", 0) != 0) d.words.add(t);
      });
    for (int64_t i = 0; i < range; ++i) {
      d.words.add("@entity" + std::to_string(i));
      d.answers.add("@entity" + std::to_string(i));
    }
  }
  const int64_t range = d.answers.size() - 2;
  std::vector<Example>* out[3] = {&d.train, &d.valid, &d.test};
  for (int s = 0; s < 3; ++s) {
    std::map<std::string, int64_t> documents;
    for_each_question(files[s], std::string("reading ") + splits[s], log, [&](CnnExample ex, size_t i) {
      shuffle_entities(ex, range, shuffle_seed(seed, s == 0, i, ex.url));
      const int64_t story_id = s == 0 ? static_cast<int64_t>(i)
                                      : documents.emplace(ex.url, static_cast<int64_t>(documents.size())).first->second;
      out[s]->push_back(cnn_example(ex, d.words, d.answers, story_id));
    });
  }
  return d;
}

}  // namespace linattn::reader
