#include "dataset.h"

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

}  // namespace linattn::reader
