// bf16 conversions and one-query products against a stored state (kernels/simd.h).
// Highway compiles this file once per x86 target (foreach_target.h re-includes it) and
// HWY_DYNAMIC_DISPATCH picks the best one the CPU supports.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_bf16_gemv.cc"
#include <hwy/foreach_target.h>  // must come before highway.h

#include <hwy/highway.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "kernels/simd.h"
#include "kernels/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace linattn::kernels::simd {
namespace HWY_NAMESPACE {

// x[i] as fp32: the scalar tails' widening.
float bf16_at(const uint16_t* x, int64_t i) {
  const uint32_t bits = static_cast<uint32_t>(x[i]) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

void Bf16ToF32(const uint16_t* x, float* y, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(load_bf16(x + i), d, y + i);
  for (; i < n; ++i) y[i] = bf16_at(x, i);
}

void F32ToBf16(const float* x, uint16_t* y, int64_t n) {
  // Not on a hot path (done once when a memory is stored): a clear scalar loop.
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, sizeof(bits));
    if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0) {
      y[i] = static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN, sign kept
      continue;
    }
    const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);  // to nearest, ties to even
    y[i] = static_cast<uint16_t>((bits + rounding) >> 16);
  }
}

void AxpyBf16(float a, const uint16_t* x, float* y, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const V va = hn::Set(d, a);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::MulAdd(va, load_bf16(x + i), hn::LoadU(d, y + i)), d, y + i);
  for (; i < n; ++i) y[i] += a * bf16_at(x, i);
}

// a . b with a in bf16, widened as it streams in: four accumulators keep four loads in flight.
float DotBf16(const uint16_t* a, const float* b, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  V acc0 = hn::Zero(d), acc1 = hn::Zero(d), acc2 = hn::Zero(d), acc3 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 4 * lanes <= n; i += 4 * lanes) {
    acc0 = hn::MulAdd(load_bf16(a + i), hn::LoadU(d, b + i), acc0);
    acc1 = hn::MulAdd(load_bf16(a + i + lanes), hn::LoadU(d, b + i + lanes), acc1);
    acc2 = hn::MulAdd(load_bf16(a + i + 2 * lanes), hn::LoadU(d, b + i + 2 * lanes), acc2);
    acc3 = hn::MulAdd(load_bf16(a + i + 3 * lanes), hn::LoadU(d, b + i + 3 * lanes), acc3);
  }
  for (; i + lanes <= n; i += lanes) acc0 = hn::MulAdd(load_bf16(a + i), hn::LoadU(d, b + i), acc0);
  float tail = 0.f;
  for (; i < n; ++i) tail += bf16_at(a, i) * b[i];
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(acc0, acc1), hn::Add(acc2, acc3)))) + tail;
}

void GemvNBf16(const uint16_t* a, int64_t lda, const float* x, int64_t m, int64_t n, float* y) {
  int64_t i = gemv_n_short_rows(a, lda, x, m, n, y, [](const uint16_t* p) { return load_bf16(p); });
  for (; i < m; ++i) y[i] = DotBf16(a + i * lda, x, n);
}

// out[r] = a[r] . b for four bf16 arrays against one fp32 array: b is read once for all four,
// the four streams advance side by side.
void DotBf16x4(const uint16_t* const* a, const float* b, int64_t n, float* out) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const uint16_t *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
  V s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  V t0 = hn::Zero(d), t1 = hn::Zero(d), t2 = hn::Zero(d), t3 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {  // two vectors per stream: 8 chains cover the latency
    const V b0 = hn::LoadU(d, b + i), b1 = hn::LoadU(d, b + i + lanes);
    s0 = hn::MulAdd(load_bf16(a0 + i), b0, s0);
    s1 = hn::MulAdd(load_bf16(a1 + i), b0, s1);
    s2 = hn::MulAdd(load_bf16(a2 + i), b0, s2);
    s3 = hn::MulAdd(load_bf16(a3 + i), b0, s3);
    t0 = hn::MulAdd(load_bf16(a0 + i + lanes), b1, t0);
    t1 = hn::MulAdd(load_bf16(a1 + i + lanes), b1, t1);
    t2 = hn::MulAdd(load_bf16(a2 + i + lanes), b1, t2);
    t3 = hn::MulAdd(load_bf16(a3 + i + lanes), b1, t3);
  }
  for (; i + lanes <= n; i += lanes) {
    const V bv = hn::LoadU(d, b + i);
    s0 = hn::MulAdd(load_bf16(a0 + i), bv, s0);
    s1 = hn::MulAdd(load_bf16(a1 + i), bv, s1);
    s2 = hn::MulAdd(load_bf16(a2 + i), bv, s2);
    s3 = hn::MulAdd(load_bf16(a3 + i), bv, s3);
  }
  const V sums[4] = {hn::Add(s0, t0), hn::Add(s1, t1), hn::Add(s2, t2), hn::Add(s3, t3)};
  for (int r = 0; r < 4; ++r) {
    float tail = 0.f;
    for (int64_t j = i; j < n; ++j) tail += bf16_at(a[r], j) * b[j];
    out[r] = hn::GetLane(hn::SumOfLanes(d, sums[r])) + tail;
  }
}

// y = M^T x: columns in blocks of vectors whose accumulators stay in registers while the k
// rows stream by (at least 8 independent FMA chains cover the FMA latency). Covers the columns
// that fill whole vectors; callers finish the rest.
template <int kVectors, class LoadRow>
HWY_INLINE int64_t gemv_t_columns(int64_t ldm, const float* x, int64_t k, float* y, int64_t j, int64_t n,
                                  const LoadRow& load) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  for (; j + kVectors * lanes <= n; j += kVectors * lanes) {
    V acc[kVectors];
    for (int v = 0; v < kVectors; ++v) acc[v] = hn::Zero(d);
    for (int64_t i = 0; i < k; ++i) {
      const V xi = hn::Set(d, x[i]);
      const int64_t off = i * ldm + j;
      for (int v = 0; v < kVectors; ++v) acc[v] = hn::MulAdd(xi, load(off + v * lanes), acc[v]);
    }
    for (int v = 0; v < kVectors; ++v) hn::StoreU(acc[v], d, y + j + v * lanes);
  }
  return j;
}

// One vector of columns: four accumulators over rows i mod 4, whose sums are added at the end
// (a single chain would wait an FMA latency per row: a narrow M, such as a low-rank memory's
// U [d, 16], is all this block).
template <class LoadRow>
HWY_INLINE int64_t gemv_t_one_vector(int64_t ldm, const float* x, int64_t k, float* y, int64_t j, int64_t n,
                                     const LoadRow& load) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  for (; j + lanes <= n; j += lanes) {
    V a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
    int64_t i = 0;
    for (; i + 4 <= k; i += 4) {
      a0 = hn::MulAdd(hn::Set(d, x[i]), load(i * ldm + j), a0);
      a1 = hn::MulAdd(hn::Set(d, x[i + 1]), load((i + 1) * ldm + j), a1);
      a2 = hn::MulAdd(hn::Set(d, x[i + 2]), load((i + 2) * ldm + j), a2);
      a3 = hn::MulAdd(hn::Set(d, x[i + 3]), load((i + 3) * ldm + j), a3);
    }
    for (; i < k; ++i) a0 = hn::MulAdd(hn::Set(d, x[i]), load(i * ldm + j), a0);
    hn::StoreU(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)), d, y + j);
  }
  return j;
}

template <class LoadRow>
HWY_INLINE void gemv_t_impl(int64_t ldm, const float* x, int64_t k, float* y, int64_t n,
                            const LoadRow& load) {
  // Measured on Zen 3 (AVX2), d = 128: 16 vectors (whole 512-byte rows, one pass) 671 ns;
  // 12 then 8: 954 ns; 8 then 4: 938 ns. Narrower blocks read each row in strided pieces.
  int64_t j = gemv_t_columns<16>(ldm, x, k, y, 0, n, load);
  j = gemv_t_columns<8>(ldm, x, k, y, j, n, load);
  j = gemv_t_columns<4>(ldm, x, k, y, j, n, load);
  gemv_t_one_vector(ldm, x, k, y, j, n, load);
}

void GemvT(const float* m, int64_t ldm, const float* x, int64_t k, float* y, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  gemv_t_impl(ldm, x, k, y, n, [&](int64_t off) { return hn::LoadU(d, m + off); });
  // Columns past the last full vector (never read beyond a row): scalar.
  for (int64_t c = n / lanes * lanes; c < n; ++c) {
    float acc = 0.f;
    for (int64_t i = 0; i < k; ++i) acc += x[i] * m[i * ldm + c];
    y[c] = acc;
  }
}

#if HWY_TARGET != HWY_SCALAR  // pairs of numbers need two lanes of bf16 per fp32 lane
// 2 lanes bf16 numbers as fp32, split into the even-numbered ones and the odd-numbered ones:
// one load, then a shift and a mask of the 32-bit lanes (bf16 -> fp32 is a 16-bit left shift,
// and little-endian puts number 2j in the low half of lane j). Widening lane by lane instead
// costs a load and a shuffle per lanes numbers on top of the shift.
HWY_INLINE void load_bf16_even_odd(const uint16_t* p, V& even, V& odd) {
  const D d;
  const hn::RebindToUnsigned<D> du;
  const hn::Repartition<uint16_t, D> d16;
  const auto u = hn::BitCast(du, hn::LoadU(d16, p));
  even = hn::BitCast(d, hn::ShiftLeft<16>(u));
  odd = hn::BitCast(d, hn::And(u, hn::Set(du, 0xffff0000u)));
}

// Stores 2 lanes numbers given as their even- and odd-numbered ones, back in order.
HWY_INLINE void store_even_odd(V even, V odd, float* y) {
  const D d;
  constexpr size_t kN = hn::MaxLanes(D());
  HWY_ALIGN int32_t first[kN], second[kN];  // lane l of each half takes number l / 2 of its half
  for (size_t l = 0; l < kN; ++l) {
    first[l] = static_cast<int32_t>(l / 2);
    second[l] = static_cast<int32_t>(kN / 2 + l / 2);
  }
  const auto i0 = hn::SetTableIndices(d, first), i1 = hn::SetTableIndices(d, second);
  hn::StoreU(hn::OddEven(hn::TableLookupLanes(odd, i0), hn::TableLookupLanes(even, i0)), d, y);
  hn::StoreU(hn::OddEven(hn::TableLookupLanes(odd, i1), hn::TableLookupLanes(even, i1)), d, y + kN);
}

// y = M^T x for bf16 M, 2 kPairs lanes columns at a time (kPairs even/odd accumulator pairs).
template <int kPairs>
HWY_INLINE int64_t gemv_t_bf16_columns(const uint16_t* m, int64_t ldm, const float* x, int64_t k, float* y,
                                       int64_t j, int64_t n) {
  const D d;
  const int64_t w = 2 * static_cast<int64_t>(hn::Lanes(d));
  for (; j + kPairs * w <= n; j += kPairs * w) {
    V even[kPairs], odd[kPairs];
    for (int p = 0; p < kPairs; ++p) even[p] = odd[p] = hn::Zero(d);
    for (int64_t i = 0; i < k; ++i) {
      const V xi = hn::Set(d, x[i]);
      const uint16_t* row = m + i * ldm + j;
      for (int p = 0; p < kPairs; ++p) {
        V e, o;
        load_bf16_even_odd(row + p * w, e, o);
        even[p] = hn::MulAdd(xi, e, even[p]);
        odd[p] = hn::MulAdd(xi, o, odd[p]);
      }
    }
    for (int p = 0; p < kPairs; ++p) store_even_odd(even[p], odd[p], y + j + p * w);
  }
  return j;
}
#endif  // HWY_TARGET != HWY_SCALAR

void GemvTBf16(const uint16_t* m, int64_t ldm, const float* x, int64_t k, float* y, int64_t n) {
  // As gemv_t_impl, in blocks of 2 lanes columns; the rest lane by lane, then scalar.
  int64_t j = 0;
#if HWY_TARGET != HWY_SCALAR
  j = gemv_t_bf16_columns<8>(m, ldm, x, k, y, j, n);
  j = gemv_t_bf16_columns<4>(m, ldm, x, k, y, j, n);
  j = gemv_t_bf16_columns<2>(m, ldm, x, k, y, j, n);
  j = gemv_t_bf16_columns<1>(m, ldm, x, k, y, j, n);
#endif
  j = gemv_t_one_vector(ldm, x, k, y, j, n, [&](int64_t off) { return load_bf16(m + off); });
  for (int64_t c = j; c < n; ++c) {
    float acc = 0.f;
    for (int64_t i = 0; i < k; ++i) acc += x[i] * bf16_at(m, i * ldm + c);
    y[c] = acc;
  }
}

// y = M x with M symmetric, stored as its packed upper triangle (row i: M[i, i..n) from
// row_start(i) = i n - i (i - 1) / 2). Each stored number M_ic (c >= i) feeds two FMAs:
// y_c += x_i M_ic (the column sums) and y_i += M_ic x_c (the row dots, c > i). Columns go in
// blocks of one vector whose sums stay in a register while the rows down to the block's own
// stream by; each row's dot is a vector accumulator in `dots` (its own lanes, so no store waits
// on a differently aligned load), summed across lanes once at the end. Rows inside a block read
// a whole vector and mask the columns left of the diagonal (they are the row before's last
// numbers, in bounds). Only the columns past the last whole vector run scalar. Every number is
// read once.
template <class Load, class LoadScalar>
HWY_INLINE void sym_packed_gemv_impl(int64_t n, const float* x, float* y, const Load& load, const LoadScalar& at) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  auto row_start = [n](int64_t i) { return i * n - i * (i - 1) / 2; };
  thread_local std::vector<float> dots;
  const int64_t full = n / lanes * lanes;  // columns [0, full) in vector blocks
  dots.assign(static_cast<size_t>(full * lanes), 0.f);
  std::fill(y + full, y + n, 0.f);
  for (int64_t j0 = 0; j0 < full; j0 += lanes) {
    const V xj = hn::LoadU(d, x + j0);
    V sums = hn::Zero(d);
    int64_t at_ij = j0;  // the packed position of (i, j0), from row 0 down
    for (int64_t i = 0; i < j0; ++i) {
      const V m = load(at_ij);
      sums = hn::MulAdd(hn::Set(d, x[i]), m, sums);
      float* di = dots.data() + i * lanes;
      hn::StoreU(hn::MulAdd(m, xj, hn::LoadU(d, di)), d, di);
      at_ij += n - i - 1;  // (i + 1, j0)
    }
    for (int64_t i = j0; i < j0 + lanes; ++i) {  // the block's own rows: columns c >= i
      const size_t left = static_cast<size_t>(i - j0);
      const V m = hn::IfThenZeroElse(hn::FirstN(d, left), load(row_start(i) - i + j0));
      sums = hn::MulAdd(hn::Set(d, x[i]), m, sums);
      float* di = dots.data() + i * lanes;  // the dot takes c > i only: the diagonal is in sums
      hn::StoreU(hn::MulAdd(hn::IfThenZeroElse(hn::FirstN(d, left + 1), m), xj, hn::LoadU(d, di)), d, di);
    }
    hn::StoreU(sums, d, y + j0);
  }
  for (int64_t i = 0; i < n && full < n; ++i) {  // the columns past the last whole vector
    const int64_t start = row_start(i) - i;
    float dot = 0.f;
    for (int64_t c = std::max(i, full); c < n; ++c) {
      const float m = at(start + c);
      y[c] += x[i] * m;
      if (c > i) dot += m * x[c];
    }
    y[i] += dot;
  }
  for (int64_t i = 0; i < full; ++i) y[i] += hn::GetLane(hn::SumOfLanes(d, hn::LoadU(d, dots.data() + i * lanes)));
}

// The rows of block B0 (rows [B0 lanes, (B0 + 1) lanes), whose first stored vector is block
// B0's) in the register kernel below: B0 and NB are constants, so a row's loop over its blocks
// is straight-line code with no per-row branches or index arithmetic. Rows go kRowGroup at a
// time, their dot vectors summed by the tree's first levels in registers.
template <int NB, int B0, class Load>
HWY_INLINE void sym_packed_row_block(int64_t n, const float* x, float* y_out, V* ys, const V* xs, int64_t& row,
                                     const Load& load) {
  const D d;
  constexpr size_t kLanes = hn::MaxLanes(D());
  auto one_row = [&](int64_t r) HWY_ATTR __attribute__((always_inline)) {
    const int64_t i = B0 * static_cast<int64_t>(kLanes) + r;
    const V xi = hn::Set(d, x[i]);
    // The diagonal block: columns left of i are row i - 1's last numbers (in bounds), masked;
    // the diagonal goes to the column sums only.
    const V m = in_register(hn::IfThenZeroElse(hn::FirstN(d, static_cast<size_t>(r)), load(row + B0 * kLanes)));
    ys[B0] = hn::MulAdd(xi, m, ys[B0]);
    V dot0 = hn::Mul(hn::IfThenZeroElse(hn::FirstN(d, static_cast<size_t>(r + 1)), m), xs[B0]);
    V dot1 = hn::Zero(d);  // two chains
#pragma GCC unroll 16
    for (int b = B0 + 1; b < NB; ++b) {
      const V mb = in_register(load(row + b * kLanes));
      ys[b] = hn::MulAdd(xi, mb, ys[b]);
      if ((b - B0) & 1) dot1 = hn::MulAdd(mb, xs[b], dot1);
      else dot0 = hn::MulAdd(mb, xs[b], dot0);
    }
    row += n - i - 1;
    return hn::Add(dot0, dot1);
  };
  V partial[kLanes / kRowGroup];
  for (size_t g = 0; g < kLanes / kRowGroup; ++g) {
    V dots[kRowGroup];
#pragma GCC unroll 16
    for (size_t j = 0; j < kRowGroup; ++j) dots[j] = one_row(static_cast<int64_t>(g * kRowGroup + j));
    partial[g] = sum_tree_levels<1, kRowGroup>(dots);
  }
  // No later row adds to columns of block B0: its sums are final.
  hn::StoreU(hn::Add(ys[B0], sum_tree_levels<kRowGroup, kLanes>(partial)), d, y_out + B0 * kLanes);
}

// The same product when n is a whole number of vectors, at most NB of them (d = 64 and 128 with
// AVX-512): y lives in NB registers for the whole pass, so rows stream by in order and each
// stored number is loaded once into two FMAs with no store in between (the general kernel above
// stores a row's dot vector back for every number it reads). Row i reads its blocks from the
// one holding column i on; its dot vector over columns c > i is summed across lanes with its
// block's other rows' (the tree's first levels in registers, kRowGroup rows at a time, so no
// row stores its dot vector; unrolling all rows ran faster alone but made a function large
// enough to slow whatever other code runs between lookups). Not inlined: in its caller's body,
// GCC spilled the column sums at d = 128.
template <int NB, class Load>
HWY_NOINLINE void sym_packed_gemv_registers(int64_t n, const float* x, float* y, const Load& load) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  V ys[NB], xs[NB];
  for (int b = 0; b < NB; ++b) {
    ys[b] = hn::Zero(d);
    xs[b] = hn::LoadU(d, x + b * lanes);
  }
  int64_t row = 0;  // the packed position of (i, 0): row_start(i) - i
  [&]<int... B>(std::integer_sequence<int, B...>) HWY_ATTR __attribute__((always_inline)) {
    (sym_packed_row_block<NB, B>(n, x, y, ys, xs, row, load), ...);
  }(std::make_integer_sequence<int, NB>{});
}

#if HWY_TARGET != HWY_SCALAR
// The rows of pair-block P0 (rows [P0 w, (P0 + 1) w), w = 2 lanes) in the bf16 kernel below,
// as sym_packed_row_block. Even lane j holds column 2j of a block, odd lane j column 2j + 1.
template <int NP, int P0>
HWY_INLINE void sym_packed_bf16_row_block(int64_t n, const uint16_t* packed, const float* x, float* y_out, V* ye,
                                          V* yo, const V* xe, const V* xo, int64_t& row) {
  const D d;
  constexpr size_t kLanes = hn::MaxLanes(D()), kW = 2 * kLanes;
  auto one_row = [&](int64_t r) HWY_ATTR __attribute__((always_inline)) {
    const int64_t i = P0 * static_cast<int64_t>(kW) + r;
    const size_t left = static_cast<size_t>(r);
    const V xi = hn::Set(d, x[i]);
    V e, o;
    load_bf16_even_odd(packed + row + P0 * kW, e, o);
    // The column sums take columns >= left, the dot columns > left.
    V dot0 = hn::Mul(hn::IfThenZeroElse(hn::FirstN(d, left / 2 + 1), e), xe[P0]);
    V dot1 = hn::Mul(hn::IfThenZeroElse(hn::FirstN(d, (left + 1) / 2), o), xo[P0]);
    ye[P0] = hn::MulAdd(xi, hn::IfThenZeroElse(hn::FirstN(d, (left + 1) / 2), e), ye[P0]);
    yo[P0] = hn::MulAdd(xi, hn::IfThenZeroElse(hn::FirstN(d, left / 2), o), yo[P0]);
#pragma GCC unroll 4
    for (int p = P0 + 1; p < NP; ++p) {
      load_bf16_even_odd(packed + row + p * kW, e, o);
      dot0 = hn::MulAdd(e, xe[p], dot0);
      dot1 = hn::MulAdd(o, xo[p], dot1);
      ye[p] = hn::MulAdd(xi, e, ye[p]);
      yo[p] = hn::MulAdd(xi, o, yo[p]);
    }
    row += n - i - 1;
    return hn::Add(dot0, dot1);
  };
  V partial[kW / kRowGroup];  // the first lanes rows', then the others'
  for (size_t g = 0; g < kW / kRowGroup; ++g) {
    V dots[kRowGroup];
#pragma GCC unroll 16
    for (size_t j = 0; j < kRowGroup; ++j) dots[j] = one_row(static_cast<int64_t>(g * kRowGroup + j));
    partial[g] = sum_tree_levels<1, kRowGroup>(dots);
  }
  // No later row adds to this block's columns: put its sums back in order and add the dots.
  HWY_ALIGN float sums[kW];
  store_even_odd(ye[P0], yo[P0], sums);
  for (size_t half = 0; half < 2; ++half)
    hn::StoreU(hn::Add(hn::Load(d, sums + half * kLanes), sum_tree_levels<kRowGroup, kLanes>(partial + half * (kLanes / kRowGroup))),
               d, y_out + P0 * kW + half * kLanes);
}

// The register kernel for a bf16 state when n is a whole number of at most 4 blocks of 2 lanes:
// each 2 lanes numbers of a row are one load, split into even- and odd-numbered columns
// (load_bf16_even_odd), so the column sums and x are kept as even/odd pairs and put back in
// order as each block's sums are final.
template <int NP>
HWY_NOINLINE void sym_packed_gemv_bf16_registers(int64_t n, const uint16_t* packed, const float* x, float* y) {
  const D d;
  constexpr size_t kN = hn::MaxLanes(D());
  const int64_t lanes = static_cast<int64_t>(kN), w = 2 * lanes;
  V ye[NP], yo[NP], xe[NP], xo[NP];
  for (int p = 0; p < NP; ++p) {
    HWY_ALIGN float e[kN], o[kN];
    for (int64_t j = 0; j < lanes; ++j) e[j] = x[p * w + 2 * j], o[j] = x[p * w + 2 * j + 1];
    xe[p] = hn::Load(d, e);
    xo[p] = hn::Load(d, o);
    ye[p] = yo[p] = hn::Zero(d);
  }
  int64_t row = 0;  // the packed position of (i, 0)
  [&]<int... P>(std::integer_sequence<int, P...>) HWY_ATTR __attribute__((always_inline)) {
    (sym_packed_bf16_row_block<NP, P>(n, packed, x, y, ye, yo, xe, xo, row), ...);
  }(std::make_integer_sequence<int, NP>{});
}
#endif

// n / lanes blocks held in registers when n is a whole number of at most 8 vectors; else false.
template <class Load>
HWY_INLINE bool sym_packed_gemv_small(int64_t n, const float* x, float* y, const Load& load) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(D()));
  if (n % lanes != 0) return false;
  switch (n / lanes) {
    case 1: sym_packed_gemv_registers<1>(n, x, y, load); return true;
    case 2: sym_packed_gemv_registers<2>(n, x, y, load); return true;
    case 3: sym_packed_gemv_registers<3>(n, x, y, load); return true;
    case 4: sym_packed_gemv_registers<4>(n, x, y, load); return true;
    case 5: sym_packed_gemv_registers<5>(n, x, y, load); return true;
    case 6: sym_packed_gemv_registers<6>(n, x, y, load); return true;
    case 7: sym_packed_gemv_registers<7>(n, x, y, load); return true;
    case 8: sym_packed_gemv_registers<8>(n, x, y, load); return true;
    default: return false;
  }
}

void SymPackedGemv(const float* packed, int64_t n, const float* x, float* y) {
  const D d;
  if (sym_packed_gemv_small(n, x, y, [&](int64_t off) { return hn::LoadU(d, packed + off); })) return;
  sym_packed_gemv_impl(n, x, y, [&](int64_t off) { return hn::LoadU(d, packed + off); },
                       [&](int64_t off) { return packed[off]; });
}

void SymPackedGemvBf16(const uint16_t* packed, int64_t n, const float* x, float* y) {
#if HWY_TARGET != HWY_SCALAR
  const int64_t w = 2 * static_cast<int64_t>(hn::Lanes(D()));
  if (n % w == 0) {
    switch (n / w) {
      case 1: sym_packed_gemv_bf16_registers<1>(n, packed, x, y); return;
      case 2: sym_packed_gemv_bf16_registers<2>(n, packed, x, y); return;
      case 3: sym_packed_gemv_bf16_registers<3>(n, packed, x, y); return;
      case 4: sym_packed_gemv_bf16_registers<4>(n, packed, x, y); return;
      default: break;
    }
  }
#endif
  if (sym_packed_gemv_small(n, x, y, [&](int64_t off) { return load_bf16(packed + off); })) return;
  sym_packed_gemv_impl(n, x, y, [&](int64_t off) { return load_bf16(packed + off); },
                       [&](int64_t off) { return bf16_at(packed, off); });
}

}  // namespace HWY_NAMESPACE
}  // namespace linattn::kernels::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace linattn::kernels::simd {

HWY_EXPORT(Bf16ToF32);
HWY_EXPORT(F32ToBf16);
HWY_EXPORT(AxpyBf16);
HWY_EXPORT(DotBf16);
HWY_EXPORT(DotBf16x4);
HWY_EXPORT(GemvNBf16);
HWY_EXPORT(GemvT);
HWY_EXPORT(GemvTBf16);
HWY_EXPORT(SymPackedGemv);
HWY_EXPORT(SymPackedGemvBf16);

void bf16_to_f32(const uint16_t* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(Bf16ToF32)(x, y, n); }
void f32_to_bf16(const float* x, uint16_t* y, int64_t n) { HWY_DYNAMIC_DISPATCH(F32ToBf16)(x, y, n); }
void axpy_bf16(float a, const uint16_t* x, float* y, int64_t n) {
  HWY_DYNAMIC_DISPATCH(AxpyBf16)(a, x, y, n);
}
float dot_bf16(const uint16_t* a, const float* b, int64_t n) { return HWY_DYNAMIC_DISPATCH(DotBf16)(a, b, n); }
void dot_bf16_x4(const uint16_t* const a[4], const float* b, int64_t n, float out[4]) {
  HWY_DYNAMIC_DISPATCH(DotBf16x4)(a, b, n, out);
}
void gemv_n_bf16(const uint16_t* a, int64_t lda, const float* x, int64_t m, int64_t n, float* y) {
  HWY_DYNAMIC_DISPATCH(GemvNBf16)(a, lda, x, m, n, y);
}
void gemv_t(const float* m, int64_t ldm, const float* x, int64_t k, float* y, int64_t n) {
  HWY_DYNAMIC_DISPATCH(GemvT)(m, ldm, x, k, y, n);
}
void gemv_t_bf16(const uint16_t* m, int64_t ldm, const float* x, int64_t k, float* y, int64_t n) {
  HWY_DYNAMIC_DISPATCH(GemvTBf16)(m, ldm, x, k, y, n);
}
void sym_packed_gemv(const float* packed, int64_t n, const float* x, float* y) {
  HWY_DYNAMIC_DISPATCH(SymPackedGemv)(packed, n, x, y);
}
void sym_packed_gemv_bf16(const uint16_t* packed, int64_t n, const float* x, float* y) {
  HWY_DYNAMIC_DISPATCH(SymPackedGemvBf16)(packed, n, x, y);
}

}  // namespace linattn::kernels::simd
#endif  // HWY_ONCE
