// The causal kernels' vector code (kernels/causal_linear_attention_simd.h): GLA's intra-chunk
// weights and decays, the decay gradient, row scaling and the token-by-token recurrence step.
// Highway compiles this file once per x86 target (foreach_target.h re-includes it) and
// HWY_DYNAMIC_DISPATCH picks the best one the CPU supports.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/causal_linear_attention_simd.cc"
#include <hwy/foreach_target.h>  // must come before highway.h

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/causal_linear_attention_simd.h"
#include "kernels/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace linattn::kernels::simd {
namespace HWY_NAMESPACE {

// GLA's diagonal sub-blocks. E_ts = prod_{k=s+1..t} g_k (= exp(A_t - A_s) <= 1) is built by
// multiplying the per-step factors as t grows: one multiply per element instead of one exp, and
// more exact than exp of a difference of large cumulative sums. Products below 1e-30 are flushed
// to 0 (their terms are negligible, and denormals would be slow).
constexpr int kMaxGlaBlock = static_cast<int>(kGlaBlock);
static_assert(kGlaPad % kMaxLanes == 0, "scratch rows must hold whole vectors");

void GlaBlockWeights(const float* q, int64_t ldq, const float* u, int64_t ldu, const float* g, int64_t n, int64_t dk,
                     float* w, int64_t ldw) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t full = dk / lanes * lanes;
  const V one = hn::Set(d, 1.f);
  for (int64_t s = 0; s < n; ++s) {
    V acc[kMaxGlaBlock];
    for (int t = 0; t < kMaxGlaBlock; ++t) acc[t] = hn::Zero(d);
    int64_t c = 0;
    // Two column vectors at a time: the products e form a chain of dependent multiplies over t,
    // and two independent chains hide half of its latency (measured on a whole 64 x 64 chunk,
    // dk = 64: 12.4 -> 9.3 us, BM_GlaChunkWeights).
    for (; c + 2 * lanes <= full; c += 2 * lanes) {
      const V ua = hn::LoadU(d, u + s * ldu + c), ub = hn::LoadU(d, u + s * ldu + c + lanes);
      V ea = one, eb = one;
      for (int t = 0; t < kMaxGlaBlock; ++t) {
        if (t < s || t >= n) continue;
        if (t > s) {
          ea = flush_tiny(hn::Mul(ea, hn::LoadU(d, g + t * dk + c)));
          eb = flush_tiny(hn::Mul(eb, hn::LoadU(d, g + t * dk + c + lanes)));
        }
        acc[t] = hn::MulAdd(hn::Mul(hn::LoadU(d, q + t * ldq + c), ua), ea, acc[t]);
        acc[t] = hn::MulAdd(hn::Mul(hn::LoadU(d, q + t * ldq + c + lanes), ub), eb, acc[t]);
      }
    }
    for (; c < full; c += lanes) {
      const V us = hn::LoadU(d, u + s * ldu + c);
      V e = one;
      for (int t = 0; t < kMaxGlaBlock; ++t) {  // fixed trip count: acc stays in registers
        if (t < s || t >= n) continue;
        if (t > s) {
          e = flush_tiny(hn::Mul(e, hn::LoadU(d, g + t * dk + c)));
        }
        acc[t] = hn::MulAdd(hn::Mul(hn::LoadU(d, q + t * ldq + c), us), e, acc[t]);
      }
    }
    for (int64_t t = s; t < n; ++t) w[t * ldw + s] = hn::GetLane(hn::SumOfLanes(d, acc[t]));
    for (c = full; c < dk; ++c) {  // the columns past the last full vector
      float e = 1.f;
      for (int64_t t = s; t < n; ++t) {
        if (t > s) e = e * g[t * dk + c] > 1e-30f ? e * g[t * dk + c] : 0.f;
        w[t * ldw + s] += q[t * ldq + c] * u[s * ldu + c] * e;
      }
    }
  }
}

void GlaBlockWeightsBackward(const float* q, int64_t ldq, const float* u, int64_t ldu, const float* g, const float* dw,
                             int64_t ldw, int64_t n, int64_t dk, float* dq, float* du) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t full = dk / lanes * lanes;
  const V one = hn::Set(d, 1.f);
  for (int64_t s = 0; s < n; ++s) {
    for (int64_t c = 0; c < full; c += lanes) {
      const V us = hn::LoadU(d, u + s * ldu + c);
      V e = one, dus = hn::Zero(d);
      for (int64_t t = s; t < n; ++t) {
        if (t > s) {
          e = flush_tiny(hn::Mul(e, hn::LoadU(d, g + t * dk + c)));
        }
        const V we = hn::Mul(hn::Set(d, dw[t * ldw + s]), e);
        hn::StoreU(hn::MulAdd(we, us, hn::LoadU(d, dq + t * dk + c)), d, dq + t * dk + c);
        dus = hn::MulAdd(we, hn::LoadU(d, q + t * ldq + c), dus);
      }
      hn::StoreU(hn::Add(dus, hn::LoadU(d, du + s * dk + c)), d, du + s * dk + c);
    }
    for (int64_t c = full; c < dk; ++c) {
      float e = 1.f;
      for (int64_t t = s; t < n; ++t) {
        if (t > s) e = e * g[t * dk + c] > 1e-30f ? e * g[t * dk + c] : 0.f;
        const float we = dw[t * ldw + s] * e;
        dq[t * dk + c] += we * u[s * ldu + c];
        du[s * dk + c] += we * q[t * ldq + c];
      }
    }
  }
}

// GLA's whole intra-chunk weight matrix, in sub-blocks of kMaxGlaBlock positions: the diagonal
// blocks as above; a block below the diagonal splits each decay product at a reference position
// r between its keys s <= r and its queries t > r, as the dot of (q_t (*) prod_{k=r+1..t} g_k)
// and (u_s (*) prod_{k=s+1..r} g_k): both factors <= 1, so nothing overflows. The forward takes
// r just before each query block, the backward r at the end of each key block. Fused here
// because, as oneDNN GEMMs, the seven thin products per 64-position chunk cost about 1 us each
// in call overhead alone (measured: M = 8..56, N = 8, K = 64: 0.9-2.2 us per call).
// Scratch rows have the padded width dkp (a multiple of every lane count; padded columns 0);
// the scratch need not be aligned.

// x[c, c + lanes), padded with `pad` past n (a whole vector of padding when c >= n).
HWY_INLINE V load_part(const float* x, int64_t c, int64_t n, float pad) {
  const D d;
  if (c + static_cast<int64_t>(hn::Lanes(d)) <= n) return hn::LoadU(d, x + c);
  return load_tail(x, c, n, pad);
}

// y[c, min(c + lanes, n)) += v.
HWY_INLINE void add_part(float* y, int64_t c, int64_t n, V v) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  if (c + lanes <= n) {
    hn::StoreU(hn::Add(hn::LoadU(d, y + c), v), d, y + c);
    return;
  }
  HWY_ALIGN float buf[kMaxLanes];
  hn::Store(v, d, buf);
  for (int64_t j = 0; c + j < n; ++j) y[c + j] += buf[j];
}

// ks[s] = u[j0 + s] (*) prod_{k=j0+s+1..r} g_k (and, if ke, that product) for the kMaxGlaBlock
// keys of a full block ending at r; if pe, pe = prod_{k=j0..r} g_k, the whole block's decay.
void gla_scaled_keys(const float* u, int64_t ldu, const float* g, int64_t j0, int64_t dk, int64_t dkp, float* ks,
                     float* ke, float* pe = nullptr) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t c = 0; c < dkp; c += lanes) {
    V e = hn::Set(d, 1.f);
    for (int64_t s = kMaxGlaBlock - 1; s >= 0; --s) {
      const int64_t row = (j0 + s) * dk;
      hn::StoreU(hn::Mul(load_part(u + (j0 + s) * ldu, c, dk, 0.f), e), d, ks + s * dkp + c);
      if (ke) hn::StoreU(e, d, ke + s * dkp + c);
      e = flush_tiny(hn::Mul(e, load_part(g + row, c, dk, 1.f)));
    }
    if (pe) hn::StoreU(e, d, pe + c);
  }
}

// One tile of GLA's off-diagonal weights: 4 query rows (qs, stride dkp) against NV vectors of
// keys stored transposed (kt[c, s], stride ldk), vectorised over the keys: no horizontal sums.
// 4 x 3 accumulators, 3 key vectors and a broadcast fill the 16 AVX2 registers.
template <int NV>
HWY_INLINE void gla_weight_tile(const float* qs, int64_t dkp, const float* kt, int64_t ldk, int64_t dk, int64_t nr,
                                float* w, int64_t ldw) {
  const hn::CappedTag<float, kMaxGlaBlock> d8;
  using V8 = hn::Vec<decltype(d8)>;
  const int64_t l8 = static_cast<int64_t>(hn::Lanes(d8));
  V8 acc[4][NV];
  for (auto& row : acc)
    for (auto& a : row) a = hn::Zero(d8);
  for (int64_t c = 0; c < dk; ++c) {
    V8 k[NV];
    for (int v = 0; v < NV; ++v) k[v] = hn::LoadU(d8, kt + c * ldk + v * l8);
    for (int r = 0; r < 4; ++r) {
      const V8 b = hn::Set(d8, qs[r * dkp + c]);
      for (int v = 0; v < NV; ++v) acc[r][v] = hn::MulAdd(b, k[v], acc[r][v]);
    }
  }
  for (int64_t r = 0; r < nr; ++r)
    for (int v = 0; v < NV; ++v) hn::StoreU(acc[r][v], d8, w + r * ldw + v * l8);
}

void GlaChunkWeights(const float* q, int64_t ldq, const float* u, int64_t ldu, const float* g, int64_t n, int64_t dk,
                     float* w, int64_t ldw, float* scratch) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d)), dkp = gla_padded_width(dk);
  for (int64_t t = 0; t + 1 < n; ++t) std::fill(w + t * ldw + t + 1, w + t * ldw + n, 0.f);
  for (int64_t j0 = 0; j0 < n; j0 += kMaxGlaBlock)
    GlaBlockWeights(q + j0 * ldq, ldq, u + j0 * ldu, ldu, g + j0 * dk, std::min<int64_t>(n - j0, kMaxGlaBlock), dk,
                    w + j0 * ldw + j0, ldw);
  // Off-diagonal blocks, one query block [i0, i0 + 8) at a time, with the reference i0 - 1:
  // W[t, s] = (q_t (*) prod_{k=i0..t} g_k) . (u_s (*) prod_{k=s+1..i0-1} g_k). The keys are kept
  // transposed and moved to each new reference by the product of one block's gammas.
  const hn::CappedTag<float, kMaxGlaBlock> d8;
  const int64_t l8 = static_cast<int64_t>(hn::Lanes(d8));
  const int64_t ldk = (n + kMaxGlaBlock - 1) / kMaxGlaBlock * kMaxGlaBlock;
  float* kt = scratch;                  // [dk, ldk]
  float* ks = kt + dk * ldk;            // [kMaxGlaBlock, dkp] the newest key block, row-major
  float* qs = ks + kMaxGlaBlock * dkp;  // [kMaxGlaBlock, dkp] the query block's scaled rows
  float* pe = qs + kMaxGlaBlock * dkp;  // [dkp] the newest key block's decay
  const auto tiny = hn::Set(d8, 1e-30f);
  for (int64_t i0 = kMaxGlaBlock; i0 < n; i0 += kMaxGlaBlock) {
    const int64_t j0 = i0 - kMaxGlaBlock, rows = std::min<int64_t>(kMaxGlaBlock, n - i0);
    gla_scaled_keys(u, ldu, g, j0, dk, dkp, ks, nullptr, pe);
    for (int64_t c = 0; c < dk; ++c) {
      float* row = kt + c * ldk;
      const auto p = hn::Set(d8, pe[c]);
      for (int64_t s = 0; s < j0; s += l8) {  // flushed by magnitude: keys have either sign
        const auto x = hn::Mul(hn::LoadU(d8, row + s), p);
        hn::StoreU(hn::IfThenElseZero(hn::Gt(hn::Abs(x), tiny), x), d8, row + s);
      }
      for (int64_t s = 0; s < kMaxGlaBlock; ++s) row[j0 + s] = ks[s * dkp + c];
    }
    for (int64_t c = 0; c < dkp; c += lanes) {
      V e = hn::Set(d, 1.f);
      for (int64_t t = 0; t < kMaxGlaBlock; ++t) {
        if (t >= rows) {  // rows past the end: computed by the 4-row tiles, never stored
          hn::StoreU(hn::Zero(d), d, qs + t * dkp + c);
          continue;
        }
        e = flush_tiny(hn::Mul(e, load_part(g + (i0 + t) * dk, c, dk, 1.f)));
        hn::StoreU(hn::Mul(load_part(q + (i0 + t) * ldq, c, dk, 0.f), e), d, qs + t * dkp + c);
      }
    }
    for (int64_t t0 = 0; t0 < rows; t0 += 4) {
      const int64_t nr = std::min<int64_t>(4, rows - t0);
      float* wr = w + (i0 + t0) * ldw;
      int64_t s0 = 0;
      for (; s0 + 3 * l8 <= i0; s0 += 3 * l8) gla_weight_tile<3>(qs + t0 * dkp, dkp, kt + s0, ldk, dk, nr, wr + s0, ldw);
      if (s0 + 2 * l8 <= i0) {
        gla_weight_tile<2>(qs + t0 * dkp, dkp, kt + s0, ldk, dk, nr, wr + s0, ldw);
        s0 += 2 * l8;
      }
      for (; s0 < i0; s0 += l8) gla_weight_tile<1>(qs + t0 * dkp, dkp, kt + s0, ldk, dk, nr, wr + s0, ldw);
    }
  }
}

void GlaChunkWeightsBackward(const float* q, int64_t ldq, const float* u, int64_t ldu, const float* g, const float* dw,
                             int64_t ldw, int64_t n, int64_t dk, float* dq, float* du, float* scratch) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d)), dkp = gla_padded_width(dk);
  float* ks = scratch;                  // [kMaxGlaBlock, dkp]
  float* ke = ks + kMaxGlaBlock * dkp;  // [kMaxGlaBlock, dkp]
  float* qe = ke + kMaxGlaBlock * dkp;  // [n, dkp]
  float* qs = qe + n * dkp;             // [n, dkp]
  for (int64_t j0 = 0; j0 < n; j0 += kMaxGlaBlock) {
    const int64_t j1 = std::min<int64_t>(n, j0 + kMaxGlaBlock), rows = n - j1;
    GlaBlockWeightsBackward(q + j0 * ldq, ldq, u + j0 * ldu, ldu, g + j0 * dk, dw + j0 * ldw + j0, ldw, j1 - j0, dk,
                            dq + j0 * dk, du + j0 * dk);
    if (rows == 0) break;  // otherwise the block is full
    gla_scaled_keys(u, ldu, g, j0, dk, dkp, ks, ke);
    for (int64_t c = 0; c < dkp; c += lanes) {  // qe[t] = prod_{k=j1..t} g_k, qs[t] = q[t] (*) qe[t]
      V e = hn::Set(d, 1.f);
      for (int64_t t = 0; t < rows; ++t) {
        const int64_t row = (j1 + t) * dk;
        e = flush_tiny(hn::Mul(e, load_part(g + row, c, dk, 1.f)));
        hn::StoreU(e, d, qe + t * dkp + c);
        hn::StoreU(hn::Mul(load_part(q + (j1 + t) * ldq, c, dk, 0.f), e), d, qs + t * dkp + c);
      }
    }
    // du[s] += ke[s] (*) sum_t dw[t, s] qs[t]: the 8 key accumulators stay in registers.
    for (int64_t c = 0; c < dkp; c += lanes) {
      V acc[kMaxGlaBlock];
      for (auto& a : acc) a = hn::Zero(d);
      for (int64_t t = 0; t < rows; ++t) {
        const V x = hn::LoadU(d, qs + t * dkp + c);
        const float* wr = dw + (j1 + t) * ldw + j0;
        for (int s = 0; s < kMaxGlaBlock; ++s) acc[s] = hn::MulAdd(hn::Set(d, wr[s]), x, acc[s]);
      }
      for (int s = 0; s < kMaxGlaBlock; ++s)
        add_part(du + (j0 + s) * dk, c, dk, hn::Mul(acc[s], hn::LoadU(d, ke + s * dkp + c)));
    }
    // dq[t] += qe[t] (*) sum_s dw[t, s] ks[s]
    for (int64_t t = 0; t < rows; ++t) {
      const float* wr = dw + (j1 + t) * ldw + j0;
      V b[kMaxGlaBlock];
      for (int s = 0; s < kMaxGlaBlock; ++s) b[s] = hn::Set(d, wr[s]);
      for (int64_t c = 0; c < dkp; c += lanes) {
        V x = hn::Mul(b[0], hn::LoadU(d, ks + c)), y = hn::Mul(b[1], hn::LoadU(d, ks + dkp + c));
        for (int s = 2; s < kMaxGlaBlock; s += 2) {
          x = hn::MulAdd(b[s], hn::LoadU(d, ks + s * dkp + c), x);
          y = hn::MulAdd(b[s + 1], hn::LoadU(d, ks + (s + 1) * dkp + c), y);
        }
        add_part(dq + (j1 + t) * dk, c, dk, hn::Mul(hn::Add(x, y), hn::LoadU(d, qe + t * dkp + c)));
      }
    }
  }
}

// Loads and stores of columns c.. of a row of dk numbers: whole vectors, or (kTail) the last,
// partial vector, loaded padded with 0 and stored cut at dk.
template <bool kTail>
struct RowPart {
  int64_t dk;
  V load(const float* p, int64_t c) const { return kTail ? load_part(p, c, dk, 0.f) : hn::LoadU(D(), p + c); }
  void store(float* p, int64_t c, V v) const {
    if (!kTail) return hn::StoreU(v, D(), p + c);
    HWY_ALIGN float buf[kMaxLanes];
    hn::Store(v, D(), buf);
    std::memcpy(p + c, buf, static_cast<size_t>(dk - c) * sizeof(float));
  }
};

// One row of GLA's decay factors (see GlaChunkDecays), vectors [c0, c1) of the dk columns.
template <bool kTail, bool kQueries, bool kRatios>
HWY_INLINE void gla_decay_row(int64_t r, int64_t c0, int64_t c1, int64_t dk, const float* logs, const float* q,
                              int64_t ldq, const float* u, int64_t ldu, float* g, float* ea, float* end, float* qd,
                              float* ku) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const RowPart<kTail> io{dk};
  for (int64_t c = c0; c < c1; c += lanes) {
    const V x = io.load(logs, c), gr = hn::Exp(d, x);
    io.store(g + r * dk, c, gr);
    io.store(end, c, r ? hn::Add(io.load(end, c), x) : x);
    if (kQueries) {
      const V e = r ? flush_tiny(hn::Mul(io.load(ea + (r - 1) * dk, c), gr)) : gr;
      io.store(ea + r * dk, c, e);
      io.store(qd + r * dk, c, hn::Mul(io.load(q + r * ldq, c), e));
      if (kRatios) io.store(ku + r * dk, c, hn::Div(io.load(u + r * ldu, c), e));
    }
  }
}

template <bool kTail>
HWY_INLINE void gla_decay_row_back(int64_t r, int64_t n, int64_t c0, int64_t c1, int64_t dk, const float* u,
                                   int64_t ldu, const float* g, float* eka, float* kd) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(D()));
  const RowPart<kTail> io{dk};
  for (int64_t c = c0; c < c1; c += lanes) {
    const V e = r == n - 1 ? hn::Set(D(), 1.f)
                           : flush_tiny(hn::Mul(io.load(eka + (r + 1) * dk, c), io.load(g + (r + 1) * dk, c)));
    io.store(eka + r * dk, c, e);
    io.store(kd + r * dk, c, hn::Mul(io.load(u + r * ldu, c), e));
  }
}

// kV vectors of columns from c of the decay gradient's running sum (see decay_gradient_rows): the
// sums stay in registers down all n rows, kV independent chains to hide the FMA latency.
// With kScale, dq and du are first scaled in place, dq[r] *= ea[r] and du[r] /= ea[r] (ea [n, dk]
// dense), in the same pass.
template <bool kScale>
using GradientRows = std::conditional_t<kScale, float*, const float*>;

template <int kV, bool kTail, bool kScale>
HWY_INLINE void decay_gradient_cols(int64_t c, const float* q, int64_t ldq, GradientRows<kScale> dq, int64_t lddq,
                                    const float* u, int64_t ldu, GradientRows<kScale> du, int64_t lddu, const float* ea,
                                    int64_t n, int64_t dk,
                                    float* acc, float* out, int64_t ldo) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(D()));
  const RowPart<kTail> io{dk};
  V s[kV];
  for (int j = 0; j < kV; ++j) s[j] = io.load(acc, c + j * lanes);
  for (int64_t r = n - 1; r >= 0; --r)
    for (int j = 0; j < kV; ++j) {
      const int64_t cj = c + j * lanes;
      V dqr = io.load(dq + r * lddq, cj), dur = io.load(du + r * lddu, cj);
      if constexpr (kScale) {
        const V e = io.load(ea + r * dk, cj);
        dqr = hn::Mul(e, dqr), dur = hn::Div(dur, e);
        io.store(dq + r * lddq, cj, dqr), io.store(du + r * lddu, cj, dur);
      }
      s[j] = hn::MulAdd(io.load(q + r * ldq, cj), dqr, s[j]);
      s[j] = hn::NegMulAdd(io.load(u + r * ldu, cj), dur, s[j]);
      io.store(out + r * ldo, cj, s[j]);
    }
  for (int j = 0; j < kV; ++j) io.store(acc, c + j * lanes, s[j]);
}

template <bool kScale>
HWY_INLINE void decay_gradient_all_cols(const float* q, int64_t ldq, GradientRows<kScale> dq, int64_t lddq,
                                        const float* u, int64_t ldu, GradientRows<kScale> du, int64_t lddu, const float* ea, int64_t n, int64_t dk, float* acc,
                                        float* out, int64_t ldo) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(D())), full = dk / lanes * lanes;
  int64_t c = 0;
  for (; c + 4 * lanes <= full; c += 4 * lanes)
    decay_gradient_cols<4, false, kScale>(c, q, ldq, dq, lddq, u, ldu, du, lddu, ea, n, dk, acc, out, ldo);
  for (; c < full; c += lanes)
    decay_gradient_cols<1, false, kScale>(c, q, ldq, dq, lddq, u, ldu, du, lddu, ea, n, dk, acc, out, ldo);
  if (full < dk) decay_gradient_cols<1, true, kScale>(full, q, ldq, dq, lddq, u, ldu, du, lddu, ea, n, dk, acc, out, ldo);
}

void DecayGradientRows(const float* q, int64_t ldq, const float* dq, int64_t lddq, const float* u, int64_t ldu,
                       const float* du, int64_t lddu, int64_t n, int64_t dk, float* acc, float* out, int64_t ldo) {
  decay_gradient_all_cols<false>(q, ldq, dq, lddq, u, ldu, du, lddu, nullptr, n, dk, acc, out, ldo);
}

void GlaRatioGradientRows(const float* q, int64_t ldq, float* dq, int64_t lddq, const float* u, int64_t ldu, float* du,
                          int64_t lddu, const float* ea, int64_t n, int64_t dk, float* acc, float* out, int64_t ldo) {
  decay_gradient_all_cols<true>(q, ldq, dq, lddq, u, ldu, du, lddu, ea, n, dk, acc, out, ldo);
}

void ScaleRows(float* x, int64_t rows, int64_t cols, int64_t ld, const float* factors) {
  for (int64_t r = 0; r < rows; ++r) Scale(x + r * ld, cols, factors[r]);
}

void GlaChunkKeyDecays(int64_t n, int64_t dk, const float* u, int64_t ldu, const float* g, float* eka, float* kd) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(D())), full = dk / lanes * lanes;
  for (int64_t r = n - 1; r >= 0; --r) {
    gla_decay_row_back<false>(r, n, 0, full, dk, u, ldu, g, eka, kd);
    if (full < dk) gla_decay_row_back<true>(r, n, full, dk, dk, u, ldu, g, eka, kd);
  }
}

template <bool kQueries, bool kRatios>
HWY_INLINE void gla_decay_rows(const float* logs, int64_t ldl, int64_t n, int64_t dk, const float* q, int64_t ldq,
                               const float* u, int64_t ldu, float* g, float* ea, float* end, float* qd, float* ku) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(D())), full = dk / lanes * lanes;
  // Row by row, so the logs (read once, from DRAM) stream in order; the columns past the last
  // full vector get the same arithmetic through padded loads.
  for (int64_t r = 0; r < n; ++r) {
    const float* lr = logs + r * ldl;
    gla_decay_row<false, kQueries, kRatios>(r, 0, full, dk, lr, q, ldq, u, ldu, g, ea, end, qd, ku);
    if (full < dk) gla_decay_row<true, kQueries, kRatios>(r, full, dk, dk, lr, q, ldq, u, ldu, g, ea, end, qd, ku);
  }
}

void GlaChunkDecays(const float* logs, int64_t ldl, int64_t n, int64_t dk, const float* q, int64_t ldq, const float* u,
                    int64_t ldu, float* g, float* ea, float* eka, float* end, float* qd, float* kd, float* ku) {
  if (ea && qd && ku) gla_decay_rows<true, true>(logs, ldl, n, dk, q, ldq, u, ldu, g, ea, end, qd, ku);
  else if (ea && qd) gla_decay_rows<true, false>(logs, ldl, n, dk, q, ldq, u, ldu, g, ea, end, qd, ku);
  else gla_decay_rows<false, false>(logs, ldl, n, dk, q, ldq, u, ldu, g, ea, end, qd, ku);
  map_inplace(end, end, dk, 0.f, [](V x) { return hn::Exp(D(), x); });
  if (eka && kd) GlaChunkKeyDecays(n, dk, u, ldu, g, eka, kd);
}

// One token of the recurrence on a state M [dk, dv] (row stride ldm), each number read and
// written once: M_i = gamma_i M_i + a_i b, then the read-outs dots_i = M_i . x and
// sums = sum_i w_i M_i (each when asked for). The decay takes the form that keeps its digits:
// - gamma >= 1/2: M_i + (a_i b - c_i M_i) with c_i = 1 - gamma_i = -expm1(log gamma_i). A gamma
//   near 1 rounded to fp32 loses most digits of 1 - gamma, an error the recurrence would repeat
//   at every step (measured: 4-6e-4 at T = 65,536 with log gamma = -1e-6); c keeps its own.
// - gamma < 1/2: gamma_i M_i + a_i b with gamma_i = exp(log gamma_i). Here it is c near 1 that
//   rounds: 1 - c would carry an error of up to 3e-8 / gamma relative to gamma M (2.5e-4 at
//   gamma = e^-9), which an output normalised by a small denominator shows (measured: 1e-5
//   relative to the recurrence in double, against 2.5e-7 in chunks).
// Column tiles of 4 vectors keep b and the sums in registers, so each row tile costs 4 loads, 4
// stores and 8-16 FMA-pipe operations (the adds run on their own pipes): with the state in L1 the
// loop runs near the FMA roof. The dots are summed per row as vectors across column tiles (rows in
// blocks of kDotRows) and reduced once per row.
constexpr int64_t kDotRows = 64;

// How step_rows decays M: not at all, every row as M + (a b - c M), or each row in the form that
// keeps its digits (a branch per row, taken only when some row decays below 1/2).
enum class StepDecay { none, complement, per_row };

template <bool kDots, bool kSums, StepDecay kDecay>
HWY_INLINE void step_rows(float* m, int64_t ldm, int64_t rows, int64_t dv, const float* a, const float* b,
                               const float* complement, const float* gamma, const float* x, float* dots,
                               const float* w, float* sums, bool add_to_sums) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  HWY_ALIGN float partial[kDots ? kDotRows * kMaxLanes : 1];
  auto sums_start = [&](int64_t j) { return add_to_sums ? hn::LoadU(d, sums + j) : hn::Zero(d); };
  // Row i of the tile: decay, rank-one update, store; returns the updated vector k of the row.
  auto update = [&](V mi, int64_t i, V bk) {
    if (kDecay == StepDecay::none) return hn::MulAdd(hn::Set(d, a[i]), bk, mi);
    if (kDecay == StepDecay::per_row && complement[i] > 0.5f)  // gamma < 1/2: gamma M + a b
      return hn::MulAdd(hn::Set(d, gamma[i]), mi, hn::Mul(hn::Set(d, a[i]), bk));
    // One rounding at M's scale per step: M + (a b - c M). Rounding M - c M on its own would
    // err the same way at every step (c M is a near-constant few ulps of M) and drift linearly.
    return hn::Add(mi, hn::NegMulAdd(hn::Set(d, complement[i]), mi, hn::Mul(hn::Set(d, a[i]), bk)));
  };
  auto add_dot = [&](int64_t i, V p, bool first) {
    if (!first) p = hn::Add(p, hn::Load(d, partial + i * lanes));
    hn::Store(p, d, partial + i * lanes);
  };
  int64_t j = 0;
  for (; j + 4 * lanes <= dv; j += 4 * lanes) {
    const V b0 = hn::LoadU(d, b + j), b1 = hn::LoadU(d, b + j + lanes), b2 = hn::LoadU(d, b + j + 2 * lanes),
            b3 = hn::LoadU(d, b + j + 3 * lanes);
    V s0 = hn::Zero(d), s1 = s0, s2 = s0, s3 = s0;
    if (kSums) s0 = sums_start(j), s1 = sums_start(j + lanes), s2 = sums_start(j + 2 * lanes), s3 = sums_start(j + 3 * lanes);
    for (int64_t i = 0; i < rows; ++i) {
      float* row = m + i * ldm + j;
      const V m0 = update(hn::LoadU(d, row), i, b0), m1 = update(hn::LoadU(d, row + lanes), i, b1),
              m2 = update(hn::LoadU(d, row + 2 * lanes), i, b2), m3 = update(hn::LoadU(d, row + 3 * lanes), i, b3);
      hn::StoreU(m0, d, row), hn::StoreU(m1, d, row + lanes), hn::StoreU(m2, d, row + 2 * lanes);
      hn::StoreU(m3, d, row + 3 * lanes);
      if (kSums) {
        const V wi = hn::Set(d, w[i]);
        s0 = hn::MulAdd(wi, m0, s0), s1 = hn::MulAdd(wi, m1, s1), s2 = hn::MulAdd(wi, m2, s2), s3 = hn::MulAdd(wi, m3, s3);
      }
      if (kDots) {
        const V p = hn::MulAdd(m0, hn::LoadU(d, x + j), hn::Mul(m1, hn::LoadU(d, x + j + lanes)));
        const V p2 = hn::MulAdd(m2, hn::LoadU(d, x + j + 2 * lanes), hn::Mul(m3, hn::LoadU(d, x + j + 3 * lanes)));
        add_dot(i, hn::Add(p, p2), j == 0);
      }
    }
    if (kSums) {
      hn::StoreU(s0, d, sums + j), hn::StoreU(s1, d, sums + j + lanes), hn::StoreU(s2, d, sums + j + 2 * lanes);
      hn::StoreU(s3, d, sums + j + 3 * lanes);
    }
  }
  for (; j < dv; j += lanes) {  // one vector at a time, the last one partial (padded with zeros)
    const int64_t width = std::min(lanes, dv - j);
    const V bj = load_tail(b, j, dv, 0.f);
    V s = kSums && add_to_sums ? load_tail(sums, j, dv, 0.f) : hn::Zero(d);
    const V xj = kDots ? load_tail(x, j, dv, 0.f) : hn::Zero(d);
    for (int64_t i = 0; i < rows; ++i) {
      float* row = m + i * ldm + j;
      const V mi = update(load_tail(row, 0, width, 0.f), i, bj);
      HWY_ALIGN float buf[kMaxLanes];
      hn::Store(mi, d, buf);
      std::memcpy(row, buf, static_cast<size_t>(width) * sizeof(float));
      if (kSums) s = hn::MulAdd(hn::Set(d, w[i]), mi, s);
      if (kDots) add_dot(i, hn::Mul(mi, xj), j == 0);
    }
    if (kSums) {
      HWY_ALIGN float buf[kMaxLanes];
      hn::Store(s, d, buf);
      std::memcpy(sums + j, buf, static_cast<size_t>(width) * sizeof(float));
    }
  }
  if (kDots)
    for (int64_t i = 0; i < rows; ++i) dots[i] = dv ? hn::GetLane(hn::SumOfLanes(d, hn::Load(d, partial + i * lanes))) : 0.f;
}

template <bool kDots, bool kSums>
void recurrent_step_blocks(float* m, int64_t ldm, int64_t dk, int64_t dv, const float* a, const float* b,
                           const float* log_decay, const float* x, float* dots, const float* w, float* sums) {
  if (kSums && dk == 0) std::fill_n(sums, dv, 0.f);
  // Blocks of rows: the dots' partial sums, and the decay factors of the block's rows, on the stack.
  const int64_t block = kDots || log_decay ? kDotRows : std::max<int64_t>(dk, 1);
  HWY_ALIGN float complement[kDotRows], gamma[kDotRows];
  for (int64_t i0 = 0; i0 < dk; i0 += block) {
    const int64_t rows = std::min(block, dk - i0);
    if (log_decay)
      map_inplace(log_decay + i0, complement, rows, 0.f, [](V v) { return hn::Neg(hn::Expm1(D(), v)); });
    // The decay's form a template argument: no branch per row unless some row decays below 1/2
    // (then gamma itself, one more exp per row; decays near 1, the common case, skip both).
    float* mb = m + i0 * ldm;
    const float *ab = a + i0, *wb = kSums ? w + i0 : nullptr;
    float* db = kDots ? dots + i0 : nullptr;
    if (!log_decay) {
      step_rows<kDots, kSums, StepDecay::none>(mb, ldm, rows, dv, ab, b, nullptr, nullptr, x, db, wb, sums, i0 > 0);
    } else if (Max(complement, rows) <= 0.5f) {
      step_rows<kDots, kSums, StepDecay::complement>(mb, ldm, rows, dv, ab, b, complement, nullptr, x, db, wb, sums,
                                                     i0 > 0);
    } else {
      map_inplace(log_decay + i0, gamma, rows, 0.f, [](V v) { return hn::Exp(D(), v); });
      step_rows<kDots, kSums, StepDecay::per_row>(mb, ldm, rows, dv, ab, b, complement, gamma, x, db, wb, sums, i0 > 0);
    }
  }
}

void RecurrentStep(float* m, int64_t ldm, int64_t dk, int64_t dv, const float* a, const float* b, const float* log_decay,
                   const float* x, float* dots, const float* w, float* sums) {
  if (x && w) recurrent_step_blocks<true, true>(m, ldm, dk, dv, a, b, log_decay, x, dots, w, sums);
  else if (x) recurrent_step_blocks<true, false>(m, ldm, dk, dv, a, b, log_decay, x, dots, w, sums);
  else if (w) recurrent_step_blocks<false, true>(m, ldm, dk, dv, a, b, log_decay, x, dots, w, sums);
  else recurrent_step_blocks<false, false>(m, ldm, dk, dv, a, b, log_decay, x, dots, w, sums);
}

}  // namespace HWY_NAMESPACE
}  // namespace linattn::kernels::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace linattn::kernels::simd {

HWY_EXPORT(GlaBlockWeights);
HWY_EXPORT(GlaBlockWeightsBackward);
HWY_EXPORT(GlaChunkWeights);
HWY_EXPORT(GlaChunkWeightsBackward);
HWY_EXPORT(RecurrentStep);
HWY_EXPORT(GlaChunkDecays);
HWY_EXPORT(GlaRatioGradientRows);
HWY_EXPORT(GlaChunkKeyDecays);
HWY_EXPORT(DecayGradientRows);
HWY_EXPORT(ScaleRows);

void gla_block_weights(const float* q, int64_t ldq, const float* u, int64_t ldu, const float* g, int64_t n, int64_t dk,
                       float* w, int64_t ldw) {
  HWY_DYNAMIC_DISPATCH(GlaBlockWeights)(q, ldq, u, ldu, g, n, dk, w, ldw);
}
void gla_block_weights_backward(const float* q, int64_t ldq, const float* u, int64_t ldu, const float* g, const float* dw,
                                int64_t ldw, int64_t n, int64_t dk, float* dq, float* du) {
  HWY_DYNAMIC_DISPATCH(GlaBlockWeightsBackward)(q, ldq, u, ldu, g, dw, ldw, n, dk, dq, du);
}
int64_t gla_chunk_scratch_size(int64_t n, int64_t dk) {
  return (2 * kGlaBlock + 2 * n + 2) * gla_padded_width(dk);
}
void gla_chunk_weights(const float* q, int64_t ldq, const float* u, int64_t ldu, const float* g, int64_t n, int64_t dk,
                       float* w, int64_t ldw, float* scratch) {
  HWY_DYNAMIC_DISPATCH(GlaChunkWeights)(q, ldq, u, ldu, g, n, dk, w, ldw, scratch);
}
void gla_chunk_weights_backward(const float* q, int64_t ldq, const float* u, int64_t ldu, const float* g, const float* dw,
                                int64_t ldw, int64_t n, int64_t dk, float* dq, float* du, float* scratch) {
  HWY_DYNAMIC_DISPATCH(GlaChunkWeightsBackward)(q, ldq, u, ldu, g, dw, ldw, n, dk, dq, du, scratch);
}
void recurrent_step(float* m, int64_t ldm, int64_t dk, int64_t dv, const float* a, const float* b,
                    const float* log_decay, const float* x, float* dots, const float* w, float* sums) {
  HWY_DYNAMIC_DISPATCH(RecurrentStep)(m, ldm, dk, dv, a, b, log_decay, x, dots, w, sums);
}
void gla_chunk_decays(const float* logs, int64_t ldl, int64_t n, int64_t dk, const float* q, int64_t ldq, const float* u,
                      int64_t ldu, float* g, float* ea, float* eka, float* end, float* qd, float* kd, float* ku) {
  HWY_DYNAMIC_DISPATCH(GlaChunkDecays)(logs, ldl, n, dk, q, ldq, u, ldu, g, ea, eka, end, qd, kd, ku);
}
void gla_chunk_key_decays(int64_t n, int64_t dk, const float* u, int64_t ldu, const float* g, float* eka, float* kd) {
  HWY_DYNAMIC_DISPATCH(GlaChunkKeyDecays)(n, dk, u, ldu, g, eka, kd);
}
void gla_ratio_gradient_rows(const float* q, int64_t ldq, float* dq, int64_t lddq, const float* u, int64_t ldu, float* du,
                             int64_t lddu, const float* ea, int64_t n, int64_t dk, float* acc, float* out, int64_t ldo) {
  HWY_DYNAMIC_DISPATCH(GlaRatioGradientRows)(q, ldq, dq, lddq, u, ldu, du, lddu, ea, n, dk, acc, out, ldo);
}
void decay_gradient_rows(const float* q, int64_t ldq, const float* dq, int64_t lddq, const float* u, int64_t ldu,
                         const float* du, int64_t lddu, int64_t n, int64_t dk, float* acc, float* out, int64_t ldo) {
  HWY_DYNAMIC_DISPATCH(DecayGradientRows)(q, ldq, dq, lddq, u, ldu, du, lddu, n, dk, acc, out, ldo);
}
void scale_rows(float* x, int64_t rows, int64_t cols, int64_t ld, const float* factors) {
  HWY_DYNAMIC_DISPATCH(ScaleRows)(x, rows, cols, ld, factors);
}

}  // namespace linattn::kernels::simd
#endif  // HWY_ONCE
