#include "linattn/ops/linear_attention.h"

#include <cmath>
#include <string>

#include "core/checks.h"
#include "kernels/linear_attention_cpu.h"

namespace linattn {

using detail::extent;
namespace {

void check_feature_map(const detail::Checks& c, FeatureMap phi) {
  if (phi != FeatureMap::identity && phi != FeatureMap::elu_plus_one && phi != FeatureMap::relu)
    c.fail("options.feature_map", "unknown feature map " + std::to_string(static_cast<int>(phi)));
}

// state [B,H,dk,dv] and normalizer [B,H,dk] against the given sizes.
void check_state(const detail::Checks& c, CView4 state, CView3 normalizer, int64_t B, int64_t H,
                 int64_t dk, int64_t dv, bool output) {
  c.view("state", state, output);
  c.dim("state", state, 0, B, "the batch size");
  c.dim("state", state, 1, H, "the head count");
  c.dim("state", state, 2, dk, "the key width dk");
  c.dim("state", state, 3, dv, "the value width dv");
  if (normalizer.present()) {
    c.view("normalizer", normalizer, output);
    c.dim("normalizer", normalizer, 0, B, "the batch size");
    c.dim("normalizer", normalizer, 1, H, "the head count");
    c.dim("normalizer", normalizer, 2, dk, "the key width dk");
  }
}


// The encode inputs: k, v, gates, lengths, feature map.
void check_encode_inputs(const detail::Checks& c, CView4 k, CView4 v, CView3 gates, Lengths lengths,
                         const LinearEncodeOptions& options) {
  c.view("k", k, false);
  c.view("v", v, false);
  const int64_t B = k.shape[0], H = k.shape[1], T = k.shape[2], dk = k.shape[3], dv = v.shape[3];
  c.positive("k", B, "batch size (dimension 0)");
  c.positive("k", H, "head count (dimension 1)");
  c.positive("k", dk, "key width dk (dimension 3)");
  c.positive("v", dv, "value width dv (dimension 3)");
  c.dim("v", v, 0, B, "the batch size of k");
  c.dim("v", v, 1, H, "the head count of k");
  c.dim("v", v, 2, T, "the length T of k");
  if (gates.present()) {
    c.view("gates", gates, false);
    c.dim("gates", gates, 0, B, "the batch size of k");
    c.dim("gates", gates, 1, H, "the head count of k");
    c.dim("gates", gates, 2, T, "the length T of k");
  }
  check_feature_map(c, options.feature_map);
  c.lengths("lengths", lengths, B, T, "the sequence length T");
}

// The lookup inputs and options (state and normalizer as inputs).
void check_lookup_inputs(const detail::Checks& c, CView4 q, CView4 state, const LinearLookupOptions& options,
                         CView3 normalizer, Lengths token_counts, Lengths q_lengths) {
  c.view("q", q, false);
  const int64_t B = q.shape[0], H = q.shape[1], Tq = q.shape[2], dk = q.shape[3];
  c.positive("q", B, "batch size (dimension 0)");
  c.positive("q", H, "head count (dimension 1)");
  c.positive("q", dk, "query width dk (dimension 3)");
  c.positive("state", state.shape[3], "value width dv (dimension 3)");
  check_state(c, state, normalizer, B, H, dk, state.shape[3], false);
  check_feature_map(c, options.feature_map);
  if (options.normalize && options.mean)
    c.fail("options", "normalize and mean are exclusive (the normalised form is already a mean)");
  if (options.normalize && !normalizer.present())
    c.fail("normalizer", "is required when options.normalize is set");
  if (!options.normalize && normalizer.present())
    c.fail("normalizer", "is given but options.normalize is not set");
  if (options.mean && token_counts.empty())
    c.fail("token_counts", "is required when options.mean is set");
  if (!options.mean && !token_counts.empty())
    c.fail("token_counts", "is given but options.mean is not set");
  if (!std::isfinite(options.scale))
    c.fail("options.scale", "must be finite, got " + std::to_string(options.scale));
  if (!(options.eps >= 0.f) || !std::isfinite(options.eps))
    c.fail("options.eps", "must be finite and >= 0, got " + std::to_string(options.eps));
  c.lengths("token_counts", token_counts, B, INT64_MAX, "");
  c.lengths("q_lengths", q_lengths, B, Tq, "the query count Tq");
}

// A lookup's output (or its gradient): [B, H, Tq, dv].
template <typename T>
void check_lookup_output(const detail::Checks& c, const char* name, const View<T, 4>& out, CView4 q, CView4 state,
                         bool output) {
  c.view(name, out, output);
  c.dim(name, out, 0, q.shape[0], "the batch size of q");
  c.dim(name, out, 1, q.shape[1], "the head count of q");
  c.dim(name, out, 2, q.shape[2], "the query count Tq");
  c.dim(name, out, 3, state.shape[3], "the value width dv of the state");
}

}  // namespace

void linear_attention_encode(CView4 k, CView4 v, View4 state, View3 normalizer,
                             const LinearEncodeOptions& options, Lengths lengths, CView3 gates) {
  const detail::Checks c("linattn::linear_attention_encode");
  check_encode_inputs(c, k, v, gates, lengths, options);
  check_state(c, state, normalizer, k.shape[0], k.shape[1], k.shape[3], v.shape[3], true);
  c.apart({extent("state", state), extent("normalizer", normalizer)}, {extent("k", k), extent("v", v), extent("gates", gates)});
  kernels::linear_attention_encode_cpu(k, v, gates, lengths, options.feature_map,
                                       options.accumulate, state, normalizer);
}

void linear_attention_lookup(CView4 q, CView4 state, View4 out, const LinearLookupOptions& options,
                             CView3 normalizer, Lengths token_counts, Lengths q_lengths) {
  const detail::Checks c("linattn::linear_attention_lookup");
  check_lookup_inputs(c, q, state, options, normalizer, token_counts, q_lengths);
  check_lookup_output(c, "out", out, q, state, true);
  c.apart({extent("out", out)}, {extent("q", q), extent("state", state), extent("normalizer", normalizer)});
  kernels::linear_attention_lookup_cpu(q, state, normalizer, options.eps, options.scale,
                                       token_counts, q_lengths, options.feature_map, out);
}

void linear_attention_encode_backward(CView4 k, CView4 v, CView4 dstate, View4 dk, View4 dv,
                                      const LinearEncodeOptions& options, CView3 dnormalizer, Lengths lengths,
                                      CView3 gates, View3 dgates) {
  const detail::Checks c("linattn::linear_attention_encode_backward");
  check_encode_inputs(c, k, v, gates, lengths, options);
  check_state(c, dstate, dnormalizer, k.shape[0], k.shape[1], k.shape[3], v.shape[3], false);
  c.same_shape("dk", dk, "k", k, true);
  c.same_shape("dv", dv, "v", v, true);
  if (gates.present() != dgates.present())
    c.fail("dgates", gates.present() ? "is required when gates are given" : "is given without gates");
  if (dgates.present()) c.same_shape("dgates", dgates, "gates", gates, true);
  c.apart({extent("dk", dk), extent("dv", dv), extent("dgates", dgates)},
          {extent("k", k), extent("v", v), extent("dstate", dstate), extent("dnormalizer", dnormalizer),
           extent("gates", gates)});
  kernels::linear_attention_encode_backward_cpu(k, v, gates, lengths, options.feature_map, dstate, dnormalizer,
                                                dk, dv, dgates);
}

void linear_attention_lookup_backward(CView4 q, CView4 state, CView4 dout, View4 dq, View4 dstate,
                                      const LinearLookupOptions& options, CView3 normalizer, View3 dnormalizer,
                                      Lengths token_counts, Lengths q_lengths) {
  const detail::Checks c("linattn::linear_attention_lookup_backward");
  check_lookup_inputs(c, q, state, options, normalizer, token_counts, q_lengths);
  check_lookup_output(c, "dout", dout, q, state, false);
  c.same_shape("dq", dq, "q", q, true);
  c.same_shape("dstate", dstate, "state", state, true);
  if (options.normalize != dnormalizer.present())
    c.fail("dnormalizer", options.normalize ? "is required when options.normalize is set"
                                            : "is given but options.normalize is not set");
  if (dnormalizer.present()) c.same_shape("dnormalizer", dnormalizer, "normalizer", normalizer, true);
  c.apart({extent("dq", dq), extent("dstate", dstate), extent("dnormalizer", dnormalizer)},
          {extent("q", q), extent("state", state), extent("dout", dout), extent("normalizer", normalizer)});
  kernels::linear_attention_lookup_backward_cpu(q, state, normalizer, options.eps, options.scale, token_counts,
                                                q_lengths, options.feature_map, dout, dq, dstate, dnormalizer);
}

}  // namespace linattn
