#include "linattn/torch/functions.h"

#include <cmath>
#include <span>

#include "linattn/ops/causal_linear_attention.h"
#include "linattn/ops/content_lambda.h"
#include "linattn/ops/galerkin_attention.h"
#include "linattn/ops/kslot_memory.h"
#include "linattn/ops/gates.h"
#include "linattn/ops/linear_attention.h"
#include "linattn/ops/softmax_attention.h"

namespace linattn::torch_ext {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// A float32 CPU tensor, contiguous, as the core's views need.
torch::Tensor prepared(const torch::Tensor& t, const char* name, int64_t dims) {
  TORCH_CHECK(t.defined(), "linattn: ", name, " is undefined");
  TORCH_CHECK(t.device().is_cpu(), "linattn: ", name, " must be on the CPU");
  TORCH_CHECK(t.scalar_type() == torch::kFloat32, "linattn: ", name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.dim() == dims, "linattn: ", name, " must have ", dims, " dimensions, got ", t.sizes());
  return t.contiguous();
}

// LibTorch 1.13's Function::apply cannot take undefined tensors: an optional argument travels
// as an empty tensor and is treated as absent.
torch::Tensor absent_as_empty(const torch::Tensor& t) { return t.defined() ? t : torch::empty({0}); }
bool present(const torch::Tensor& t) { return t.defined() && t.numel() > 0; }

torch::Tensor prepared_lengths(const torch::Tensor& t) {
  if (!present(t)) return torch::Tensor();
  TORCH_CHECK(t.scalar_type() == torch::kInt64 && t.dim() == 1 && t.device().is_cpu(),
              "linattn: lengths must be a 1-D int64 CPU tensor");
  return t.contiguous();
}

Lengths span_of(const torch::Tensor& lengths) {
  if (!lengths.defined()) return {};
  return {lengths.data_ptr<int64_t>(), static_cast<size_t>(lengths.numel())};
}

template <int R>
View<float, R> view(const torch::Tensor& t) {
  std::array<int64_t, R> shape{}, stride{};
  for (int i = 0; i < R; ++i) {
    shape[i] = t.size(i);
    stride[i] = t.stride(i);
  }
  return View<float, R>(t.data_ptr<float>(), shape, stride);
}
template <int R>
View<const float, R> cview(const torch::Tensor& t) {
  return view<R>(t);
}

struct SoftmaxAttentionFn : torch::autograd::Function<SoftmaxAttentionFn> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               torch::Tensor kv_lengths, bool causal, double scale) {
    q = prepared(q, "q", 4), k = prepared(k, "k", 4), v = prepared(v, "v", 4);
    kv_lengths = prepared_lengths(kv_lengths);
    auto out = torch::empty({q.size(0), q.size(1), q.size(2), v.size(3)});
    auto lse = torch::empty({q.size(0), q.size(1), q.size(2)});
    const SoftmaxAttentionOptions o{.causal = causal, .scale = static_cast<float>(scale)};
    linattn::softmax_attention(cview<4>(q), cview<4>(k), cview<4>(v), view<4>(out), o, span_of(kv_lengths), {},
                               view<3>(lse));
    ctx->save_for_backward({q, k, v, out, lse, kv_lengths});
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["scale"] = scale;
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const torch::Tensor dout = grads[0].contiguous();
    auto dq = torch::empty_like(s[0]), dk = torch::empty_like(s[1]), dv = torch::empty_like(s[2]);
    const SoftmaxAttentionOptions o{.causal = ctx->saved_data["causal"].toBool(),
                                    .scale = static_cast<float>(ctx->saved_data["scale"].toDouble())};
    linattn::softmax_attention_backward(cview<4>(s[0]), cview<4>(s[1]), cview<4>(s[2]), cview<4>(s[3]),
                                        cview<3>(s[4]), cview<4>(dout), view<4>(dq), view<4>(dk), view<4>(dv), o,
                                        span_of(s[5]));
    return {dq, dk, dv, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

struct AdditiveAttentionFn : torch::autograd::Function<AdditiveAttentionFn> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               torch::Tensor w_k, torch::Tensor w_q, torch::Tensor bias, torch::Tensor w,
                               torch::Tensor kv_lengths) {
    q = prepared(q, "q", 4), k = prepared(k, "k", 4), v = prepared(v, "v", 4);
    w_k = prepared(w_k, "w_k", 2), w_q = prepared(w_q, "w_q", 2), bias = prepared(bias, "bias", 1);
    w = prepared(w, "w", 1);
    kv_lengths = prepared_lengths(kv_lengths);
    auto out = torch::empty({q.size(0), q.size(1), q.size(2), v.size(3)});
    auto lse = torch::empty({q.size(0), q.size(1), q.size(2)});
    linattn::additive_attention(cview<4>(q), cview<4>(k), cview<4>(v),
                                {cview<2>(w_k), cview<2>(w_q), cview<1>(bias), cview<1>(w)}, view<4>(out), false,
                                span_of(kv_lengths), {}, view<3>(lse));
    ctx->save_for_backward({q, k, v, w_k, w_q, bias, w, out, lse, kv_lengths});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const torch::Tensor dout = grads[0].contiguous();
    auto dq = torch::empty_like(s[0]), dk = torch::empty_like(s[1]), dv = torch::empty_like(s[2]);
    auto dw_k = torch::empty_like(s[3]), dw_q = torch::empty_like(s[4]), dbias = torch::empty_like(s[5]);
    auto dw = torch::empty_like(s[6]);
    linattn::additive_attention_backward(
        cview<4>(s[0]), cview<4>(s[1]), cview<4>(s[2]), {cview<2>(s[3]), cview<2>(s[4]), cview<1>(s[5]), cview<1>(s[6])},
        cview<4>(s[7]), cview<3>(s[8]), cview<4>(dout), view<4>(dq), view<4>(dk), view<4>(dv),
        {view<2>(dw_k), view<2>(dw_q), view<1>(dbias), view<1>(dw)}, false, span_of(s[9]));
    return {dq, dk, dv, dw_k, dw_q, dbias, dw, torch::Tensor()};
  }
};

struct LinearEncodeFn : torch::autograd::Function<LinearEncodeFn> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor k, torch::Tensor v, torch::Tensor gates,
                               torch::Tensor lengths, int64_t feature_map) {
    k = prepared(k, "k", 4), v = prepared(v, "v", 4);
    gates = present(gates) ? prepared(gates, "gates", 3) : torch::Tensor();
    lengths = prepared_lengths(lengths);
    const auto phi = static_cast<FeatureMap>(feature_map);
    auto M = torch::empty({k.size(0), k.size(1), k.size(3), v.size(3)});
    linattn::linear_attention_encode(cview<4>(k), cview<4>(v), view<4>(M), {}, {.feature_map = phi},
                                     span_of(lengths), gates.defined() ? cview<3>(gates) : CView3{});
    ctx->save_for_backward({k, v, gates, lengths});
    ctx->saved_data["phi"] = feature_map;
    return M;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const torch::Tensor dM = grads[0].contiguous();
    auto dk = torch::empty_like(s[0]), dv = torch::empty_like(s[1]);
    torch::Tensor dg = s[2].defined() ? torch::empty_like(s[2]) : torch::Tensor();
    const auto phi = static_cast<FeatureMap>(ctx->saved_data["phi"].toInt());
    linattn::linear_attention_encode_backward(cview<4>(s[0]), cview<4>(s[1]), cview<4>(dM), view<4>(dk), view<4>(dv),
                                              {.feature_map = phi}, {}, span_of(s[3]),
                                              s[2].defined() ? cview<3>(s[2]) : CView3{},
                                              dg.defined() ? view<3>(dg) : View3{});
    return {dk, dv, dg, torch::Tensor(), torch::Tensor()};
  }
};

// Galerkin attention and the content lambda share a signature (q, k, v, lengths) and the shape
// of their gradients: one autograd function for both, the operator pair its parameter.
template <auto Forward, auto Backward>
struct RelativeAttentionFn : torch::autograd::Function<RelativeAttentionFn<Forward, Backward>> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               torch::Tensor lengths) {
    q = prepared(q, "q", 4), k = prepared(k, "k", 4), v = prepared(v, "v", 4);
    lengths = prepared_lengths(lengths);
    auto out = torch::empty({q.size(0), q.size(1), q.size(2), v.size(3)});
    Forward(cview<4>(q), cview<4>(k), cview<4>(v), view<4>(out), span_of(lengths));
    ctx->save_for_backward({q, k, v, lengths});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const torch::Tensor dout = grads[0].contiguous();
    auto dq = torch::empty_like(s[0]), dk = torch::empty_like(s[1]), dv = torch::empty_like(s[2]);
    Backward(cview<4>(s[0]), cview<4>(s[1]), cview<4>(s[2]), cview<4>(dout), view<4>(dq), view<4>(dk), view<4>(dv),
             span_of(s[3]));
    return {dq, dk, dv, torch::Tensor()};
  }
};

void galerkin_forward(CView4 q, CView4 k, CView4 v, View4 out, Lengths n) { linattn::galerkin_attention(q, k, v, out, n); }
void galerkin_backward(CView4 q, CView4 k, CView4 v, CView4 dout, View4 dq, View4 dk, View4 dv, Lengths n) {
  linattn::galerkin_attention_backward(q, k, v, dout, dq, dk, dv, n);
}
void lambda_forward(CView4 q, CView4 k, CView4 v, View4 out, Lengths n) { linattn::content_lambda_attention(q, k, v, out, n); }
void lambda_backward(CView4 q, CView4 k, CView4 v, CView4 dout, View4 dq, View4 dk, View4 dv, Lengths n) {
  linattn::content_lambda_attention_backward(q, k, v, dout, dq, dk, dv, n);
}
using GalerkinFn = RelativeAttentionFn<&galerkin_forward, &galerkin_backward>;
using ContentLambdaFn = RelativeAttentionFn<&lambda_forward, &lambda_backward>;

// The K-slot memory written and read in one function, so that the memory [B,H,K,dv] never
// needs to be an autograd node of its own.
struct KSlotFn : torch::autograd::Function<KSlotFn> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor u, torch::Tensor s, torch::Tensor v,
                               torch::Tensor lengths, bool position_encoding) {
    u = prepared(u, "query_scores", 4), s = prepared(s, "scores", 4), v = prepared(v, "v", 4);
    lengths = prepared_lengths(lengths);
    const KSlotOptions o{.position_encoding = position_encoding};
    auto C = torch::empty({s.size(0), s.size(1), s.size(3), v.size(3)});
    linattn::kslot_memory_encode(cview<4>(s), cview<4>(v), view<4>(C), o, span_of(lengths));
    auto out = torch::empty({u.size(0), u.size(1), u.size(2), v.size(3)});
    linattn::kslot_memory_lookup(cview<4>(u), cview<4>(C), view<4>(out));
    ctx->save_for_backward({u, s, v, C, lengths});
    ctx->saved_data["position_encoding"] = position_encoding;
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto x = ctx->get_saved_variables();
    const torch::Tensor dout = grads[0].contiguous();
    auto du = torch::empty_like(x[0]), ds = torch::empty_like(x[1]), dv = torch::empty_like(x[2]);
    auto dC = torch::empty_like(x[3]);
    const KSlotOptions o{.position_encoding = ctx->saved_data["position_encoding"].toBool()};
    linattn::kslot_memory_lookup_backward(cview<4>(x[0]), cview<4>(x[3]), cview<4>(dout), view<4>(du), view<4>(dC));
    linattn::kslot_memory_encode_backward(cview<4>(x[1]), cview<4>(x[2]), cview<4>(dC), view<4>(ds), view<4>(dv), o,
                                          span_of(x[4]));
    return {du, ds, dv, torch::Tensor(), torch::Tensor()};
  }
};

struct LinearLookupFn : torch::autograd::Function<LinearLookupFn> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor M, torch::Tensor counts,
                               double scale, int64_t feature_map) {
    q = prepared(q, "q", 4), M = prepared(M, "state", 4);
    counts = prepared_lengths(counts);
    ctx->saved_data["mean"] = counts.defined();
    const LinearLookupOptions o{.feature_map = static_cast<FeatureMap>(feature_map), .mean = counts.defined(),
                                .scale = static_cast<float>(scale)};
    auto out = torch::empty({q.size(0), q.size(1), q.size(2), M.size(3)});
    linattn::linear_attention_lookup(cview<4>(q), cview<4>(M), view<4>(out), o, {}, span_of(counts));
    ctx->save_for_backward({q, M, counts});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["phi"] = feature_map;
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const torch::Tensor dout = grads[0].contiguous();
    auto dq = torch::empty_like(s[0]), dM = torch::empty_like(s[1]);
    const LinearLookupOptions o{.feature_map = static_cast<FeatureMap>(ctx->saved_data["phi"].toInt()),
                                .mean = ctx->saved_data["mean"].toBool(),
                                .scale = static_cast<float>(ctx->saved_data["scale"].toDouble())};
    linattn::linear_attention_lookup_backward(cview<4>(s[0]), cview<4>(s[1]), cview<4>(dout), view<4>(dq),
                                              view<4>(dM), o, {}, {}, span_of(s[2]));
    return {dq, dM, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

struct ScalarGateFn : torch::autograd::Function<ScalarGateFn> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor h, torch::Tensor w, torch::Tensor b) {
    h = prepared(h, "h", 2), w = prepared(w, "w", 1), b = prepared(b, "b", 1);
    TORCH_CHECK(b.numel() == 1, "linattn: the scalar gate's bias has one element");
    auto g = torch::empty({h.size(0)});
    linattn::scalar_gate(cview<2>(h), cview<1>(w), b.item<float>(), view<1>(g));
    ctx->save_for_backward({h, w, g});
    return g;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const torch::Tensor dg = grads[0].contiguous();
    auto dh = torch::empty_like(s[0]), dw = torch::empty_like(s[1]);
    float db = 0;
    linattn::scalar_gate_backward(cview<2>(s[0]), cview<1>(s[1]), cview<1>(s[2]), cview<1>(dg), view<2>(dh),
                                  view<1>(dw), &db);
    return {dh, dw, torch::full({1}, db)};
  }
};

struct VectorGateFn : torch::autograd::Function<VectorGateFn> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor h, torch::Tensor w, torch::Tensor b) {
    h = prepared(h, "h", 2), w = prepared(w, "w", 2), b = prepared(b, "b", 1);
    auto out = torch::empty_like(h), gate = torch::empty_like(h);
    linattn::vector_gate(cview<2>(h), cview<2>(w), cview<1>(b), view<2>(out), view<2>(gate));
    ctx->save_for_backward({h, w, gate});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const torch::Tensor dout = grads[0].contiguous();
    auto dh = torch::empty_like(s[0]), dw = torch::empty_like(s[1]), db = torch::empty({s[1].size(0)});
    linattn::vector_gate_backward(cview<2>(s[0]), cview<2>(s[1]), cview<2>(s[2]), cview<2>(dout), view<2>(dh),
                                  view<2>(dw), view<1>(db));
    return {dh, dw, db};
  }
};

struct CausalFn : torch::autograd::Function<CausalFn> {
  static Decay decay_of(const torch::Tensor& d) {
    Decay out;
    if (!present(d)) return out;
    if (d.dim() == 1) out = {DecayKind::per_head, cview<1>(d), {}, {}};
    else if (d.dim() == 3) out = {DecayKind::per_step, {}, cview<3>(d), {}};
    else out = {DecayKind::per_channel, {}, {}, cview<4>(d)};
    return out;
  }
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               torch::Tensor decay, torch::Tensor gates, torch::Tensor lengths, int64_t phi,
                               bool normalize, int64_t chunk, bool save_states) {
    q = prepared(q, "q", 4), k = prepared(k, "k", 4), v = prepared(v, "v", 4);
    if (present(decay)) {
      TORCH_CHECK(decay.dim() == 1 || decay.dim() == 3 || decay.dim() == 4,
                  "linattn: decay must be [H], [B,H,T] or [B,H,T,dk], got ", decay.sizes());
      decay = prepared(decay, "decay", decay.dim());
    } else {
      decay = torch::Tensor();
    }
    gates = present(gates) ? prepared(gates, "gates", 3) : torch::Tensor();
    lengths = prepared_lengths(lengths);
    const CausalLinearAttentionOptions o{.feature_map = static_cast<FeatureMap>(phi), .normalize = normalize,
                                         .chunk_size = chunk};
    auto out = torch::empty_like(v);
    // The chunk-start states, when a backward will follow: it then need not recompute them.
    torch::Tensor states;
    if (save_states) {
      const auto shape = causal_chunk_states_shape(cview<4>(q), cview<4>(v), o);
      states = torch::empty({shape[0], shape[1], shape[2], shape[3]});
    }
    linattn::causal_linear_attention(cview<4>(q), cview<4>(k), cview<4>(v), view<4>(out), decay_of(decay), o,
                                     {.lengths = span_of(lengths), .gates = gates.defined() ? cview<3>(gates) : CView3{}},
                                     {.chunk_states = states.defined() ? view<4>(states) : View4{}});
    ctx->save_for_backward({q, k, v, decay, gates, lengths, states});
    ctx->saved_data["phi"] = phi;
    ctx->saved_data["normalize"] = normalize;
    ctx->saved_data["chunk"] = chunk;
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const torch::Tensor dout = grads[0].contiguous();
    const CausalLinearAttentionOptions o{.feature_map = static_cast<FeatureMap>(ctx->saved_data["phi"].toInt()),
                                         .normalize = ctx->saved_data["normalize"].toBool(),
                                         .chunk_size = ctx->saved_data["chunk"].toInt()};
    auto dq = torch::empty_like(s[0]), dk = torch::empty_like(s[1]), dv = torch::empty_like(s[2]);
    torch::Tensor ddecay, dgates;
    CausalLinearAttentionGrads g{view<4>(dq), view<4>(dk), view<4>(dv)};
    const Decay decay = decay_of(s[3]);
    if (decay.kind == DecayKind::per_step) g.dper_step = view<3>(ddecay = torch::empty_like(s[3]));
    if (decay.kind == DecayKind::per_channel) g.dper_channel = view<4>(ddecay = torch::empty_like(s[3]));
    if (s[4].defined()) g.dgates = view<3>(dgates = torch::empty_like(s[4]));
    linattn::causal_linear_attention_backward(
        cview<4>(s[0]), cview<4>(s[1]), cview<4>(s[2]), cview<4>(dout), g, decay, o,
        {.lengths = span_of(s[5]), .gates = s[4].defined() ? cview<3>(s[4]) : CView3{}},
        {.chunk_states = s[6].defined() ? cview<4>(s[6]) : CView4{}});
    return {dq, dk, dv, ddecay, dgates, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor causal_linear_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      const torch::Tensor& decay, const torch::Tensor& gates, const torch::Tensor& lengths,
                                      FeatureMap feature_map, bool normalize, int64_t chunk_size) {
  // Chunk states are saved for the backward only when there will be one (grad mode and an input
  // that needs a gradient): (T / L + 1) dk dv floats per head, against T dk for each input.
  const bool backward = torch::GradMode::is_enabled() &&
                        (q.requires_grad() || k.requires_grad() || v.requires_grad() ||
                         (decay.defined() && decay.requires_grad()) || (gates.defined() && gates.requires_grad()));
  return CausalFn::apply(q, k, v, absent_as_empty(decay), absent_as_empty(gates), absent_as_empty(lengths),
                         static_cast<int64_t>(feature_map), normalize, chunk_size, backward);
}

torch::Tensor softmax_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                const torch::Tensor& kv_lengths, bool causal, double scale) {
  if (scale <= 0) scale = 1.0 / std::sqrt(static_cast<double>(k.size(-1)));
  return SoftmaxAttentionFn::apply(q, k, v, absent_as_empty(kv_lengths), causal, scale);
}

torch::Tensor additive_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& w_k, const torch::Tensor& w_q, const torch::Tensor& bias,
                                 const torch::Tensor& w, const torch::Tensor& kv_lengths) {
  return AdditiveAttentionFn::apply(q, k, v, w_k, w_q, bias, w, absent_as_empty(kv_lengths));
}

torch::Tensor linear_attention_encode(const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& gates,
                                      const torch::Tensor& lengths, FeatureMap feature_map) {
  return LinearEncodeFn::apply(k, v, absent_as_empty(gates), absent_as_empty(lengths),
                               static_cast<int64_t>(feature_map));
}

torch::Tensor linear_attention_lookup(const torch::Tensor& q, const torch::Tensor& state, const torch::Tensor& counts,
                                      double scale, FeatureMap feature_map) {
  return LinearLookupFn::apply(q, state, absent_as_empty(counts), scale, static_cast<int64_t>(feature_map));
}

torch::Tensor scalar_gate(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& b) {
  return ScalarGateFn::apply(h, w, b);
}

torch::Tensor vector_gate(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& b) {
  return VectorGateFn::apply(h, w, b);
}

torch::Tensor galerkin_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& lengths) {
  return GalerkinFn::apply(q, k, v, absent_as_empty(lengths));
}

torch::Tensor content_lambda_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       const torch::Tensor& lengths) {
  return ContentLambdaFn::apply(q, k, v, absent_as_empty(lengths));
}

torch::Tensor content_lambda_encode(const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& lengths) {
  TORCH_CHECK(!(torch::GradMode::is_enabled() && (k.requires_grad() || v.requires_grad())),
              "linattn: content_lambda_encode has no gradient; use content_lambda_attention to train");
  const torch::Tensor kc = prepared(k, "k", 4), vc = prepared(v, "v", 4), n = prepared_lengths(absent_as_empty(lengths));
  auto lambda = torch::empty({kc.size(0), kc.size(1), kc.size(3), vc.size(3)});
  linattn::content_lambda_encode(cview<4>(kc), cview<4>(vc), view<4>(lambda), span_of(n));
  return lambda;
}

torch::Tensor kslot_memory_attention(const torch::Tensor& query_scores, const torch::Tensor& scores, const torch::Tensor& v,
                                    const torch::Tensor& lengths, bool position_encoding) {
  return KSlotFn::apply(query_scores, scores, v, absent_as_empty(lengths), position_encoding);
}

torch::Tensor kslot_memory_encode(const torch::Tensor& scores, const torch::Tensor& v, const torch::Tensor& lengths,
                                  bool position_encoding) {
  TORCH_CHECK(!(torch::GradMode::is_enabled() && (scores.requires_grad() || v.requires_grad())),
              "linattn: kslot_memory_encode has no gradient; use kslot_memory_attention to train");
  const torch::Tensor sc = prepared(scores, "scores", 4), vc = prepared(v, "v", 4), n = prepared_lengths(absent_as_empty(lengths));
  auto C = torch::empty({sc.size(0), sc.size(1), sc.size(3), vc.size(3)});
  linattn::kslot_memory_encode(cview<4>(sc), cview<4>(vc), view<4>(C), {.position_encoding = position_encoding}, span_of(n));
  return C;
}

}  // namespace linattn::torch_ext
