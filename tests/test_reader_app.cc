// The reader as an application: checkpoints, exact resumption, answering from stored memories,
// reports.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "checkpoint.h"
#include "linattn/core/error.h"
#include "linattn/memory/bank.h"
#include "report.h"
#include "scratch_dir.h"
#include "serve.h"
#include "training.h"

namespace linattn::reader {
namespace {
namespace fs = std::filesystem;

class ReaderApp : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
  std::string path(const std::string& name) const { return dir_(name); }

  // A small MQAR set: no files needed, and every mechanism can learn it.
  static DataSpec data() {
    DataSpec d;
    d.kind = "mqar";
    d.mqar = {.pairs = 3, .vocab = 32, .train_sequences = 40, .valid_sequences = 5, .test_sequences = 8};
    return d;
  }
  static Checkpoint start(Mechanism m, const Dataset& d, bool bidirectional = false, int epochs = 2, double dropout = 0) {
    TrainSettings s;
    s.epochs = epochs;
    s.batch = 8;
    s.lr = 3e-3;
    return Checkpoint::start(ReaderOptions(d.words.size(), d.answers.size())
                                 .mechanism(m)
                                 .hidden(12)
                                 .embedding(8)
                                 .attention(10)
                                 .output(10)
                                 .bidirectional(bidirectional)
                                 .dropout(dropout),
                             data(), s, d.words, d.answers);
  }
  static void expect_same_weights(Reader& a, Reader& b) {
    const auto pb = b->named_parameters();
    for (const auto& p : a->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
  }
  test::ScratchDir dir_{"linattn_reader_app"};
};

const RunOptions quiet(const std::string& checkpoint, int64_t max_steps = -1) {
  static std::FILE* devnull = std::fopen("/dev/null", "w");
  return {checkpoint, max_steps, false, devnull};
}

TEST_F(ReaderApp, ResumedTrainingEqualsUninterruptedTraining) {
  const Dataset d = load_dataset(data(), "");
  Checkpoint whole = start(Mechanism::gated_vector, d, /*bidirectional=*/true, 3, /*dropout=*/0.3);
  ASSERT_TRUE(train(whole, d, quiet(path("whole.ckpt"))));

  Checkpoint part = start(Mechanism::gated_vector, d, true, 3, 0.3);
  ASSERT_FALSE(train(part, d, quiet(path("part.ckpt"), 7)));  // mid-epoch (15 steps per epoch)
  for (int64_t steps : {10, 13}) {                              // stops again twice, across epoch ends
    Checkpoint again = Checkpoint::load(path("part.ckpt"));
    ASSERT_FALSE(train(again, d, quiet(path("part.ckpt"), steps)));
  }
  Checkpoint resumed = Checkpoint::load(path("part.ckpt"));
  EXPECT_EQ(resumed.progress.epochs_done, 2);
  ASSERT_TRUE(train(resumed, d, quiet(path("part.ckpt"))));
  expect_same_weights(whole.model, resumed.model);
  expect_same_weights(whole.best, resumed.best);
  ASSERT_EQ(whole.progress.curve.size(), resumed.progress.curve.size());
  for (size_t i = 0; i < whole.progress.curve.size(); ++i) {
    EXPECT_EQ(whole.progress.curve[i].loss, resumed.progress.curve[i].loss);
    EXPECT_EQ(whole.progress.curve[i].valid_accuracy, resumed.progress.curve[i].valid_accuracy);
  }
  EXPECT_EQ(whole.progress.best_epoch, resumed.progress.best_epoch);
}

TEST_F(ReaderApp, CheckpointsRoundTripAndBadFilesAreNamed) {
  const Dataset d = load_dataset(data(), "");
  Checkpoint c = start(Mechanism::softmax, d);
  ASSERT_TRUE(train(c, d, quiet(path("c.ckpt"))));
  Checkpoint back = Checkpoint::load(path("c.ckpt"));
  expect_same_weights(c.best, back.best);
  EXPECT_EQ(back.describe(), c.describe());
  EXPECT_EQ(accuracy(back.best, d.test, back.answers.size()), accuracy(c.best, d.test, c.answers.size()));

  auto expect_named = [&](const std::string& file) {
    try {
      Checkpoint::load(file);
      ADD_FAILURE() << file << " loaded";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    }
  };
  expect_named(path("missing.ckpt"));
  const auto size = fs::file_size(path("c.ckpt"));
  fs::copy_file(path("c.ckpt"), path("truncated.ckpt"));
  fs::resize_file(path("truncated.ckpt"), size / 2);
  expect_named(path("truncated.ckpt"));
  std::ofstream(path("text.ckpt")) << "not a checkpoint";
  expect_named(path("text.ckpt"));
  fs::copy_file(path("c.ckpt"), path("flipped.ckpt"));
  {  // one byte inverted in the middle (writing zeros could land on zeros: padding rows, Adam state)
    std::fstream f(path("flipped.ckpt"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(size / 3));
    const char byte = static_cast<char>(f.get() ^ 0xff);
    f.seekp(static_cast<std::streamoff>(size / 3));
    f.put(byte);
  }
  expect_named(path("flipped.ckpt"));
}

TEST_F(ReaderApp, StoredMemoriesAnswerLikeTheGraph) {
  const Dataset d = load_dataset(data(), "");
  for (Mechanism m : {Mechanism::linear, Mechanism::gated_scalar, Mechanism::gated_vector}) {
    for (bool bidirectional : {false, true}) {
      Checkpoint c = start(m, d, bidirectional);
      ASSERT_TRUE(train(c, d, quiet("")));
      const std::string bank = path(to_string(m) + (bidirectional ? "-bi" : "") + ".lamb");
      const EncodeReport e = encode_stories(c, d.test, bank);
      EXPECT_EQ(e.stories, 8);  // three questions per story, one memory each
      const int64_t w = c.best->state_size();
      EXPECT_EQ(e.payload_per_story, 4 * w * (w + 1) / 2);
      const ServeReport r = answer_from_bank(c, d.test, bank);
      EXPECT_EQ(r.questions, 24);
      EXPECT_EQ(r.agree, r.questions) << to_string(m);
      EXPECT_LT(r.max_logit_difference, 1e-4) << to_string(m);
      EXPECT_THROW(encode_stories(c, d.test, bank), FormatError);  // never overwrites a bank
      // bf16 storage: half the numbers' bytes, answers close.
      const std::string half = path(to_string(m) + (bidirectional ? "-bi" : "") + "-bf16.lamb");
      EXPECT_EQ(encode_stories(c, d.test, half, DType::bf16).payload_per_story, 2 * w * (w + 1) / 2);
      EXPECT_LT(answer_from_bank(c, d.test, half).max_logit_difference, 0.05);
    }
  }
  // A bank of other stories is an error that says so, not a wrong answer.
  Checkpoint c = start(Mechanism::linear, d);
  const std::string bank = path("valid.lamb");
  encode_stories(c, d.valid, bank);
  EXPECT_THROW(answer_from_bank(c, d.test, bank), Error);
  Checkpoint s = start(Mechanism::softmax, d);
  EXPECT_THROW(encode_stories(s, d.test, path("softmax.lamb")), Error);
}

TEST_F(ReaderApp, EveryMechanismAnswersFromItsStoredForm) {
  const Dataset d = load_dataset(data(), "");
  for (Mechanism m : {Mechanism::none, Mechanism::softmax, Mechanism::linear, Mechanism::gated_scalar, Mechanism::gated_vector}) {
    Checkpoint c = start(m, d);
    const ServeReport r = answer_from_states(c.best, d.test, c.answers.size());
    EXPECT_EQ(r.agree, r.questions) << to_string(m);
    EXPECT_LT(r.max_logit_difference, 1e-4) << to_string(m);
    const double w = 12;
    const double expected = m == Mechanism::none ? 4 * w : m == Mechanism::softmax ? 4 * w * 6 : 4 * w * (w + 1) / 2;
    EXPECT_EQ(r.bytes_per_story, expected) << to_string(m);
  }
}

TEST_F(ReaderApp, ReportGivesMeansSpreadsAndPlots) {
  const std::string results = path("r.jsonl");
  {
    std::ofstream out(results);
    for (int seed = 1; seed <= 3; ++seed)
      for (const char* m : {"none", "softmax"}) {
        const double acc = std::string(m) == "none" ? 0.4 + 0.1 * seed : 0.9;
        out << nlohmann::json{{"kind", "babi"}, {"data", "en"}, {"task", 1}, {"mechanism", m}, {"seed", seed},
                              {"test_accuracy", acc},
                              {"curve", {{{"epoch", 1}, {"valid_accuracy", 0.3}}, {{"epoch", 2}, {"valid_accuracy", acc}}}}}
                   .dump()
            << "\n";
      }
    out << "\n"
        << nlohmann::json{{"kind", "mqar"}, {"pairs", 8}, {"hidden", 32}, {"mechanism", "linear"}, {"test_accuracy", 0.7}}.dump()
        << "\n";
  }
  const std::string md = write_report(read_results({results}), path("report"), /*plots=*/true);
  EXPECT_NE(md.find("| 1 | 0.600 ± 0.100 | 0.900 ± 0.000 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 32 | 8 | 0.700 |"), std::string::npos) << md;
  for (const char* png : {"curves_en_task1.png", "accuracy_en.png", "mqar.png"}) {
    EXPECT_TRUE(fs::exists(path("report") + "/" + png)) << png;
    EXPECT_GT(fs::file_size(path("report") + "/" + png), 1000u) << png;
  }
  std::ofstream(path("bad.jsonl")) << nlohmann::json{{"task", 1}}.dump() << "\n{broken\n";
  try {
    read_results({path("bad.jsonl")});
    ADD_FAILURE() << "read a broken line";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_results({path("none.jsonl")}), Error);
}

}  // namespace
}  // namespace linattn::reader
