#include "linattn/ops/causal_linear_attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "core/checks.h"
#include "kernels/causal_linear_attention_cpu.h"
#include "kernels/parallel.h"
#include "kernels/simd.h"

namespace linattn {
namespace {

// What prepare() builds beyond the kernel's arguments, owned here for as long as they run.
struct Prepared {
  kernels::CausalArgs args;
  std::vector<float> logs;             // the per-head log decays
  std::vector<uint8_t> token_by_token;  // the algorithm, per sequence
};

// Checks every input of either pass, chooses the algorithm of every sequence (the only place
// it is chosen) and builds the kernel's arguments.
void prepare(const detail::Checks& c, CView4 q, CView4 k, CView4 v, const Decay& decay,
             const CausalLinearAttentionOptions& o, const CausalInputs& in, bool backward, Prepared& out) {
  const Lengths lengths = in.lengths;
  const CView3 gates = in.gates;
  const CView4 initial_state = in.initial_state;
  const CView3 initial_normalizer = in.initial_normalizer;
  std::vector<float>& logs = out.logs;
  c.view("q", q, false);
  c.view("k", k, false);
  c.view("v", v, false);
  const int64_t B = q.shape[0], H = q.shape[1], T = q.shape[2], dk = q.shape[3], dv = v.shape[3];
  c.positive("q", B, "batch size (dimension 0)");
  c.positive("q", H, "head count (dimension 1)");
  c.positive("q", dk, "key width dk (dimension 3)");
  c.positive("v", dv, "value width dv (dimension 3)");
  c.same_shape("k", k, "q", q, false);
  c.dim("v", v, 0, B, "the batch size of q");
  c.dim("v", v, 1, H, "the head count of q");
  c.dim("v", v, 2, T, "the length T of q");
  if (gates.present()) c.same_shape("gates", gates, "q's [B, H, T]", CView3(nullptr, {B, H, T}, {}), false);
  if (o.chunk_size < 1 || o.chunk_size > 1024)
    c.fail("options.chunk_size", "must be in [1, 1024], got " + std::to_string(o.chunk_size));
  if (!(o.eps >= 0.f) || !std::isfinite(o.eps)) c.fail("options.eps", "must be finite and >= 0");
  if (!parse_feature_map(to_string(o.feature_map))) c.fail("options.feature_map", "unknown feature map");
  c.lengths("lengths", lengths, B, T, "the sequence length T");
  if (initial_state.present()) c.same_shape("initial_state", initial_state, "[B, H, dk, dv]", CView4(nullptr, {B, H, dk, dv}, {}), false);
  if (initial_normalizer.present()) {
    if (!o.normalize) c.fail("initial_normalizer", "is given but options.normalize is not set");
    c.same_shape("initial_normalizer", initial_normalizer, "[B, H, dk]", CView3(nullptr, {B, H, dk}, {}), false);
  }

  // Token by token for sequences up to max_length, in chunks beyond.
  int64_t max_length = 0;
  switch (o.algorithm) {
    case CausalAlgorithm::automatic: {
      int64_t longest = T;
      if (!lengths.empty()) longest = *std::max_element(lengths.begin(), lengths.end());
      // One token (every step) runs token by token on any machine: nothing to measure.
      if (longest <= 1) {
        max_length = 1;
        break;
      }
      const CausalAutomaticChoice choice = causal_automatic_choice(dk, dv, decay.kind, gates.present(), o, backward);
      const bool large = choice.token_by_token(std::numeric_limits<int64_t>::max(),
                                               causal_working_set_bytes(B, H, T, dk, dv, decay.kind, gates.present(), backward));
      max_length = large ? std::numeric_limits<int64_t>::max() : choice.max_recurrent_length;
      break;
    }
    case CausalAlgorithm::chunked: break;
    case CausalAlgorithm::recurrent: max_length = std::numeric_limits<int64_t>::max(); break;
    default: c.fail("options.algorithm", "unknown algorithm");
  }
  out.token_by_token.resize(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b)
    out.token_by_token[static_cast<size_t>(b)] = (lengths.empty() ? T : lengths[static_cast<size_t>(b)]) <= max_length;
  out.args = kernels::CausalArgs{q, k, v, gates, {}, lengths, o.feature_map, o.normalize, o.eps, o.chunk_size,
                                 out.token_by_token, initial_state, initial_normalizer};
  kernels::CausalArgs& a = out.args;
  auto check_logs = [&](const char* name, const float* p, int64_t count, int64_t stride) {
    for (int64_t i = 0; i < count; ++i) {
      const float x = p[i * stride];
      if (!(x <= 0.f) || !std::isfinite(x))
        c.fail(name, "log decays must be finite and <= 0 (gamma in (0, 1]); element " + std::to_string(i) +
                         " is " + std::to_string(x));
    }
  };
  switch (decay.kind) {
    case DecayKind::none:
      break;
    case DecayKind::per_head: {
      c.view("decay.per_head", decay.per_head, false);
      c.dim("decay.per_head", decay.per_head, 0, H, "the head count");
      logs.resize(static_cast<size_t>(H));
      for (int64_t h = 0; h < H; ++h) {
        const float gamma = decay.per_head(h);
        if (!(gamma > 0.f && gamma <= 1.f))
          c.fail("decay.per_head", "gamma must be in (0, 1]; head " + std::to_string(h) + " has " + std::to_string(gamma));
        logs[static_cast<size_t>(h)] = std::log(gamma);
      }
      a.log_decay = {logs.data(), 0, 1, 0, 0, false};
      break;
    }
    case DecayKind::per_step: {
      const CView3 d = decay.per_step;
      c.same_shape("decay.per_step", d, "[B, H, T]", CView3(nullptr, {B, H, T}, {}), false);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
          check_logs("decay.per_step", T ? &d(b, h, 0) : d.data, lengths.empty() ? T : lengths[static_cast<size_t>(b)],
                     d.stride[2]);
      a.log_decay = {d.data, d.stride[0], d.stride[1], d.stride[2], 0, false};
      break;
    }
    case DecayKind::per_channel: {
      const CView4 d = decay.per_channel;
      c.same_shape("decay.per_channel", d, "q", q, false);
      // B H T dk values: checked in parallel with vectors at memory speed (a (b, h) whose rows
      // are contiguous in one go), and named (serially) only when one fails.
      std::atomic<bool> bad{false};
      kernels::parallel_for(B * H, [&](int64_t bh, int) {
        const int64_t b = bh / H, h = bh % H, n = lengths.empty() ? T : lengths[static_cast<size_t>(b)];
        auto ok = [&](const float* x, int64_t count) {
          return kernels::simd::all_within(x, count, -std::numeric_limits<float>::max(), 0.f);
        };
        if (n == 0 || dk == 0) return;
        bool row_bad = false;
        if (d.stride[2] == dk) row_bad = !ok(&d(b, h, 0, 0), n * dk);  // the last stride is 1 (checked)
        else
          for (int64_t t = 0; t < n && !row_bad; ++t) row_bad = !ok(&d(b, h, t, 0), dk);
        if (row_bad) bad = true;
      });
      if (bad)
        for (int64_t b = 0; b < B; ++b)
          for (int64_t h = 0; h < H; ++h)
            for (int64_t t = 0; t < (lengths.empty() ? T : lengths[static_cast<size_t>(b)]); ++t)
              check_logs("decay.per_channel", &d(b, h, t, 0), dk, 1);
      a.log_decay = {d.data, d.stride[0], d.stride[1], d.stride[2], d.stride[3], true};
      break;
    }
    default:
      c.fail("decay.kind", "unknown decay kind");
  }
}

// chunk_states, when present, must have causal_chunk_states_shape.
template <typename T>
void check_chunk_states(const detail::Checks& c, const View<T, 4>& chunk_states, CView4 q, CView4 v,
                        const CausalLinearAttentionOptions& o) {
  if (!chunk_states.present()) return;
  const auto shape = causal_chunk_states_shape(q, v, o);
  c.same_shape("chunk_states", chunk_states, "causal_chunk_states_shape", CView4(nullptr, shape, {}),
               !std::is_const_v<T>);
}

}  // namespace

std::array<int64_t, 4> causal_chunk_states_shape(CView4 q, CView4 v, const CausalLinearAttentionOptions& options) {
  const int64_t L = std::max<int64_t>(options.chunk_size, 1);
  return {q.shape[0], q.shape[1], (q.shape[2] + L - 1) / L + 1, q.shape[3] * (v.shape[3] + (options.normalize ? 1 : 0))};
}

std::vector<float> retnet_decays(int64_t heads) {
  std::vector<float> g(static_cast<size_t>(std::max<int64_t>(heads, 0)));
  for (int64_t h = 0; h < heads; ++h) g[static_cast<size_t>(h)] = 1.f - std::ldexp(1.f, static_cast<int>(-5 - h));
  return g;
}

void causal_linear_attention(CView4 q, CView4 k, CView4 v, View4 out, const Decay& decay,
                             const CausalLinearAttentionOptions& options, const CausalInputs& in,
                             const CausalForwardOutputs& outputs) {
  const detail::Checks c("linattn::causal_linear_attention");
  Prepared p;
  prepare(c, q, k, v, decay, options, in, /*backward=*/false, p);
  const kernels::CausalArgs& a = p.args;
  const CView3 gates = in.gates;
  const CView4 initial_state = in.initial_state;
  const CView3 initial_normalizer = in.initial_normalizer;
  const View4 final_state = outputs.final_state, chunk_states = outputs.chunk_states;
  const View3 final_normalizer = outputs.final_normalizer;
  c.same_shape("out", out, "v", v, true);
  const int64_t B = q.shape[0], H = q.shape[1], dk = q.shape[3], dv = v.shape[3];
  if (final_state.present()) c.same_shape("final_state", final_state, "[B, H, dk, dv]", CView4(nullptr, {B, H, dk, dv}, {}), true);
  if (final_normalizer.present()) {
    if (!options.normalize) c.fail("final_normalizer", "is given but options.normalize is not set");
    c.same_shape("final_normalizer", final_normalizer, "[B, H, dk]", CView3(nullptr, {B, H, dk}, {}), true);
  }
  check_chunk_states(c, chunk_states, q, v, options);
  if (chunk_states.present()) {  // written from the first chunk on, while everything else is in use
    c.disjoint("chunk_states", chunk_states, "q", q);
    c.disjoint("chunk_states", chunk_states, "k", k);
    c.disjoint("chunk_states", chunk_states, "v", v);
    c.disjoint("chunk_states", chunk_states, "out", out);
    c.disjoint("chunk_states", chunk_states, "gates", gates);
    c.disjoint("chunk_states", chunk_states, "decay.per_step", decay.per_step);
    c.disjoint("chunk_states", chunk_states, "decay.per_channel", decay.per_channel);
    c.disjoint("chunk_states", chunk_states, "initial_state", initial_state);
    c.disjoint("chunk_states", chunk_states, "final_state", final_state);
    c.disjoint("chunk_states", chunk_states, "initial_normalizer", initial_normalizer);
    c.disjoint("chunk_states", chunk_states, "final_normalizer", final_normalizer);
  }
  kernels::causal_linear_attention_cpu(a, out, final_state, final_normalizer, chunk_states);
}

void causal_linear_attention_backward(CView4 q, CView4 k, CView4 v, CView4 dout, const CausalLinearAttentionGrads& g,
                                      const Decay& decay, const CausalLinearAttentionOptions& options,
                                      const CausalInputs& in, const CausalBackwardInputs& extra) {
  const detail::Checks c("linattn::causal_linear_attention_backward");
  Prepared p;
  prepare(c, q, k, v, decay, options, in, /*backward=*/true, p);
  const kernels::CausalArgs& a = p.args;
  const CView3 gates = in.gates;
  const CView4 dfinal_state = extra.dfinal_state, chunk_states = extra.chunk_states;
  const CView3 dfinal_normalizer = extra.dfinal_normalizer;
  const int64_t B = q.shape[0], H = q.shape[1], T = q.shape[2], dk = q.shape[3], dv = v.shape[3];
  c.same_shape("dout", dout, "v", v, false);
  c.same_shape("grads.dq", g.dq, "q", q, true);
  c.same_shape("grads.dk", g.dk, "k", k, true);
  c.same_shape("grads.dv", g.dv, "v", v, true);
  if (gates.present() != g.dgates.present())
    c.fail("grads.dgates", gates.present() ? "is required when gates are given" : "is given without gates");
  if (g.dgates.present()) c.same_shape("grads.dgates", g.dgates, "gates", gates, true);
  if (dfinal_state.present()) c.same_shape("dfinal_state", dfinal_state, "[B, H, dk, dv]", CView4(nullptr, {B, H, dk, dv}, {}), false);
  if (dfinal_normalizer.present()) c.same_shape("dfinal_normalizer", dfinal_normalizer, "[B, H, dk]", CView3(nullptr, {B, H, dk}, {}), false);
  if (g.dinitial_state.present()) c.same_shape("grads.dinitial_state", g.dinitial_state, "[B, H, dk, dv]", CView4(nullptr, {B, H, dk, dv}, {}), true);
  if (g.dinitial_normalizer.present()) c.same_shape("grads.dinitial_normalizer", g.dinitial_normalizer, "[B, H, dk]", CView3(nullptr, {B, H, dk}, {}), true);
  if ((decay.kind == DecayKind::per_step) != g.dper_step.present())
    c.fail("grads.dper_step", g.dper_step.present() ? "is given but the decay is not per step" : "is required with a per-step decay");
  if ((decay.kind == DecayKind::per_channel) != g.dper_channel.present())
    c.fail("grads.dper_channel", g.dper_channel.present() ? "is given but the decay is not per channel" : "is required with a per-channel decay");
  if (g.dper_step.present()) c.same_shape("grads.dper_step", g.dper_step, "decay.per_step", decay.per_step, true);
  if (g.dper_channel.present()) c.same_shape("grads.dper_channel", g.dper_channel, "decay.per_channel", decay.per_channel, true);

  kernels::CausalGrads kg{g.dq, g.dk, g.dv, g.dgates, g.dper_channel, g.dinitial_state, g.dinitial_normalizer};
  std::vector<float> per_channel;  // a per-step decay's gradient sums its channels
  if (decay.kind == DecayKind::per_step) {
    per_channel.resize(static_cast<size_t>(B * H * T * dk));
    kg.dlog_decay = View4::contiguous(per_channel.data(), {B, H, T, dk});
  }
  check_chunk_states(c, chunk_states, q, v, options);
  if (chunk_states.present()) {  // read until the last chunk, while every gradient is written
    c.disjoint("grads.dq", g.dq, "chunk_states", chunk_states);
    c.disjoint("grads.dk", g.dk, "chunk_states", chunk_states);
    c.disjoint("grads.dv", g.dv, "chunk_states", chunk_states);
    c.disjoint("grads.dgates", g.dgates, "chunk_states", chunk_states);
    c.disjoint("grads.dper_step", g.dper_step, "chunk_states", chunk_states);
    c.disjoint("grads.dper_channel", g.dper_channel, "chunk_states", chunk_states);
    c.disjoint("grads.dinitial_state", g.dinitial_state, "chunk_states", chunk_states);
    c.disjoint("grads.dinitial_normalizer", g.dinitial_normalizer, "chunk_states", chunk_states);
  }
  kernels::causal_linear_attention_backward_cpu(a, dout, dfinal_state, dfinal_normalizer, kg, chunk_states);
  if (decay.kind == DecayKind::per_step)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < T; ++t) {
          float s = 0.f;
          for (int64_t i = 0; i < dk; ++i) s += kg.dlog_decay(b, h, t, i);
          g.dper_step(b, h, t) = s;
        }
}

void causal_linear_attention_step(CView3 q, CView3 k, CView3 v, View4 state, View3 out, const Decay& decay,
                                  const CausalLinearAttentionOptions& options, CView3 gates, View3 normalizer) {
  // One step is the chunked form with T = 1 and the state as both initial and final state.
  auto seq = [](auto x) {
    using V = decltype(x);
    using T4 = View<typename V::value_type, 4>;
    return x.present() ? T4(x.data, {x.shape[0], x.shape[1], 1, x.shape[2]}, {x.stride[0], x.stride[1], 0, x.stride[2]})
                       : T4{};
  };
  const CView4 s_in = state;
  const CView3 z_in = normalizer;
  causal_linear_attention(seq(q), seq(k), seq(v), seq(out), decay, options,
                          {.gates = gates, .initial_state = s_in, .initial_normalizer = z_in},
                          {.final_state = state, .final_normalizer = normalizer});
}

}  // namespace linattn
