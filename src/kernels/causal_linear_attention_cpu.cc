#include "kernels/causal_linear_attention_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/parallel.h"
#include "kernels/causal_linear_attention_simd.h"
#include "kernels/simd.h"

namespace linattn::kernels {
namespace {

// Whether the rows of a [B, H, T, w] view can be a GEMM operand in place: a row stride of at
// least the row (a broadcast input, stride 0 over T, is copied instead).
template <typename T>
bool rows_in_place(const View<T, 4>& x) {
  return x.shape[3] > 0 && x.stride[2] >= x.shape[3];
}

// Rows of a matrix: row r at p + r * ld.
struct Rows {
  const float* p = nullptr;
  int64_t ld = 0;
  const float* row(int64_t r) const { return p + r * ld; }
};

// The weights of a GLA chunk are ratios of cumulative decays when every channel's decay over the
// chunk is at least this (Chunk::intra_weights); stronger decays take the sub-block kernel.
constexpr float kRatioMinDecay = 1e-15f;

// One chunk of one (b, h), in the augmented value space: with normalisation, a column of ones
// is appended to V (so the last column of the state is z and of the output the denominator).
// phi(q), phi(k), u = g phi(k) and v' are the inputs' own rows wherever nothing changes them
// (identity feature map, no gates, no normalisation): the GEMMs read them in place, no copies.
struct Chunk {
  // What a load prepares: everything, or only what advance() reads (the backward's first pass,
  // which recomputes the chunk-start states, skips the queries and their decays).
  enum class Part { all, state_update };

  int64_t len = 0, dk = 0, dva = 0;
  bool decayed = false;  // false: every gamma is 1 and every decay factor below is exactly 1
  Rows phi_q, phi_k, u, vp;                                     // [len, dk] (vp: [len, dva])
  std::vector<float> phi_q_buf, phi_k_buf, u_buf, vp_buf;       // their rows where they are computed
  std::vector<float> qd_, kd_, W, tmp;                          // [len, *] row-major
  std::vector<float> A;                                         // one decay per step: cumulative log decays
  std::vector<float> ea, eka;                                   // exp(A_t), exp(A_last - A_t)
  std::vector<float> scratch;                                   // per-channel: simd::gla_chunk_weights
  std::vector<float> G;                                         // per-channel: gamma_t = exp(log decay_t)
  // Per-channel, when every channel decays by at least kRatioMinDecay over the chunk: weights as
  // ratios, W = mask(Qd Ku^T) with Ku = u / exp(A_t), one GEMM (see intra_weights). Then also
  // Kd = Ku (*) exp(A_last) per channel, so the state update needs neither Kd nor eka (advance).
  bool ratios = false;
  std::vector<float> ku;
  std::vector<float> decay_end;                                 // exp(A_last) per channel

  // Decayed queries and keys: without decay they are phi(q) and u themselves, never copied.
  Rows qd() const { return decayed ? Rows{qd_.data(), dk} : phi_q; }
  Rows kd() const { return decayed ? Rows{kd_.data(), dk} : u; }

  void load(const CausalArgs& a, int64_t b, int64_t h, int64_t t0, int64_t n, int64_t L, Part part = Part::all) {
    const bool queries = part == Part::all;
    len = std::min(L, n - t0);
    dk = a.q.shape[3];
    const int64_t dv = a.v.shape[3];
    dva = dv + (a.normalize ? 1 : 0);
    decayed = a.log_decay.data != nullptr;
    ratios = false;
    const bool per_channel = decayed && a.log_decay.per_channel;
    const size_t rows = static_cast<size_t>(len * dk);
    if (decayed) {
      for (auto* x : {&eka, &kd_}) x->resize(rows);
      if (queries) ea.resize(rows), qd_.resize(rows);
      (per_channel ? G : A).resize(rows);
    }
    W.resize(static_cast<size_t>(len * len));
    tmp.resize(static_cast<size_t>(std::max(dk, L)));
    decay_end.resize(static_cast<size_t>(dk));
    // Inputs read in place, or rows computed into a buffer (also when there are no rows to point
    // at, dk or dv = 0, or rows overlap: see rows_in_place).
    auto features = [&](CView4 x, std::vector<float>& buf) {
      if (a.phi == FeatureMap::identity && rows_in_place(x)) return Rows{&x(b, h, t0, 0), x.stride[2]};
      buf.resize(rows);
      for (int64_t r = 0; r < len; ++r) simd::feature_map(a.phi, &x(b, h, t0 + r, 0), &buf[r * dk], dk);
      return Rows{buf.data(), dk};
    };
    if (queries) phi_q = features(a.q, phi_q_buf);
    phi_k = features(a.k, phi_k_buf);
    u = phi_k;
    if (a.gates.present()) {
      u_buf.resize(rows);
      for (int64_t r = 0; r < len; ++r) {
        const float g = a.gates(b, h, t0 + r);
        for (int64_t c = 0; c < dk; ++c) u_buf[r * dk + c] = g * phi_k.row(r)[c];
      }
      u = {u_buf.data(), dk};
    }
    if (a.normalize || !rows_in_place(a.v)) {
      vp_buf.resize(static_cast<size_t>(len * dva));
      for (int64_t r = 0; r < len; ++r) {
        std::copy_n(&a.v(b, h, t0 + r, 0), dv, &vp_buf[r * dva]);
        if (a.normalize) vp_buf[r * dva + dv] = 1.f;
      }
      vp = {vp_buf.data(), dva};
    } else {
      vp = {&a.v(b, h, t0, 0), a.v.stride[2]};
    }
    for (int64_t r = 0; r < len && decayed && !per_channel; ++r) {  // cumulative log decay, inclusive
      float* Ar = &A[r * dk];
      for (int64_t c = 0; c < dk; ++c) Ar[c] = a.log_decay.at(b, h, t0 + r, c);
      if (r) simd::axpy(1.f, Ar - dk, Ar, dk);
    }
    if (!decayed) {  // gamma = 1: Qd = phi(q), Kd = u, no exponentials at all
      std::fill(decay_end.begin(), decay_end.end(), 1.f);
      return;
    }
    if (per_channel) {
      // One exp per element, for the gammas; inside the chunk every factor is a product of at
      // most L of them (relative error <= L * 6e-8, on terms that no later chunk multiplies
      // again). The factor carried from chunk to chunk, exp(A_last), stays an exp of the sum:
      // products of fp32 gammas near 1 carry a few percent of error in each log decay, which
      // the state would compound over a long sequence (measured: 6e-4 at T = 65,536 with
      // log gamma = -1e-6, against 1e-4 allowed).
      const float* logs = &a.log_decay.data[a.log_decay.offset(b, h, t0)];
      if (!queries) {
        simd::gla_chunk_decays(logs, a.log_decay.stride_t, len, dk, nullptr, 0, u.p, u.ld, G.data(), nullptr, eka.data(),
                               decay_end.data(), nullptr, kd_.data());
        return;
      }
      // Ku = u / exp(A) in the same pass, for the ratios that (with decays this weak) nearly
      // every chunk takes; discarded otherwise.
      ku.resize(rows);
      simd::gla_chunk_decays(logs, a.log_decay.stride_t, len, dk, phi_q.p, phi_q.ld, u.p, u.ld, G.data(), ea.data(), nullptr,
                             decay_end.data(), qd_.data(), nullptr, ku.data());
      // exp(A_t) is smallest at the chunk's last step (a product of factors <= 1).
      ratios = simd::all_within(&ea[(len - 1) * dk], dk, kRatioMinDecay, 1.f);
      if (!ratios) simd::gla_chunk_key_decays(len, dk, u.p, u.ld, G.data(), eka.data(), kd_.data());
      return;
    }
    // One decay per step: exps of the chunk-local sums, all exponents <= 0.
    const float* last = &A[(len - 1) * dk];
    if (queries) {
      std::copy(A.begin(), A.end(), ea.begin());
      simd::exp_shift_sum(ea.data(), len * dk, 0.f);
    }
    for (int64_t r = 0; r < len; ++r)
      for (int64_t c = 0; c < dk; ++c) eka[r * dk + c] = last[c] - A[r * dk + c];
    simd::exp_shift_sum(eka.data(), len * dk, 0.f);
    std::copy_n(last, dk, decay_end.begin());
    simd::exp_shift_sum(decay_end.data(), dk, 0.f);
    for (int64_t r = 0; r < len; ++r)
      for (int64_t c = 0; c < dk; ++c) {
        kd_[r * dk + c] = u.row(r)[c] * eka[r * dk + c];
        if (queries) qd_[r * dk + c] = phi_q.row(r)[c] * ea[r * dk + c];
      }
  }

  // Asks for the input rows [t0, min(t0 + L, n)) ahead of their load: the inputs stream from
  // DRAM once, and the hardware prefetcher alone leaves the copies in load() waiting on them.
  // (Measured, T = 4,096, forward: 1-12% faster, most with GLA, which reads four inputs.) The
  // backward also asks for the output gradient's rows (dout).
  static void prefetch(const CausalArgs& a, int64_t b, int64_t h, int64_t t0, int64_t n, int64_t L,
                       CView4 dout = {}) {
    auto rows = [&](const float* first, int64_t row_stride, int64_t width) {
      for (int64_t r = 0; r < std::min(L, n - t0); ++r)
        for (int64_t c = 0; c < width; c += 16) __builtin_prefetch(first + r * row_stride + c);
    };
    if (t0 < 0 || t0 >= n) return;
    rows(&a.q(b, h, t0, 0), a.q.stride[2], a.q.shape[3]);
    rows(&a.k(b, h, t0, 0), a.k.stride[2], a.k.shape[3]);
    rows(&a.v(b, h, t0, 0), a.v.stride[2], a.v.shape[3]);
    if (a.log_decay.per_channel) rows(&a.log_decay.data[a.log_decay.offset(b, h, t0)], a.log_decay.stride_t, a.q.shape[3]);
    if (dout.present()) rows(&dout(b, h, t0, 0), dout.stride[2], dout.shape[3]);
  }

  // X[t, s] = 0 for s > t, X [len, len]: the causal mask.
  void zero_above_diagonal(float* X) const {
    for (int64_t t = 0; t + 1 < len; ++t) std::fill(X + t * len + t + 1, X + (t + 1) * len, 0.f);
  }

  // Scales row t of a causal L x L matrix X by exp(A_t - A_s) (one decay for all channels) and
  // zeroes s > t.
  void scalar_decay_mask(float* X) {
    zero_above_diagonal(X);
    for (int64_t t = 0; t < len && decayed; ++t) {
      float* row = X + t * len;
      for (int64_t s = 0; s <= t; ++s) tmp[s] = A[t * dk] - A[s * dk];
      simd::exp_shift_sum(tmp.data(), t + 1, 0.f);
      simd::mul(tmp.data(), row, t + 1);
    }
  }

  // W[t, s] = sum_c phi_q[t, c] u[s, c] exp(A[t, c] - A[s, c]) for s <= t, else 0.
  void intra_weights(bool per_channel) {
    if (!per_channel) {  // one decay for every channel: a GEMM, then the decay ratios
      gemm(false, true, len, len, dk, 1.f, phi_q.p, phi_q.ld, u.p, u.ld, 0.f, W.data(), len);
      scalar_decay_mask(W.data());
      return;
    }
    if (ratios) {
      // exp(A_t - A_s) = exp(A_t) / exp(A_s): W = (phi_q (*) exp(A)) (u / exp(A))^T, masked. Each
      // term is the same product as the sub-block kernel's, up to rounding (no cancellation is
      // added), and with exp(A) >= kRatioMinDecay nothing can underflow or, for |u| < 1e23,
      // overflow. At L = 32, dk = 64 the GEMM takes 1.9 us (BM_Gemm) against 4.3 us for the
      // sub-blocks (BM_GlaChunkWeights); GLA forward 0.81x the time at d = 64 (A/B, T = 256).
      gemm(false, true, len, len, dk, 1.f, qd_.data(), dk, ku.data(), dk, 0.f, W.data(), len);
      zero_above_diagonal(W.data());
      return;
    }
    // Per-channel decay: sub-blocks whose decay factors are all <= 1 (see simd.h).
    scratch.resize(static_cast<size_t>(simd::gla_chunk_scratch_size(len, dk)));
    simd::gla_chunk_weights(phi_q.p, phi_q.ld, u.p, u.ld, G.data(), len, dk, W.data(), len, scratch.data());
  }

  // S = exp(A_last) (*)rows S + Kd^T Vp; with ratios, Kd = Ku (*) exp(A_last) per channel makes it
  // exp(A_last) (*)rows (S + Ku^T Vp).
  void advance(float* S) const {
    if (ratios) {
      gemm(true, false, dk, dva, len, 1.f, ku.data(), dk, vp.p, vp.ld, 1.f, S, dva);
      simd::scale_rows(S, dk, dva, dva, decay_end.data());
      return;
    }
    if (decayed)
      simd::scale_rows(S, dk, dva, dva, decay_end.data());
    gemm(true, false, dk, dva, len, 1.f, kd().p, kd().ld, vp.p, vp.ld, 1.f, S, dva);
  }

  // O' = Qd S_prev + W Vp   [len, dva]
  void outputs(const float* S_prev, float* O, int64_t ldo, bool per_channel) {
    gemm(false, false, len, dva, dk, 1.f, qd().p, qd().ld, S_prev, dva, 0.f, O, ldo);
    intra_weights(per_channel);
    gemm(false, false, len, dva, len, 1.f, W.data(), len, vp.p, vp.ld, 1.f, O, ldo);
  }
};

// Whether an output may be written while the inputs are still being read: only if it shares no
// memory with any of them (an output that is an input's own buffer, say out = v, is written
// through a buffer after the chunk's last read instead).
template <int R>
bool disjoint_from_inputs(const View<const float, R>& output, const CausalArgs& a, CView4 dout = {}) {
  if (spans_meet(output, a.q) || spans_meet(output, a.k) || spans_meet(output, a.v) || spans_meet(output, a.gates) ||
      spans_meet(output, dout) || spans_meet(output, a.initial_state) || spans_meet(output, a.initial_normalizer))
    return false;
  if (!a.log_decay.data) return true;
  const int64_t B = a.q.shape[0], H = a.q.shape[1], T = a.q.shape[2], dk = a.log_decay.per_channel ? a.q.shape[3] : 1;
  const CView4 logs(a.log_decay.data, {B, H, T, dk},
                    {a.log_decay.stride_b, a.log_decay.stride_h, a.log_decay.stride_t, a.log_decay.stride_c});
  return !spans_meet(output, logs);
}

void load_initial(const CausalArgs& a, int64_t b, int64_t h, int64_t dk, int64_t dv, int64_t dva, float* S) {
  for (int64_t c = 0; c < dk; ++c) {
    float* row = S + c * dva;
    if (a.initial_state.present()) std::copy_n(&a.initial_state(b, h, c, 0), dv, row);
    else std::fill_n(row, dv, 0.f);
    if (dva > dv) row[dv] = a.initial_normalizer.present() ? a.initial_normalizer(b, h, c) : 0.f;
  }
}

// One token of one (b, h) for the token-by-token algorithms: phi(q_t), phi(k_t),
// u_t = g_t phi(k_t), v'_t = [v_t, 1] (augmented with normalisation), and log gamma_t. Where
// nothing changes a row (identity feature map, no gates, no normalisation) the pointers are the
// input's row itself: no per-token copies on the inference path.
struct Token {
  int64_t dk = 0, dv = 0, dva = 0;
  bool decayed = false;
  const float *pq = nullptr, *pk = nullptr, *u = nullptr, *vp = nullptr;
  std::vector<float> pq_buf, pk_buf, u_buf, vp_buf, logs;

  void resize(const CausalArgs& a) {
    dk = a.q.shape[3], dv = a.v.shape[3], dva = dv + (a.normalize ? 1 : 0);
    decayed = a.log_decay.data != nullptr;
    for (auto* x : {&pq_buf, &pk_buf, &u_buf, &logs}) x->resize(static_cast<size_t>(dk));
    vp_buf.resize(static_cast<size_t>(dva));
  }
  void load(const CausalArgs& a, int64_t b, int64_t h, int64_t t) {
    pq = feature_row(a, &a.q(b, h, t, 0), pq_buf);
    pk = feature_row(a, &a.k(b, h, t, 0), pk_buf);
    u = pk;
    if (a.gates.present()) {
      const float g = a.gates(b, h, t);
      for (int64_t c = 0; c < dk; ++c) u_buf[c] = g * pk[c];
      u = u_buf.data();
    }
    vp = &a.v(b, h, t, 0);
    if (a.normalize) {
      std::copy_n(vp, dv, vp_buf.data());
      vp_buf[dv] = 1.f;
      vp = vp_buf.data();
    }
  }
  const float* feature_row(const CausalArgs& a, const float* x, std::vector<float>& buf) const {
    if (a.phi == FeatureMap::identity) return x;
    simd::feature_map(a.phi, x, buf.data(), dk);
    return buf.data();
  }
  // log gamma_t per channel (see simd::recurrent_step), or nullptr without decay.
  const float* log_decays(const CausalArgs& a, int64_t b, int64_t h, int64_t t) {
    if (!decayed) return nullptr;
    for (int64_t c = 0; c < dk; ++c) logs[c] = a.log_decay.at(b, h, t, c);
    return logs.data();
  }
};

// Row c of chunk_states (b, h) := S [dk, dva], when chunk states are asked for. Streamed past the
// cache: the backward reads them back only after the whole forward.
void save_state(View4 chunk_states, int64_t b, int64_t h, int64_t c, const float* S, int64_t size) {
  if (chunk_states.present()) simd::stream_copy(S, &chunk_states(b, h, c, 0), size);
}

// Positions [0, n) of one (b, h) token by token: the recurrence itself, with the augmented state
// S [dk, dva] (with normalisation its last column is z, and v is augmented with a 1). The state
// before every chunk of a.chunk positions goes to chunk_states (when present), as in chunks.
// direct: the step writes each output row itself (no normalisation, out shares no input's memory).
void recurrent_rows(const CausalArgs& a, int64_t b, int64_t h, int64_t n, float* S, View4 out, View4 chunk_states,
                    bool direct) {
  thread_local Token x;
  thread_local std::vector<float> o;
  x.resize(a);
  o.resize(static_cast<size_t>(x.dva));
  for (int64_t t = 0; t < n; ++t) {
    if (chunk_states.present() && t % a.chunk == 0) save_state(chunk_states, b, h, t / a.chunk, S, x.dk * x.dva);
    x.load(a, b, h, t);
    float* y = &out(b, h, t, 0);
    simd::recurrent_step(S, x.dva, x.dk, x.dva, x.u, x.vp, x.log_decays(a, b, h, t), nullptr, nullptr, x.pq,
                         direct ? y : o.data());
    if (direct) continue;
    std::copy_n(o.data(), x.dv, y);
    if (a.normalize) simd::scale(y, x.dv, 1.f / (o[x.dv] + a.eps));
  }
}

// The backward of positions [0, n) of one (b, h) token by token, with the augmented state S
// [dk, dva] (initial state in, final state out) and each step one pass over a state:
// - forward sweep: S_t, and dphi(q_t) = S_t do'_t read in the same pass (do' is the gradient of
//   the augmented output: with normalisation o = num / den, its last entry is d den);
// - reverse sweep on dS_t = phi(q_t) do'_t^T + diag(gamma_(t+1)) dS_(t+1), starting from the
//   gradient of the final state: du_t = dS_t v'_t and dv'_t = dS_t^T u_t in the same pass.
// The log-decay gradient needs no state: d a_t = sum_(s >= t) (phi_q (*) dphi_q - u (*) du)_s
// + rowsum(S_n (*) dS_n), as in the chunked backward.
void recurrent_backward_rows(const CausalArgs& a, int64_t b, int64_t h, int64_t n, CView4 dout, CView4 dfinal_state,
                             CView3 dfinal_normalizer, const CausalGrads& g) {
  thread_local Token x;
  thread_local std::vector<float> S, dS, out_grad, dphi, du, dvp, o, decay_terms, dden, inv_den;
  x.resize(a);
  const int64_t dk = x.dk, dv = x.dv, dva = x.dva;
  S.resize(static_cast<size_t>(dk * dva));
  for (auto* y : {&dphi, &du}) y->resize(static_cast<size_t>(dk));
  for (auto* y : {&out_grad, &dvp, &o}) y->resize(static_cast<size_t>(dva));
  if (g.dlog_decay.present()) decay_terms.resize(static_cast<size_t>(n * dk));
  if (a.normalize) dden.resize(static_cast<size_t>(n)), inv_den.resize(static_cast<size_t>(n));

  load_initial(a, b, h, dk, dv, dva, S.data());
  for (int64_t t = 0; t < n; ++t) {
    x.load(a, b, h, t);
    const float *pq = x.pq, *u = x.u;
    const float* d_out = &dout(b, h, t, 0);
    std::copy_n(d_out, dv, out_grad.data());
    if (a.normalize) out_grad[dv] = 0.f;
    // dots = S_t [do, 0]; with normalisation also the output (num, den) in the same pass.
    simd::recurrent_step(S.data(), dva, dk, dva, u, x.vp, x.log_decays(a, b, h, t), out_grad.data(),
                         dphi.data(), a.normalize ? pq : nullptr, o.data());
    if (a.normalize) {  // o = num / den: d num = do / den, d den = -(do . num) / den^2
      const float r = 1.f / (o[dv] + a.eps), d_den = -simd::dot(d_out, o.data(), dv) * r * r;
      inv_den[t] = r;
      dden[t] = d_den;
      for (int64_t c = 0; c < dk; ++c) dphi[c] = dphi[c] * r + d_den * S[c * dva + dv];
    }
    if (g.dlog_decay.present())
      for (int64_t c = 0; c < dk; ++c) decay_terms[t * dk + c] = pq[c] * dphi[c];
    simd::feature_map_grad(a.phi, &a.q(b, h, t, 0), dphi.data(), &g.dq(b, h, t, 0), dk);
  }

  dS.assign(static_cast<size_t>(dk * dva), 0.f);
  for (int64_t c = 0; c < dk; ++c) {
    if (dfinal_state.present()) std::copy_n(&dfinal_state(b, h, c, 0), dv, &dS[c * dva]);
    if (a.normalize && dfinal_normalizer.present()) dS[c * dva + dv] = dfinal_normalizer(b, h, c);
  }
  std::vector<float> acc(static_cast<size_t>(dk), 0.f);  // the decay gradient's running sum
  if (g.dlog_decay.present())
    for (int64_t c = 0; c < dk; ++c) acc[c] = simd::dot(&S[c * dva], &dS[c * dva], dva);
  for (int64_t t = n - 1; t >= 0; --t) {
    // gamma_(t+1) carries dS_(t+1) back to t (dS_(n-1) is the final state's gradient as is).
    const float* logs_next = t + 1 < n ? x.log_decays(a, b, h, t + 1) : nullptr;
    x.load(a, b, h, t);
    const float *pq = x.pq, *pk = x.pk, *u = x.u;
    const float* d_out = &dout(b, h, t, 0);
    if (a.normalize) {
      for (int64_t j = 0; j < dv; ++j) out_grad[j] = d_out[j] * inv_den[t];
      out_grad[dv] = dden[t];
    } else {
      std::copy_n(d_out, dv, out_grad.data());
    }
    simd::recurrent_step(dS.data(), dva, dk, dva, pq, out_grad.data(), logs_next, x.vp, du.data(), u,
                         dvp.data());
    if (g.dlog_decay.present()) {
      for (int64_t c = 0; c < dk; ++c) acc[c] += decay_terms[t * dk + c] - u[c] * du[c];
      std::copy_n(acc.data(), dk, &g.dlog_decay(b, h, t, 0));
    }
    if (g.dgates.present()) g.dgates(b, h, t) = simd::dot(pk, du.data(), dk);
    if (a.gates.present()) simd::scale(du.data(), dk, a.gates(b, h, t));  // now d phi(k_t)
    simd::feature_map_grad(a.phi, &a.k(b, h, t, 0), du.data(), &g.dk(b, h, t, 0), dk);
    std::copy_n(dvp.data(), dv, &g.dv(b, h, t, 0));
  }
  if (const float* logs0 = n > 0 ? x.log_decays(a, b, h, 0) : nullptr)
    for (int64_t c = 0; c < dk; ++c)  // dS_0 -> the gradient of the initial state: gamma_0 (*) dS_0
      simd::scale(&dS[c * dva], dva, std::exp(logs0[c]));
  for (int64_t c = 0; c < dk; ++c) {
    if (g.dinitial_state.present()) std::copy_n(&dS[c * dva], dv, &g.dinitial_state(b, h, c, 0));
    if (g.dinitial_normalizer.present()) g.dinitial_normalizer(b, h, c) = a.normalize ? dS[c * dva + dv] : 0.f;
  }
}

}  // namespace

void causal_linear_attention_cpu(const CausalArgs& a, View4 out, View4 final_state, View3 final_normalizer,
                                 View4 chunk_states) {
  const int64_t B = a.q.shape[0], H = a.q.shape[1], T = a.q.shape[2], dk = a.q.shape[3], dv = a.v.shape[3];
  const int64_t dva = dv + (a.normalize ? 1 : 0);
  // Without normalisation the outputs are the GEMMs' own results: written straight into out.
  const bool direct = !a.normalize && rows_in_place(out) && disjoint_from_inputs(CView4(out), a);
  parallel_for(B * H, [&](int64_t job, int) {
    const int64_t b = job / H, h = job % H;
    const int64_t n = a.lengths.empty() ? T : a.lengths[static_cast<size_t>(b)];
    thread_local std::vector<float> S, O;
    thread_local Chunk ch;
    S.resize(static_cast<size_t>(dk * dva));
    load_initial(a, b, h, dk, dv, dva, S.data());
    for (int64_t t = n; t < T; ++t) std::fill_n(&out(b, h, t, 0), dv, 0.f);
    const bool recurrent = a.token_by_token[static_cast<size_t>(b)] != 0;
    if (recurrent) recurrent_rows(a, b, h, n, S.data(), out, chunk_states, direct);
    for (int64_t t0 = 0; !recurrent && t0 < n; t0 += a.chunk) {
      save_state(chunk_states, b, h, t0 / a.chunk, S.data(), dk * dva);
      ch.load(a, b, h, t0, n, a.chunk);
      Chunk::prefetch(a, b, h, t0 + a.chunk, n, a.chunk);
      if (direct) {
        ch.outputs(S.data(), &out(b, h, t0, 0), out.stride[2], a.log_decay.per_channel);
        ch.advance(S.data());
        continue;
      }
      O.resize(static_cast<size_t>(ch.len * dva));
      ch.outputs(S.data(), O.data(), dva, a.log_decay.per_channel);
      ch.advance(S.data());  // the chunk's last read of its inputs: out may be one of them
      for (int64_t r = 0; r < ch.len; ++r) {
        float* o = &out(b, h, t0 + r, 0);
        std::copy_n(&O[r * dva], dv, o);
        if (a.normalize) simd::scale(o, dv, 1.f / (O[r * dva + dv] + a.eps));
      }
    }
    if (chunk_states.present()) {  // the final state after the last chunk; rows past it are 0
      const int64_t chunks = (n + a.chunk - 1) / a.chunk;
      save_state(chunk_states, b, h, chunks, S.data(), dk * dva);
      for (int64_t c = chunks + 1; c < chunk_states.shape[2]; ++c) std::fill_n(&chunk_states(b, h, c, 0), dk * dva, 0.f);
    }
    for (int64_t c = 0; c < dk; ++c) {
      if (final_state.present()) std::copy_n(&S[c * dva], dv, &final_state(b, h, c, 0));
      if (final_normalizer.present()) final_normalizer(b, h, c) = a.normalize ? S[c * dva + dv] : 0.f;
    }
  });
}

void causal_linear_attention_backward_cpu(const CausalArgs& a, CView4 dout, CView4 dfinal_state,
                                          CView3 dfinal_normalizer, const CausalGrads& g, CView4 chunk_states) {
  const int64_t B = a.q.shape[0], H = a.q.shape[1], T = a.q.shape[2], dk = a.q.shape[3], dv = a.v.shape[3];
  const int64_t dva = dv + (a.normalize ? 1 : 0);
  const bool dout_in_place = !a.normalize && rows_in_place(dout);
  const bool dv_direct = !a.normalize && rows_in_place(g.dv) && disjoint_from_inputs(CView4(g.dv), a, dout);
  // With the identity feature map the gradients of phi(q) and (without gates) of phi(k) are dq
  // and dk themselves: the GEMMs write them in place where a chunk's rows are dense and no input
  // shares their memory (no copies, as for dv).
  auto dense_and_disjoint = [&](View4 grad) {
    return a.phi == FeatureMap::identity && grad.stride[2] == dk && disjoint_from_inputs(CView4(grad), a, dout);
  };
  const bool dq_direct = dense_and_disjoint(g.dq), dk_direct = !a.gates.present() && dense_and_disjoint(g.dk);
  parallel_for(B * H, [&](int64_t job, int) {
    const int64_t b = job / H, h = job % H;
    const int64_t n = a.lengths.empty() ? T : a.lengths[static_cast<size_t>(b)];
    const int64_t chunks = (n + a.chunk - 1) / a.chunk;
    thread_local std::vector<float> starts, dS, O, dO, dphi_q, du, dvp, dW, decay_acc;
    thread_local Chunk ch;
    // Zero every gradient of the padding.
    for (int64_t t = n; t < T; ++t) {
      std::fill_n(&g.dq(b, h, t, 0), dk, 0.f);
      std::fill_n(&g.dk(b, h, t, 0), dk, 0.f);
      std::fill_n(&g.dv(b, h, t, 0), dv, 0.f);
      if (g.dgates.present()) g.dgates(b, h, t) = 0.f;
      if (g.dlog_decay.present()) std::fill_n(&g.dlog_decay(b, h, t, 0), dk, 0.f);
    }
    if (a.token_by_token[static_cast<size_t>(b)]) {
      recurrent_backward_rows(a, b, h, n, dout, dfinal_state, dfinal_normalizer, g);
      return;
    }
    // Pass 1: the state at every chunk start, as the forward saved it or recomputed forward
    // (never by subtraction).
    const float* state0 = chunk_states.present() ? &chunk_states(b, h, 0, 0) : nullptr;
    const int64_t ld_states = chunk_states.present() ? chunk_states.stride[2] : dk * dva;
    if (!state0) {
      starts.resize(static_cast<size_t>((chunks + 1) * dk * dva));
      load_initial(a, b, h, dk, dv, dva, starts.data());
      for (int64_t c = 0; c < chunks; ++c) {
        float* next = &starts[(c + 1) * dk * dva];
        std::copy_n(&starts[c * dk * dva], dk * dva, next);
        ch.load(a, b, h, c * a.chunk, n, a.chunk, Chunk::Part::state_update);
        Chunk::prefetch(a, b, h, (c + 1) * a.chunk, n, a.chunk);
        ch.advance(next);
      }
      state0 = starts.data();
    }
    const float* S_final = state0 + chunks * ld_states;
    // dS: the gradient reaching the final state (and normaliser).
    dS.assign(static_cast<size_t>(dk * dva), 0.f);
    for (int64_t c = 0; c < dk; ++c) {
      if (dfinal_state.present()) std::copy_n(&dfinal_state(b, h, c, 0), dv, &dS[c * dva]);
      if (a.normalize && dfinal_normalizer.present()) dS[c * dva + dv] = dfinal_normalizer(b, h, c);
    }
    // The decay gradient, d a_t = sum_(r >= t) (phi_q (*) dphi_q - u (*) du)_r + rowsum(S_T (*) dS_T):
    // a running sum from the final-state term down, as the chunks come in reverse.
    decay_acc.resize(static_cast<size_t>(dk));
    for (int64_t c = 0; c < dk; ++c) decay_acc[c] = simd::dot(&S_final[c * dva], &dS[c * dva], dva);

    // Pass 2: chunks in reverse.
    for (int64_t c = chunks - 1; c >= 0; --c) {
      const int64_t t0 = c * a.chunk;
      const float* S_prev = state0 + c * ld_states;
      // The next chunk's saved state, from DRAM (without: GLA forward+backward 1.05-1.11x the
      // time, A/B min of 3, BM_Causal saved:1; without decay level).
      if (chunk_states.present() && c > 0)
        for (int64_t i = 0; i < dk * dva; i += 16) __builtin_prefetch(S_prev - ld_states + i);
      ch.load(a, b, h, t0, n, a.chunk);
      Chunk::prefetch(a, b, h, t0 - a.chunk, n, a.chunk, dout);
      const int64_t len = ch.len;
      // Without normalisation the output gradient's rows are dO' as they are (read in place),
      // and dv' is dv (written by the GEMMs themselves when it shares no memory with an input).
      Rows dOr{dO.data(), dva};
      float* dvp_out = dvp.data();
      int64_t ld_dvp = dva;
      if (dv_direct) {
        dvp_out = &g.dv(b, h, t0, 0), ld_dvp = g.dv.stride[2];
      } else {
        dvp.resize(static_cast<size_t>(len * dva));
        dvp_out = dvp.data();
      }
      if (dout_in_place) {
        dOr = {&dout(b, h, t0, 0), dout.stride[2]};
        ch.intra_weights(a.log_decay.per_channel);
      } else {
        dO.resize(static_cast<size_t>(len * dva));
        dOr.p = dO.data();
        if (a.normalize) {  // the outputs themselves are needed only to differentiate the division
          O.resize(dO.size());
          ch.outputs(S_prev, O.data(), dva, a.log_decay.per_channel);  // also fills W
        } else {
          ch.intra_weights(a.log_decay.per_channel);
        }
        for (int64_t r = 0; r < len; ++r) {
          const float* d_out = &dout(b, h, t0 + r, 0);
          if (!a.normalize) {
            std::copy_n(d_out, dv, &dO[r * dva]);
            continue;
          }
          // o = num / den: d num = do / den, d den = -(do . o) / den
          const float den = O[r * dva + dv] + a.eps;
          const float do_dot_o = simd::dot(d_out, &O[r * dva], dv) / den;
          for (int64_t j = 0; j < dv; ++j) dO[r * dva + j] = d_out[j] / den;
          dO[r * dva + dv] = -do_dot_o / den;
        }
      }
      dphi_q.resize(static_cast<size_t>(len * dk));
      du.resize(dphi_q.size());
      float* dq_rows = dq_direct ? &g.dq(b, h, t0, 0) : dphi_q.data();
      float* du_rows = dk_direct ? &g.dk(b, h, t0, 0) : du.data();
      dW.resize(static_cast<size_t>(len * len));
      // Through O = Qd S_prev:  dQd = dO S_prev^T
      gemm(false, true, len, dk, dva, 1.f, dOr.p, dOr.ld, S_prev, dva, 0.f, dq_rows, dk);
      if (ch.decayed && !ch.ratios) simd::mul(ch.ea.data(), dq_rows, len * dk);
      // Through S = ... + Kd^T Vp:  dKd = Vp dS^T,  dVp = Kd dS. With ratios, Kd = Ku (*) exp(A_last)
      // per channel: dKu = Vp dS'^T and dVp = Ku dS', dS' = exp(A_last) (*)rows dS being also
      // dS_prev's first term (below), so it is formed here, in place.
      if (ch.ratios) {
        simd::scale_rows(dS.data(), dk, dva, dva, ch.decay_end.data());
        gemm(false, true, len, dk, dva, 1.f, ch.vp.p, ch.vp.ld, dS.data(), dva, 0.f, du_rows, dk);
        gemm(false, false, len, dva, dk, 1.f, ch.ku.data(), dk, dS.data(), dva, 0.f, dvp_out, ld_dvp);
      } else {
        gemm(false, true, len, dk, dva, 1.f, ch.vp.p, ch.vp.ld, dS.data(), dva, 0.f, du_rows, dk);
        if (ch.decayed) simd::mul(ch.eka.data(), du_rows, len * dk);
        gemm(false, false, len, dva, dk, 1.f, ch.kd().p, ch.kd().ld, dS.data(), dva, 0.f, dvp_out, ld_dvp);
      }
      // Through O += W Vp:  dW = dO Vp^T (causal part),  dVp += W^T dO
      gemm(false, true, len, len, dva, 1.f, dOr.p, dOr.ld, ch.vp.p, ch.vp.ld, 0.f, dW.data(), len);
      gemm(true, false, len, dva, len, 1.f, ch.W.data(), len, dOr.p, dOr.ld, 1.f, dvp_out, ld_dvp);
      // Through W[t,s] = sum_c phi_q[t,c] u[s,c] exp(A[t,c] - A[s,c])
      if (!a.log_decay.per_channel) {
        ch.scalar_decay_mask(dW.data());
        gemm(false, false, len, dk, len, 1.f, dW.data(), len, ch.u.p, ch.u.ld, 1.f, dq_rows, dk);
        gemm(true, false, len, dk, len, 1.f, dW.data(), len, ch.phi_q.p, ch.phi_q.ld, 1.f, du_rows, dk);
      } else if (ch.ratios) {  // W = mask(Qd Ku^T), Ku = u / exp(A) (Chunk::intra_weights)
        ch.zero_above_diagonal(dW.data());
        // dQd = dO S_prev^T + dW Ku, dphi_q = exp(A) (*) dQd;  dKu = Vp dS'^T + dW^T Qd, du = dKu / exp(A)
        gemm(false, false, len, dk, len, 1.f, dW.data(), len, ch.ku.data(), dk, 1.f, dq_rows, dk);
        gemm(true, false, len, dk, len, 1.f, dW.data(), len, ch.qd_.data(), dk, 1.f, du_rows, dk);
        // dphi_q = exp(A) (*) dQd and du = dKu / exp(A) are formed in the decay gradient's pass
        // below (the operator requires that gradient with per-channel decay).
      } else {
        ch.scratch.resize(static_cast<size_t>(simd::gla_chunk_scratch_size(len, dk)));
        simd::gla_chunk_weights_backward(ch.phi_q.p, ch.phi_q.ld, ch.u.p, ch.u.ld, ch.G.data(), dW.data(), len, len, dk,
                                         dq_rows, du_rows, ch.scratch.data());
      }
      // dS_prev = exp(A_last) (*)rows dS + Qd^T dO, in place (every use of dS is above)
      if (ch.decayed && !ch.ratios) simd::scale_rows(dS.data(), dk, dva, dva, ch.decay_end.data());
      gemm(true, false, dk, dva, len, 1.f, ch.qd().p, ch.qd().ld, dOr.p, dOr.ld, 1.f, dS.data(), dva);
      // Per-position outputs: the decay gradient's rows last to first, then the rest.
      if (ch.ratios)
        simd::gla_ratio_gradient_rows(ch.phi_q.p, ch.phi_q.ld, dq_rows, dk, ch.u.p, ch.u.ld, du_rows, dk, ch.ea.data(), len,
                                      dk, decay_acc.data(), &g.dlog_decay(b, h, t0, 0), g.dlog_decay.stride[2]);
      else if (g.dlog_decay.present())
        simd::decay_gradient_rows(ch.phi_q.p, ch.phi_q.ld, dq_rows, dk, ch.u.p, ch.u.ld, du_rows, dk, len, dk,
                                  decay_acc.data(), &g.dlog_decay(b, h, t0, 0), g.dlog_decay.stride[2]);
      for (int64_t r = 0; r < len; ++r) {
        const int64_t t = t0 + r;
        const float gt = a.gates.present() ? a.gates(b, h, t) : 1.f;
        float* dur = du_rows + r * dk;
        if (g.dgates.present()) g.dgates(b, h, t) = simd::dot(ch.phi_k.row(r), dur, dk);
        if (a.gates.present()) simd::scale(dur, dk, gt);  // now d phi(k_t)
        if (!dq_direct) simd::feature_map_grad(a.phi, &a.q(b, h, t, 0), dq_rows + r * dk, &g.dq(b, h, t, 0), dk);
        if (!dk_direct) simd::feature_map_grad(a.phi, &a.k(b, h, t, 0), dur, &g.dk(b, h, t, 0), dk);
        if (!dv_direct) std::copy_n(&dvp[r * dva], dv, &g.dv(b, h, t, 0));
      }
    }
    for (int64_t c = 0; c < dk; ++c) {
      if (g.dinitial_state.present()) std::copy_n(&dS[c * dva], dv, &g.dinitial_state(b, h, c, 0));
      if (g.dinitial_normalizer.present()) g.dinitial_normalizer(b, h, c) = a.normalize ? dS[c * dva + dv] : 0.f;
    }
  });
}

}  // namespace linattn::kernels
