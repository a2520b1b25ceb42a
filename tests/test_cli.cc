// The linattn command-line tool, run as a user would: results match the library, and every
// error path exits non-zero with exactly one line on stderr.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "linattn/linattn.h"
#include "npy.h"
#include "cli_runner.h"
#include "test_util.h"

namespace linattn {
namespace {

using test::CliRun;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("linattn_cli_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string p(const std::string& name) const { return (dir_ / name).string(); }

  CliRun run(const std::string& args) const { return test::run_program(LINATTN_CLI, args, dir_.string()); }
  // A failing run: non-zero exit, one line on stderr that mentions `words`.
  void expect_error(const std::string& args, const std::string& words) const {
    test::expect_one_line_error(run(args), args, words);
  }
  void save(const std::string& name, const test::Tensor<2>& m) const {
    npy::save(p(name), m.data.data(), m.shape[0], m.shape[1]);
  }
  void write_raw(const std::string& name, const std::string& bytes) const {
    std::ofstream(p(name), std::ios::binary) << bytes;
  }

  std::filesystem::path dir_;
};

TEST_F(CliTest, EncodeLookupMatchesTheLibrary) {
  const int64_t T = 200, d = 20;
  auto K = test::random_tensor<2>({T, d}), Q = test::random_tensor<2>({6, d});
  save("K.npy", K);
  save("Q.npy", Q);
  ASSERT_EQ(run("encode --keys " + p("K.npy") + " -o " + p("doc.lam")).code, 0);
  ASSERT_EQ(run("lookup " + p("doc.lam") + " --queries " + p("Q.npy") + " -o " + p("R.npy") + " --mean --scale 1000").code, 0);
  const npy::Matrix R = npy::load(p("R.npy"));
  ASSERT_EQ(R.rows, 6);
  ASSERT_EQ(R.cols, d);
  Memory m({.key_dim = d, .value_dim = d});
  m.write(K.cview(), K.cview());
  std::vector<float> expected(6 * d);
  m.lookup(Q.cview(), View2::contiguous(expected.data(), {6, d}), {.mean = true, .scale = 1000.f});
  EXPECT_LE(test::relative_error(R.data, expected), 1e-6);

  // Symmetric bf16 storage: about a quarter of the bytes, results within the bf16 bound.
  ASSERT_EQ(run("encode --keys " + p("K.npy") + " --symmetric --dtype bf16 -o " + p("s.lam")).code, 0);
  const CliRun info = run("info " + p("s.lam") + " --json");
  ASSERT_EQ(info.code, 0) << info.err;
  const auto j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j["layout"], "packed-symmetric");
  EXPECT_EQ(j["dtype"], "bf16");
  EXPECT_EQ(j["tokens"], T);
  EXPECT_EQ(j["checksum"], "ok");
  ASSERT_EQ(run("lookup " + p("s.lam") + " --queries " + p("Q.npy") + " -o " + p("Rs.npy") + " --mean --scale 1000").code, 0);
  EXPECT_LE(test::relative_error(npy::load(p("Rs.npy")).data, expected), 1e-2);

  // merge = the sum; compress to a low rank.
  ASSERT_EQ(run("merge " + p("doc.lam") + " " + p("doc.lam") + " -o " + p("m.lam")).code, 0);
  EXPECT_EQ(open_memory(p("m.lam")).info().tokens, 2 * T);
  ASSERT_EQ(run("compress " + p("s.lam") + " --rank 5 -o " + p("c.lam")).code, 0);
  EXPECT_EQ(open_memory(p("c.lam")).info().rank, 5);
  ASSERT_EQ(run("compress " + p("s.lam") + " --max-error 0.5 -o " + p("c2.lam")).code, 0);
  EXPECT_LE(open_memory(p("c2.lam")).info().compression_error, 0.5);
}

TEST_F(CliTest, BankCommands) {
  const int64_t d = 8;
  save("A.npy", test::random_tensor<2>({10, d}));
  save("B.npy", test::random_tensor<2>({30, d}));
  save("Q.npy", test::random_tensor<2>({3, d}));
  ASSERT_EQ(run("encode --keys " + p("A.npy") + " --symmetric -o " + p("a.lam")).code, 0);
  ASSERT_EQ(run("encode --keys " + p("B.npy") + " --symmetric -o " + p("b.lam")).code, 0);
  ASSERT_EQ(run("bank create " + p("bank.lamb")).code, 0);
  ASSERT_EQ(run("bank append " + p("bank.lamb") + " docA " + p("a.lam")).code, 0);
  ASSERT_EQ(run("bank append " + p("bank.lamb") + " docB " + p("b.lam")).code, 0);
  const CliRun list = run("bank list " + p("bank.lamb") + " --json");
  ASSERT_EQ(list.code, 0);
  const auto j = nlohmann::json::parse(list.out);
  ASSERT_EQ(j["memories"].size(), 2u);
  EXPECT_EQ(j["memories"][1]["name"], "docB");
  EXPECT_EQ(j["memories"][1]["tokens"], 30);
  ASSERT_EQ(run("bank query " + p("bank.lamb") + " --queries " + p("Q.npy") + " -o " + p("all.npy")).code, 0);
  ASSERT_EQ(run("bank query " + p("bank.lamb") + " --queries " + p("Q.npy") + " --names docB -o " + p("b.npy")).code, 0);
  const npy::Matrix all = npy::load(p("all.npy")), b = npy::load(p("b.npy"));
  ASSERT_EQ(all.rows, 6);
  ASSERT_EQ(b.rows, 3);
  for (int64_t i = 0; i < 3 * d; ++i) EXPECT_EQ(b.data[i], all.data[3 * d + i]);
  expect_error("bank append " + p("bank.lamb") + " docA " + p("a.lam"), "already in the bank");
  expect_error("bank query " + p("bank.lamb") + " --queries " + p("Q.npy") + " --names nope -o " + p("x.npy"), "no memory named 'nope'");
  expect_error("bank create " + p("bank.lamb"), "already exists");

  // search: per query the memories by q . C q, best first, as JSON or as two .npy files.
  const CliRun found = run("bank search " + p("bank.lamb") + " --queries " + p("Q.npy") + " --k 5");
  ASSERT_EQ(found.code, 0) << found.err;
  const auto s = nlohmann::json::parse(found.out);
  ASSERT_EQ(s.size(), 3u);
  for (int64_t i = 0; i < 3; ++i) {
    const auto& hits = s[i]["results"];
    ASSERT_EQ(hits.size(), 2u);  // k is capped at the bank's size
    // q . (C q): the lookup's answer (all.npy rows) dotted with the query.
    const npy::Matrix Q = npy::load(p("Q.npy"));
    double score[2] = {0, 0};
    for (int64_t m = 0; m < 2; ++m)
      for (int64_t c = 0; c < d; ++c) score[m] += Q.data[i * d + c] * all.data[(m * 3 + i) * d + c];
    const int64_t top = score[1] > score[0] ? 1 : 0;
    EXPECT_EQ(hits[0]["index"], top);
    EXPECT_EQ(hits[0]["name"], top ? "docB" : "docA");
    EXPECT_NEAR(hits[0]["score"].get<double>(), score[top], 1e-3 * (1 + std::abs(score[top])));
    EXPECT_GE(hits[0]["score"].get<double>(), hits[1]["score"].get<double>());
  }
  ASSERT_EQ(run("bank search " + p("bank.lamb") + " --queries " + p("Q.npy") + " --k 1 --names docB -o " +
                p("s.npy") + " --indices " + p("i.npy")).code, 0);
  const npy::Matrix scores = npy::load(p("s.npy"));
  EXPECT_EQ(scores.rows, 3);
  EXPECT_EQ(scores.cols, 1);
  expect_error("bank search " + p("bank.lamb") + " --queries " + p("Q.npy") + " --k 0", "--k");
  expect_error("bank search " + p("bank.lamb") + " --queries " + p("Q.npy") + " --score cosine", "not a score");
  expect_error("bank search " + p("bank.lamb") + " --queries " + p("Q.npy") + " -o " + p("s.npy"), "go together");
  expect_error("bank search " + p("bank.lamb") + " --queries " + p("Q.npy") + " -o " + p("t.npy") + " --indices " +
               p("t.npy"), "the same file");
  expect_error("bank search " + p("bank.lamb") + " --queries " + p("Q.npy") + " --names nope", "no memory named 'nope'");
}

TEST_F(CliTest, EveryErrorIsOneLine) {
  save("K.npy", test::random_tensor<2>({5, 4}));
  save("Q3.npy", test::random_tensor<2>({2, 3}));
  ASSERT_EQ(run("encode --keys " + p("K.npy") + " -o " + p("k.lam")).code, 0);
  expect_error("", "");  // no subcommand
  expect_error("encode -o " + p("x.lam"), "--keys");
  expect_error("encode --keys " + p("missing.npy") + " -o " + p("x.lam"), "missing.npy");
  expect_error("encode --keys " + p("K.npy") + " --dtype f16 -o " + p("x.lam"), "f16");
  expect_error("encode --keys " + p("K.npy") + " --feature-map tanh -o " + p("x.lam"), "tanh");
  expect_error("lookup " + p("k.lam") + " --queries " + p("Q3.npy") + " -o " + p("r.npy"), "key width");
  expect_error("compress " + p("k.lam") + " --rank 2 -o " + p("c.lam"), "not symmetric");
  // Malformed .npy inputs.
  const std::string header_f8 = std::string("\x93NUMPY\x01\x00", 8) + std::string("\x46\x00", 2) +
                                "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }          \n";
  write_raw("f8.npy", header_f8 + std::string(8, '\0'));
  expect_error("encode --keys " + p("f8.npy") + " -o " + p("x.lam"), "'<f8' is not supported");
  const std::string header_3d = std::string("\x93NUMPY\x01\x00", 8) + std::string("\x46\x00", 2) +
                                "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1), }       \n";
  write_raw("3d.npy", header_3d + std::string(4, '\0'));
  expect_error("encode --keys " + p("3d.npy") + " -o " + p("x.lam"), "3-D");
  write_raw("bad.npy", std::string("\x93NUMPY\x01\x00\x10\x00{'descr' '<f4'}  \n", 26));
  expect_error("encode --keys " + p("bad.npy") + " -o " + p("x.lam"), "malformed");
  write_raw("nan.npy", std::string("\x93NUMPY\x01\x00", 8) + std::string("\x46\x00", 2) +
                           "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }          \n" +
                           std::string("\x00\x00\xc0\x7f", 4));
  expect_error("encode --keys " + p("nan.npy") + " -o " + p("x.lam"), "NaN");
  // Broken memory files.
  write_raw("junk.lam", "hello");
  expect_error("info " + p("junk.lam"), "truncated");
  std::string bytes;
  {
    std::ifstream in(p("k.lam"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  bytes[140] ^= 1;
  write_raw("flip.lam", bytes);
  expect_error("info " + p("flip.lam"), "checksum");
  expect_error("lookup " + p("flip.lam") + " --queries " + p("Q3.npy") + " -o " + p("r.npy"), "checksum");
}

// Inputs that used to be lost, hang or be taken silently.
TEST_F(CliTest, NothingStoredIsLostNoInputHangs) {
  save("K.npy", test::random_tensor<2>({5, 4}));
  save("Q.npy", test::random_tensor<2>({2, 4}));
  ASSERT_EQ(run("encode --keys " + p("K.npy") + " -o " + p("k.lam")).code, 0);
  ASSERT_EQ(run("bank create " + p("b.lamb")).code, 0);
  ASSERT_EQ(run("bank append " + p("b.lamb") + " doc " + p("k.lam")).code, 0);
  auto slurp = [&](const std::string& name) {
    std::ifstream in(p(name), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  const std::string memory = slurp("k.lam"), bank = slurp("b.lamb");
  // An output naming an input, by the same or another path (a hard link), is refused.
  std::filesystem::create_hard_link(p("k.lam"), p("alias.lam"));
  expect_error("lookup " + p("k.lam") + " --queries " + p("Q.npy") + " -o " + p("k.lam"), "is the input");
  expect_error("lookup " + p("k.lam") + " --queries " + p("Q.npy") + " -o " + p("alias.lam"), "is the input");
  expect_error("lookup " + p("k.lam") + " --queries " + p("Q.npy") + " -o " + p("Q.npy"), "is the input");
  expect_error("bank query " + p("b.lamb") + " --queries " + p("Q.npy") + " -o " + p("b.lamb"), "is the input");
  expect_error("encode --keys " + p("K.npy") + " -o " + p("K.npy"), "is the input");
  expect_error("merge " + p("k.lam") + " " + p("alias.lam") + " -o " + p("k.lam"), "is the input");
  EXPECT_EQ(slurp("k.lam"), memory);
  EXPECT_EQ(slurp("b.lamb"), bank);
  // bank create never replaces a bank.
  expect_error("bank create " + p("b.lamb"), "already exists");
  EXPECT_EQ(slurp("b.lamb"), bank);
  // Special files are refused at once, not read to their end.
  expect_error("lookup " + p("k.lam") + " --queries /dev/zero -o " + p("r.npy"), "wrong magic");
  expect_error("lookup " + p("k.lam") + " --queries /dev/null -o " + p("r.npy"), "wrong magic");
  expect_error("lookup " + p("k.lam") + " --queries " + dir_.string() + " -o " + p("r.npy"), "directory");
  // Finite inputs whose products overflow float32: refused, never stored or answered as Inf.
  test::Tensor<2> big({3, 4});
  for (float& x : big.data) x = 3e19f;
  save("big.npy", big);
  expect_error("encode --keys " + p("big.npy") + " -o " + p("big.lam"), "float32's range");
  EXPECT_FALSE(std::filesystem::exists(p("big.lam")));
  save("bigq.npy", big);
  test::Tensor<2> keys({3, 4});
  for (float& x : keys.data) x = 1e15f;
  save("k15.npy", keys);
  ASSERT_EQ(run("encode --keys " + p("k15.npy") + " -o " + p("k15.lam")).code, 0);
  expect_error("lookup " + p("k15.lam") + " --queries " + p("bigq.npy") + " -o " + p("r.npy"), "overflow float32");
  // Names: not UTF-8, or with control characters.
  expect_error("bank append " + p("b.lamb") + " \"$(printf '\\377\\376')\" " + p("k.lam"), "UTF-8");
  expect_error("bank append " + p("b.lamb") + " \"$(printf 'a\\033[2Jb')\" " + p("k.lam"), "control characters");
  const CliRun listed = run("bank list --json " + p("b.lamb"));
  EXPECT_EQ(listed.code, 0) << listed.err;
  EXPECT_TRUE(nlohmann::json::accept(listed.out)) << listed.out;
  // Numbers: an empty value is not 0; ranges are stated plainly.
  expect_error("lookup " + p("k.lam") + " --queries " + p("Q.npy") + " -o " + p("r.npy") + " --scale ''", "empty");
  expect_error("compress " + p("k.lam") + " --rank 0 -o " + p("c.lam"), "greater than 0");
  const CliRun rank = run("compress " + p("k.lam") + " --rank 0 -o " + p("c.lam"));
  EXPECT_EQ(rank.err.find("e+308"), std::string::npos) << rank.err;
  // A mistyped command is named, with the commands there are.
  expect_error("lokup " + p("k.lam"), "unknown command 'lokup'");
  expect_error("bank lst " + p("b.lamb"), "unknown command 'lst'");
  // The demo at widths below 4, and at a size that cannot be allocated.
  const CliRun small = run("demo -d 2 -T 8 -m 3");
  EXPECT_EQ(small.code, 0) << small.err;
  EXPECT_NE(small.out.find("first 2 outputs"), std::string::npos) << small.out;
  expect_error("demo -T 4194304 -d 4096", "GiB");
}

// --only runs the named sections and nothing else; unknown names and plots without their data
// are refused before anything runs.
TEST_F(CliTest, BenchOnlyRunsTheNamedSections) {
  const CliRun r = run("bench --quick --only causal,storage --json " + p("only.json"));
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream in(p("only.json"));
  const auto j = nlohmann::json::parse(in);
  // 22 rows and 5 baseline checks, for d = 64 and 128
  EXPECT_EQ(j["causal"].size(), 54u);
  // automatic against the better of chunked and recurrent: each pass and decay, both widths, with
  // what it chose; and the GLA training goal at both widths (timings are not asserted).
  ASSERT_EQ(j["causal_goals"].size(), 10u);
  int automatic = 0, training = 0;
  for (const auto& g : j["causal_goals"]) {
    EXPECT_TRUE(g["met"].is_boolean());
    EXPECT_GT(g["value"].get<double>(), 0);
    EXPECT_TRUE(g["goal"].is_string());
    if (g["target"].get<std::string>().rfind("automatic", 0) == 0) {
      ++automatic;
      EXPECT_TRUE(g["chose"] == "chunked" || g["chose"] == "recurrent") << g;
      EXPECT_TRUE(g["measured"].get<bool>());
      EXPECT_TRUE(g["chose_the_faster"].is_boolean());
      EXPECT_GT(g["call_bytes"].get<int64_t>(), 0);
    } else {
      ++training;
      EXPECT_NE(g["target"].get<std::string>().find("saved states, GLA"), std::string::npos) << g;
    }
  }
  EXPECT_EQ(automatic, 8);
  EXPECT_EQ(training, 2);
  for (const auto& row : j["causal"]) {
    if (row.contains("relative_difference")) {
      EXPECT_LT(row["relative_difference"].get<double>(), 1e-4);
    }
  }
  EXPECT_EQ(j["storage"].size(), 7u);
  for (const char* absent : {"kernels", "lookup_vs_T", "targets"}) EXPECT_FALSE(j.contains(absent)) << absent;
  expect_error("bench --quick --only causl", "causl not in");
  expect_error("bench --quick --only causal --plots " + p("plots"), "need the kernels and lookup");
}

// A smoke test: the benchmark runs and its JSON holds every section. No timing is asserted.
TEST_F(CliTest, BenchQuickWritesValidJsonAndPlots) {
  const CliRun r = run("bench --quick --json " + p("bench.json") + " --plots " + p("plots"));
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream in(p("bench.json"));
  const auto j = nlohmann::json::parse(in);
  EXPECT_GT(j["roofs"]["fma_gflops_per_core"].get<double>(), 0);
  EXPECT_GT(j["roofs"]["read_gbytes_s_dram_256MiB"].get<double>(), 0);
  EXPECT_FALSE(j["machine"]["cpu"].get<std::string>().empty());
  ASSERT_GE(j["kernels"].size(), 10u);
  for (const auto& k : j["kernels"]) {
    EXPECT_GT(k["seconds"].get<double>(), 0) << k["name"];
    EXPECT_GT(k["flops"].get<double>(), 0) << k["name"];
    EXPECT_TRUE(k["bound"] == "compute" || k["bound"] == "memory") << k["name"];
  }
  ASSERT_GE(j["lookup_vs_T"].size(), 4u);
  EXPECT_EQ(j["targets"].size(), 13u);  // 7 kernel targets, and one per single-lookup form
  for (const auto& t : j["targets"]) {
    EXPECT_TRUE(t["met"].is_boolean());
    EXPECT_TRUE(t["value"].is_number()) << t.dump();
    EXPECT_TRUE(t["goal"].is_string()) << t.dump();
  }
  EXPECT_GE(j["roofs"]["bf16_dot_gflops_per_core"].get<double>(), 0.0);
  EXPECT_EQ(j["storage"].size(), 7u);
  // The search section, with the baselines beside it: FAISS (a program of its own, built beside
  // linattn) and oneDNN's sgemv.
  int faiss_rows = 0;
  for (const auto& row : j["search"]) faiss_rows += row["name"] == "FAISS IndexFlatIP (baseline)";
  EXPECT_EQ(faiss_rows, 2);
  bool sgemv = false;
  for (const auto& k : j["kernels"]) sgemv = sgemv || k["name"] == "oneDNN sgemv, single (baseline)";
  EXPECT_TRUE(sgemv);
  for (const char* png : {"lookup_vs_T.png", "pct_roof.png"}) {
    std::ifstream f(p("plots/") + png, std::ios::binary);
    std::string head(8, '\0');
    f.read(head.data(), 8);
    EXPECT_EQ(head, std::string("\x89PNG\r\n\x1a\n", 8)) << png;
  }
}

TEST(Npy, RoundTripAndStrictParsing) {
  const std::string path = (std::filesystem::temp_directory_path() / ("npy_" + std::to_string(::getpid()) + ".npy")).string();
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  npy::save(path, x.data(), 2, 3);
  const npy::Matrix m = npy::load(path);
  EXPECT_EQ(m.rows, 2);
  EXPECT_EQ(m.cols, 3);
  EXPECT_EQ(m.data, x);
  npy::save(path, nullptr, 0, 5);
  EXPECT_EQ(npy::load(path).rows, 0);
  std::filesystem::remove(path);
  auto parse = [](const std::string& s) { return npy::parse(std::as_bytes(std::span<const char>(s.data(), s.size())), "t.npy"); };
  const std::string head = std::string("\x93NUMPY\x01\x00", 8) + std::string("\x46\x00", 2);
  EXPECT_THROW(parse(head + "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1), }           \n" + std::string(4, '\0')), FormatError);
  EXPECT_THROW(parse(head + "{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999, 999999), }\n"), FormatError);
  EXPECT_THROW(parse(head + "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }          \n" + std::string(4, '\0')), FormatError);
  EXPECT_THROW(parse("garbage"), FormatError);
}

}  // namespace
}  // namespace linattn
