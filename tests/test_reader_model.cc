// The reader model and its batching.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "batches.h"
#include "linattn/core/error.h"
#include "model.h"

namespace linattn::reader {
namespace {

const char* kStories =
    "1 Mary moved to the bathroom.\n"
    "2 John went to the hallway.\n"
    "3 Where is Mary?\tbathroom\t1\n"
    "4 Daniel went back to the kitchen.\n"
    "5 Where is Daniel?\tkitchen\t4\n"
    "6 Where is John?\thallway\t2\n"
    "1 Sandra journeyed to the garden.\n"
    "2 Where is Sandra?\tgarden\t1\n";

struct Data {
  std::vector<Example> examples;
  Vocabulary words, answers;
  Data() {
    BabiTask task;
    task.train = parse_babi(kStories, "fixture");
    Dataset d = babi_dataset(task);
    examples = d.train;
    words = d.words;
    answers = d.answers;
  }
};

TEST(ReaderModel, EveryMechanismGivesMaskedLogits) {
  torch::manual_seed(0);
  Data d;
  const ReaderBatch b = make_batch(d.examples, {0, 1, 2, 3}, d.answers.size());
  EXPECT_EQ(b.story.sizes(), (std::vector<int64_t>{4, 19}));  // 6 + 6 + 7 tokens before "where is daniel"
  for (const char* name : {"none", "softmax", "linear", "gated-scalar", "gated-vector"}) {
    Reader model(ReaderOptions(d.words.size(), d.answers.size()).mechanism(parse_mechanism(name)).hidden(16).embedding(8));
    const auto logits = model->forward(b);
    ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{4, d.answers.size()})) << name;
    EXPECT_TRUE(torch::isinf(logits.index({torch::indexing::Slice(), torch::indexing::Slice(0, 2)})).all().item<bool>()) << name;
    EXPECT_TRUE(torch::isfinite(logits.index({torch::indexing::Slice(), torch::indexing::Slice(2, torch::indexing::None)})).all().item<bool>())
        << name;
  }
  EXPECT_THROW(parse_mechanism("quadratic"), linattn::Error);
}

TEST(ReaderModel, PaddingChangesNothing) {
  torch::manual_seed(1);
  Data d;
  ReaderBatch b = make_batch(d.examples, {0, 3}, d.answers.size());
  for (const char* name : {"none", "softmax", "linear", "gated-vector"})
  for (const bool bidirectional : {false, true}) {
    Reader model(ReaderOptions(d.words.size(), d.answers.size())
                     .mechanism(parse_mechanism(name))
                     .hidden(16)
                     .embedding(8)
                     .bidirectional(bidirectional)
                     .layers(bidirectional ? 2 : 1));
    EXPECT_EQ(model->state_size(), bidirectional ? 32 : 16);
    model->eval();
    const auto before = model->forward(b);
    ReaderBatch junk = b;
    junk.story = b.story.clone();
    junk.story.index_put_({1, torch::indexing::Slice(b.story_lengths[1].item<int64_t>(), torch::indexing::None)}, 5);
    junk.question = b.question.clone();
    junk.question.index_put_({1, torch::indexing::Slice(b.question_lengths[1].item<int64_t>(), torch::indexing::None)}, 5);
    EXPECT_TRUE(torch::allclose(model->forward(junk), before, 1e-6, 1e-6)) << name << " bidirectional " << bidirectional;
  }
}

TEST(ReaderModel, TrainingStepsReduceTheLoss) {
  Data d;
  const ReaderBatch b = make_batch(d.examples, {0, 1, 2, 3}, d.answers.size());
  for (const char* name : {"none", "softmax", "linear", "gated-scalar", "gated-vector"}) {
    torch::manual_seed(2);
    Reader model(ReaderOptions(d.words.size(), d.answers.size()).mechanism(parse_mechanism(name)).hidden(16).embedding(8));
    torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(1e-2));
    double first = 0, last = 0;
    for (int step = 0; step < 40; ++step) {
      adam.zero_grad();
      const auto loss = torch::nn::functional::cross_entropy(model->forward(b), b.answers);
      loss.backward();
      torch::nn::utils::clip_grad_norm_(model->parameters(), 10.0);
      adam.step();
      (step == 0 ? first : last) = loss.item<double>();
    }
    EXPECT_LT(last, 0.5 * first) << name << ": " << first << " -> " << last;
  }
}

TEST(ReaderBatches, CoverEveryExampleOnceWithSimilarLengths) {
  Data d;
  std::vector<Example> many;
  for (int i = 0; i < 40; ++i) many.insert(many.end(), d.examples.begin(), d.examples.end());
  const auto batches = length_sorted_batches(many, 8, 3);
  std::multiset<int64_t> seen;
  for (const auto& batch : batches) {
    EXPECT_LE(batch.size(), 8u);
    seen.insert(batch.begin(), batch.end());
  }
  EXPECT_EQ(seen.size(), many.size());
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), many.size());
  // Unknown words and answers are ids, not failures.
  BabiTask task;
  task.test = parse_babi(kStories, "fixture");
  const Dataset empty = babi_dataset(task);
  const ReaderBatch b = make_batch(empty.test, {0}, 3);
  EXPECT_EQ(b.story[0][0].item<int64_t>(), Vocabulary::kUnknown);
  EXPECT_EQ(b.answers[0].item<int64_t>(), Vocabulary::kUnknown);
}

}  // namespace
}  // namespace linattn::reader
