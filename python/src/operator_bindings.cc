// The operators for Python: softmax and additive attention, linear attention (encode, lookup),
// the gates, and causal linear attention with decay; each forward with its backward, so that
// autograd wrappers (linattn.torch) run linattn's kernels both ways. Inputs follow the core's
// shapes ([batch B, heads H, positions T, features d]); outputs are new float32 arrays.
#include <pybind11/stl.h>

#include <cmath>
#include <optional>
#include <string>

#include "arrays.h"
#include "bindings.h"
#include "linattn/ops/causal_linear_attention.h"
#include "linattn/ops/gates.h"
#include <limits>

#include "linattn/ops/content_lambda.h"
#include "linattn/ops/kslot_memory.h"
#include "linattn/ops/galerkin_attention.h"
#include "linattn/ops/linear_attention.h"
#include "linattn/ops/softmax_attention.h"

namespace linattn::python {
namespace {

// A decay kind's name (none, per_head, per_step, per_channel); ArgumentError naming `decay` otherwise.
DecayKind decay_kind_arg(const std::string& decay, const char* op) {
  if (decay == "none") return DecayKind::none;
  if (decay == "per_head") return DecayKind::per_head;
  if (decay == "per_step") return DecayKind::per_step;
  if (decay == "per_channel") return DecayKind::per_channel;
  throw ArgumentError(op, "decay", "unknown decay kind '" + decay + "' (none, per_head, per_step, per_channel)");
}

CausalAlgorithm algorithm_arg(const std::string& name, const char* op) {
  if (name == "automatic") return CausalAlgorithm::automatic;
  if (name == "chunked") return CausalAlgorithm::chunked;
  if (name == "recurrent") return CausalAlgorithm::recurrent;
  throw ArgumentError(op, "algorithm", "unknown algorithm '" + name + "' (automatic, chunked, recurrent)");
}

// Outputs are shaped from their inputs' batch and head counts, so those must agree first.
template <int R, int S>
void same_batch_heads(const char* op, const char* a, const Input<R>& x, const char* b, const Input<S>& y) {
  for (int i = 0; i < 2; ++i) {
    if (x.size(i) != y.size(i)) {
      throw ArgumentError(op, b, std::string("dimension ") + std::to_string(i) + " (" + (i ? "heads" : "batch") +
                                     ") is " + std::to_string(y.size(i)) + ", '" + a + "' has " + std::to_string(x.size(i)));
    }
  }
}

template <class F>
void run(F&& kernel) {
  py::gil_scoped_release nogil;
  use_configured_threads();
  kernel();
}

// A decay given as one array: [H] fixed gammas (per_head), [B, H, T] log gammas per step, or
// [B, H, T, dk] log gammas per key channel; None for no decay.
struct DecayInput {
  Input<1> per_head;
  Input<3> per_step;
  Input<4> per_channel;
  Decay decay;
};
DecayInput decay_arg(const py::object& obj, const char* op) {
  DecayInput d;
  if (obj.is_none()) return d;
  const py::array probe = py::array::ensure(obj);
  const int ndim = probe ? static_cast<int>(probe.ndim()) : 0;
  if (ndim == 1) {
    d.per_head = input<1>(obj, op, "decay");
    d.decay = {DecayKind::per_head, d.per_head.view, {}, {}};
  } else if (ndim == 3) {
    d.per_step = input<3>(obj, op, "decay");
    d.decay = {DecayKind::per_step, {}, d.per_step.view, {}};
  } else if (ndim == 4) {
    d.per_channel = input<4>(obj, op, "decay");
    d.decay = {DecayKind::per_channel, {}, {}, d.per_channel.view};
  } else {
    throw ArgumentError(op, "decay",
                        "expected [H] gammas, [B, H, T] or [B, H, T, dk] log gammas, got " +
                            (probe ? "shape " + shape_text(probe) : std::string("no array")));
  }
  return d;
}

void bind_softmax(py::module_& m) {
  m.def("softmax_attention",
        [](const py::object& q_, const py::object& k_, const py::object& v_, bool causal, std::optional<float> scale,
           const py::object& kv_lengths, const py::object& q_lengths, bool return_lse) -> py::object {
          const char* op = "linattn.softmax_attention";
          const auto q = input<4>(q_, op, "q"), k = input<4>(k_, op, "k"), v = input<4>(v_, op, "v");
          same_batch_heads(op, "q", q, "v", v);
          const auto kvl = index_input(kv_lengths, op, "kv_lengths"), ql = index_input(q_lengths, op, "q_lengths");
          Output<4> out({q.size(0), q.size(1), q.size(2), v.size(3)});
          Output<3> lse({q.size(0), q.size(1), q.size(2)});
          run([&] {
            softmax_attention(q.view, k.view, v.view, out.view, {.causal = causal, .scale = scale}, kvl.span(), ql.span(),
                              lse.view);
          });
          if (return_lse) return py::make_tuple(out.array, lse.array);
          return out.array;
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("causal") = false, py::arg("scale") = py::none(),
        py::arg("kv_lengths") = py::none(), py::arg("q_lengths") = py::none(), py::arg("return_lse") = false,
        "softmax(scale q.k) v over the valid keys (the baseline; O(Tq Tk d)).\n"
        "q [B,H,Tq,dk], k [B,H,Tk,dk], v [B,H,Tk,dv] -> out [B,H,Tq,dv] (and lse [B,H,Tq] = log sum exp of the "
        "scores with return_lse). scale defaults to 1/sqrt(dk). kv_lengths, q_lengths [B]: positions past them are "
        "padding (never read; their outputs 0). causal: self-attention where query i sees keys j <= i.");

  m.def("softmax_attention_backward",
        [](const py::object& q_, const py::object& k_, const py::object& v_, const py::object& out_,
           const py::object& lse_, const py::object& dout_, bool causal, std::optional<float> scale,
           const py::object& kv_lengths, const py::object& q_lengths) {
          const char* op = "linattn.softmax_attention_backward";
          const auto q = input<4>(q_, op, "q"), k = input<4>(k_, op, "k"), v = input<4>(v_, op, "v");
          const auto out = input<4>(out_, op, "out"), dout = input<4>(dout_, op, "dout");
          const auto lse = input<3>(lse_, op, "lse");
          const auto kvl = index_input(kv_lengths, op, "kv_lengths"), ql = index_input(q_lengths, op, "q_lengths");
          Output<4> dq(q.view.shape), dk(k.view.shape), dv(v.view.shape);
          run([&] {
            softmax_attention_backward(q.view, k.view, v.view, out.view, lse.view, dout.view, dq.view, dk.view, dv.view,
                                       {.causal = causal, .scale = scale}, kvl.span(), ql.span());
          });
          return py::make_tuple(dq.array, dk.array, dv.array);
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"), py::arg("lse"), py::arg("dout"), py::kw_only(),
        py::arg("causal") = false, py::arg("scale") = py::none(), py::arg("kv_lengths") = py::none(),
        py::arg("q_lengths") = py::none(),
        "Gradients (dq, dk, dv) of softmax_attention given its out and lse and dout = dLoss/dout.");

  m.def("additive_attention",
        [](const py::object& q_, const py::object& k_, const py::object& v_, const py::object& w_k_,
           const py::object& w_q_, const py::object& bias_, const py::object& w_, bool causal,
           const py::object& kv_lengths, const py::object& q_lengths, bool return_lse) -> py::object {
          const char* op = "linattn.additive_attention";
          const auto q = input<4>(q_, op, "q"), k = input<4>(k_, op, "k"), v = input<4>(v_, op, "v");
          const auto w_k = input<2>(w_k_, op, "w_k"), w_q = input<2>(w_q_, op, "w_q");
          const auto bias = input<1>(bias_, op, "bias"), w = input<1>(w_, op, "w");
          same_batch_heads(op, "q", q, "v", v);
          const auto kvl = index_input(kv_lengths, op, "kv_lengths"), ql = index_input(q_lengths, op, "q_lengths");
          Output<4> out({q.size(0), q.size(1), q.size(2), v.size(3)});
          Output<3> lse({q.size(0), q.size(1), q.size(2)});
          run([&] {
            additive_attention(q.view, k.view, v.view, {w_k.view, w_q.view, bias.view, w.view}, out.view, causal,
                               kvl.span(), ql.span(), lse.view);
          });
          if (return_lse) return py::make_tuple(out.array, lse.array);
          return out.array;
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("w_k"), py::arg("w_q"), py::arg("bias"), py::arg("w"),
        py::kw_only(), py::arg("causal") = false, py::arg("kv_lengths") = py::none(), py::arg("q_lengths") = py::none(),
        py::arg("return_lse") = false,
        "Softmax attention with the additive scorer w . tanh(W_k k_j + W_q q_i + bias) (the paper's baseline).\n"
        "q [B,H,Tq,dq], k [B,H,Tk,dk], v [B,H,Tk,dv], w_k [A,dk], w_q [A,dq], bias [A], w [A] -> [B,H,Tq,dv].");

  m.def("additive_attention_backward",
        [](const py::object& q_, const py::object& k_, const py::object& v_, const py::object& w_k_,
           const py::object& w_q_, const py::object& bias_, const py::object& w_, const py::object& out_,
           const py::object& lse_, const py::object& dout_, bool causal, const py::object& kv_lengths,
           const py::object& q_lengths) {
          const char* op = "linattn.additive_attention_backward";
          const auto q = input<4>(q_, op, "q"), k = input<4>(k_, op, "k"), v = input<4>(v_, op, "v");
          const auto w_k = input<2>(w_k_, op, "w_k"), w_q = input<2>(w_q_, op, "w_q");
          const auto bias = input<1>(bias_, op, "bias"), w = input<1>(w_, op, "w");
          const auto out = input<4>(out_, op, "out"), dout = input<4>(dout_, op, "dout");
          const auto lse = input<3>(lse_, op, "lse");
          const auto kvl = index_input(kv_lengths, op, "kv_lengths"), ql = index_input(q_lengths, op, "q_lengths");
          Output<4> dq(q.view.shape), dk(k.view.shape), dv(v.view.shape);
          Output<2> dw_k(w_k.view.shape), dw_q(w_q.view.shape);
          Output<1> dbias(bias.view.shape), dw(w.view.shape);
          run([&] {
            additive_attention_backward(q.view, k.view, v.view, {w_k.view, w_q.view, bias.view, w.view}, out.view,
                                        lse.view, dout.view, dq.view, dk.view, dv.view,
                                        {dw_k.view, dw_q.view, dbias.view, dw.view}, causal, kvl.span(), ql.span());
          });
          return py::make_tuple(dq.array, dk.array, dv.array, dw_k.array, dw_q.array, dbias.array, dw.array);
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("w_k"), py::arg("w_q"), py::arg("bias"), py::arg("w"),
        py::arg("out"), py::arg("lse"), py::arg("dout"), py::kw_only(), py::arg("causal") = false,
        py::arg("kv_lengths") = py::none(), py::arg("q_lengths") = py::none(),
        "Gradients (dq, dk, dv, dw_k, dw_q, dbias, dw) of additive_attention.");
}

void bind_linear(py::module_& m) {
  m.def("linear_attention_encode",
        [](const py::object& k_, const py::object& v_, const py::object& gates_, const py::object& lengths,
           const std::string& feature_map, bool normalize) -> py::object {
          const char* op = "linattn.linear_attention_encode";
          const auto k = input<4>(k_, op, "k"), v = input<4>(v_, op, "v");
          same_batch_heads(op, "k", k, "v", v);
          const auto gates = optional_input<3>(gates_, op, "gates");
          const auto len = index_input(lengths, op, "lengths");
          Output<4> state({k.size(0), k.size(1), k.size(3), v.size(3)});
          std::optional<Output<3>> z;
          if (normalize) z.emplace(std::array<int64_t, 3>{k.size(0), k.size(1), k.size(3)});
          const LinearEncodeOptions o{.feature_map = feature_map_arg(feature_map, op)};
          run([&] {
            linear_attention_encode(k.view, v.view, state.view, z ? z->view : View3{}, o, len.span(), gates.view);
          });
          if (z) return py::make_tuple(state.array, z->array);
          return state.array;
        },
        py::arg("k"), py::arg("v"), py::kw_only(), py::arg("gates") = py::none(), py::arg("lengths") = py::none(),
        py::arg("feature_map") = "identity", py::arg("normalize") = false,
        "The fixed-size memory of each sequence: M = sum_t g_t phi(k_t) v_t^T over the valid t.\n"
        "k [B,H,T,dk], v [B,H,T,dv], gates [B,H,T], lengths [B] -> M [B,H,dk,dv] (and z = sum_t g_t phi(k_t) "
        "[B,H,dk] with normalize).");

  m.def("linear_attention_encode_backward",
        [](const py::object& k_, const py::object& v_, const py::object& dstate_, const py::object& dnormalizer_,
           const py::object& gates_, const py::object& lengths, const std::string& feature_map) {
          const char* op = "linattn.linear_attention_encode_backward";
          const auto k = input<4>(k_, op, "k"), v = input<4>(v_, op, "v"), dstate = input<4>(dstate_, op, "dstate");
          const auto dz = optional_input<3>(dnormalizer_, op, "dnormalizer");
          const auto gates = optional_input<3>(gates_, op, "gates");
          const auto len = index_input(lengths, op, "lengths");
          Output<4> dk(k.view.shape), dv(v.view.shape);
          std::optional<Output<3>> dg;
          if (gates.present()) dg.emplace(gates.view.shape);
          run([&] {
            linear_attention_encode_backward(k.view, v.view, dstate.view, dk.view, dv.view,
                                             {.feature_map = feature_map_arg(feature_map, op)}, dz.view, len.span(),
                                             gates.view, dg ? dg->view : View3{});
          });
          return py::make_tuple(dk.array, dv.array, dg ? py::object(dg->array) : py::object(py::none()));
        },
        py::arg("k"), py::arg("v"), py::arg("dstate"), py::kw_only(), py::arg("dnormalizer") = py::none(),
        py::arg("gates") = py::none(), py::arg("lengths") = py::none(), py::arg("feature_map") = "identity",
        "Gradients (dk, dv, dgates or None) of linear_attention_encode given dstate [B,H,dk,dv] (and dnormalizer).");

  m.def("linear_attention_lookup",
        [](const py::object& q_, const py::object& state_, const py::object& normalizer_, const py::object& counts,
           const py::object& q_lengths, const std::string& feature_map, bool normalize, float eps, bool mean,
           float scale) {
          const char* op = "linattn.linear_attention_lookup";
          const auto q = input<4>(q_, op, "q"), state = input<4>(state_, op, "state");
          same_batch_heads(op, "q", q, "state", state);
          const auto z = optional_input<3>(normalizer_, op, "normalizer");
          const auto n = index_input(counts, op, "counts"), ql = index_input(q_lengths, op, "q_lengths");
          Output<4> out({q.size(0), q.size(1), q.size(2), state.size(3)});
          const LinearLookupOptions o{.feature_map = feature_map_arg(feature_map, op), .normalize = normalize,
                                      .eps = eps, .mean = mean, .scale = scale};
          run([&] { linear_attention_lookup(q.view, state.view, out.view, o, z.view, n.span(), ql.span()); });
          return out.array;
        },
        py::arg("q"), py::arg("state"), py::kw_only(), py::arg("normalizer") = py::none(), py::arg("counts") = py::none(),
        py::arg("q_lengths") = py::none(), py::arg("feature_map") = "identity", py::arg("normalize") = false,
        py::arg_v("eps", 1e-6f, "1e-06"), py::arg("mean") = false, py::arg("scale") = 1.f,
        "out = scale * M^T phi(q) [/ n_b with mean] [/ (z . phi(q) + eps) with normalize]: O(dk dv) per query, "
        "whatever the sequence length.\nq [B,H,Tq,dk], state [B,H,dk,dv], normalizer [B,H,dk], counts [B] "
        "(tokens per memory, for mean) -> [B,H,Tq,dv].");

  m.def("linear_attention_lookup_backward",
        [](const py::object& q_, const py::object& state_, const py::object& dout_, const py::object& normalizer_,
           const py::object& counts, const py::object& q_lengths, const std::string& feature_map, bool normalize,
           float eps, bool mean, float scale) {
          const char* op = "linattn.linear_attention_lookup_backward";
          const auto q = input<4>(q_, op, "q"), state = input<4>(state_, op, "state"), dout = input<4>(dout_, op, "dout");
          const auto z = optional_input<3>(normalizer_, op, "normalizer");
          const auto n = index_input(counts, op, "counts"), ql = index_input(q_lengths, op, "q_lengths");
          Output<4> dq(q.view.shape), dstate(state.view.shape);
          std::optional<Output<3>> dz;
          if (z.present()) dz.emplace(z.view.shape);
          const LinearLookupOptions o{.feature_map = feature_map_arg(feature_map, op), .normalize = normalize,
                                      .eps = eps, .mean = mean, .scale = scale};
          run([&] {
            linear_attention_lookup_backward(q.view, state.view, dout.view, dq.view, dstate.view, o, z.view,
                                             dz ? dz->view : View3{}, n.span(), ql.span());
          });
          return py::make_tuple(dq.array, dstate.array, dz ? py::object(dz->array) : py::object(py::none()));
        },
        py::arg("q"), py::arg("state"), py::arg("dout"), py::kw_only(), py::arg("normalizer") = py::none(),
        py::arg("counts") = py::none(), py::arg("q_lengths") = py::none(), py::arg("feature_map") = "identity",
        py::arg("normalize") = false, py::arg_v("eps", 1e-6f, "1e-06"), py::arg("mean") = false, py::arg("scale") = 1.f,
        "Gradients (dq, dstate, dnormalizer or None) of linear_attention_lookup.");
}

void bind_gates(py::module_& m) {
  m.def("scalar_gate",
        [](const py::object& h_, const py::object& w_, float b) {
          const char* op = "linattn.scalar_gate";
          const auto h = input<2>(h_, op, "h");
          const auto w = input<1>(w_, op, "w");
          Output<1> g({h.size(0)});
          run([&] { scalar_gate(h.view, w.view, b, g.view); });
          return g.array;
        },
        py::arg("h"), py::arg("w"), py::arg("b"), "g_n = sigmoid(w . h_n + b): h [N,d], w [d] -> g [N].");
  m.def("scalar_gate_backward",
        [](const py::object& h_, const py::object& w_, const py::object& g_, const py::object& dg_) {
          const char* op = "linattn.scalar_gate_backward";
          const auto h = input<2>(h_, op, "h");
          const auto w = input<1>(w_, op, "w");
          const auto g = input<1>(g_, op, "g"), dg = input<1>(dg_, op, "dg");
          Output<2> dh(h.view.shape);
          Output<1> dw(w.view.shape);
          float db = 0;
          run([&] { scalar_gate_backward(h.view, w.view, g.view, dg.view, dh.view, dw.view, &db); });
          return py::make_tuple(dh.array, dw.array, db);
        },
        py::arg("h"), py::arg("w"), py::arg("g"), py::arg("dg"), "Gradients (dh, dw, db) of scalar_gate given its g.");
  m.def("vector_gate",
        [](const py::object& h_, const py::object& w_, const py::object& b_, bool return_gate) -> py::object {
          const char* op = "linattn.vector_gate";
          const auto h = input<2>(h_, op, "h"), w = input<2>(w_, op, "w");
          const auto b = input<1>(b_, op, "b");
          Output<2> out(h.view.shape), gate(h.view.shape);
          run([&] { vector_gate(h.view, w.view, b.view, out.view, gate.view); });
          if (return_gate) return py::make_tuple(out.array, gate.array);
          return out.array;
        },
        py::arg("h"), py::arg("w"), py::arg("b"), py::kw_only(), py::arg("return_gate") = false,
        "sigmoid(W h_n + b) (*) h_n: h [N,d], W [d,d], b [d] -> [N,d] (and the gate [N,d] with return_gate).");
  m.def("vector_gate_backward",
        [](const py::object& h_, const py::object& w_, const py::object& gate_, const py::object& dout_) {
          const char* op = "linattn.vector_gate_backward";
          const auto h = input<2>(h_, op, "h"), w = input<2>(w_, op, "w");
          const auto gate = input<2>(gate_, op, "gate"), dout = input<2>(dout_, op, "dout");
          Output<2> dh(h.view.shape), dw(w.view.shape);
          Output<1> db({w.size(0)});
          run([&] { vector_gate_backward(h.view, w.view, gate.view, dout.view, dh.view, dw.view, db.view); });
          return py::make_tuple(dh.array, dw.array, db.array);
        },
        py::arg("h"), py::arg("w"), py::arg("gate"), py::arg("dout"),
        "Gradients (dh, dW, db) of vector_gate given the gate it returned.");
}

CausalLinearAttentionOptions causal_options(const std::string& feature_map, bool normalize, float eps,
                                            int64_t chunk_size, const std::string& algorithm, const char* op) {
  return {.feature_map = feature_map_arg(feature_map, op), .normalize = normalize, .eps = eps,
          .chunk_size = chunk_size, .algorithm = algorithm_arg(algorithm, op)};
}

void bind_causal(py::module_& m) {
  m.def("retnet_decays", &retnet_decays, py::arg("heads"), "RetNet's fixed per-head decays, gamma_h = 1 - 2^(-5-h).");
  m.def(
      "causal_automatic_choice",
      [](int64_t dk, int64_t dv, const std::string& decay, bool gated, const std::string& feature_map, bool normalize,
         int64_t chunk_size, bool backward) {
        const char* op = "linattn.causal_automatic_choice";
        const DecayKind kind = decay_kind_arg(decay, op);
        const CausalLinearAttentionOptions o{.feature_map = feature_map_arg(feature_map, op), .normalize = normalize,
                                             .chunk_size = chunk_size};
        CausalAutomaticChoice c;
        {
          py::gil_scoped_release nogil;  // a first use measures (5 ms to 1 s)
          c = causal_automatic_choice(dk, dv, kind, gated, o, backward);
        }
        // INT64_MAX ("any length", "never") reads as None.
        auto limit = [](int64_t v) {
          return v == std::numeric_limits<int64_t>::max() ? py::object(py::none()) : py::object(py::int_(v));
        };
        py::dict d;
        d["max_recurrent_length"] = limit(c.max_recurrent_length);
        d["measured"] = c.measured;
        d["recurrent_ns_per_token"] = c.recurrent_ns_per_token;
        d["chunked_ns_per_token"] = c.chunked_ns_per_token;
        d["measured_at_length"] = c.measured_at_length;
        d["measured_heads"] = c.measured_heads;
        d["recurrent_from_bytes"] = limit(c.recurrent_from_bytes);
        d["last_probe_heads"] = c.last_probe_heads;
        d["last_recurrent_ns_per_token"] = c.last_recurrent_ns_per_token;
        d["last_chunked_ns_per_token"] = c.last_chunked_ns_per_token;
        return d;
      },
      py::arg("dk"), py::arg("dv"), py::kw_only(), py::arg("decay") = "none", py::arg("gated") = false,
      py::arg("feature_map") = "identity", py::arg("normalize") = false, py::arg("chunk_size") = kCausalChunkSize,
      py::arg("backward") = false,
      R"(What algorithm="automatic" does for this kind of sequence on this machine.

Returns a dict: max_recurrent_length (sequences up to it run token by token, longer ones in
chunks; None: every length token by token), recurrent_from_bytes (calls whose working set,
causal_working_set_bytes, is at least this run token by token at any length; None: never),
measured (False with LINATTN_CAUSAL_CALIBRATION=off), the two algorithms' nanoseconds per token
on measured_heads sequences of measured_at_length, and the same on the last probe of the ladder
of working sets (last_probe_heads sequences). The first call for a kind times both algorithms
(5 ms to 1 s); later calls return the kept answer.)");

  m.def(
      "causal_working_set_bytes",
      [](int64_t B, int64_t H, int64_t T, int64_t dk, int64_t dv, const std::string& decay, bool gated, bool backward) {
        const char* op = "linattn.causal_working_set_bytes";
        const DecayKind kind = decay_kind_arg(decay, op);
        if (B < 0 || H < 0 || T < 0 || dk < 1 || dv < 1)
          throw ArgumentError(op, "B, H, T, dk, dv", "sizes must be >= 0 and widths >= 1");
        return causal_working_set_bytes(B, H, T, dk, dv, kind, gated, backward);
      },
      py::arg("B"), py::arg("H"), py::arg("T"), py::arg("dk"), py::arg("dv"), py::kw_only(), py::arg("decay") = "none",
      py::arg("gated") = false, py::arg("backward") = false,
      R"(The bytes a causal call of B x H sequences of T tokens streams (inputs, outputs and, backward,
the gradients): what algorithm="automatic" compares with recurrent_from_bytes.)");

  m.def("causal_linear_attention",
        [](const py::object& q_, const py::object& k_, const py::object& v_, const py::object& decay_,
           const py::object& gates_, const py::object& lengths, const py::object& initial_state_,
           const py::object& initial_normalizer_, const std::string& feature_map, bool normalize, float eps,
           int64_t chunk_size, const std::string& algorithm, bool return_state, bool return_chunk_states) -> py::object {
          const char* op = "linattn.causal_linear_attention";
          const auto q = input<4>(q_, op, "q"), k = input<4>(k_, op, "k"), v = input<4>(v_, op, "v");
          same_batch_heads(op, "q", q, "v", v);
          const auto decay = decay_arg(decay_, op);
          const auto gates = optional_input<3>(gates_, op, "gates");
          const auto len = index_input(lengths, op, "lengths");
          const auto s0 = optional_input<4>(initial_state_, op, "initial_state");
          const auto z0 = optional_input<3>(initial_normalizer_, op, "initial_normalizer");
          const auto o = causal_options(feature_map, normalize, eps, chunk_size, algorithm, op);
          Output<4> out({q.size(0), q.size(1), q.size(2), v.size(3)});
          std::optional<Output<4>> state, chunks;
          std::optional<Output<3>> z;
          if (return_state) state.emplace(std::array<int64_t, 4>{q.size(0), q.size(1), q.size(3), v.size(3)});
          if (return_state && normalize) z.emplace(std::array<int64_t, 3>{q.size(0), q.size(1), q.size(3)});
          if (return_chunk_states) {
            if (chunk_size < 1) throw ArgumentError(op, "chunk_size", "must be >= 1, got " + std::to_string(chunk_size));
            chunks.emplace(causal_chunk_states_shape(q.view, v.view, o));
          }
          run([&] {
            causal_linear_attention(q.view, k.view, v.view, out.view, decay.decay, o,
                                    {.lengths = len.span(), .gates = gates.view, .initial_state = s0.view,
                                     .initial_normalizer = z0.view},
                                    {.final_state = state ? state->view : View4{}, .final_normalizer = z ? z->view : View3{},
                                     .chunk_states = chunks ? chunks->view : View4{}});
          });
          if (!return_state && !return_chunk_states) return out.array;
          py::object s = state ? py::object(state->array) : py::object(py::none());
          py::object zz = z ? py::object(z->array) : py::object(py::none());
          py::object c = chunks ? py::object(chunks->array) : py::object(py::none());
          return py::module_::import("linattn._results").attr("CausalResult")(out.array, s, zz, c);
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("decay") = py::none(),
        py::arg("gates") = py::none(), py::arg("lengths") = py::none(), py::arg("initial_state") = py::none(),
        py::arg("initial_normalizer") = py::none(), py::arg("feature_map") = "identity", py::arg("normalize") = false,
        py::arg_v("eps", 1e-6f, "1e-06"), py::arg("chunk_size") = kCausalChunkSize, py::arg("algorithm") = "automatic",
        py::arg("return_state") = false, py::arg("return_chunk_states") = false,
        R"(Causal linear attention with decay: o_t = M_t^T phi(q_t), M_t = gamma_t (*) M_(t-1) + g_t phi(k_t) v_t^T.

q, k [B,H,T,dk], v [B,H,T,dv] -> out [B,H,T,dv].
decay: None; [H] fixed gammas in (0, 1] (RetNet, see retnet_decays); [B,H,T] log gammas <= 0 per
step (Mamba-2-like); [B,H,T,dk] log gammas per key channel (GLA).
gates [B,H,T]: g_t. lengths [B]: positions past them are padding (outputs 0).
initial_state [B,H,dk,dv] (and initial_normalizer [B,H,dk]): the state before position 0, so a
long sequence can run in pieces. normalize: o_t / (z_t . phi(q_t) + eps).
algorithm: "automatic" (token by token for short sequences, chunks of chunk_size otherwise),
"chunked" or "recurrent".
With return_state or return_chunk_states, returns a CausalResult (out, final_state,
final_normalizer, chunk_states); chunk_states can be passed to the backward so that it need not
recompute them.)");

  m.def("causal_linear_attention_backward",
        [](const py::object& q_, const py::object& k_, const py::object& v_, const py::object& dout_,
           const py::object& decay_, const py::object& gates_, const py::object& lengths,
           const py::object& initial_state_, const py::object& initial_normalizer_, const py::object& dfinal_state_,
           const py::object& dfinal_normalizer_, const py::object& chunk_states_, const std::string& feature_map,
           bool normalize, float eps, int64_t chunk_size, const std::string& algorithm, bool initial_state_grad) {
          const char* op = "linattn.causal_linear_attention_backward";
          const auto q = input<4>(q_, op, "q"), k = input<4>(k_, op, "k"), v = input<4>(v_, op, "v");
          const auto dout = input<4>(dout_, op, "dout");
          const auto decay = decay_arg(decay_, op);
          const auto gates = optional_input<3>(gates_, op, "gates");
          const auto len = index_input(lengths, op, "lengths");
          const auto s0 = optional_input<4>(initial_state_, op, "initial_state");
          const auto z0 = optional_input<3>(initial_normalizer_, op, "initial_normalizer");
          const auto ds = optional_input<4>(dfinal_state_, op, "dfinal_state");
          const auto dz = optional_input<3>(dfinal_normalizer_, op, "dfinal_normalizer");
          const auto chunks = optional_input<4>(chunk_states_, op, "chunk_states");
          const auto o = causal_options(feature_map, normalize, eps, chunk_size, algorithm, op);
          Output<4> dq(q.view.shape), dk(k.view.shape), dv(v.view.shape);
          std::optional<Output<3>> dgates, dstep, dz0;
          std::optional<Output<4>> dchannel, ds0;
          CausalLinearAttentionGrads g{dq.view, dk.view, dv.view};
          if (gates.present()) g.dgates = dgates.emplace(gates.view.shape).view;
          if (decay.decay.kind == DecayKind::per_step) g.dper_step = dstep.emplace(decay.per_step.view.shape).view;
          if (decay.decay.kind == DecayKind::per_channel)
            g.dper_channel = dchannel.emplace(decay.per_channel.view.shape).view;
          if (initial_state_grad) {
            g.dinitial_state = ds0.emplace(std::array<int64_t, 4>{q.size(0), q.size(1), q.size(3), v.size(3)}).view;
            if (normalize) g.dinitial_normalizer = dz0.emplace(std::array<int64_t, 3>{q.size(0), q.size(1), q.size(3)}).view;
          }
          run([&] {
            causal_linear_attention_backward(
                q.view, k.view, v.view, dout.view, g, decay.decay, o,
                {.lengths = len.span(), .gates = gates.view, .initial_state = s0.view, .initial_normalizer = z0.view},
                {.dfinal_state = ds.view, .dfinal_normalizer = dz.view, .chunk_states = chunks.view});
          });
          auto opt = [](const auto& grad) { return grad ? py::object(grad->array) : py::object(py::none()); };
          py::object ddecay = dstep ? opt(dstep) : opt(dchannel);
          return py::module_::import("linattn._results")
              .attr("CausalGrads")(dq.array, dk.array, dv.array, opt(dgates), ddecay, opt(ds0), opt(dz0));
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("dout"), py::kw_only(), py::arg("decay") = py::none(),
        py::arg("gates") = py::none(), py::arg("lengths") = py::none(), py::arg("initial_state") = py::none(),
        py::arg("initial_normalizer") = py::none(), py::arg("dfinal_state") = py::none(),
        py::arg("dfinal_normalizer") = py::none(), py::arg("chunk_states") = py::none(),
        py::arg("feature_map") = "identity", py::arg("normalize") = false, py::arg_v("eps", 1e-6f, "1e-06"),
        py::arg("chunk_size") = kCausalChunkSize, py::arg("algorithm") = "automatic",
        py::arg("initial_state_grad") = false,
        "Gradients of causal_linear_attention given dout [B,H,T,dv] (and dfinal_state, dfinal_normalizer): a "
        "CausalGrads (dq, dk, dv, dgates, ddecay, dinitial_state, dinitial_normalizer), None where not asked. "
        "A fixed per-head decay gets no gradient; initial_state_grad asks for dinitial_state.");

  m.def("causal_linear_attention_step",
        [](const py::object& q_, const py::object& k_, const py::object& v_, const py::object& state_,
           const py::object& decay_, const py::object& gates_, const py::object& normalizer_,
           const std::string& feature_map, bool normalize, float eps) {
          const char* op = "linattn.causal_linear_attention_step";
          const auto q = input<3>(q_, op, "q"), k = input<3>(k_, op, "k"), v = input<3>(v_, op, "v");
          FloatArray keep_state, keep_z;
          const View4 state = inout_view<4>(state_, op, "state", keep_state);
          const View3 z = normalizer_.is_none() ? View3{} : inout_view<3>(normalizer_, op, "normalizer", keep_z);
          const auto decay = decay_arg(decay_, op);
          const auto gates = optional_input<3>(gates_, op, "gates");
          Output<3> out({q.size(0), q.size(1), v.size(2)});
          const CausalLinearAttentionOptions o{.feature_map = feature_map_arg(feature_map, op), .normalize = normalize,
                                               .eps = eps};
          run([&] { causal_linear_attention_step(q.view, k.view, v.view, state, out.view, decay.decay, o, gates.view, z); });
          return out.array;
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("state"), py::kw_only(), py::arg("decay") = py::none(),
        py::arg("gates") = py::none(), py::arg("normalizer") = py::none(), py::arg("feature_map") = "identity",
        py::arg("normalize") = false, py::arg_v("eps", 1e-6f, "1e-06"),
        "One token per sequence, for generation: q, k [B,H,dk], v [B,H,dv] -> out [B,H,dv]; state [B,H,dk,dv] "
        "(and normalizer [B,H,dk]) are updated in place, so they must be C-contiguous float32 arrays. decay for "
        "this step: [H] gammas, [B,H,1] or [B,H,1,dk] log gammas; gates [B,H,1].");
}

// q, k, v (and dout for a backward) as inputs of one batch and head count, and the lengths.
struct QkvInputs {
  Input<4> q, k, v, dout;
  IndexInput lengths;
};
QkvInputs qkv_inputs(const char* op, const py::object& q, const py::object& k, const py::object& v,
                     const py::object& dout, const py::object& lengths) {
  QkvInputs in{input<4>(q, op, "q"), input<4>(k, op, "k"), input<4>(v, op, "v"), optional_input<4>(dout, op, "dout"),
               index_input(lengths, op, "lengths")};
  same_batch_heads(op, "k", in.k, "q", in.q);
  same_batch_heads(op, "k", in.k, "v", in.v);
  return in;
}

// An attention backward's (dq, dk, dv), shaped as q, k, v.
template <class F>
py::tuple qkv_backward(const QkvInputs& in, F&& backward) {
  Output<4> dq(in.q.view.shape), dk(in.k.view.shape), dv(in.v.view.shape);
  run([&] { backward(dq.view, dk.view, dv.view); });
  return py::make_tuple(dq.array, dk.array, dv.array);
}

// The relatives: Galerkin attention and the content lambda, forward and backward.
void bind_relatives(py::module_& m) {
  m.def("galerkin_attention",
        [](const py::object& q_, const py::object& k_, const py::object& v_, const py::object& lengths, float eps) {
          const QkvInputs in = qkv_inputs("linattn.galerkin_attention", q_, k_, v_, py::none(), lengths);
          Output<4> out({in.q.size(0), in.q.size(1), in.q.size(2), in.v.size(3)});
          run([&] { galerkin_attention(in.q.view, in.k.view, in.v.view, out.view, in.lengths.span(), eps); });
          return out.array;
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("lengths") = py::none(),
        py::arg_v("eps", kGalerkinEps, "1e-05"),
        "Galerkin attention: q (LN(K)^T LN(V)) / n, keys and values layer-normalised row by row.\n"
        "q [B,H,Tq,dk], k [B,H,T,dk], v [B,H,T,dv] -> [B,H,Tq,dv].");
  m.def("galerkin_attention_backward",
        [](const py::object& q, const py::object& k, const py::object& v, const py::object& dout,
           const py::object& lengths, float eps) {
          const QkvInputs in = qkv_inputs("linattn.galerkin_attention_backward", q, k, v, dout, lengths);
          return qkv_backward(in, [&](View4 dq, View4 dk, View4 dv) {
            galerkin_attention_backward(in.q.view, in.k.view, in.v.view, in.dout.view, dq, dk, dv, in.lengths.span(), eps);
          });
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("dout"), py::kw_only(), py::arg("lengths") = py::none(),
        py::arg_v("eps", kGalerkinEps, "1e-05"), "(dq, dk, dv) of galerkin_attention given dout.");
  m.def("content_lambda_attention",
        [](const py::object& q_, const py::object& k_, const py::object& v_, const py::object& lengths) {
          const QkvInputs in = qkv_inputs("linattn.content_lambda_attention", q_, k_, v_, py::none(), lengths);
          Output<4> out({in.q.size(0), in.q.size(1), in.q.size(2), in.v.size(3)});
          run([&] { content_lambda_attention(in.q.view, in.k.view, in.v.view, out.view, in.lengths.span()); });
          return out.array;
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("lengths") = py::none(),
        "LambdaNetworks' content lambda: q lambda, lambda = softmax over positions of K (per channel)^T V.\n"
        "q [B,H,Tq,dk], k [B,H,T,dk], v [B,H,T,dv] -> [B,H,Tq,dv].");
  m.def("content_lambda_encode",
        [](const py::object& k_, const py::object& v_, const py::object& lengths) {
          const char* op = "linattn.content_lambda_encode";
          const auto k = input<4>(k_, op, "k"), v = input<4>(v_, op, "v");
          same_batch_heads(op, "k", k, "v", v);
          const auto len = index_input(lengths, op, "lengths");
          Output<4> lambda({k.size(0), k.size(1), k.size(3), v.size(3)});
          run([&] { content_lambda_encode(k.view, v.view, lambda.view, len.span()); });
          return lambda.array;
        },
        py::arg("k"), py::arg("v"), py::kw_only(), py::arg("lengths") = py::none(),
        "The fixed-size lambda [B,H,dk,dv] (linear_attention_lookup reads it).");
  m.def("content_lambda_attention_backward",
        [](const py::object& q, const py::object& k, const py::object& v, const py::object& dout,
           const py::object& lengths) {
          const QkvInputs in = qkv_inputs("linattn.content_lambda_attention_backward", q, k, v, dout, lengths);
          return qkv_backward(in, [&](View4 dq, View4 dk, View4 dv) {
            content_lambda_attention_backward(in.q.view, in.k.view, in.v.view, in.dout.view, dq, dk, dv, in.lengths.span());
          });
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("dout"), py::kw_only(), py::arg("lengths") = py::none(),
        "(dq, dk, dv) of content_lambda_attention given dout.");
  m.def("kslot_memory_encode",
        [](const py::object& scores_, const py::object& v_, const py::object& lengths, bool position_encoding) {
          const char* op = "linattn.kslot_memory_encode";
          const auto s = input<4>(scores_, op, "scores"), v = input<4>(v_, op, "v");
          same_batch_heads(op, "scores", s, "v", v);
          const auto len = index_input(lengths, op, "lengths");
          Output<4> memory({s.size(0), s.size(1), s.size(3), v.size(3)});
          run([&] { kslot_memory_encode(s.view, v.view, memory.view, {.position_encoding = position_encoding}, len.span()); });
          return memory.array;
        },
        py::arg("scores"), py::arg("v"), py::kw_only(), py::arg("lengths") = py::none(), py::arg("position_encoding") = false,
        "The K-slot memory C = sum_t softmax_K(scores_t) v_t^T (times the authors' position encoding when asked).\n"
        "scores [B,H,T,K], v [B,H,T,dv] -> [B,H,K,dv].");
  m.def("kslot_memory_encode_backward",
        [](const py::object& scores_, const py::object& v_, const py::object& dmemory_, const py::object& lengths,
           bool position_encoding) {
          const char* op = "linattn.kslot_memory_encode_backward";
          const auto s = input<4>(scores_, op, "scores"), v = input<4>(v_, op, "v"), dm = input<4>(dmemory_, op, "dmemory");
          same_batch_heads(op, "scores", s, "v", v);
          const auto len = index_input(lengths, op, "lengths");
          Output<4> ds(s.view.shape), dv(v.view.shape);
          run([&] {
            kslot_memory_encode_backward(s.view, v.view, dm.view, ds.view, dv.view, {.position_encoding = position_encoding},
                                         len.span());
          });
          return py::make_tuple(ds.array, dv.array);
        },
        py::arg("scores"), py::arg("v"), py::arg("dmemory"), py::kw_only(), py::arg("lengths") = py::none(),
        py::arg("position_encoding") = false, "(dscores, dv) of kslot_memory_encode given dmemory.");
  m.def("kslot_memory_lookup",
        [](const py::object& u_, const py::object& memory_) {
          const char* op = "linattn.kslot_memory_lookup";
          const auto u = input<4>(u_, op, "query_scores"), memory = input<4>(memory_, op, "memory");
          Output<4> out({u.size(0), u.size(1), u.size(2), memory.size(3)});
          run([&] { kslot_memory_lookup(u.view, memory.view, out.view); });
          return out.array;
        },
        py::arg("query_scores"), py::arg("memory"),
        "out = softmax_K(query_scores)^T memory: query_scores [B,H,Tq,K], memory [B,H,K,dv] -> [B,H,Tq,dv].");
  m.def("kslot_memory_lookup_backward",
        [](const py::object& u_, const py::object& memory_, const py::object& dout_) {
          const char* op = "linattn.kslot_memory_lookup_backward";
          const auto u = input<4>(u_, op, "query_scores"), memory = input<4>(memory_, op, "memory");
          const auto dout = input<4>(dout_, op, "dout");
          Output<4> du(u.view.shape), dm(memory.view.shape);
          run([&] { kslot_memory_lookup_backward(u.view, memory.view, dout.view, du.view, dm.view); });
          return py::make_tuple(du.array, dm.array);
        },
        py::arg("query_scores"), py::arg("memory"), py::arg("dout"),
        "(dquery_scores, dmemory) of kslot_memory_lookup given dout.");
}

}  // namespace

void bind_operators(py::module_& m) {
  bind_softmax(m);
  bind_linear(m);
  bind_gates(m);
  bind_causal(m);
  bind_relatives(m);
}

}  // namespace linattn::python
