// linattn-reader (and `linattn reader`) run as a user would, on MQAR so that no data files are
// needed: train with checkpoints, resume, eval, encode, answer from a bank, report, study.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "scratch_dir.h"

namespace linattn {
namespace {
namespace fs = std::filesystem;

class ReaderCliTest : public ::testing::Test {
 protected:
  std::string p(const std::string& name) const { return dir_(name); }
  test::CliRun reader(const std::string& args) const { return test::run_program(LINATTN_READER, args, dir_.path()); }
  void expect_error(const std::string& args, const std::string& words) const {
    test::expect_one_line_error(reader(args), args, words);
  }
  test::ScratchDir dir_{"linattn_reader_cli"};
};

const std::string kSmall = "--mqar-pairs 3 --mqar-vocab 32 --mqar-train 60 --hidden 12 --embedding 8 --no-progress";

// Early stopping ends a run --patience epochs after its best validation epoch, and a resumed
// stopped run trains no more; each mechanism trains at its default learning rate unless --lr.
TEST_F(ReaderCliTest, PatienceStopsARunAndLearningRatesDefaultPerMechanism) {
  auto json_of = [&](const std::string& file) {
    std::ifstream in(p(file));
    std::string line;
    std::getline(in, line);
    return nlohmann::json::parse(line);
  };
  // Tiny MQAR: validation accuracy stops improving long before 60 epochs.
  auto r = reader("train " + kSmall + " --mechanism linear --epochs 60 --patience 2 --checkpoint " + p("e.ckpt") +
                  " --results " + p("e.jsonl"));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto e = json_of("e.jsonl");
  ASSERT_TRUE(e["stopped_early"].get<bool>()) << e.dump();
  EXPECT_NE(r.out.find("stopping early after epoch"), std::string::npos) << r.out;
  EXPECT_EQ(e["epochs_run"].get<int>() - e["best_epoch"].get<int>(), 2);
  EXPECT_EQ(e["curve"].size(), e["epochs_run"].get<size_t>());
  EXPECT_LT(e["epochs_run"].get<int>(), 60);
  EXPECT_EQ(e["patience"].get<int>(), 2);
  EXPECT_DOUBLE_EQ(e["lr"].get<double>(), 1e-3);
  r = reader("train --resume --checkpoint " + p("e.ckpt") + " --no-progress --results " + p("e2.jsonl"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json_of("e2.jsonl")["epochs_run"], e["epochs_run"]);  // stopped stays stopped
  expect_error("train --resume --checkpoint " + p("e.ckpt") + " --patience 5", "disagrees with");

  // Without --patience every epoch runs; softmax defaults to 3e-4; --lr overrides it.
  r = reader("train " + kSmall + " --mechanism softmax --epochs 2 --results " + p("s.jsonl"));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto s = json_of("s.jsonl");
  EXPECT_EQ(s["epochs_run"].get<int>(), 2);
  EXPECT_FALSE(s["stopped_early"].get<bool>());
  EXPECT_DOUBLE_EQ(s["lr"].get<double>(), 3e-4);
  r = reader("train " + kSmall + " --mechanism softmax --epochs 1 --lr 0.002 --results " + p("l.jsonl"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_DOUBLE_EQ(json_of("l.jsonl")["lr"].get<double>(), 0.002);
}

TEST_F(ReaderCliTest, TrainResumeEvalEncodeAnswer) {
  auto r = reader("train " + kSmall + " --mechanism gated-scalar --epochs 2 --checkpoint " + p("m.ckpt") +
                  " --max-steps 5");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("stopped after 5 steps"), std::string::npos) << r.out;
  r = reader("train --resume --checkpoint " + p("m.ckpt") + " --no-progress --results " + p("r.jsonl"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("resuming"), std::string::npos);
  EXPECT_NE(r.out.find("test accuracy 0."), std::string::npos) << r.out;
  std::ifstream results(p("r.jsonl"));
  std::string line;
  ASSERT_TRUE(std::getline(results, line));
  EXPECT_NE(line.find("\"kind\":\"mqar\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"curve\""), std::string::npos) << line;
  expect_error("train --resume --checkpoint " + p("m.ckpt") + " --mechanism linear", "disagrees with");

  r = reader("eval --model " + p("m.ckpt"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("accuracy 0."), std::string::npos) << r.out;
  std::ofstream(p("qa.txt")) << "1 3 20 5 30\n2 3\t20\t1\n3 5\t30\t1\n";
  r = reader("eval --model " + p("m.ckpt") + " --file " + p("qa.txt"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("on 2 questions of"), std::string::npos) << r.out;
  std::ofstream(p("bad.txt")) << "1 3 20\nnot numbered\n";
  expect_error("eval --model " + p("m.ckpt") + " --file " + p("bad.txt"), "bad.txt:2");
  r = reader("encode --model " + p("m.ckpt") + " --bank " + p("s.lamb"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("stored 200 test stories"), std::string::npos) << r.out;
  expect_error("encode --model " + p("m.ckpt") + " --bank " + p("s.lamb"), "exists");
  r = reader("eval --model " + p("m.ckpt") + " --bank " + p("s.lamb"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("equal to in-graph 600/600"), std::string::npos) << r.out;

  // A story file and a question, or a stored memory and a question.
  std::ofstream(p("story.txt")) << "3 20\n5 30\n";
  r = reader("answer --model " + p("m.ckpt") + " --story " + p("story.txt") + " --question 5 --top 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
  const auto listing = test::run_program(LINATTN_CLI, "bank list " + p("s.lamb"), dir_.path()).out;
  std::istringstream lines(listing);
  std::string header, entry;
  std::getline(lines, header);
  lines >> entry;  // the first memory's name, "<story>:<tokens>"
  ASSERT_NE(entry.find(':'), std::string::npos) << listing;
  r = reader("answer --model " + p("m.ckpt") + " --bank " + p("s.lamb") + " --entry " + entry + " --question 7");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  expect_error("answer --model " + p("m.ckpt") + " --bank " + p("s.lamb") + " --entry nope --question 7", "no memory named 'nope'");
  expect_error("answer --model " + p("m.ckpt") + " --question 7", "give the story");
  expect_error("answer --model " + p("m.ckpt") + " --story " + p("story.txt"), "--question is required");
  expect_error("eval --model " + p("missing.ckpt"), "missing.ckpt");
}

// CNN end to end on a made-up data set in the DeepMind layout (`cnn-sample`): train (checkpointed, resumable),
// eval on a split and on files, store every document's memory and answer from it, answer a
// .question file in the file's own entity names.
TEST_F(ReaderCliTest, CnnTrainEvalEncodeAnswer) {
  ASSERT_EQ(reader("cnn-sample --out " + p("cnn") + " --train 60 --valid 12 --test 12").code, 0);
  const std::string cnn = " --cnn " + p("cnn");
  auto r = reader("train" + cnn + " --mechanism linear --hidden 12 --embedding 8 --epochs 2 --no-progress --checkpoint " +
                  p("c.ckpt") + " --results " + p("c.jsonl") + " --max-steps 1");
  ASSERT_EQ(r.code, 0) << r.err;
  r = reader("train --resume --checkpoint " + p("c.ckpt") + " --no-progress --results " + p("c.jsonl"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("CNN ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("60 train / 12 valid / 12 test questions"), std::string::npos) << r.out;
  std::ifstream results(p("c.jsonl"));
  std::string line;
  ASSERT_TRUE(std::getline(results, line));
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["data"], "cnn");
  EXPECT_EQ(j["hidden"], 12);
  EXPECT_EQ(j["epochs_run"], 2);
  expect_error("train --resume --checkpoint " + p("c.ckpt") + " --cnn " + p("."), "disagrees with");

  // The authors' sizes are this data's defaults; --max-examples reads the first files only.
  r = reader("train" + cnn + " --mechanism none --epochs 1 --max-examples 5 --no-progress --results " + p("d.jsonl"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("5 train / 5 valid / 5 test questions"), std::string::npos) << r.out;
  std::ifstream defaults(p("d.jsonl"));
  ASSERT_TRUE(std::getline(defaults, line));
  EXPECT_EQ(nlohmann::json::parse(line)["hidden"], 100);
  EXPECT_EQ(nlohmann::json::parse(line)["embedding"], 100);

  // Evaluation and storage never need the training split.
  fs::rename(p("cnn/questions/training"), p("cnn/training.away"));
  r = reader("eval --model " + p("c.ckpt"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("on 12 questions of test"), std::string::npos) << r.out;
  r = reader("eval --model " + p("c.ckpt") + " --file " + p("cnn/questions/validation"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("on 12 questions of"), std::string::npos) << r.out;
  // Three questions per document: four memories answer twelve questions, equal to the graph.
  r = reader("encode --model " + p("c.ckpt") + " --bank " + p("c.lamb"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("stored 4 test stories"), std::string::npos) << r.out;
  r = reader("eval --model " + p("c.ckpt") + " --bank " + p("c.lamb"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("equal to in-graph 12/12"), std::string::npos) << r.out;
  // A moved data set: --cnn points at it.
  fs::rename(p("cnn"), p("moved"));
  expect_error("eval --model " + p("c.ckpt"), "is not a directory");
  r = reader("eval --model " + p("c.ckpt") + " --cnn " + p("moved"));
  ASSERT_EQ(r.code, 0) << r.err;

  // answer: a .question file brings its own query; answers are the file's markers and names,
  // chosen among the document's entities only.
  const std::string question = p("moved/questions/test/q100072.question");
  std::ifstream in(question);
  std::stringstream text;
  text << in.rdbuf();
  r = reader("answer --model " + p("c.ckpt") + " --story " + question + " --top 50");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream answers(r.out);
  int printed = 0;
  for (std::string marker; answers >> marker; ++printed) {
    EXPECT_NE(text.str().find(marker + " "), std::string::npos) << marker << " is not in the document\n" << r.out;
    std::string rest;
    std::getline(answers, rest);
    EXPECT_NE(rest.find("(Person "), std::string::npos) << rest;
  }
  EXPECT_GE(printed, 2);
  EXPECT_LE(printed, 12);  // six sentences, two entities each
  r = reader("answer --model " + p("c.ckpt") + " --story " + question + " --question \"@placeholder met\"");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("@entity", 0), 0u) << r.out;

  r = reader("cnn-sample --out " + p("sample") + " --train 5 --valid 2 --test 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::distance(fs::directory_iterator(p("sample/questions/training")), fs::directory_iterator()), 5);
  expect_error("cnn-sample --out " + p("sample"), "exists already");
  expect_error("train --cnn " + p("nowhere") + " --epochs 1", "--cnn");
  expect_error("train --cnn " + p("moved") + " --task 2", "not a bAbI --task");
  expect_error("train --max-examples 3 --epochs 1", "--max-examples requires --cnn");
  expect_error("train --cnn " + p("moved") + " --mqar-pairs 2", "exclude each other");
}

// The relatives as reader mechanisms: trained, stored one memory per story (Galerkin packed,
// the lambda whole, the K-slot memory K x d), and answered from the bank exactly as in the graph.
TEST_F(ReaderCliTest, RelativesAnswerFromStoredMemories) {
  for (const std::string m : {"galerkin", "lambda", "kslot"}) {
    const std::string ckpt = p(m + ".ckpt"), bank = p(m + ".lamb");
    auto r = reader("train " + kSmall + " --mechanism " + m + " --epochs 1 --checkpoint " + ckpt +
                    (m == "kslot" ? " --slots 5 --slot-positions" : ""));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find(m + " attention"), std::string::npos) << r.out;
    r = reader("encode --model " + ckpt + " --bank " + bank);
    ASSERT_EQ(r.code, 0) << r.err;
    r = reader("eval --model " + ckpt + " --bank " + bank);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("equal to in-graph 600/600"), std::string::npos) << r.out;
    // The bank's memories say what they are.
    const auto info = test::run_program(LINATTN_CLI, "bank list " + bank, dir_.path());
    EXPECT_NE(info.out.find(m == "lambda" ? "content-lambda" : m), std::string::npos) << info.out;
    // 12 units: Galerkin's symmetric memory is stored packed (78 numbers), the lambda whole with
    // its exp-sums and channel maxima (144 + 24), the K-slot one 5 x 12.
    EXPECT_NE(r.out.find(m == "galerkin" ? "312 bytes/story" : m == "lambda" ? "672 bytes/story" : "240 bytes/story"),
              std::string::npos)
        << r.out;
  }
  expect_error("train --resume --checkpoint " + p("kslot.ckpt") + " --slots 6", "disagrees with");
  expect_error("study --out " + p("s") + " --no-babi --mqar --mechanisms linear,quadratic",
               "unknown attention mechanism 'quadratic'");
}

TEST_F(ReaderCliTest, StudyRunsInParallelResumesAndReports) {
  const std::string study = "study --out " + p("study") + " --no-babi --mqar --mqar-pairs 2,3 --mqar-widths 8 --mqar-epochs 1 "
                            "--mqar-questions 60 --mechanisms none,linear --seeds 1 --jobs 2";
  auto r = reader(study);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("4 to run"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| 8 | 3 |"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(p("study/report.md")));
  EXPECT_TRUE(fs::exists(p("study/mqar.png")));
  // Run again: nothing left to do, the same report.
  r = reader(study);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("4 done before, 0 to run"), std::string::npos) << r.out;
  r = reader("report " + p("study/results.jsonl") + " --out " + p("again") + " --no-plots");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(p("again/report.md")));
}

// `make run` on a clone without bAbI beside it: the MQAR comparison with the stored-memory
// measurements, then where bAbI is read from and where to get it.
TEST_F(ReaderCliTest, ReproduceWithoutBabiComparesOnMqar) {
  fs::create_directories(p("empty"));
  auto r = reader("reproduce --out " + p("repro") + " --data " + p("empty") +
                  " --mechanisms none,linear,softmax --seeds 1 --mqar-pairs 3 --mqar-widths 8 --mqar-epochs 1"
                  " --mqar-questions 60 --jobs 2 --no-plots");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("No bAbI data here"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 to run"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| 8 | 3 |"), std::string::npos) << r.out;  // the MQAR table
  // Every mechanism answered from its stored form, and the fixed-size memory equal to the graph.
  EXPECT_NE(r.out.find("MQAR, 3 pairs, d = 8"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bank"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("every hidden state"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("equal to in-graph 600/600"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tasks_1-20_v1-2.tar.gz"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("LINATTN_BABI_DIR"), std::string::npos) << r.out;
  // reproduce trains every mechanism at 1e-3 (its 20-epoch budget), softmax included.
  std::ifstream lines(p("repro/results.jsonl"));
  int softmax_lines = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.value("mechanism", "") == "softmax" && j.contains("lr")) {
      EXPECT_DOUBLE_EQ(j["lr"].get<double>(), 1e-3) << line;
      ++softmax_lines;
    }
  }
  EXPECT_GE(softmax_lines, 1);
  std::ifstream report(p("repro/report.md"));
  std::stringstream md;
  md << report.rdbuf();
  EXPECT_NE(md.str().find("| MQAR, 3 pairs, d = 8 | linear |"), std::string::npos) << md.str();
}

TEST_F(ReaderCliTest, ErrorsAreOneLine) {
  expect_error("train --mechanism quadratic --mqar-pairs 2", "unknown attention mechanism 'quadratic'");
  expect_error("train --data /nonexistent", "no en/ or en-10k/ directory of bAbI files");
  expect_error("train --mqar-pairs 40 --mqar-vocab 32", "pairs");
  expect_error("train --resume --mqar-pairs 2", "--resume needs --checkpoint");
  std::ofstream(p("junk.ckpt")) << "junk";
  expect_error("eval --model " + p("junk.ckpt"), "not a readable linattn-reader checkpoint");
  expect_error("report " + p("none.jsonl"), "none.jsonl");
  expect_error("trian --task 1", "unknown command 'trian'");
  auto v = reader("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("linattn-reader"), std::string::npos) << v.out;
  expect_error("train --mqar-pairs 2 --lr ''", "greater than 0, not ''");
  expect_error("train --mqar-pairs 2 --lr 0", "greater than 0");
}

// Data that holds no questions is an error, never "accuracy 0.000 on 0 questions".
TEST_F(ReaderCliTest, EmptyOrSpecialDataIsRefused) {
  auto r = reader("train " + kSmall + " --mechanism linear --epochs 1 --checkpoint " + p("m.ckpt"));
  ASSERT_EQ(r.code, 0) << r.err;
  std::ofstream(p("empty.txt")).flush();
  fs::create_directories(p("dir"));
  expect_error("eval --model " + p("m.ckpt") + " --file " + p("empty.txt"), "no questions");
  expect_error("eval --model " + p("m.ckpt") + " --file /dev/null", "not a regular file");
  expect_error("eval --model " + p("m.ckpt") + " --file " + p("dir"), "is a directory");
  expect_error("answer --model " + p("m.ckpt") + " --story " + p("empty.txt") + " --question 3", "is empty");
  std::ofstream(p("story.txt")) << "1 3 20 5 30\n";
  r = reader("answer --model " + p("m.ckpt") + " --story " + p("story.txt") + " --question 3");
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(ReaderCliTest, LinattnRunsTheReader) {
  auto r = test::run_program(LINATTN_CLI, "reader train --help", dir_.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("--mechanism"), std::string::npos) << r.out;
  r = test::run_program(LINATTN_CLI, "reader train --mechanism quadratic --mqar-pairs 2", dir_.path());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("unknown attention mechanism"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace linattn
