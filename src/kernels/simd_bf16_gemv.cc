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
#include <vector>

#include "kernels/simd.h"
#include "kernels/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace linattn::kernels::simd {
namespace HWY_NAMESPACE {

void Bf16ToF32(const uint16_t* x, float* y, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(load_bf16(x + i), d, y + i);
  for (; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(x[i]) << 16;
    std::memcpy(y + i, &bits, sizeof(float));
  }
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
  for (; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(x[i]) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    y[i] += a * f;
  }
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
  for (; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(a[i]) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    tail += f * b[i];
  }
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(acc0, acc1), hn::Add(acc2, acc3)))) + tail;
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

template <class LoadRow>
HWY_INLINE void gemv_t_impl(int64_t ldm, const float* x, int64_t k, float* y, int64_t n,
                            const LoadRow& load) {
  // Measured on Zen 3 (AVX2), d = 128: 16 vectors (whole 512-byte rows, one pass) 671 ns;
  // 12 then 8: 954 ns; 8 then 4: 938 ns. Narrower blocks read each row in strided pieces.
  int64_t j = gemv_t_columns<16>(ldm, x, k, y, 0, n, load);
  j = gemv_t_columns<8>(ldm, x, k, y, j, n, load);
  j = gemv_t_columns<4>(ldm, x, k, y, j, n, load);
  gemv_t_columns<1>(ldm, x, k, y, j, n, load);
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

void GemvTBf16(const uint16_t* m, int64_t ldm, const float* x, int64_t k, float* y, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  gemv_t_impl(ldm, x, k, y, n, [&](int64_t off) { return load_bf16(m + off); });
  for (int64_t c = n / lanes * lanes; c < n; ++c) {
    float acc = 0.f;
    for (int64_t i = 0; i < k; ++i) {
      const uint32_t bits = static_cast<uint32_t>(m[i * ldm + c]) << 16;
      float f;
      std::memcpy(&f, &bits, sizeof(f));
      acc += x[i] * f;
    }
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

// The same product when n is a whole number of vectors, at most NB of them (d = 64 and 128 with
// AVX-512): y lives in NB registers for the whole pass, so rows stream by in order and each
// stored number is loaded once into two FMAs with no store in between (the general kernel above
// stores a row's dot vector back for every number it reads). Row i reads its blocks from the
// one holding column i on (the columns left of i masked: they are row i - 1's last numbers, in
// bounds); its dot over columns c > i is reduced to a scalar once per row.
template <int NB, class Load>
HWY_INLINE void sym_packed_gemv_registers(int64_t n, const float* x, float* y, const Load& load) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  V ys[NB], xs[NB];
  for (int b = 0; b < NB; ++b) {
    ys[b] = hn::Zero(d);
    xs[b] = hn::LoadU(d, x + b * lanes);
  }
  float dots[NB * HWY_MAX_BYTES / sizeof(float)];
  int64_t row = 0;  // the packed position of (i, 0): row_start(i) - i
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b0 = i / lanes;
    const size_t left = static_cast<size_t>(i - b0 * lanes);
    const V xi = hn::Set(d, x[i]);
    V dot0 = hn::Zero(d), dot1 = hn::Zero(d);  // two chains: a row's blocks overlap
#pragma GCC unroll 16
    for (int b = 0; b < NB; ++b) {
      if (b < b0) continue;
      V m = load(row + b * lanes);
      if (b == b0) {
        m = hn::IfThenZeroElse(hn::FirstN(d, left), m);
        ys[b] = hn::MulAdd(xi, m, ys[b]);  // the diagonal goes to the column sums only
        dot0 = hn::MulAdd(hn::IfThenZeroElse(hn::FirstN(d, left + 1), m), xs[b], dot0);
      } else {
        ys[b] = hn::MulAdd(xi, m, ys[b]);
        if (b & 1) dot1 = hn::MulAdd(m, xs[b], dot1);
        else dot0 = hn::MulAdd(m, xs[b], dot0);
      }
    }
    dots[i] = hn::GetLane(hn::SumOfLanes(d, hn::Add(dot0, dot1)));
    row += n - i - 1;
  }
  for (int b = 0; b < NB; ++b) hn::StoreU(hn::Add(ys[b], hn::LoadU(d, dots + b * lanes)), d, y + b * lanes);
}

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

float bf16_at(const uint16_t* x, int64_t i) {
  const uint32_t bits = static_cast<uint32_t>(x[i]) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

void SymPackedGemv(const float* packed, int64_t n, const float* x, float* y) {
  const D d;
  if (sym_packed_gemv_small(n, x, y, [&](int64_t off) { return hn::LoadU(d, packed + off); })) return;
  sym_packed_gemv_impl(n, x, y, [&](int64_t off) { return hn::LoadU(d, packed + off); },
                       [&](int64_t off) { return packed[off]; });
}

void SymPackedGemvBf16(const uint16_t* packed, int64_t n, const float* x, float* y) {
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
