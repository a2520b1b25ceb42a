// The FMA roof loop and the dispatch controls (kernels/simd_probe.h).
// Highway compiles this file once per x86 target (foreach_target.h re-includes it) and
// HWY_DYNAMIC_DISPATCH picks the best one the CPU supports.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_probe.cc"
#include <hwy/foreach_target.h>  // must come before highway.h

#include <hwy/highway.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/simd_probe.h"
#include "kernels/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace linattn::kernels::simd {
namespace HWY_NAMESPACE {

double FmaLoop(int64_t iterations) {
  const D d;
  // 12 independent accumulators cover FMA latency x throughput on current x86 cores.
  V a0 = hn::Set(d, 0.1f), a1 = hn::Set(d, 0.2f), a2 = hn::Set(d, 0.3f), a3 = hn::Set(d, 0.4f);
  V a4 = hn::Set(d, 0.5f), a5 = hn::Set(d, 0.6f), a6 = hn::Set(d, 0.7f), a7 = hn::Set(d, 0.8f);
  V a8 = hn::Set(d, 0.9f), a9 = hn::Set(d, 1.0f), a10 = hn::Set(d, 1.1f), a11 = hn::Set(d, 1.2f);
  const V mul = hn::Set(d, 0.999999f), add = hn::Set(d, 1e-7f);
  for (int64_t i = 0; i < iterations; ++i) {
    a0 = hn::MulAdd(a0, mul, add); a1 = hn::MulAdd(a1, mul, add); a2 = hn::MulAdd(a2, mul, add);
    a3 = hn::MulAdd(a3, mul, add); a4 = hn::MulAdd(a4, mul, add); a5 = hn::MulAdd(a5, mul, add);
    a6 = hn::MulAdd(a6, mul, add); a7 = hn::MulAdd(a7, mul, add); a8 = hn::MulAdd(a8, mul, add);
    a9 = hn::MulAdd(a9, mul, add); a10 = hn::MulAdd(a10, mul, add); a11 = hn::MulAdd(a11, mul, add);
  }
  // Use every accumulator so the loop cannot be removed.
  const V sum = hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)),
                        hn::Add(hn::Add(hn::Add(a4, a5), hn::Add(a6, a7)), hn::Add(hn::Add(a8, a9), hn::Add(a10, a11))));
  volatile float sink = hn::GetLane(sum);
  (void)sink;
  return 12.0 * 2.0 * static_cast<double>(hn::Lanes(d)) * static_cast<double>(iterations);
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace linattn::kernels::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace linattn::kernels::simd {

HWY_EXPORT(TargetName);
HWY_EXPORT(FmaLoop);

double fma_loop(int64_t iterations) { return HWY_DYNAMIC_DISPATCH(FmaLoop)(iterations); }
const char* target_name() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }
void set_targets_for_test(int64_t mask) { hwy::SetSupportedTargetsForTest(mask); }
int64_t supported_targets() { return hwy::SupportedTargets() & HWY_TARGETS; }

}  // namespace linattn::kernels::simd
#endif  // HWY_ONCE
