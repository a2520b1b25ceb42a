// Memory configurations of the relatives (galerkin, content lambda, K-slot): each answers as its
// operator does, writing in chunks equals writing at once, shards merge into the whole, files and
// banks keep the kind (and version-1 files still read as linear), and bad input is refused
// with the memory unchanged.
#include <gtest/gtest.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "linattn/linattn.h"
#include "test_util.h"

namespace linattn {
namespace {

using test::Tensor;

using test::temp_path;

// Rows [t0, t0 + n) of x.
CView2 rows(const Tensor<2>& x, int64_t t0, int64_t n) {
  return CView2(x.data.data() + t0 * x.shape[1], {n, x.shape[1]}, {x.shape[1], 1});
}
CView4 as4(const Tensor<2>& x) { return CView4::contiguous(x.data.data(), {1, 1, x.shape[0], x.shape[1]}); }

std::vector<float> looked_up(const Memory& m, const Tensor<2>& q, const LookupOptions& o = {}) {
  std::vector<float> out(static_cast<size_t>(q.shape[0] * m.config().value_dim));
  m.lookup(q.cview(), View2::contiguous(out.data(), {q.shape[0], m.config().value_dim}), o);
  return out;
}

// What the operator answers for the same queries, keys and values.
std::vector<float> by_operator(MemoryKind kind, const Tensor<2>& q, const Tensor<2>& k, const Tensor<2>& v) {
  std::vector<float> out(static_cast<size_t>(q.shape[0] * v.shape[1]));
  const View4 o = View4::contiguous(out.data(), {1, 1, q.shape[0], v.shape[1]});
  if (kind == MemoryKind::galerkin) galerkin_attention(as4(q), as4(k), as4(v), o);
  if (kind == MemoryKind::content_lambda) content_lambda_attention(as4(q), as4(k), as4(v), o);
  if (kind == MemoryKind::kslot) {
    std::vector<float> C(static_cast<size_t>(k.shape[1] * v.shape[1]));
    kslot_memory_encode(as4(k), as4(v), View4::contiguous(C.data(), {1, 1, k.shape[1], v.shape[1]}));
    kslot_memory_lookup(as4(q), CView4::contiguous(C.data(), {1, 1, k.shape[1], v.shape[1]}), o);
  }
  return out;
}

class MemoryRelatives : public ::testing::TestWithParam<MemoryKind> {};

TEST_P(MemoryRelatives, AnswerAsTheirOperatorInChunksAndMerged) {
  const MemoryKind kind = GetParam();
  const int64_t T = 37, dk = 9, dv = 7;
  auto k = test::random_tensor<2>({T, dk}), v = test::random_tensor<2>({T, dv}), q = test::random_tensor<2>({4, dk});
  // Keys far apart in scale from chunk to chunk: the lambda's maxima must rescale its sums.
  for (int64_t t = 20; t < T; ++t)
    for (int64_t i = 0; i < dk; ++i) k(t, i) *= 60.f;
  const MemoryConfig config{.key_dim = dk, .value_dim = dv, .kind = kind};
  const LookupOptions o{.mean = kind == MemoryKind::galerkin};
  Memory whole(config), chunks(config), a(config), b(config);
  whole.write(k.cview(), v.cview());
  for (int64_t t0 : {0, 1, 20, 21})  // pieces of 1, 19, 1 and 16 tokens
    chunks.write(rows(k, t0, (t0 == 0 ? 1 : t0 == 1 ? 19 : t0 == 20 ? 1 : T - 21)),
                 rows(v, t0, (t0 == 0 ? 1 : t0 == 1 ? 19 : t0 == 20 ? 1 : T - 21)));
  a.write(rows(k, 0, 20), rows(v, 0, 20));
  b.write(rows(k, 20, T - 20), rows(v, 20, T - 20));
  Memory ab = a, ba = b;
  ab.merge(b);
  ba.merge(a);
  const std::vector<float> want = by_operator(kind, q, k, v);
  std::vector<double> want64(want.begin(), want.end());
  EXPECT_LE(test::relative_error(looked_up(whole, q, o), want64), 1e-5);
  EXPECT_LE(test::relative_error(looked_up(chunks, q, o), want64), 1e-5);
  EXPECT_LE(test::relative_error(looked_up(ab, q, o), want64), 1e-5);
  EXPECT_LE(test::relative_error(looked_up(ba, q, o), want64), 1e-5);
  EXPECT_EQ(ab.tokens(), T);
  // Merging into (or with) an empty memory changes nothing.
  Memory empty(config);
  empty.merge(whole);
  EXPECT_LE(test::relative_error(looked_up(empty, q, o), want64), 1e-6);
  Memory w2 = whole;
  w2.merge(Memory(config));
  EXPECT_EQ(looked_up(w2, q, o), looked_up(whole, q, o));
  // An empty memory answers 0.
  for (float x : looked_up(Memory(config), q, o)) EXPECT_EQ(x, 0.f);
  // Merged with itself: every token counted twice. The lambda (a weighted mean) and Galerkin's
  // mean read-out are unchanged; the K-slot memory's slots, sums over tokens, double.
  Memory twice = whole;
  twice.merge(twice);
  EXPECT_EQ(twice.tokens(), 2 * T);
  std::vector<double> want_twice = want64;
  if (kind == MemoryKind::kslot)
    for (double& x : want_twice) x *= 2;
  EXPECT_LE(test::relative_error(looked_up(twice, q, o), want_twice), 1e-5);
}

TEST_P(MemoryRelatives, FilesAndBanksKeepTheKind) {
  const MemoryKind kind = GetParam();
  const int64_t T = 12, dk = 6, dv = 5;
  auto k = test::random_tensor<2>({T, dk}, -3.f, 3.f), v = test::random_tensor<2>({T, dv}), q = test::random_tensor<2>({3, dk});
  const MemoryConfig config{.key_dim = dk, .value_dim = dv, .kind = kind};
  const LookupOptions o{.mean = kind == MemoryKind::galerkin};
  Memory m(config);
  m.write(rows(k, 0, 7), rows(v, 0, 7));
  const std::string path = temp_path("relative.lam");
  save_memory(m, path);
  const MemoryView stored = open_memory(path);
  EXPECT_EQ(stored.info().config.kind, kind);
  std::vector<float> out(static_cast<size_t>(3 * dv));
  stored.lookup(q.cview(), View2::contiguous(out.data(), {3, dv}), o);
  EXPECT_EQ(out, looked_up(m, q, o));
  // Reopened and written on, it equals the memory written at once.
  Memory resumed = stored.to_memory();
  resumed.write(rows(k, 7, T - 7), rows(v, 7, T - 7));
  Memory once(config);
  once.write(k.cview(), v.cview());
  const auto r = looked_up(resumed, q, o), w = looked_up(once, q, o);
  EXPECT_LE(test::relative_error(r, std::vector<double>(w.begin(), w.end())), 1e-6);
  // bf16 storage answers within bf16's precision.
  MemoryConfig half = config;
  half.dtype = DType::bf16;
  const MemoryView bf = view_of_bytes(serialize(Memory::from_state(half, std::vector<float>(m.state().data, m.state().data + dk * dv),
                                                                   std::vector<float>(m.normalizer().begin(), m.normalizer().end()),
                                                                   m.tokens())),
                                      "bf16");
  bf.lookup(q.cview(), View2::contiguous(out.data(), {3, dv}), o);
  const auto exact = looked_up(m, q, o);
  EXPECT_LE(test::relative_error(out, std::vector<double>(exact.begin(), exact.end())), 1e-2);
  // A bank holds one kind: a linear memory of the same widths is refused.
  const std::string bank_path = temp_path("relative.lamb");
  std::filesystem::remove(bank_path);
  Bank::create(bank_path);
  Bank bank = Bank::open(bank_path);
  bank.append("a", serialize(m));
  try {
    bank.append("b", serialize(Memory({.key_dim = dk, .value_dim = dv})));
    ADD_FAILURE() << "a linear memory joined a " << to_string(kind) << " bank";
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("kind must agree"), std::string::npos) << e.what();
  }
  const Bank reopened = Bank::open(bank_path);
  ASSERT_EQ(reopened.size(), 1);
  reopened.memory(0).lookup(q.cview(), View2::contiguous(out.data(), {3, dv}), o);
  EXPECT_EQ(out, looked_up(m, q, o));
  std::filesystem::remove(path);
  std::filesystem::remove(bank_path);
}

INSTANTIATE_TEST_SUITE_P(Kinds, MemoryRelatives,
                         ::testing::Values(MemoryKind::galerkin, MemoryKind::content_lambda, MemoryKind::kslot),
                         [](const auto& param_info) {
                           std::string s(to_string(param_info.param));
                           for (char& ch : s) ch = ch == '-' ? '_' : ch;
                           return s;
                         });

// A symmetric Galerkin memory (keys = values, the reader's) is stored packed and answers as
// Galerkin attention of h against h.
TEST(MemoryRelativesEdges, SymmetricGalerkinIsPackedAndExact) {
  const int64_t T = 15, d = 8;
  auto h = test::random_tensor<2>({T, d}), q = test::random_tensor<2>({2, d});
  Memory m({.key_dim = d, .value_dim = d, .symmetric = true, .kind = MemoryKind::galerkin});
  m.write(h.cview());
  const MemoryView stored = view_of_bytes(serialize(m), "packed");
  EXPECT_EQ(stored.info().layout, Layout::packed_symmetric);
  std::vector<float> out(static_cast<size_t>(2 * d));
  stored.lookup(q.cview(), View2::contiguous(out.data(), {2, d}), {.mean = true});
  const auto want = by_operator(MemoryKind::galerkin, q, h, h);
  EXPECT_LE(test::relative_error(out, std::vector<double>(want.begin(), want.end())), 1e-5);
}

TEST(MemoryRelativesEdges, BadInputIsRefusedAndLeavesTheMemoryUnchanged) {
  const int64_t dk = 4, dv = 3;
  auto k = test::random_tensor<2>({5, dk}), v = test::random_tensor<2>({5, dv}), q = test::random_tensor<2>({1, dk});
  for (MemoryKind kind : {MemoryKind::content_lambda, MemoryKind::kslot}) {
    Memory m({.key_dim = dk, .value_dim = dv, .kind = kind});
    m.write(k.cview(), v.cview());
    const auto before = looked_up(m, q);
    auto bad = k;
    bad(2, 1) = std::nanf("");
    test::expect_argument_error([&] { m.write(bad.cview(), v.cview()); }, "keys", "not finite");
    bad(2, 1) = INFINITY;
    test::expect_argument_error([&] { m.write(bad.cview(), v.cview()); }, "keys", "not finite");
    EXPECT_EQ(looked_up(m, q), before);
    EXPECT_EQ(m.tokens(), 5);
    if (kind == MemoryKind::content_lambda)
      test::expect_argument_error([&] { looked_up(m, q, {.mean = true}); }, "options.mean", "weighted mean");
    else  // a K-slot memory's mean divides its sums by the token count
      EXPECT_EQ(looked_up(m, q, {.mean = true, .scale = 5.f}), looked_up(m, q));
    // A search reads states as linear memories: these kinds are refused by name.
    const MemoryView view = m.view();
    const MemoryView* views[] = {&view};
    test::expect_argument_error([&] { search(views, q.cview()); }, "memories", std::string(to_string(kind)));
  }
  Memory g({.key_dim = dk, .value_dim = dv, .kind = MemoryKind::galerkin});
  auto huge = v;
  huge(0, 0) = std::nanf("");
  EXPECT_THROW(g.write(k.cview(), huge.cview()), ArgumentError);
  EXPECT_EQ(g.tokens(), 0);
  for (const MemoryConfig& c : {MemoryConfig{.key_dim = 4, .value_dim = 4, .normalize = true, .kind = MemoryKind::galerkin},
                                MemoryConfig{.key_dim = 4, .value_dim = 4, .feature_map = FeatureMap::relu, .kind = MemoryKind::kslot},
                                MemoryConfig{.key_dim = 4, .value_dim = 4, .gated = true, .kind = MemoryKind::content_lambda}})
    test::expect_argument_error([&] { Memory x(c); }, "config.kind", "no feature map, normaliser or gates");
  test::expect_argument_error([&] { Memory x({.key_dim = 4, .value_dim = 4, .symmetric = true, .kind = MemoryKind::kslot}); },
                              "config.symmetric", "not symmetric");
  Memory a({.key_dim = dk, .value_dim = dv, .kind = MemoryKind::kslot}), b({.key_dim = dk, .value_dim = dv});
  test::expect_argument_error([&] { a.merge(b); }, "other", "different configuration");
}

// A content lambda forgets: decay leaves today's answer (A and s scale alike) and weighs what was
// written before it by gamma against what comes after.
TEST(MemoryRelativesEdges, ContentLambdaDecayWeighsOlderTokens) {
  const int64_t dk = 3, dv = 2;
  auto k = test::random_tensor<2>({6, dk}), v = test::random_tensor<2>({6, dv}), q = test::random_tensor<2>({1, dk});
  Memory m({.key_dim = dk, .value_dim = dv, .kind = MemoryKind::content_lambda});
  m.write(rows(k, 0, 3), rows(v, 0, 3));
  const auto before = looked_up(m, q);
  m.decay(0.5f);
  const auto after = looked_up(m, q);
  EXPECT_LE(test::relative_error(after, std::vector<double>(before.begin(), before.end())), 1e-6);
  m.write(rows(k, 3, 3), rows(v, 3, 3));
  // Reference: softmax weights with the first three tokens' exps halved.
  std::vector<double> want(static_cast<size_t>(dv), 0.0);
  for (int64_t i = 0; i < dk; ++i) {
    double sum = 0, acc[2] = {0, 0};
    for (int64_t t = 0; t < 6; ++t) {
      const double w = std::exp(double(k(t, i))) * (t < 3 ? 0.5 : 1.0);
      sum += w;
      for (int64_t e = 0; e < dv; ++e) acc[e] += w * v(t, e);
    }
    for (int64_t e = 0; e < dv; ++e) want[static_cast<size_t>(e)] += q(0, i) * acc[e] / sum;
  }
  EXPECT_LE(test::relative_error(looked_up(m, q), want), 1e-5);
}

// Files written before the kinds existed (format version 1, byte 72 zero) read as linear
// memories; a version-1 file claiming a kind is corrupt.
TEST(MemoryRelativesEdges, VersionOneFilesStillRead) {
  auto h = test::random_tensor<2>({5, 4}), q = test::random_tensor<2>({1, 4});
  Memory m({.key_dim = 4, .value_dim = 4, .normalize = true});
  m.write(h.cview(), h.cview());
  auto as_version = [&](uint32_t version, uint8_t kind) {
    std::vector<std::byte> b = serialize(m);
    std::memcpy(b.data() + 8, &version, 4);
    b[72] = std::byte{kind};
    std::vector<std::byte> summed(b.begin(), b.begin() + 120);
    summed.insert(summed.end(), b.begin() + kMemoryHeaderBytes, b.end());
    const uint64_t h64 = XXH3_64bits(summed.data(), summed.size());
    std::memcpy(b.data() + 120, &h64, 8);
    return b;
  };
  const MemoryView v1 = view_of_bytes(as_version(1, 0), "v1.lam");
  EXPECT_EQ(v1.info().config.kind, MemoryKind::linear);
  EXPECT_EQ(v1.lookup(std::span<const float>(q.data)), m.lookup(std::span<const float>(q.data)));
  EXPECT_THROW(view_of_bytes(as_version(1, 2), "v1.lam"), FormatError);
  EXPECT_THROW(view_of_bytes(as_version(3, 0), "v3.lam"), FormatError);
  try {
    view_of_bytes(as_version(2, 9), "k.lam");
    ADD_FAILURE() << "kind 9 accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown memory kind"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace linattn
