// linattn::Memory, MemoryView, the .lam format, compression.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <utility>

#include "linattn/linattn.h"
#include "test_util.h"

namespace linattn {
namespace {
using test::Tensor;

using test::temp_path;

std::vector<float> lookup_all(const MemoryView& m, const Tensor<2>& q, LookupOptions o = {}) {
  std::vector<float> out(static_cast<size_t>(q.shape[0] * m.info().config.value_dim));
  m.lookup(q.cview(), View2::contiguous(out.data(), {q.shape[0], m.info().config.value_dim}), o);
  return out;
}

TEST(Memory, StreamingEqualsOneShotAndMatchesTheOperator) {
  const int64_t T = 300, dk = 20, dv = 13;
  auto K = test::random_tensor<2>({T, dk}), V = test::random_tensor<2>({T, dv});
  auto g = test::random_tensor<1>({T}, 0.f, 1.f);
  for (bool normalize : {false, true}) {
    MemoryConfig c{.key_dim = dk, .value_dim = dv, .feature_map = FeatureMap::elu_plus_one, .normalize = normalize, .gated = true};
    Memory whole(c), streamed(c);
    whole.write(K.cview(), V.cview(), g.cview());
    for (int64_t t0 = 0, step = 1; t0 < T; t0 += step, step = step * 3 + 1) {
      const int64_t n = std::min(step, T - t0);
      streamed.write(CView2(K.data.data() + t0 * dk, {n, dk}, {dk, 1}), CView2(V.data.data() + t0 * dv, {n, dv}, {dv, 1}),
                     CView1(g.data.data() + t0, {n}, {1}));
    }
    EXPECT_EQ(streamed.tokens(), T);
    std::vector<float> a(whole.state().data, whole.state().data + dk * dv), b(streamed.state().data, streamed.state().data + dk * dv);
    EXPECT_LE(test::relative_error(b, a), 1e-6);
    // Lookups agree with the operator on the same data.
    auto q = test::random_tensor<2>({7, dk});
    Tensor<4> M({1, 1, dk, dv}), out({1, 1, 7, dv});
    Tensor<3> z({1, 1, dk});
    linear_attention_encode(CView4::contiguous(K.data.data(), {1, 1, T, dk}), CView4::contiguous(V.data.data(), {1, 1, T, dv}),
                            M.view(), z.view(), {.feature_map = FeatureMap::elu_plus_one}, {},
                            CView3::contiguous(g.data.data(), {1, 1, T}));
    const std::vector<int64_t> n = {T};
    LookupOptions o = normalize ? LookupOptions{} : LookupOptions{.mean = true, .scale = 1000.f};
    linear_attention_lookup(CView4::contiguous(q.data.data(), {1, 1, 7, dk}), M.cview(), out.view(),
                            {.feature_map = FeatureMap::elu_plus_one, .normalize = normalize, .mean = !normalize, .scale = o.scale},
                            normalize ? z.cview() : CView3{}, normalize ? Lengths{} : Lengths(n));
    EXPECT_LE(test::relative_error(lookup_all(whole.view(), q, o), out.data), 1e-6);
  }
}

TEST(Memory, ShardsMergedEqualTheWhole) {
  const int64_t T = 100, d = 16;
  auto H = test::random_tensor<2>({T, d});
  MemoryConfig c{.key_dim = d, .value_dim = d, .symmetric = true};
  Memory whole(c), a(c), b(c);
  whole.write(H.cview());
  a.write(CView2(H.data.data(), {40, d}, {d, 1}));
  b.write(CView2(H.data.data() + 40 * d, {60, d}, {d, 1}));
  a.merge(b);
  EXPECT_EQ(a.tokens(), T);
  std::vector<float> x(a.state().data, a.state().data + d * d), y(whole.state().data, whole.state().data + d * d);
  EXPECT_LE(test::relative_error(x, y), 1e-6);
  Memory other({.key_dim = d, .value_dim = d});
  EXPECT_THROW(a.merge(other), ArgumentError);
}

TEST(Memory, DecaySnapshotRestoreReset) {
  const int64_t d = 8;
  auto H = test::random_tensor<2>({10, d});
  Memory m({.key_dim = d, .value_dim = d, .normalize = true});
  m.write(H.cview(), H.cview());
  const Memory snap = m.snapshot();
  m.decay(0.5f);
  for (int64_t i = 0; i < d * d; ++i) EXPECT_FLOAT_EQ(m.state().data[i], 0.5f * snap.state().data[i]);
  for (int64_t i = 0; i < d; ++i) EXPECT_FLOAT_EQ(m.normalizer()[i], 0.5f * snap.normalizer()[i]);
  m.write(H.cview(), H.cview());
  m.restore(snap);
  EXPECT_EQ(m.tokens(), 10);
  EXPECT_EQ(std::memcmp(m.state().data, snap.state().data, d * d * 4), 0);
  m.reset();
  EXPECT_EQ(m.tokens(), 0);
  for (int64_t i = 0; i < d * d; ++i) EXPECT_EQ(m.state().data[i], 0.f);
  EXPECT_THROW(m.decay(1.5f), ArgumentError);
  EXPECT_THROW(m.decay(NAN), ArgumentError);
}

TEST(Memory, ConfigurationAndWriteErrors) {
  EXPECT_THROW(Memory({.key_dim = 0, .value_dim = 4}), ArgumentError);
  EXPECT_THROW(Memory({.key_dim = 4, .value_dim = 5, .symmetric = true}), ArgumentError);
  EXPECT_THROW(Memory({.key_dim = 4, .value_dim = 4, .feature_map = FeatureMap::relu, .symmetric = true}), ArgumentError);
  Memory m({.key_dim = 4, .value_dim = 3});
  auto K = test::random_tensor<2>({5, 4}), V = test::random_tensor<2>({5, 3}), V2 = test::random_tensor<2>({4, 3});
  auto g = test::random_tensor<1>({5});
  EXPECT_THROW(m.write(K.cview()), ArgumentError);                    // values missing
  EXPECT_THROW(m.write(K.cview(), V2.cview()), ArgumentError);        // T mismatch
  EXPECT_THROW(m.write(K.cview(), V.cview(), g.cview()), ArgumentError);  // not gated
  Tensor<2> empty({0, 4}), empty_v({0, 3});
  m.write(empty.cview(), empty_v.cview());  // an empty write is fine
  EXPECT_EQ(m.tokens(), 0);
  const std::vector<float> q(3, 1.f);
  EXPECT_THROW(m.lookup(q), ArgumentError);
}

// A memory of every configuration, saved, mapped back, looked up: equal to the live lookups.
TEST(MemoryFile, RoundTripsAndMappedLookupsEqualLiveLookups) {
  const int64_t T = 64, d = 24;
  auto H = test::random_tensor<2>({T, d});
  auto q = test::random_tensor<2>({9, d});
  auto q1 = test::random_tensor<2>({1, d});
  for (bool symmetric : {false, true})
    for (DType dtype : {DType::f32, DType::bf16})
      for (bool normalize : {false, true}) {
        MemoryConfig c{.key_dim = d, .value_dim = d, .normalize = normalize, .symmetric = symmetric, .dtype = dtype};
        Memory m(c);
        m.write(H.cview(), symmetric ? CView2{} : H.cview());
        const std::string path = temp_path("rt.lam");
        save_memory(m, path);
        const MemoryView v = open_memory(path);
        EXPECT_EQ(v.info().tokens, T);
        EXPECT_EQ(v.info().layout, symmetric ? Layout::packed_symmetric : Layout::full);
        const int64_t elems = symmetric ? d * (d + 1) / 2 : d * d;
        EXPECT_GE(v.info().payload_bytes, elems * dtype_size(dtype));
        EXPECT_LT(v.info().payload_bytes, elems * dtype_size(dtype) + 64 + d * 4);
        const LookupOptions o = normalize ? LookupOptions{} : LookupOptions{.mean = true};
        for (const Tensor<2>* qs : {&q, &q1}) {  // batched and single-query paths
          const auto live = lookup_all(m.view(), *qs, o), mapped = lookup_all(v, *qs, o);
          // bf16 keeps 8 bits of mantissa: each stored number within 2^-9 relative.
          const double bound = dtype == DType::f32 ? 1e-6 : 1e-2;
          EXPECT_LE(test::relative_error(mapped, live), bound)
              << "symmetric " << symmetric << " " << to_string(dtype) << " normalize " << normalize;
        }
        const Memory back = v.to_memory();
        EXPECT_EQ(back.tokens(), T);
        if (dtype == DType::f32 && !symmetric) {
          EXPECT_EQ(std::memcmp(back.state().data, m.state().data, d * d * 4), 0);
        }
        std::filesystem::remove(path);
      }
}

// A lookup written over its own queries (or over the stored numbers of a view) would read them
// after they change: a clear error for one query and for many, from a live memory, a stored one and
// a bank.
TEST(Memory, LookupsIntoTheirOwnQueriesAreErrors) {
  const int64_t d = 12;
  const auto H = test::random_tensor<2>({9, d});
  Memory mem({.key_dim = d, .value_dim = d, .symmetric = true});
  mem.write(H.cview());
  const std::vector<std::byte> bytes = serialize(mem);
  const MemoryView stored = view_of_bytes(bytes, "packed");
  for (const int64_t m : {1, 8}) {
    auto q = test::random_tensor<2>({m, d});
    const CView2 queries = q.cview();
    test::expect_argument_error([&] { mem.lookup(queries, q.view()); }, "out", "shares memory with queries");
    test::expect_argument_error([&] { stored.lookup(queries, q.view()); }, "out", "shares memory with queries");
    // The answers laid over the view's own stored numbers.
    View2 over_state(reinterpret_cast<float*>(const_cast<void*>(stored.state_data())), {m, d}, {d, 1});
    test::expect_argument_error([&] { stored.lookup(queries, over_state); }, "out", "shares memory with the memory's state");
  }
}

TEST(MemoryFile, EveryCorruptionIsAClearError) {
  const int64_t d = 6;
  auto H = test::random_tensor<2>({5, d});
  Memory m({.key_dim = d, .value_dim = d, .normalize = true});
  m.write(H.cview(), H.cview());
  const std::vector<std::byte> good = serialize(m);
  auto expect_error = [&](std::vector<std::byte> bytes, const std::string& words) {
    auto owner = std::make_shared<std::vector<std::byte>>(std::move(bytes));
    try {
      parse_memory(*owner, owner, "x.lam");
      ADD_FAILURE() << "accepted; expected: " << words;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("x.lam: ", 0), 0u) << e.what();
    }
  };
  for (size_t n = 0; n < good.size(); n += 7) expect_error({good.begin(), good.begin() + static_cast<long>(n)}, "truncated");
  auto with = [&](size_t off, std::byte b) { auto x = good; x[off] = b; return x; };
  expect_error(with(0, std::byte{'X'}), "wrong magic");
  expect_error(with(8, std::byte{3}), "version 3");
  expect_error(with(20, std::byte{7}), "unknown dtype");
  expect_error(with(21, std::byte{9}), "unknown layout");
  expect_error(with(23, std::byte{0x80}), "unknown flags");
  expect_error(with(31, std::byte{0x40}), "implausible widths");  // dk = 2^62 + 6: no allocation follows
  expect_error(with(57, std::byte{0x10}), "declared payload");
  expect_error(with(100, std::byte{1}), "reserved");
  auto longer = good;
  longer.push_back(std::byte{0});
  expect_error(longer, "unexpected bytes");
  // Every single-bit flip anywhere: rejected (the header checks or the checksum), never a crash.
  for (size_t off = 0; off < good.size(); ++off)
    for (int bit = 0; bit < 8; bit += 3) {
      auto x = good;
      x[off] ^= std::byte(1 << bit);
      auto owner = std::make_shared<std::vector<std::byte>>(std::move(x));
      EXPECT_THROW(parse_memory(*owner, owner, "x.lam"), FormatError) << off << ":" << bit;
    }
  EXPECT_THROW(open_memory(temp_path("missing.lam")), FormatError);
}

TEST(MemoryFile, AtomicWriteReplacesWholeAndLeavesNoTemporaries) {
  const std::string path = temp_path("atomic.lam");
  Memory a({.key_dim = 4, .value_dim = 4}), b({.key_dim = 8, .value_dim = 8});
  save_memory(a, path);
  save_memory(b, path);
  EXPECT_EQ(open_memory(path).info().config.key_dim, 8);
  // No temporary of this file is left (other tests, run in parallel by ctest, may have their own
  // in flight in the same directory: CI once saw one).
  const std::string own_temporaries = "." + std::filesystem::path(path).filename().string() + ".tmp-";
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
    EXPECT_NE(e.path().filename().string().rfind(own_temporaries, 0), 0u) << e.path();
  EXPECT_THROW(save_memory(a, "/nonexistent-dir/x.lam"), FormatError);
  std::filesystem::remove(path);
}

TEST(Compress, ErrorMatchesTheTruncatedSpectrumAndLookupsFollow) {
  const int64_t T = 200, d = 32;
  auto H = test::random_tensor<2>({T, d});
  for (int64_t i = 0; i < T; ++i)  // a decaying spectrum, as real hidden states have
    for (int64_t j = 0; j < d; ++j) H(i, j) *= std::pow(0.85f, static_cast<float>(j));
  Memory m({.key_dim = d, .value_dim = d, .symmetric = true});
  m.write(H.cview());
  const MemoryView full = m.view();
  auto q = test::random_tensor<2>({16, d});
  const auto exact = lookup_all(full, q);
  const MemoryView same = compress(full, {.rank = d});
  EXPECT_LT(same.info().compression_error, 1e-6);
  EXPECT_LE(test::relative_error(lookup_all(same, q), exact), 1e-5);
  const MemoryView r8 = compress(full, {.rank = 8});
  EXPECT_EQ(r8.info().rank, 8);
  // The reported error is ||M - M_8||_F / ||M||_F: check it against M_8 rebuilt by lookups.
  Tensor<2> eye({d, d});
  for (int64_t i = 0; i < d; ++i) eye(i, i) = 1.f;
  const auto m8 = lookup_all(r8, eye), m_full = lookup_all(full, eye);
  double num = 0, den = 0;
  for (size_t i = 0; i < m8.size(); ++i) num += std::pow(m8[i] - m_full[i], 2), den += std::pow(m_full[i], 2);
  EXPECT_NEAR(std::sqrt(num / den), r8.info().compression_error, 1e-4);
  const MemoryView target = compress(full, {.max_error = 0.05});
  EXPECT_LE(target.info().compression_error, 0.05);
  if (target.info().rank > 1) {
    EXPECT_GT(compress(full, {.rank = target.info().rank - 1}).info().compression_error, 0.05);
  }
  EXPECT_THROW(compress(full, {.rank = 0}), ArgumentError);
  EXPECT_THROW(compress(full, {.rank = 3, .max_error = 0.1}), ArgumentError);
  EXPECT_THROW(compress(r8, {.rank = 2}), ArgumentError);
  Memory asym({.key_dim = d, .value_dim = d});
  EXPECT_THROW(compress(asym.view(), {.rank = 2}), ArgumentError);
  // Round trip through bytes; a compressed memory is read-only.
  const MemoryView back = view_of_bytes(compress_to_bytes(full, {.rank = 8}), "c");
  EXPECT_EQ(lookup_all(back, q), lookup_all(r8, q));
  EXPECT_THROW(back.to_memory(), ArgumentError);
}

// bf16 memories store bf16 factors: the reported error includes their rounding, and a target
// below what bf16 can reach is refused instead of reported as met.
TEST(Compress, Bf16ErrorIncludesTheFactorsRounding) {
  const int64_t T = 300, d = 48;
  auto H = test::random_tensor<2>({T, d});
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < d; ++j) H(i, j) *= std::pow(0.9f, static_cast<float>(j));
  Memory m({.key_dim = d, .value_dim = d, .symmetric = true, .dtype = DType::bf16});
  m.write(H.cview());
  const MemoryView full = m.view();  // the fp32 state
  const MemoryView stored_bf16 = view_of_bytes(serialize(m), "bf16 memory");
  Tensor<2> eye({d, d});
  for (int64_t i = 0; i < d; ++i) eye(i, i) = 1.f;
  const auto m_full = lookup_all(full, eye);
  for (double target : {0.05, 0.01}) {
    const MemoryView c = compress(stored_bf16, {.max_error = target});
    ASSERT_EQ(c.info().config.dtype, DType::bf16);
    const auto rebuilt = lookup_all(c, eye);
    double num = 0, den = 0;
    for (size_t i = 0; i < rebuilt.size(); ++i)
      num += std::pow(rebuilt[i] - m_full[i], 2), den += std::pow(m_full[i], 2);
    const double actual = std::sqrt(num / den);
    EXPECT_LE(actual, target * 1.05) << target;  // the stored memory meets the target...
    EXPECT_NEAR(c.info().compression_error, actual, 0.1 * actual + 1e-3) << target;  // ...and says so
  }
  EXPECT_THROW(compress(stored_bf16, {.max_error = 1e-5}), ArgumentError);
}

// One query takes the gemv path (U read directly), a few the GEMM path, hundreds the blocked
// GEMMs (with U's weights folded in, a last block that is not whole): all give the same answers,
// for f32 and bf16 factors, ranks that are and are not a whole vector and a scale. A normaliser
// is applied by the same code after every path; it is tested with 9 queries, since among 300
// random ones a denominator near 0 magnifies the paths' summation orders past the tolerance.
TEST(Compress, SingleAndBatchedLookupsOfALowRankMemoryAgree) {
  const int64_t T = 100, d = 40;  // d not a multiple of a vector
  const auto H = test::random_tensor<2>({T, d});
  for (const DType dtype : {DType::f32, DType::bf16})
    for (const int64_t rank : {7, 16})
      for (const auto& [queries, normalize] : std::initializer_list<std::pair<int64_t, bool>>{{9, true}, {9, false}, {300, false}}) {
        Memory m({.key_dim = d, .value_dim = d, .normalize = normalize, .symmetric = true, .dtype = dtype});
        m.write(H.cview());
        const MemoryView low = compress(view_of_bytes(serialize(m), "stored"), {.rank = rank});
        const auto q = test::random_tensor<2>({queries, d});
        const LookupOptions o{.scale = 0.5f};
        const auto batched = lookup_all(low, q, o);
        for (int64_t i = 0; i < q.shape[0]; ++i) {
          std::vector<float> one(static_cast<size_t>(d));
          low.lookup(CView2::contiguous(q.data.data() + i * d, {1, d}), View2::contiguous(one.data(), {1, d}), o);
          for (int64_t c = 0; c < d; ++c)
            ASSERT_NEAR(one[c], batched[static_cast<size_t>(i * d + c)], 1e-5 * (1 + std::abs(one[c])))
                << to_string(dtype) << " rank " << rank << ", " << queries << " queries, normalize " << normalize
                << ": query " << i << " column " << c;
        }
      }
}

}  // namespace
}  // namespace linattn

namespace linattn {
namespace {

// Finite inputs whose products pass float32's range: refused, and the memory keeps its state.
TEST(MemoryOverflow, WritesAndMergesThatWouldOverflowLeaveTheMemoryUnchanged) {
  for (const bool normalize : {false, true}) {
    Memory m({.key_dim = 3, .value_dim = 5, .normalize = normalize});
    test::Tensor<2> k({2, 3}, 1.f), v({2, 5}, 2.f);
    m.write(k.cview(), v.cview());
    const Memory before = m.snapshot();
    test::Tensor<2> big_k({4, 3}, 2e19f), big_v({4, 5}, 3e19f);
    try {
      m.write(big_k.cview(), big_v.cview());
      FAIL() << "an overflowing write was accepted";
    } catch (const ArgumentError& e) {
      EXPECT_NE(std::string(e.what()).find("float32's range"), std::string::npos) << e.what();
    }
    EXPECT_EQ(m.tokens(), before.tokens());
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(m.state()(i, j), before.state()(i, j));
    // Large but representable: accepted (the checked path keeps a finite result).
    test::Tensor<2> large_k({1, 3}, 1e18f), large_v({1, 5}, 1e18f);
    Memory large({.key_dim = 3, .value_dim = 5, .normalize = normalize});
    large.write(large_k.cview(), large_v.cview());
    EXPECT_FLOAT_EQ(large.state()(0, 0), 1e36f);
    // Merging it with itself over and over: refused once the sum would be Inf.
    int merges = 0;
    try {
      for (; merges < 10; ++merges) large.merge(large);
      FAIL() << "an overflowing merge was accepted";
    } catch (const ArgumentError&) {
    }
    EXPECT_EQ(merges, 8);  // 1e36 * 2^8 = 2.56e38 fits; 2^9 does not
    EXPECT_TRUE(std::isfinite(large.state()(0, 0)));
    // Non-finite inputs are refused the same way.
    test::Tensor<2> nan_k({1, 3}, std::numeric_limits<float>::quiet_NaN()), one_v({1, 5}, 1.f);
    EXPECT_THROW(m.write(nan_k.cview(), one_v.cview()), ArgumentError);
    EXPECT_EQ(m.tokens(), before.tokens());
  }
}

}  // namespace
}  // namespace linattn
