// Helpers shared by the per-target SIMD sources. Highway's per-target header pattern: the guard
// toggles, so that every target's pass of foreach_target.h compiles the helpers once for it.
#if defined(LINATTN_KERNELS_SIMD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LINATTN_KERNELS_SIMD_INL_H_
#undef LINATTN_KERNELS_SIMD_INL_H_
#else
#define LINATTN_KERNELS_SIMD_INL_H_
#endif

#include <hwy/highway.h>

#include <cstdint>
#include <cstring>
#include <limits>

HWY_BEFORE_NAMESPACE();
namespace linattn::kernels::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

// Runs op on full vectors of x, then once on the tail padded with `pad`: one code path, so the
// tail gets exactly the same arithmetic as the body. op(v, i) returns the vector to store at i.
template <class Op>
HWY_INLINE void map_inplace(const float* x, float* y, int64_t n, float pad, const Op& op) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(op(hn::LoadU(d, x + i)), d, y + i);
  if (i < n) {
    HWY_ALIGN float buf[kMaxLanes];
    for (int64_t j = 0; j < lanes; ++j) buf[j] = i + j < n ? x[i + j] : pad;
    hn::Store(op(hn::Load(d, buf)), d, buf);
    std::memcpy(y + i, buf, static_cast<size_t>(n - i) * sizeof(float));
  }
}

// Loads the tail of x (elements [i, n)) padded with `pad`.
HWY_INLINE V load_tail(const float* x, int64_t i, int64_t n, float pad) {
  const D d;
  HWY_ALIGN float buf[kMaxLanes];
  for (int64_t j = 0; j < static_cast<int64_t>(hn::Lanes(d)); ++j)
    buf[j] = i + j < n ? x[i + j] : pad;
  return hn::Load(d, buf);
}

// Decay products below 1e-30 become 0: their terms are negligible, and denormals are slow.
HWY_INLINE V flush_tiny(V e) {
  const D d;
  return hn::IfThenElseZero(hn::Gt(e, hn::Set(d, 1e-30f)), e);
}


// bf16 -> f32 is a 16-bit left shift of the bit pattern.
HWY_INLINE V load_bf16(const uint16_t* x) {
  const D d;
  const hn::Rebind<uint16_t, D> d16;
  const hn::RebindToUnsigned<D> d32;
  return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(d32, hn::LoadU(d16, x))));
}

// Max and Scale are also used by the causal kernels' sources, hence here.
HWY_INLINE float Max(const float* x, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  V acc = hn::Set(d, neg_inf);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) acc = hn::Max(acc, hn::LoadU(d, x + i));
  if (i < n) acc = hn::Max(acc, load_tail(x, i, n, neg_inf));
  return hn::GetLane(hn::MaxOfLanes(d, acc));
}

HWY_INLINE void Scale(float* x, int64_t n, float a) {
  const D d;
  const V va = hn::Set(d, a);
  map_inplace(x, x, n, 0.f, [&](V v) { return hn::Mul(v, va); });
}

}  // namespace HWY_NAMESPACE
}  // namespace linattn::kernels::simd
HWY_AFTER_NAMESPACE();

#endif  // the toggled include guard
