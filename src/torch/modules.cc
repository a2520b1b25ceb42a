#include "linattn/torch/modules.h"

#include <cmath>

#include "linattn/ops/galerkin_attention.h"

namespace linattn::torch_ext {
namespace {

void check_inputs(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths) {
  TORCH_CHECK(h.dim() == 3, "linattn: h must be [B, T, d], got ", h.sizes());
  TORCH_CHECK(q.dim() == 2 && q.size(0) == h.size(0), "linattn: q must be [B, dq] with B = ", h.size(0), ", got ",
              q.sizes());
  TORCH_CHECK(lengths.defined() && lengths.dim() == 1 && lengths.size(0) == h.size(0) &&
                  lengths.scalar_type() == torch::kInt64,
              "linattn: lengths must be an int64 tensor [B] with B = ", h.size(0));
}

// [B, T, d] -> [B, 1, T, d]: one head.
torch::Tensor heads(const torch::Tensor& x) { return x.unsqueeze(1); }

}  // namespace

SoftmaxAttentionImpl::SoftmaxAttentionImpl(const SoftmaxAttentionModuleOptions& o) : options(o) {
  TORCH_CHECK(o.scorer() == Scorer::additive || o.hidden_size() == o.query_size(),
              "linattn: the dot scorer needs query_size == hidden_size");
  reset();
}

void SoftmaxAttentionImpl::reset() {
  if (options.scorer() != Scorer::additive) return;
  const int64_t A = options.attention_size(), d = options.hidden_size(), dq = options.query_size();
  // Glorot-uniform projections, zero bias, as torch::nn::Linear-like layers in the authors' code.
  const double a_h = std::sqrt(6.0 / static_cast<double>(A + d)), a_q = std::sqrt(6.0 / static_cast<double>(A + dq));
  w_h = register_parameter("w_h", torch::empty({A, d}).uniform_(-a_h, a_h));
  w_q = register_parameter("w_q", torch::empty({A, dq}).uniform_(-a_q, a_q));
  bias = register_parameter("bias", torch::zeros({A}));
  w = register_parameter("w", torch::empty({A}).uniform_(-std::sqrt(3.0 / A), std::sqrt(3.0 / A)));
}

torch::Tensor SoftmaxAttentionImpl::forward(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths) {
  check_inputs(h, q, lengths);
  const torch::Tensor qh = q.unsqueeze(1).unsqueeze(1);  // [B, 1, 1, dq]
  torch::Tensor r = options.scorer() == Scorer::additive
                        ? additive_attention(qh, heads(h), heads(h), w_h, w_q, bias, w, lengths)
                        : softmax_attention(qh, heads(h), heads(h), lengths);
  return r.squeeze(2).squeeze(1);
}

LinearAttentionImpl::LinearAttentionImpl(const LinearAttentionModuleOptions& o) : options(o) {}

torch::Tensor LinearAttentionImpl::encode(const torch::Tensor& h, const torch::Tensor& lengths) {
  return linear_attention_encode(heads(h), heads(h), {}, lengths, options.feature_map()).squeeze(1);
}

torch::Tensor LinearAttentionImpl::forward(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths) {
  check_inputs(h, q, lengths);
  const torch::Tensor C = encode(h, lengths).unsqueeze(1);
  return linear_attention_lookup(q.unsqueeze(1).unsqueeze(1), C, options.mean() ? lengths : torch::Tensor(),
                                 options.scale(), options.feature_map())
      .squeeze(2)
      .squeeze(1);
}

GatedLinearAttentionImpl::GatedLinearAttentionImpl(const GatedLinearAttentionModuleOptions& o) : options(o) { reset(); }

void GatedLinearAttentionImpl::reset() {
  const int64_t d = options.hidden_size();
  if (options.gate() == GateKind::scalar) {
    w = register_parameter("w", torch::zeros({d}));
    b = register_parameter("b", torch::ones({1}));
  } else {
    w = register_parameter("w", torch::zeros({d, d}));
    b = register_parameter("b", torch::ones({d}));
  }
}

torch::Tensor GatedLinearAttentionImpl::encode(const torch::Tensor& h, const torch::Tensor& lengths) {
  const int64_t B = h.size(0), T = h.size(1), d = h.size(2);
  const torch::Tensor flat = h.reshape({B * T, d});
  if (options.gate() == GateKind::scalar) {
    // h~ = g h, so C = sum g^2 h h^T: per-step weights g^2 on the outer products.
    const torch::Tensor g = scalar_gate(flat, w, b).reshape({B, 1, T});
    return linear_attention_encode(heads(h), heads(h), g * g, lengths).squeeze(1);
  }
  const torch::Tensor gated = vector_gate(flat, w, b).reshape({B, 1, T, d});
  return linear_attention_encode(gated, gated, {}, lengths).squeeze(1);
}

torch::Tensor GatedLinearAttentionImpl::forward(const torch::Tensor& h, const torch::Tensor& q,
                                                const torch::Tensor& lengths) {
  check_inputs(h, q, lengths);
  const torch::Tensor C = encode(h, lengths).unsqueeze(1);
  return linear_attention_lookup(q.unsqueeze(1).unsqueeze(1), C, options.mean() ? lengths : torch::Tensor(),
                                 options.scale())
      .squeeze(2)
      .squeeze(1);
}

torch::Tensor GalerkinAttentionImpl::encode(const torch::Tensor& h, const torch::Tensor& lengths) {
  const torch::Tensor normalised = torch::layer_norm(h, {h.size(2)}, {}, {}, kGalerkinEps);
  return linear_attention_encode(heads(normalised), heads(normalised), {}, lengths).squeeze(1);
}

torch::Tensor GalerkinAttentionImpl::forward(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths) {
  check_inputs(h, q, lengths);
  return galerkin_attention(q.unsqueeze(1).unsqueeze(1), heads(h), heads(h), lengths).squeeze(2).squeeze(1);
}

torch::Tensor ContentLambdaImpl::encode(const torch::Tensor& h, const torch::Tensor& lengths) {
  return content_lambda_encode(heads(h), heads(h), lengths).squeeze(1);
}

torch::Tensor ContentLambdaImpl::forward(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths) {
  check_inputs(h, q, lengths);
  return content_lambda_attention(q.unsqueeze(1).unsqueeze(1), heads(h), heads(h), lengths).squeeze(2).squeeze(1);
}

KSlotMemoryImpl::KSlotMemoryImpl(const KSlotMemoryModuleOptions& o) : options(o) {
  TORCH_CHECK(o.hidden_size() > 0 && o.query_size() > 0 && o.slots() > 0, "linattn: the K-slot memory needs sizes and slots >= 1");
  reset();
}

void KSlotMemoryImpl::reset() {
  const int64_t K = options.slots(), d = options.hidden_size(), dq = options.query_size();
  const double a = std::sqrt(6.0 / static_cast<double>(K + d)), b = std::sqrt(6.0 / static_cast<double>(K + dq));
  w_a = register_parameter("w_a", torch::empty({K, d}).uniform_(-a, a));
  b_a = register_parameter("b_a", torch::zeros({K}));
  w_b = register_parameter("w_b", torch::empty({K, dq}).uniform_(-b, b));
  b_b = register_parameter("b_b", torch::zeros({K}));
}

torch::Tensor KSlotMemoryImpl::forward(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths) {
  check_inputs(h, q, lengths);
  const torch::Tensor scores = torch::nn::functional::linear(h, w_a, b_a);        // [B, T, K]
  const torch::Tensor query_scores = torch::nn::functional::linear(q, w_b, b_b);  // [B, K]
  return kslot_memory_attention(query_scores.unsqueeze(1).unsqueeze(1), heads(scores), heads(h), lengths,
                                options.position_encoding())
      .squeeze(2)
      .squeeze(1);
}

torch::Tensor KSlotMemoryImpl::encode(const torch::Tensor& h, const torch::Tensor& lengths) {
  const torch::Tensor scores = torch::nn::functional::linear(h, w_a, b_a);
  return kslot_memory_encode(heads(scores), heads(h), lengths, options.position_encoding()).squeeze(1);
}

torch::Tensor KSlotMemoryImpl::query_scores(const torch::Tensor& q) { return torch::nn::functional::linear(q, w_b, b_b); }

torch::Tensor KSlotMemoryImpl::read_weights(const torch::Tensor& q) { return torch::softmax(query_scores(q), 1); }

torch::Tensor NoAttentionImpl::forward(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths) {
  check_inputs(h, q, lengths);
  const torch::Tensor last = (lengths - 1).clamp_min(0);
  const torch::Tensor picked =
      h.gather(1, last.view({-1, 1, 1}).expand({h.size(0), 1, h.size(2)})).squeeze(1);
  return picked * (lengths > 0).unsqueeze(1).to(h.scalar_type());
}

CausalLinearAttentionLayerImpl::CausalLinearAttentionLayerImpl(const CausalLinearAttentionLayerOptions& o)
    : options(o) {
  TORCH_CHECK(o.heads() >= 1 && o.model_size() % o.heads() == 0, "linattn: model_size must be a multiple of heads");
  reset();
}

void CausalLinearAttentionLayerImpl::reset() {
  const int64_t D = options.model_size(), H = options.heads(), dk = D / H;
  auto linear = [&](int64_t in, int64_t out, bool bias) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
  };
  q_proj = register_module("q_proj", linear(D, D, false));
  k_proj = register_module("k_proj", linear(D, D, false));
  v_proj = register_module("v_proj", linear(D, D, false));
  out_proj = register_module("out_proj", linear(D, D, false));
  if (options.decay() == DecayKind::per_step) decay_proj = register_module("decay_proj", linear(D, H, true));
  if (options.decay() == DecayKind::per_channel) decay_proj = register_module("decay_proj", linear(D, H * dk, true));
  if (options.decay() == DecayKind::per_head) {
    const auto g = retnet_decays(H);
    head_gammas = register_buffer("head_gammas", torch::tensor(g));
  }
}

torch::Tensor CausalLinearAttentionLayerImpl::decay(const torch::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), H = options.heads(), dk = options.model_size() / H;
  switch (options.decay()) {
    case DecayKind::none: return {};
    case DecayKind::per_head: return head_gammas;
    case DecayKind::per_step: return (torch::log_sigmoid(decay_proj(x)) / 16.0).transpose(1, 2).contiguous();  // [B,H,T]
    case DecayKind::per_channel:
      return (torch::log_sigmoid(decay_proj(x)) / 16.0).view({B, T, H, dk}).transpose(1, 2).contiguous();  // [B,H,T,dk]
  }
  return {};
}

torch::Tensor CausalLinearAttentionLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& lengths) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == options.model_size(), "linattn: x must be [B, T, ", options.model_size(), "]");
  const int64_t B = x.size(0), T = x.size(1), H = options.heads(), dk = options.model_size() / H;
  auto heads = [&](const torch::Tensor& y) { return y.view({B, T, H, dk}).transpose(1, 2).contiguous(); };
  const torch::Tensor o = causal_linear_attention(heads(q_proj(x)), heads(k_proj(x)), heads(v_proj(x)), decay(x), {},
                                                  lengths, options.feature_map(), options.normalize(), options.chunk_size());
  return out_proj(o.transpose(1, 2).reshape({B, T, H * dk}));
}

}  // namespace linattn::torch_ext
