// Element-wise primitives and dot products (kernels/simd.h).
// Highway compiles this file once per x86 target (foreach_target.h re-includes it) and
// HWY_DYNAMIC_DISPATCH picks the best one the CPU supports.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_elementwise.cc"
#include <hwy/foreach_target.h>  // must come before highway.h

#include <hwy/contrib/math/math-inl.h>
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/simd.h"
#include "kernels/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace linattn::kernels::simd {
namespace HWY_NAMESPACE {


bool AllWithin(const float* x, int64_t n, float lo, float hi) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const V vlo = hn::Set(d, lo), vhi = hn::Set(d, hi);
  // Comparisons with NaN are false, so NaN fails both; four vectors per step keep the loads busy.
  auto ok = [&](V v) { return hn::And(hn::Ge(v, vlo), hn::Le(v, vhi)); };
  int64_t i = 0;
  for (; i + 4 * lanes <= n; i += 4 * lanes) {
    const auto m = hn::And(hn::And(ok(hn::LoadU(d, x + i)), ok(hn::LoadU(d, x + i + lanes))),
                           hn::And(ok(hn::LoadU(d, x + i + 2 * lanes)), ok(hn::LoadU(d, x + i + 3 * lanes))));
    if (!hn::AllTrue(d, m)) return false;
  }
  for (; i + lanes <= n; i += lanes)
    if (!hn::AllTrue(d, ok(hn::LoadU(d, x + i)))) return false;
  return i == n || hn::AllTrue(d, ok(load_tail(x, i, n, lo)));
}

float ExpShiftSum(float* x, int64_t n, float shift) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const V s = hn::Set(d, shift);
  V acc = hn::Zero(d);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), s));
    acc = hn::Add(acc, e);
    hn::StoreU(e, d, x + i);
  }
  if (i < n) {
    HWY_ALIGN float buf[kMaxLanes];
    // The padded lanes are masked out of the sum, whatever exp made of them.
    const V e = hn::Exp(d, hn::Sub(load_tail(x, i, n, shift), s));
    acc = hn::Add(acc, hn::IfThenElseZero(hn::FirstN(d, static_cast<size_t>(n - i)), e));
    hn::Store(e, d, buf);
    std::memcpy(x + i, buf, static_cast<size_t>(n - i) * sizeof(float));
  }
  return hn::GetLane(hn::SumOfLanes(d, acc));
}


void Axpy(float a, const float* x, float* y, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const V va = hn::Set(d, a);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::MulAdd(va, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  for (; i < n; ++i) y[i] += a * x[i];
}

void Mul(const float* x, float* y, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::Mul(hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  for (; i < n; ++i) y[i] *= x[i];
}

void StreamCopy(const float* x, float* y, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  // Stream needs an aligned destination: element by element up to the first aligned one.
  for (; i < n && reinterpret_cast<uintptr_t>(y + i) % (lanes * sizeof(float)) != 0; ++i) y[i] = x[i];
  for (; i + lanes <= n; i += lanes) hn::Stream(hn::LoadU(d, x + i), d, y + i);
  for (; i < n; ++i) y[i] = x[i];
  hwy::FlushStream();  // the stores are weakly ordered: visible to other threads after this fence
}

void Div(const float* x, const float* y, float* out, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::Div(hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, out + i);
  for (; i < n; ++i) out[i] = x[i] / y[i];
}

float Dot(const float* a, const float* b, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  // Two accumulators hide the FMA latency for the short rows (d = 64..256) used here.
  V acc0 = hn::Zero(d), acc1 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    acc0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc0);
    acc1 = hn::MulAdd(hn::LoadU(d, a + i + lanes), hn::LoadU(d, b + i + lanes), acc1);
  }
  for (; i + lanes <= n; i += lanes) acc0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc0);
  if (i < n) acc1 = hn::MulAdd(load_tail(a, i, n, 0.f), load_tail(b, i, n, 0.f), acc1);
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
}

float Sum(const float* x, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  // Four accumulators: one would make the loop latency-bound (and bandwidth tests meaningless).
  V a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 4 * lanes <= n; i += 4 * lanes) {
    a0 = hn::Add(a0, hn::LoadU(d, x + i));
    a1 = hn::Add(a1, hn::LoadU(d, x + i + lanes));
    a2 = hn::Add(a2, hn::LoadU(d, x + i + 2 * lanes));
    a3 = hn::Add(a3, hn::LoadU(d, x + i + 3 * lanes));
  }
  for (; i + lanes <= n; i += lanes) a0 = hn::Add(a0, hn::LoadU(d, x + i));
  if (i < n) a1 = hn::Add(a1, load_tail(x, i, n, 0.f));
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
}

void FeatureMapApply(FeatureMap phi, const float* x, float* y, int64_t n) {
  const D d;
  const V zero = hn::Zero(d), one = hn::Set(d, 1.f);
  switch (phi) {
    case FeatureMap::identity:
      if (x != y) std::memmove(y, x, static_cast<size_t>(n) * sizeof(float));
      return;
    case FeatureMap::relu:
      // Max(NaN, 0) is 0 on x86: select so that NaN stays NaN.
      map_inplace(x, y, n, 0.f, [&](V v) { return hn::IfThenElse(hn::Lt(v, zero), zero, v); });
      return;
    case FeatureMap::elu_plus_one:
      // x > 0: x + 1; otherwise exp(x). Exp only ever sees x <= 0 (its valid range).
      // Exp does not propagate NaN, so NaN is passed through explicitly.
      map_inplace(x, y, n, 0.f, [&](V v) {
        const V e = hn::Exp(d, hn::Min(v, zero));
        return hn::IfThenElse(hn::IsNaN(v), v, hn::IfThenElse(hn::Gt(v, zero), hn::Add(v, one), e));
      });
      return;
  }
}

void FeatureMapGrad(FeatureMap phi, const float* x, const float* dy, float* dx, int64_t n) {
  if (phi == FeatureMap::identity) {
    if (dx != dy) std::memmove(dx, dy, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const V zero = hn::Zero(d), one = hn::Set(d, 1.f);
  auto grad = [&](V xv, V g) {
    const V slope = phi == FeatureMap::relu ? hn::IfThenElse(hn::Gt(xv, zero), one, zero)
                                            : hn::IfThenElse(hn::Gt(xv, zero), one, hn::Exp(d, hn::Min(xv, zero)));
    return hn::Mul(g, slope);
  };
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(grad(hn::LoadU(d, x + i), hn::LoadU(d, dy + i)), d, dx + i);
  if (i < n) {
    HWY_ALIGN float buf[kMaxLanes];
    hn::Store(grad(load_tail(x, i, n, 0.f), load_tail(dy, i, n, 0.f)), d, buf);
    std::memcpy(dx + i, buf, static_cast<size_t>(n - i) * sizeof(float));
  }
}

float TanhAddDot(const float* a, const float* b, const float* w, float* t, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  V acc = hn::Zero(d);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V tv = hn::Tanh(d, hn::Add(hn::LoadU(d, a + i), hn::LoadU(d, b + i)));
    hn::StoreU(tv, d, t + i);
    acc = hn::MulAdd(hn::LoadU(d, w + i), tv, acc);
  }
  if (i < n) {
    HWY_ALIGN float buf[kMaxLanes];
    const V tv = hn::Tanh(d, hn::Add(load_tail(a, i, n, 0.f), load_tail(b, i, n, 0.f)));
    acc = hn::MulAdd(load_tail(w, i, n, 0.f), tv, acc);
    hn::Store(tv, d, buf);
    std::memcpy(t + i, buf, static_cast<size_t>(n - i) * sizeof(float));
  }
  return hn::GetLane(hn::SumOfLanes(d, acc));
}

void AdditiveScoreGrad(const float* t, const float* w, float ds, float* dq, float* dk, float* dw, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const V vds = hn::Set(d, ds), one = hn::Set(d, 1.f);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V tv = hn::LoadU(d, t + i);
    const V du = hn::Mul(hn::Mul(vds, hn::LoadU(d, w + i)), hn::NegMulAdd(tv, tv, one));
    hn::StoreU(hn::Add(hn::LoadU(d, dq + i), du), d, dq + i);
    hn::StoreU(hn::Add(hn::LoadU(d, dk + i), du), d, dk + i);
    hn::StoreU(hn::MulAdd(vds, tv, hn::LoadU(d, dw + i)), d, dw + i);
  }
  for (; i < n; ++i) {
    const float du = ds * w[i] * (1.f - t[i] * t[i]);
    dq[i] += du;
    dk[i] += du;
    dw[i] += ds * t[i];
  }
}

void Sigmoid(const float* x, float* y, int64_t n) {
  const D d;
  const V zero = hn::Zero(d), one = hn::Set(d, 1.f);
  // e = exp(-|x|) never overflows; sigmoid = 1/(1+e) for x >= 0 and e/(1+e) below.
  map_inplace(x, y, n, 0.f, [&](V v) {
    const V e = hn::Exp(d, hn::Neg(hn::Abs(v)));
    const V s = hn::Div(one, hn::Add(one, e));
    return hn::IfThenElse(hn::IsNaN(v), v, hn::IfThenElse(hn::Ge(v, zero), s, hn::Mul(e, s)));
  });
}

float TanhDot(const float* a, const float* b, const float* w, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  V acc = hn::Zero(d);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V t = hn::Tanh(d, hn::Add(hn::LoadU(d, a + i), hn::LoadU(d, b + i)));
    acc = hn::MulAdd(hn::LoadU(d, w + i), t, acc);
  }
  if (i < n) {
    const V t = hn::Tanh(d, hn::Add(load_tail(a, i, n, 0.f), load_tail(b, i, n, 0.f)));
    acc = hn::MulAdd(load_tail(w, i, n, 0.f), t, acc);
  }
  return hn::GetLane(hn::SumOfLanes(d, acc));
}

void GemvN(const float* a, int64_t lda, const float* x, int64_t m, int64_t n, float* y) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = gemv_n_short_rows(a, lda, x, m, n, y, [d](const float* p) { return hn::LoadU(d, p); });
  for (; i + 4 <= m; i += 4) {
    const float* r0 = a + i * lda;
    const float* r1 = r0 + lda;
    const float* r2 = r1 + lda;
    const float* r3 = r2 + lda;
    V c0 = hn::Zero(d), c1 = hn::Zero(d), c2 = hn::Zero(d), c3 = hn::Zero(d);
    int64_t j = 0;
    for (; j + lanes <= n; j += lanes) {
      const V xv = hn::LoadU(d, x + j);
      c0 = hn::MulAdd(hn::LoadU(d, r0 + j), xv, c0);
      c1 = hn::MulAdd(hn::LoadU(d, r1 + j), xv, c1);
      c2 = hn::MulAdd(hn::LoadU(d, r2 + j), xv, c2);
      c3 = hn::MulAdd(hn::LoadU(d, r3 + j), xv, c3);
    }
    if (j < n) {
      const V xv = load_tail(x, j, n, 0.f);
      c0 = hn::MulAdd(load_tail(r0, j, n, 0.f), xv, c0);
      c1 = hn::MulAdd(load_tail(r1, j, n, 0.f), xv, c1);
      c2 = hn::MulAdd(load_tail(r2, j, n, 0.f), xv, c2);
      c3 = hn::MulAdd(load_tail(r3, j, n, 0.f), xv, c3);
    }
    y[i] = hn::GetLane(hn::SumOfLanes(d, c0));
    y[i + 1] = hn::GetLane(hn::SumOfLanes(d, c1));
    y[i + 2] = hn::GetLane(hn::SumOfLanes(d, c2));
    y[i + 3] = hn::GetLane(hn::SumOfLanes(d, c3));
  }
  for (; i < m; ++i) y[i] = Dot(a + i * lda, x, n);
}

}  // namespace HWY_NAMESPACE
}  // namespace linattn::kernels::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace linattn::kernels::simd {

HWY_EXPORT(Max);
HWY_EXPORT(AllWithin);
HWY_EXPORT(ExpShiftSum);
HWY_EXPORT(Scale);
HWY_EXPORT(Axpy);
HWY_EXPORT(Mul);
HWY_EXPORT(StreamCopy);
HWY_EXPORT(Div);
HWY_EXPORT(Dot);
HWY_EXPORT(Sum);
HWY_EXPORT(FeatureMapApply);
HWY_EXPORT(Sigmoid);
HWY_EXPORT(TanhDot);
HWY_EXPORT(GemvN);
HWY_EXPORT(FeatureMapGrad);
HWY_EXPORT(TanhAddDot);
HWY_EXPORT(AdditiveScoreGrad);

float max(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(Max)(x, n); }
bool all_within(const float* x, int64_t n, float lo, float hi) { return HWY_DYNAMIC_DISPATCH(AllWithin)(x, n, lo, hi); }
float exp_shift_sum(float* x, int64_t n, float shift) {
  return HWY_DYNAMIC_DISPATCH(ExpShiftSum)(x, n, shift);
}
void scale(float* x, int64_t n, float a) { HWY_DYNAMIC_DISPATCH(Scale)(x, n, a); }
void axpy(float a, const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(Axpy)(a, x, y, n); }
void mul(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(Mul)(x, y, n); }
void div(const float* x, const float* y, float* out, int64_t n) { HWY_DYNAMIC_DISPATCH(Div)(x, y, out, n); }
void stream_copy(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(StreamCopy)(x, y, n); }
float dot(const float* a, const float* b, int64_t n) { return HWY_DYNAMIC_DISPATCH(Dot)(a, b, n); }
float sum(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(Sum)(x, n); }
void feature_map(FeatureMap phi, const float* x, float* y, int64_t n) {
  HWY_DYNAMIC_DISPATCH(FeatureMapApply)(phi, x, y, n);
}
void sigmoid(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(Sigmoid)(x, y, n); }
float tanh_dot(const float* a, const float* b, const float* w, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(TanhDot)(a, b, w, n);
}
void gemv_n(const float* a, int64_t lda, const float* x, int64_t m, int64_t n, float* y) {
  HWY_DYNAMIC_DISPATCH(GemvN)(a, lda, x, m, n, y);
}
void feature_map_grad(FeatureMap phi, const float* x, const float* dy, float* dx, int64_t n) {
  HWY_DYNAMIC_DISPATCH(FeatureMapGrad)(phi, x, dy, dx, n);
}
float tanh_add_dot(const float* a, const float* b, const float* w, float* t, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(TanhAddDot)(a, b, w, t, n);
}
void additive_score_grad(const float* t, const float* w, float ds, float* dq, float* dk, float* dw, int64_t n) {
  HWY_DYNAMIC_DISPATCH(AdditiveScoreGrad)(t, w, ds, dq, dk, dw, n);
}

}  // namespace linattn::kernels::simd
#endif  // HWY_ONCE
