// Naive LibTorch formulations of the reader's attention mechanisms (plain tensor ops, autograd
// for the backward): the reference of tests/test_torch.cc and the baseline of
// bench/torch_modules_bench.cc. h [B,T,d], q [B,dq], mask [B,T,1] of valid positions.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <vector>

namespace linattn::naive {

inline torch::Tensor masked_softmax(const torch::Tensor& scores, const torch::Tensor& mask) {  // [B, T]
  return torch::softmax(scores.masked_fill(mask.squeeze(2) == 0, -std::numeric_limits<double>::infinity()), 1);
}

// softmax_t(w . tanh(W_h h_t + W_q q + b)) h_t
inline torch::Tensor additive(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& mask,
                              const torch::Tensor& w_h, const torch::Tensor& w_q, const torch::Tensor& bias,
                              const torch::Tensor& w) {
  const auto u = torch::matmul(h, w_h.t()) + (torch::matmul(q, w_q.t()) + bias).unsqueeze(1);
  const auto p = masked_softmax(torch::matmul(torch::tanh(u), w), mask);
  return torch::bmm(p.unsqueeze(1), h).squeeze(1);
}

// softmax_t(q . h_t / sqrt(d)) h_t
inline torch::Tensor dot(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& mask) {
  const auto s = torch::bmm(h, q.unsqueeze(2)).squeeze(2) / std::sqrt(static_cast<double>(h.size(2)));
  return torch::bmm(masked_softmax(s, mask).unsqueeze(1), h).squeeze(1);
}

// scale (sum_t x_t x_t^T) q / n over the valid t (x = h, or the gated states)
inline torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& q, const torch::Tensor& mask,
                            const torch::Tensor& lengths, double scale = 1000.0) {
  const auto xm = x * mask;
  const auto C = torch::bmm(xm.transpose(1, 2), xm);
  return scale * torch::bmm(C, q.unsqueeze(2)).squeeze(2) / lengths.to(x.scalar_type()).unsqueeze(1);
}

// The gated states: sigmoid(h w + b) h (scalar gate, w [d], b [1]) or sigmoid(h W^T + b) * h.
inline torch::Tensor scalar_gated(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& b) {
  return torch::sigmoid(torch::matmul(h, w) + b).unsqueeze(2) * h;
}
inline torch::Tensor vector_gated(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& b) {
  return torch::sigmoid(torch::matmul(h, w.t()) + b) * h;
}

// Causal linear attention with decay, quadratic form: o_t = sum_{s <= t} (q_t (*) exp(A_t - A_s)) . k_s v_s
// with A the cumulative log decay. q, k [B,H,T,dk], v [B,H,T,dv]; log_decay [B,H,T,dk] (or an
// undefined tensor for none). O(T^2 dk) memory: the reference for small T, the naive baseline.
inline torch::Tensor causal(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& log_decay) {
  const int64_t T = q.size(2);
  const auto mask = torch::ones({T, T}, q.options()).tril().to(torch::kBool);
  if (!log_decay.defined()) return torch::matmul(torch::matmul(q, k.transpose(2, 3)).masked_fill(~mask, 0), v);
  const auto A = log_decay.cumsum(2);                                     // [B,H,T,dk]
  const auto diff = A.unsqueeze(3) - A.unsqueeze(2);                      // [B,H,T,T,dk]: A_t - A_s
  const auto ratio = torch::exp(diff.masked_fill(~mask.unsqueeze(2), -std::numeric_limits<double>::infinity()));
  const auto scores = (q.unsqueeze(3) * ratio * k.unsqueeze(2)).sum(4);   // [B,H,T,T]
  return torch::matmul(scores, v);
}

// Causal linear attention without decay, the usual PyTorch chunked form (chunk L): the masked
// L x L product inside each chunk plus the exclusive running sum of the chunk states.
// T must be a multiple of L.
inline torch::Tensor causal_chunked(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t L) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), dk = q.size(3), dv = v.size(3), C = T / L;
  const auto qc = q.reshape({B, H, C, L, dk}), kc = k.reshape({B, H, C, L, dk}), vc = v.reshape({B, H, C, L, dv});
  const auto mask = torch::ones({L, L}, q.options()).tril();
  const auto intra = torch::matmul(torch::matmul(qc, kc.transpose(3, 4)) * mask, vc);
  const auto kv = torch::matmul(kc.transpose(3, 4), vc);  // [B,H,C,dk,dv]
  const auto states = kv.cumsum(2) - kv;                   // state before each chunk
  return (intra + torch::matmul(qc, states)).reshape({B, H, T, dv});
}

// Causal linear attention with per-channel decay (GLA), chunked as PyTorch users write it: inside a
// chunk, q (*) exp(A) against k (*) exp(-A) (A the in-chunk cumulative log decay; fine for the mild
// decays of the benchmarks, overflows for strong ones), across chunks the state carried in a loop.
// T must be a multiple of L.
inline torch::Tensor gla_chunked(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& log_decay, int64_t L) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), dk = q.size(3), dv = v.size(3), C = T / L;
  const auto qc = q.reshape({B, H, C, L, dk}), kc = k.reshape({B, H, C, L, dk}), vc = v.reshape({B, H, C, L, dv});
  const auto A = log_decay.reshape({B, H, C, L, dk}).cumsum(3);
  const auto last = A.select(3, L - 1).unsqueeze(3);  // [B,H,C,1,dk]
  const auto mask = torch::ones({L, L}, q.options()).tril();
  const auto qd = qc * A.exp();
  const auto intra = torch::matmul(torch::matmul(qd, (kc * (-A).exp()).transpose(3, 4)) * mask, vc);
  const auto kd = kc * (last - A).exp();  // keys decayed to the chunk's end
  auto S = torch::zeros({B, H, dk, dv}, q.options());
  std::vector<torch::Tensor> inter;
  for (int64_t c = 0; c < C; ++c) {
    inter.push_back(torch::matmul(qd.select(2, c), S));
    S = last.select(2, c).squeeze(2).exp().unsqueeze(3) * S + torch::matmul(kd.select(2, c).transpose(2, 3), vc.select(2, c));
  }
  return (intra + torch::stack(inter, 2)).reshape({B, H, T, dv});
}

}  // namespace linattn::naive
