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

// y = M x with M symmetric, stored as its packed upper triangle (row i: M[i, i..d)). Row i adds
// M[i, i..d) . x[i..d) to y_i and x_i M[i, i+1..d) to y[i+1..d): each stored number is read once,
// for two FMAs, all in one pass. Measured 652 ns at d = 64 (12.5 GFLOP/s): every row's y update
// waits for the previous row's (a load-FMA-store chain per y vector); aligning the y vectors
// did not help (751 ns). Summing blocks of rows in registers before touching y would shorten
// the chain.
template <class Load, class LoadScalar>
HWY_INLINE void sym_packed_gemv_impl(int64_t n, const float* x, float* y, const Load& load, const LoadScalar& at) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  std::fill_n(y, n, 0.f);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = n - i;
    const float xi = x[i];
    const V vxi = hn::Set(d, xi);
    V acc = hn::Zero(d);
    int64_t j = 0;
    for (; j + lanes <= len; j += lanes) {
      const V m = load(off + j);
      acc = hn::MulAdd(m, hn::LoadU(d, x + i + j), acc);
      hn::StoreU(hn::MulAdd(vxi, m, hn::LoadU(d, y + i + j)), d, y + i + j);
    }
    float dot = hn::GetLane(hn::SumOfLanes(d, acc));
    for (; j < len; ++j) {
      const float m = at(off + j);
      dot += m * x[i + j];
      y[i + j] += xi * m;
    }
    y[i] += dot - xi * at(off);  // the loop also added x_i M_ii to y_i, which the dot holds
    off += len;
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
  sym_packed_gemv_impl(n, x, y, [&](int64_t off) { return hn::LoadU(d, packed + off); },
                       [&](int64_t off) { return packed[off]; });
}

void SymPackedGemvBf16(const uint16_t* packed, int64_t n, const float* x, float* y) {
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
HWY_EXPORT(GemvT);
HWY_EXPORT(GemvTBf16);
HWY_EXPORT(SymPackedGemv);
HWY_EXPORT(SymPackedGemvBf16);

void bf16_to_f32(const uint16_t* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(Bf16ToF32)(x, y, n); }
void f32_to_bf16(const float* x, uint16_t* y, int64_t n) { HWY_DYNAMIC_DISPATCH(F32ToBf16)(x, y, n); }
void axpy_bf16(float a, const uint16_t* x, float* y, int64_t n) {
  HWY_DYNAMIC_DISPATCH(AxpyBf16)(a, x, y, n);
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
