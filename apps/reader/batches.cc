#include "batches.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace linattn::reader {

ReaderBatch make_batch(const std::vector<Example>& examples, const std::vector<int64_t>& indices, int64_t answer_count) {
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
  auto story_lengths = b.story_lengths.accessor<int64_t, 1>();
  auto question_lengths = b.question_lengths.accessor<int64_t, 1>();
  auto answers = b.answers.accessor<int64_t, 1>();
  for (int64_t r = 0; r < B; ++r) {
    const Example& e = examples[static_cast<size_t>(indices[static_cast<size_t>(r)])];
    for (size_t t = 0; t < e.story.size(); ++t) story[r][static_cast<int64_t>(t)] = e.story[t];
    for (size_t t = 0; t < e.question.size(); ++t) question[r][static_cast<int64_t>(t)] = e.question[t];
    story_lengths[r] = static_cast<int64_t>(e.story.size());
    question_lengths[r] = static_cast<int64_t>(e.question.size());
    answers[r] = e.answer;
  }
  b.candidates = torch::ones({B, answer_count}, torch::kBool);
  b.candidates.index_put_({torch::indexing::Slice(), torch::indexing::Slice(0, std::min<int64_t>(2, answer_count))}, false);
  auto allowed = b.candidates.accessor<bool, 2>();
  for (int64_t r = 0; r < B; ++r) {
    const Example& e = examples[static_cast<size_t>(indices[static_cast<size_t>(r)])];
    if (e.candidates.empty()) continue;
    for (int64_t a = 0; a < answer_count; ++a) allowed[r][a] = false;
    bool any = false;
    for (int64_t a : e.candidates)
      if (a >= 2 && a < answer_count) any = allowed[r][a] = true;
    if (!any)  // no known candidate: every answer, rather than a row of -inf logits (a NaN loss)
      for (int64_t a = 2; a < answer_count; ++a) allowed[r][a] = true;
  }
  return b;
}

std::vector<std::vector<int64_t>> length_sorted_batches(const std::vector<Example>& examples, int64_t size,
                                                        uint64_t seed) {
  std::vector<int64_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  const size_t group = static_cast<size_t>(size) * 20;
  for (size_t g = 0; g < order.size(); g += group) {
    const auto end = order.begin() + static_cast<long>(std::min(order.size(), g + group));
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

std::vector<std::vector<int64_t>> sequential_batches(int64_t count, int64_t size) {
  std::vector<std::vector<int64_t>> batches;
  for (int64_t i = 0; i < count; i += size) {
    batches.emplace_back();
    for (int64_t j = i; j < std::min(count, i + size); ++j) batches.back().push_back(j);
  }
  return batches;
}

}  // namespace linattn::reader
