#include "batches.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace linattn::reader {

void build_vocabularies(const std::vector<BabiExample>& examples, Vocabulary& words, Vocabulary& answers) {
  for (const auto& e : examples) {
    for (const auto& t : e.story) words.add(t);
    for (const auto& t : e.question) words.add(t);
    answers.add(e.answer);
  }
}

ReaderBatch make_batch(const std::vector<BabiExample>& examples, const std::vector<int64_t>& indices,
                       const Vocabulary& words, const Vocabulary& answers) {
  const int64_t B = static_cast<int64_t>(indices.size());
  int64_t T = 1, Q = 1;
  for (int64_t i : indices) {
    T = std::max<int64_t>(T, static_cast<int64_t>(examples[static_cast<size_t>(i)].story.size()));
    Q = std::max<int64_t>(Q, static_cast<int64_t>(examples[static_cast<size_t>(i)].question.size()));
  }
  ReaderBatch b;
  b.story = torch::zeros({B, T}, torch::kInt64);
  b.question = torch::zeros({B, Q}, torch::kInt64);
  b.story_lengths = torch::zeros({B}, torch::kInt64);
  b.question_lengths = torch::zeros({B}, torch::kInt64);
  b.answers = torch::zeros({B}, torch::kInt64);
  auto story = b.story.accessor<int64_t, 2>();
  auto question = b.question.accessor<int64_t, 2>();
  for (int64_t r = 0; r < B; ++r) {
    const BabiExample& e = examples[static_cast<size_t>(indices[static_cast<size_t>(r)])];
    for (size_t t = 0; t < e.story.size(); ++t) story[r][static_cast<int64_t>(t)] = words.id(e.story[t]);
    for (size_t t = 0; t < e.question.size(); ++t) question[r][static_cast<int64_t>(t)] = words.id(e.question[t]);
    b.story_lengths[r] = static_cast<int64_t>(e.story.size());
    b.question_lengths[r] = static_cast<int64_t>(e.question.size());
    const int64_t a = answers.id(e.answer);
    b.answers[r] = a == Vocabulary::kUnknown ? 0 : a;
  }
  // Every answer of the answer set is a candidate; padding and <unk> never are.
  b.candidates = torch::ones({B, answers.size()}, torch::kBool);
  b.candidates.index_put_({torch::indexing::Slice(), torch::indexing::Slice(0, 2)}, false);
  return b;
}

std::vector<std::vector<int64_t>> length_sorted_batches(const std::vector<BabiExample>& examples, int64_t size,
                                                        uint64_t seed) {
  std::vector<int64_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  const int64_t group = size * 20;
  for (size_t g = 0; g < order.size(); g += static_cast<size_t>(group)) {
    const auto end = order.begin() + static_cast<long>(std::min(order.size(), g + static_cast<size_t>(group)));
    std::stable_sort(order.begin() + static_cast<long>(g), end, [&](int64_t a, int64_t b) {
      return examples[static_cast<size_t>(a)].story.size() < examples[static_cast<size_t>(b)].story.size();
    });
  }
  std::vector<std::vector<int64_t>> batches;
  for (size_t i = 0; i < order.size(); i += static_cast<size_t>(size))
    batches.emplace_back(order.begin() + static_cast<long>(i),
                         order.begin() + static_cast<long>(std::min(order.size(), i + static_cast<size_t>(size))));
  std::shuffle(batches.begin(), batches.end(), rng);
  return batches;
}

}  // namespace linattn::reader
