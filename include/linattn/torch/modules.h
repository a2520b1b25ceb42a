// torch::nn modules for the paper's reader (docs/math.md). Every module takes the document's
// hidden states h [B, T, d], a query q [B, dq] (the question encoding) and lengths [B] (int64;
// positions t >= lengths[b] are padding), and returns one vector per document, r [B, d].
#pragma once

#include <torch/torch.h>

#include "linattn/ops/causal_linear_attention.h"
#include "linattn/torch/functions.h"

namespace linattn::torch_ext {

enum class Scorer { dot, additive };

struct SoftmaxAttentionModuleOptions {
  SoftmaxAttentionModuleOptions(int64_t hidden_size, int64_t query_size)
      : hidden_size_(hidden_size), query_size_(query_size) {}
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, query_size);
  TORCH_ARG(Scorer, scorer) = Scorer::additive;
  TORCH_ARG(int64_t, attention_size) = 100;  // the additive scorer's MLP width (authors: 100-256)
};

// r = sum_t softmax_t(score(q, h_t)) h_t, with the additive scorer w . tanh(W_h h_t + W_q q + b)
// (the authors' softmax baseline) or the scaled dot product (needs query_size == hidden_size).
class SoftmaxAttentionImpl : public torch::nn::Module {
 public:
  explicit SoftmaxAttentionImpl(const SoftmaxAttentionModuleOptions& options);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths);
  void reset();

  SoftmaxAttentionModuleOptions options;
  torch::Tensor w_h, w_q, bias, w;  // additive scorer only
};
TORCH_MODULE(SoftmaxAttention);

struct LinearAttentionModuleOptions {
  TORCH_ARG(double, scale) = 1000.0;  // the authors' r = 1000 C q / n
  TORCH_ARG(bool, mean) = true;
  TORCH_ARG(FeatureMap, feature_map) = FeatureMap::identity;
};

// The paper's linear attention: C = sum_t phi(h_t) h_t^T over the valid tokens, r = scale C^T phi(q) / n.
class LinearAttentionImpl : public torch::nn::Module {
 public:
  explicit LinearAttentionImpl(const LinearAttentionModuleOptions& options = {});
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths);
  // The fixed-size memory alone: C [B, d, d], computable before any question arrives.
  torch::Tensor encode(const torch::Tensor& h, const torch::Tensor& lengths);

  LinearAttentionModuleOptions options;
};
TORCH_MODULE(LinearAttention);

enum class GateKind { scalar, vector };

struct GatedLinearAttentionModuleOptions {
  explicit GatedLinearAttentionModuleOptions(int64_t hidden_size) : hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(GateKind, gate) = GateKind::scalar;
  TORCH_ARG(double, scale) = 1000.0;
  TORCH_ARG(bool, mean) = true;
};

// Gated linear attention: h~_t = g_t h_t with g_t = sigmoid(w.h_t + b) (scalar) or
// sigmoid(W h_t + b) (vector, element-wise); C = sum_t h~_t h~_t^T; r = scale C q / n.
// Initialised as the authors did: w = 0 (W = 0), b = 1, so every gate starts at 0.73.
class GatedLinearAttentionImpl : public torch::nn::Module {
 public:
  explicit GatedLinearAttentionImpl(const GatedLinearAttentionModuleOptions& options);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths);
  torch::Tensor encode(const torch::Tensor& h, const torch::Tensor& lengths);
  void reset();

  GatedLinearAttentionModuleOptions options;
  torch::Tensor w, b;
};
TORCH_MODULE(GatedLinearAttention);

// Galerkin attention over a document (keys = values = its states): r = M q with
// M = sum_t LN(h_t) LN(h_t)^T / n, LN the layer norm without affine part. No parameters.
class GalerkinAttentionImpl : public torch::nn::Module {
 public:
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths);
  // The fixed-size memory, sum_t LN(h_t) LN(h_t)^T [B, d, d] (symmetric): r = C q / n.
  torch::Tensor encode(const torch::Tensor& h, const torch::Tensor& lengths);
};
TORCH_MODULE(GalerkinAttention);

// The content lambda over a document (keys = values = its states): r = lambda^T q with
// lambda = softmax_T(h)^T h, a softmax over positions per channel. No parameters.
class ContentLambdaImpl : public torch::nn::Module {
 public:
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths);
  // The fixed-size memory lambda [B, d, d] (not symmetric): r = lambda^T q. No gradient.
  torch::Tensor encode(const torch::Tensor& h, const torch::Tensor& lengths);
};
TORCH_MODULE(ContentLambda);

struct KSlotMemoryModuleOptions {
  KSlotMemoryModuleOptions(int64_t hidden_size, int64_t query_size, int64_t slots)
      : hidden_size_(hidden_size), query_size_(query_size), slots_(slots) {}
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, query_size);
  TORCH_ARG(int64_t, slots);
  TORCH_ARG(bool, position_encoding) = false;
};

// The K-slot memory over a document (Britz, Guan & Luong 2017): each state h_t writes into K
// slots with weights softmax(W_a h_t + b_a) (times the position encoding when asked),
// C = sum_t a_t h_t^T [K, d]; a query reads r = C^T softmax(W_b q + b_b), never the document.
class KSlotMemoryImpl : public torch::nn::Module {
 public:
  explicit KSlotMemoryImpl(const KSlotMemoryModuleOptions& options);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths);
  // The fixed-size memory C [B, K, d]. No gradient.
  torch::Tensor encode(const torch::Tensor& h, const torch::Tensor& lengths);
  // The query's slot scores W_b q + b_b [B, K] (what a stored K-slot Memory is looked up with),
  // and its read weights, their softmax: a lookup is C^T of them.
  torch::Tensor query_scores(const torch::Tensor& q);
  torch::Tensor read_weights(const torch::Tensor& q);
  void reset();

  KSlotMemoryModuleOptions options;
  torch::Tensor w_a, b_a, w_b, b_b;
};
TORCH_MODULE(KSlotMemory);

// No attention: the last valid hidden state, h[b, lengths[b] - 1] (zeros for an empty document).
class NoAttentionImpl : public torch::nn::Module {
 public:
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths);
};
TORCH_MODULE(NoAttention);

struct CausalLinearAttentionLayerOptions {
  CausalLinearAttentionLayerOptions(int64_t model_size, int64_t heads) : model_size_(model_size), heads_(heads) {}
  TORCH_ARG(int64_t, model_size);
  TORCH_ARG(int64_t, heads);
  TORCH_ARG(DecayKind, decay) = DecayKind::per_channel;
  TORCH_ARG(FeatureMap, feature_map) = FeatureMap::identity;
  TORCH_ARG(bool, normalize) = false;
  TORCH_ARG(int64_t, chunk_size) = kCausalChunkSize;
};

// A causal linear-attention layer (RetNet / GLA / Mamba-2-like by its decay): x [B, T, D] ->
// [B, T, D] through q, k, v projections into `heads` heads of D / heads, the chunked kernels,
// and an output projection. Data-dependent decays are log gamma = logsigmoid(W_a x + b_a) / 16
// (GLA's parameterisation: gammas near 1 at initialisation); per head: RetNet's fixed gammas.
class CausalLinearAttentionLayerImpl : public torch::nn::Module {
 public:
  explicit CausalLinearAttentionLayerImpl(const CausalLinearAttentionLayerOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& lengths = {});
  // The per-head log decays (or gammas, per head) forward() uses for x.
  torch::Tensor decay(const torch::Tensor& x);
  void reset();

  CausalLinearAttentionLayerOptions options;
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr}, decay_proj{nullptr};
  torch::Tensor head_gammas;
};
TORCH_MODULE(CausalLinearAttentionLayer);

}  // namespace linattn::torch_ext
