// For benchmarks and tests only: the compute roof of one core, and control over which
// instruction set the SIMD primitives dispatch to (simd_probe.cc).
#pragma once

#include <cstdint>

namespace linattn::kernels::simd {

// A register-only FMA loop (no memory traffic): returns the floating-point operations it
// performed (2 per lane per FMA). Timing it gives the compute roof of one core.
double fma_loop(int64_t iterations);

// The instruction set chosen for this CPU, e.g. "AVX2" or "AVX3" (AVX-512).
const char* target_name();
// Restricts dispatch to the targets in `mask` (Highway's HWY_* target bits; 0 restores the
// default). For tests that compare every target a CPU supports.
void set_targets_for_test(int64_t mask);
// Whether the CPU has AVX512-BF16 (VDPBF16PS), and the same loop as fma_loop with its dot
// products (simd_probe_avx512_bf16.cc): the flops performed (4 per lane: two products, two adds),
// 0 without the instructions. The bf16 lookups widen to fp32 instead (docs/benchmarks.md says why).
bool has_avx512_bf16();
double bf16_dot_loop(int64_t iterations);
// Every target this CPU supports and linattn was compiled for, as Highway target bits.
int64_t supported_targets();

}  // namespace linattn::kernels::simd
