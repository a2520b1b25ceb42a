// Naive LibTorch formulations of the reader's attention mechanisms (plain tensor ops, autograd
// for the backward): the reference of tests/test_torch.cc and the baseline of
// bench/torch_modules_bench.cc. h [B,T,d], q [B,dq], mask [B,T,1] of valid positions.
#pragma once

#include <torch/torch.h>

#include <cmath>

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

}  // namespace linattn::naive
