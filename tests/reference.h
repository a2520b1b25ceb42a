// Plain double-precision reference implementations, written for clarity, not speed:
// the definitions of docs/math.md transcribed loop by loop.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "linattn/core/types.h"
#include "test_util.h"

namespace linattn::test::reference {

inline double phi(FeatureMap map, double x) {
  switch (map) {
    case FeatureMap::identity: return x;
    case FeatureMap::relu: return x > 0 ? x : 0;
    case FeatureMap::elu_plus_one: return x > 0 ? x + 1 : std::exp(x);
  }
  return x;
}

inline double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

struct Additive {
  const Tensor<2>* w_k;
  const Tensor<2>* w_q;
  const Tensor<1>* bias;
  const Tensor<1>* w;
};

// Softmax attention, two passes over the scores (no running max). Returns out and lse flat.
inline void softmax_attention(const Tensor<4>& q, const Tensor<4>& k, const Tensor<4>& v,
                              bool causal, double scale, const std::vector<int64_t>& kv_len,
                              const std::vector<int64_t>& q_len, const Additive* additive,
                              std::vector<double>& out, std::vector<double>& lse) {
  const int64_t B = q.shape[0], H = q.shape[1], Tq = q.shape[2], Tk = k.shape[2];
  const int64_t dq = q.shape[3], dk = k.shape[3], dv = v.shape[3];
  out.assign(static_cast<size_t>(B * H * Tq * dv), 0.0);
  lse.assign(static_cast<size_t>(B * H * Tq), -std::numeric_limits<double>::infinity());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Tq; ++i) {
        const int64_t nk = kv_len.empty() ? Tk : kv_len[b];
        const int64_t nq = causal ? nk : (q_len.empty() ? Tq : q_len[b]);
        if (i >= nq) continue;
        const int64_t end = causal ? std::min(nk, i + 1) : nk;
        if (end == 0) continue;
        std::vector<double> s(static_cast<size_t>(end));
        for (int64_t j = 0; j < end; ++j) {
          double x = 0;
          if (!additive) {
            for (int64_t c = 0; c < dk; ++c) x += double(q.at(b, h, i, c)) * k.at(b, h, j, c);
            x *= scale;
          } else {
            const int64_t A = additive->w->shape[0];
            for (int64_t a = 0; a < A; ++a) {
              double pre = additive->bias->at(a);
              for (int64_t c = 0; c < dk; ++c) pre += double(additive->w_k->at(a, c)) * k.at(b, h, j, c);
              for (int64_t c = 0; c < dq; ++c) pre += double(additive->w_q->at(a, c)) * q.at(b, h, i, c);
              x += additive->w->at(a) * std::tanh(pre);
            }
          }
          s[j] = x;
        }
        double mx = s[0];
        for (double x : s) mx = std::max(mx, x);
        double total = 0;
        for (double& x : s) total += (x = std::exp(x - mx));
        for (int64_t j = 0; j < end; ++j)
          for (int64_t c = 0; c < dv; ++c)
            out[((b * H + h) * Tq + i) * dv + c] += s[j] / total * v.at(b, h, j, c);
        lse[(b * H + h) * Tq + i] = mx + std::log(total);
      }
}

// M = sum_t g_t phi(k_t) v_t^T and z = sum_t g_t phi(k_t), flat [B,H,dk,dv] and [B,H,dk].
inline void linear_encode(const Tensor<4>& k, const Tensor<4>& v, const Tensor<3>* gates,
                          const std::vector<int64_t>& lengths, FeatureMap map,
                          std::vector<double>& M, std::vector<double>& z) {
  const int64_t B = k.shape[0], H = k.shape[1], T = k.shape[2], dk = k.shape[3], dv = v.shape[3];
  M.assign(static_cast<size_t>(B * H * dk * dv), 0.0);
  z.assign(static_cast<size_t>(B * H * dk), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < (lengths.empty() ? T : lengths[b]); ++t) {
        const double g = gates ? gates->at(b, h, t) : 1.0;
        for (int64_t i = 0; i < dk; ++i) {
          const double pk = g * phi(map, k.at(b, h, t, i));
          z[(b * H + h) * dk + i] += pk;
          for (int64_t j = 0; j < dv; ++j) M[((b * H + h) * dk + i) * dv + j] += pk * v.at(b, h, t, j);
        }
      }
}

// Linear attention computed the slow way, without ever forming M:
// r_i = scale * sum_t g_t (phi(q_i) . phi(k_t)) v_t  [/ n] [/ (sum_t g_t phi(q_i) . phi(k_t) + eps)]
inline std::vector<double> linear_attention_direct(const Tensor<4>& q, const Tensor<4>& k,
                                                   const Tensor<4>& v, const Tensor<3>* gates,
                                                   const std::vector<int64_t>& lengths,
                                                   FeatureMap map, bool normalize, double eps,
                                                   bool mean, double scale) {
  const int64_t B = q.shape[0], H = q.shape[1], Tq = q.shape[2], T = k.shape[2];
  const int64_t dk = k.shape[3], dv = v.shape[3];
  std::vector<double> out(static_cast<size_t>(B * H * Tq * dv), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Tq; ++i) {
        const int64_t n = lengths.empty() ? T : lengths[b];
        double den = 0;
        std::vector<double> r(static_cast<size_t>(dv), 0.0);
        for (int64_t t = 0; t < n; ++t) {
          double a = 0;
          for (int64_t c = 0; c < dk; ++c)
            a += phi(map, q.at(b, h, i, c)) * phi(map, k.at(b, h, t, c));
          a *= gates ? gates->at(b, h, t) : 1.0;
          den += a;
          for (int64_t c = 0; c < dv; ++c) r[c] += a * v.at(b, h, t, c);
        }
        for (int64_t c = 0; c < dv; ++c) {
          double x = scale * r[c];
          if (mean) x = n > 0 ? x / n : 0;
          if (normalize) x = scale * r[c] / (den + eps);
          out[((b * H + h) * Tq + i) * dv + c] = x;
        }
      }
  return out;
}

}  // namespace linattn::test::reference
