// The AVX512-BF16 dot-product roof (kernels/simd_probe.h), the one source compiled with
// -mavx512bf16 (this Highway does not emit VDPBF16PS). It holds no standard-library templates,
// so that no AVX-512 copy of a shared inline function can be linked into code that runs on
// other CPUs; it runs only where the CPU has the instructions.
//
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), which -Wmaybe-uninitialized
// reports wherever they inline: a known false positive (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "kernels/simd_probe.h"

namespace linattn::kernels::simd {

bool has_avx512_bf16() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}

double bf16_dot_loop(int64_t iterations) {
  if (!has_avx512_bf16()) return 0;
  // 12 independent accumulators, as fma_loop: throughput, not latency.
  const __m512bh a = reinterpret_cast<__m512bh>(_mm512_set1_epi32(0x3f803f80));  // pairs of 1.0
  const __m512bh b = reinterpret_cast<__m512bh>(_mm512_set1_epi32(0x33803380));  // pairs of ~6e-8
  __m512 s0 = _mm512_set1_ps(0.1f), s1 = _mm512_set1_ps(0.2f), s2 = _mm512_set1_ps(0.3f), s3 = _mm512_set1_ps(0.4f);
  __m512 s4 = _mm512_set1_ps(0.5f), s5 = _mm512_set1_ps(0.6f), s6 = _mm512_set1_ps(0.7f), s7 = _mm512_set1_ps(0.8f);
  __m512 s8 = _mm512_set1_ps(0.9f), s9 = _mm512_set1_ps(1.0f), s10 = _mm512_set1_ps(1.1f), s11 = _mm512_set1_ps(1.2f);
  for (int64_t i = 0; i < iterations; ++i) {
    s0 = _mm512_dpbf16_ps(s0, a, b); s1 = _mm512_dpbf16_ps(s1, a, b); s2 = _mm512_dpbf16_ps(s2, a, b);
    s3 = _mm512_dpbf16_ps(s3, a, b); s4 = _mm512_dpbf16_ps(s4, a, b); s5 = _mm512_dpbf16_ps(s5, a, b);
    s6 = _mm512_dpbf16_ps(s6, a, b); s7 = _mm512_dpbf16_ps(s7, a, b); s8 = _mm512_dpbf16_ps(s8, a, b);
    s9 = _mm512_dpbf16_ps(s9, a, b); s10 = _mm512_dpbf16_ps(s10, a, b); s11 = _mm512_dpbf16_ps(s11, a, b);
  }
  const __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)),
                                   _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s4, s5), _mm512_add_ps(s6, s7)),
                                                 _mm512_add_ps(_mm512_add_ps(s8, s9), _mm512_add_ps(s10, s11))));
  volatile float sink = _mm512_reduce_add_ps(sum);
  (void)sink;
  return 12.0 * 16 * 2 * 2 * static_cast<double>(iterations);  // 16 lanes, a pair each, 2 flops a product
}

}  // namespace linattn::kernels::simd
