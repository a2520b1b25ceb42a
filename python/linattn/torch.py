"""linattn for PyTorch: autograd functions and torch.nn modules whose forward and backward run
linattn's kernels.

Tensors are float32 on the CPU (anything else raises TypeError naming the argument); they reach
the kernels without a copy when contiguous, and results come back as tensors sharing the
kernels' output buffers. Lengths are int64 tensors [B] (None: every position is valid).
Shapes follow the operators: [batch B, heads H, positions T, features d].

Functions: softmax_attention, additive_attention, linear_attention_encode,
linear_attention_lookup, scalar_gate, vector_gate, causal_linear_attention.
Modules (the paper's reader takes h [B, T, d], a question q [B, dq] and lengths [B] and returns
r [B, d]): SoftmaxAttention, LinearAttention, GatedLinearAttention, NoAttention; and
CausalLinearAttention, a causal layer x [B, T, D] -> [B, T, D] with a decay.
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F

from . import _linattn as _core

__all__ = [
    "softmax_attention", "additive_attention", "linear_attention_encode", "linear_attention_lookup",
    "scalar_gate", "vector_gate", "causal_linear_attention", "SoftmaxAttention", "LinearAttention",
    "GatedLinearAttention", "NoAttention", "CausalLinearAttention",
]


def _checked(t: torch.Tensor, op: str, name: str) -> torch.Tensor:
    """t detached and contiguous (a copy only when it is not), after checking it is float32 on the CPU."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: argument '{name}': expected a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise TypeError(f"{op}: argument '{name}': must be on the CPU, got {t.device}")
    if t.dtype != torch.float32:
        raise TypeError(f"{op}: argument '{name}': must be float32, got {t.dtype}")
    return t.detach().contiguous()


def _lengths(t: Optional[torch.Tensor], op: str, name: str = "lengths") -> Optional[torch.Tensor]:
    if t is None:
        return None
    if not isinstance(t, torch.Tensor) or t.dtype != torch.int64 or t.dim() != 1 or t.device.type != "cpu":
        raise TypeError(f"{op}: argument '{name}': expected a 1-D int64 CPU tensor")
    return t.contiguous()


def _np(t: Optional[torch.Tensor]):
    """The NumPy array over a tensor's memory (no copy), or None."""
    return None if t is None else t.numpy()


def _tensor(a):
    """A tensor over a NumPy array's memory (no copy), or None."""
    return None if a is None else torch.from_numpy(a)


# Each function keeps its inputs with ctx.save_for_backward, so that PyTorch reports an input
# changed in place between the forward and the backward instead of a wrong gradient.

class _SoftmaxAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, kv_lengths, causal, scale):
        op = "linattn.torch.softmax_attention"
        q, k, v = _checked(q, op, "q"), _checked(k, op, "k"), _checked(v, op, "v")
        lens = _lengths(kv_lengths, op, "kv_lengths")
        out, lse = _core.softmax_attention(q.numpy(), k.numpy(), v.numpy(), causal=causal, scale=scale,
                                           kv_lengths=_np(lens), return_lse=True)
        out, lse = torch.from_numpy(out), torch.from_numpy(lse)
        ctx.save_for_backward(q, k, v, out, lse, lens)
        ctx.causal, ctx.scale = causal, scale
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse, lens = ctx.saved_tensors
        dq, dk, dv = _core.softmax_attention_backward(
            q.numpy(), k.numpy(), v.numpy(), out.numpy(), lse.numpy(), _checked(dout, "backward", "grad").numpy(),
            causal=ctx.causal, scale=ctx.scale, kv_lengths=_np(lens))
        return torch.from_numpy(dq), torch.from_numpy(dk), torch.from_numpy(dv), None, None, None


def softmax_attention(q, k, v, kv_lengths=None, causal=False, scale=None):
    """softmax(scale q.k) v over the valid keys; scale defaults to 1/sqrt(dk).

    q [B,H,Tq,d], k [B,H,Tk,d], v [B,H,Tk,dv] -> [B,H,Tq,dv]; kv_lengths [B] int64.
    """
    return _SoftmaxAttention.apply(q, k, v, kv_lengths, causal, scale)


_ADDITIVE_NAMES = ("q", "k", "v", "w_k", "w_q", "bias", "w")


class _AdditiveAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, w_k, w_q, bias, w, kv_lengths):
        op = "linattn.torch.additive_attention"
        inputs = [_checked(t, op, n) for t, n in zip((q, k, v, w_k, w_q, bias, w), _ADDITIVE_NAMES)]
        lens = _lengths(kv_lengths, op, "kv_lengths")
        out, lse = _core.additive_attention(*(t.numpy() for t in inputs), kv_lengths=_np(lens), return_lse=True)
        out, lse = torch.from_numpy(out), torch.from_numpy(lse)
        ctx.save_for_backward(*inputs, out, lse, lens)
        return out

    @staticmethod
    def backward(ctx, dout):
        *inputs, out, lse, lens = ctx.saved_tensors
        grads = _core.additive_attention_backward(*(t.numpy() for t in inputs), out.numpy(), lse.numpy(),
                                                  _checked(dout, "backward", "grad").numpy(), kv_lengths=_np(lens))
        return (*map(torch.from_numpy, grads), None)


def additive_attention(q, k, v, w_k, w_q, bias, w, kv_lengths=None):
    """softmax(w . tanh(W_k k + W_q q + bias)) v: the authors' additive scorer.

    q [B,H,Tq,dq], k [B,H,Tk,dk], v [B,H,Tk,dv]; w_k [A,dk], w_q [A,dq], bias [A], w [A].
    """
    return _AdditiveAttention.apply(q, k, v, w_k, w_q, bias, w, kv_lengths)


class _LinearEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, k, v, gates, lengths, feature_map):
        op = "linattn.torch.linear_attention_encode"
        k, v = _checked(k, op, "k"), _checked(v, op, "v")
        gates = None if gates is None else _checked(gates, op, "gates")
        lens = _lengths(lengths, op)
        ctx.save_for_backward(k, v, gates, lens)
        ctx.phi = feature_map
        return torch.from_numpy(_core.linear_attention_encode(k.numpy(), v.numpy(), gates=_np(gates), lengths=_np(lens),
                                                              feature_map=feature_map))

    @staticmethod
    def backward(ctx, dstate):
        k, v, gates, lens = ctx.saved_tensors
        dk, dv, dg = _core.linear_attention_encode_backward(
            k.numpy(), v.numpy(), _checked(dstate, "backward", "grad").numpy(), gates=_np(gates), lengths=_np(lens),
            feature_map=ctx.phi)
        return torch.from_numpy(dk), torch.from_numpy(dv), _tensor(dg), None, None


def linear_attention_encode(k, v, gates=None, lengths=None, feature_map="identity"):
    """M = sum_t g_t phi(k_t) v_t^T over the valid t: k [B,H,T,dk], v [B,H,T,dv], gates [B,H,T] -> [B,H,dk,dv]."""
    return _LinearEncode.apply(k, v, gates, lengths, feature_map)


class _LinearLookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, state, counts, scale, feature_map):
        op = "linattn.torch.linear_attention_lookup"
        q, state = _checked(q, op, "q"), _checked(state, op, "state")
        n = _lengths(counts, op, "counts")
        ctx.save_for_backward(q, state, n)
        ctx.options = dict(mean=n is not None, scale=scale, feature_map=feature_map)
        return torch.from_numpy(_core.linear_attention_lookup(q.numpy(), state.numpy(), counts=_np(n), **ctx.options))

    @staticmethod
    def backward(ctx, dout):
        q, state, n = ctx.saved_tensors
        dq, ds, _ = _core.linear_attention_lookup_backward(
            q.numpy(), state.numpy(), _checked(dout, "backward", "grad").numpy(), counts=_np(n), **ctx.options)
        return torch.from_numpy(dq), torch.from_numpy(ds), None, None, None


def linear_attention_lookup(q, state, counts=None, scale=1.0, feature_map="identity"):
    """scale * M^T phi(q) [/ n_b when counts is given]: q [B,H,Tq,dk], state [B,H,dk,dv] -> [B,H,Tq,dv]."""
    return _LinearLookup.apply(q, state, counts, scale, feature_map)


class _ScalarGate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, w, b):
        op = "linattn.torch.scalar_gate"
        h, w, b = _checked(h, op, "h"), _checked(w, op, "w"), _checked(b, op, "b")
        if b.numel() != 1:
            raise _core.ArgumentError(f"{op}: argument 'b': the scalar gate's bias has one element, got {b.numel()}")
        g = torch.from_numpy(_core.scalar_gate(h.numpy(), w.numpy(), float(b.reshape(()))))
        ctx.save_for_backward(h, w, g)
        ctx.bias_shape = b.shape
        return g

    @staticmethod
    def backward(ctx, dg):
        h, w, g = ctx.saved_tensors
        dh, dw, db = _core.scalar_gate_backward(h.numpy(), w.numpy(), g.numpy(), _checked(dg, "backward", "grad").numpy())
        return torch.from_numpy(dh), torch.from_numpy(dw), torch.full(ctx.bias_shape, db)


def scalar_gate(h, w, b):
    """sigmoid(h w + b): h [N,d], w [d], b [1] -> [N]."""
    return _ScalarGate.apply(h, w, b)


class _VectorGate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, w, b):
        op = "linattn.torch.vector_gate"
        h, w, b = _checked(h, op, "h"), _checked(w, op, "w"), _checked(b, op, "b")
        out, gate = _core.vector_gate(h.numpy(), w.numpy(), b.numpy(), return_gate=True)
        ctx.save_for_backward(h, w, torch.from_numpy(gate))
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, dout):
        h, w, gate = ctx.saved_tensors
        dh, dw, db = _core.vector_gate_backward(h.numpy(), w.numpy(), gate.numpy(),
                                                _checked(dout, "backward", "grad").numpy())
        return torch.from_numpy(dh), torch.from_numpy(dw), torch.from_numpy(db)


def vector_gate(h, w, b):
    """sigmoid(h W^T + b) * h: h [N,d], W [d,d], b [d] -> [N,d]."""
    return _VectorGate.apply(h, w, b)


class _Causal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, decay, gates, lengths, initial_state, options, save_states):
        op = "linattn.torch.causal_linear_attention"
        q, k, v = _checked(q, op, "q"), _checked(k, op, "k"), _checked(v, op, "v")
        decay = None if decay is None else _checked(decay, op, "decay")
        gates = None if gates is None else _checked(gates, op, "gates")
        s0 = None if initial_state is None else _checked(initial_state, op, "initial_state")
        lens = _lengths(lengths, op)
        # The chunk-start states are kept only when a backward will follow: (T / L + 1) dk dv
        # numbers per head, against T dk for each input, and the backward need not recompute them.
        r = _core.causal_linear_attention(q.numpy(), k.numpy(), v.numpy(), decay=_np(decay), gates=_np(gates),
                                          lengths=_np(lens), initial_state=_np(s0), return_state=True,
                                          return_chunk_states=save_states, **options)
        ctx.save_for_backward(q, k, v, decay, gates, lens, s0, _tensor(r.chunk_states))
        ctx.options = options
        return torch.from_numpy(r.out), torch.from_numpy(r.final_state)

    @staticmethod
    def backward(ctx, dout, dfinal):
        q, k, v, decay, gates, lens, s0, chunks = ctx.saved_tensors
        g = _core.causal_linear_attention_backward(
            q.numpy(), k.numpy(), v.numpy(), _checked(dout, "backward", "grad").numpy(), decay=_np(decay),
            gates=_np(gates), lengths=_np(lens), initial_state=_np(s0),
            dfinal_state=_checked(dfinal, "backward", "grad of the final state").numpy(), chunk_states=_np(chunks),
            initial_state_grad=s0 is not None and ctx.needs_input_grad[6], **ctx.options)
        per_head = decay is not None and decay.dim() == 1
        return (torch.from_numpy(g.dq), torch.from_numpy(g.dk), torch.from_numpy(g.dv),
                None if per_head else _tensor(g.ddecay), _tensor(g.dgates), None, _tensor(g.dinitial_state), None, None)


def causal_linear_attention(q, k, v, decay=None, gates=None, lengths=None, feature_map="identity", normalize=False,
                            chunk_size=32, initial_state=None, return_state=False):
    """Causal linear attention with decay: o_t = M_t^T phi(q_t), M_t = gamma_t (*) M_(t-1) + g_t phi(k_t) v_t^T.

    q, k [B,H,T,dk], v [B,H,T,dv] -> [B,H,T,dv] (and the final state [B,H,dk,dv] with return_state).
    decay: None; [H] fixed gammas in (0, 1] (no gradient); [B,H,T] log gammas per step; [B,H,T,dk]
    log gammas per key channel (both <= 0, both get gradients). gates [B,H,T], lengths [B] int64,
    initial_state [B,H,dk,dv] (gets a gradient). State in and out are not offered with normalize
    here (the NumPy linattn.causal_linear_attention carries the normaliser too).
    """
    if normalize and (initial_state is not None or return_state):
        raise _core.ArgumentError("linattn.torch.causal_linear_attention: argument 'normalize': the state in/out "
                                  "form carries no normaliser here; use linattn.causal_linear_attention")
    tensors = [t for t in (q, k, v, decay, gates, initial_state) if isinstance(t, torch.Tensor)]
    save = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    options = dict(feature_map=feature_map, normalize=normalize, chunk_size=chunk_size)
    out, final = _Causal.apply(q, k, v, decay, gates, lengths, initial_state, options, save)
    return (out, final) if return_state else out


# --- modules --------------------------------------------------------------------------------------------------


def _check_reader_inputs(h, q, lengths):
    if h.dim() != 3:
        raise _core.ArgumentError(f"linattn.torch: h must be [B, T, d], got {tuple(h.shape)}")
    if q.dim() != 2 or q.shape[0] != h.shape[0]:
        raise _core.ArgumentError(f"linattn.torch: q must be [B, dq] with B = {h.shape[0]}, got {tuple(q.shape)}")
    if lengths is None or lengths.dtype != torch.int64 or lengths.dim() != 1 or lengths.shape[0] != h.shape[0]:
        raise _core.ArgumentError(f"linattn.torch: lengths must be an int64 tensor [B] with B = {h.shape[0]}")


class SoftmaxAttention(torch.nn.Module):
    """r = sum_t softmax_t(score(q, h_t)) h_t: the softmax baseline, O(T) per question.

    scorer="additive": w . tanh(W_h h_t + W_q q + b) (the authors'), attention_size wide;
    scorer="dot": the scaled dot product (query_size == hidden_size).
    forward(h [B,T,d], q [B,dq], lengths [B]) -> [B,d].
    """

    def __init__(self, hidden_size: int, query_size: int, scorer: str = "additive", attention_size: int = 100):
        super().__init__()
        if scorer not in ("additive", "dot"):
            raise _core.ArgumentError(f"linattn.torch.SoftmaxAttention: argument 'scorer': 'additive' or 'dot', got {scorer!r}")
        if scorer == "dot" and hidden_size != query_size:
            raise _core.ArgumentError("linattn.torch.SoftmaxAttention: the dot scorer needs query_size == hidden_size")
        self.scorer = scorer
        if scorer == "additive":
            a_h, a_q = math.sqrt(6 / (attention_size + hidden_size)), math.sqrt(6 / (attention_size + query_size))
            self.w_h = torch.nn.Parameter(torch.empty(attention_size, hidden_size).uniform_(-a_h, a_h))
            self.w_q = torch.nn.Parameter(torch.empty(attention_size, query_size).uniform_(-a_q, a_q))
            self.bias = torch.nn.Parameter(torch.zeros(attention_size))
            self.w = torch.nn.Parameter(torch.empty(attention_size).uniform_(-math.sqrt(3 / attention_size),
                                                                             math.sqrt(3 / attention_size)))

    def forward(self, h, q, lengths):
        _check_reader_inputs(h, q, lengths)
        hh, qq = h.unsqueeze(1), q[:, None, None, :]
        if self.scorer == "additive":
            r = additive_attention(qq, hh, hh, self.w_h, self.w_q, self.bias, self.w, lengths)
        else:
            r = softmax_attention(qq, hh, hh, lengths)
        return r[:, 0, 0, :]


class LinearAttention(torch.nn.Module):
    """The paper's linear attention: C = sum_t phi(h_t) h_t^T over the valid tokens, r = scale C^T phi(q) [/ n].

    encode(h, lengths) gives the fixed-size memory C [B, d, d] before any question arrives.
    forward(h [B,T,d], q [B,d], lengths [B]) -> [B,d].
    """

    def __init__(self, scale: float = 1000.0, mean: bool = True, feature_map: str = "identity"):
        super().__init__()
        self.scale, self.mean, self.feature_map = scale, mean, feature_map

    def encode(self, h, lengths):
        hh = h.unsqueeze(1)
        return linear_attention_encode(hh, hh, None, lengths, self.feature_map)[:, 0]

    def forward(self, h, q, lengths):
        _check_reader_inputs(h, q, lengths)
        C = self.encode(h, lengths).unsqueeze(1)
        r = linear_attention_lookup(q[:, None, None, :], C, lengths if self.mean else None, self.scale, self.feature_map)
        return r[:, 0, 0, :]


class GatedLinearAttention(torch.nn.Module):
    """Gated linear attention: h~_t = g_t (*) h_t, C = sum_t h~_t h~_t^T, r = scale C q [/ n].

    gate="scalar": g_t = sigmoid(w . h_t + b); gate="vector": sigmoid(W h_t + b) element-wise.
    Initialised as the authors did: w = 0 (W = 0), b = 1, so every gate starts at 0.73.
    """

    def __init__(self, hidden_size: int, gate: str = "scalar", scale: float = 1000.0, mean: bool = True):
        super().__init__()
        if gate not in ("scalar", "vector"):
            raise _core.ArgumentError(f"linattn.torch.GatedLinearAttention: argument 'gate': 'scalar' or 'vector', got {gate!r}")
        self.gate, self.scale, self.mean = gate, scale, mean
        if gate == "scalar":
            self.w = torch.nn.Parameter(torch.zeros(hidden_size))
            self.b = torch.nn.Parameter(torch.ones(1))
        else:
            self.w = torch.nn.Parameter(torch.zeros(hidden_size, hidden_size))
            self.b = torch.nn.Parameter(torch.ones(hidden_size))

    def encode(self, h, lengths):
        B, T, d = h.shape
        flat = h.reshape(B * T, d)
        if self.gate == "scalar":
            g = scalar_gate(flat, self.w, self.b).reshape(B, 1, T)
            hh = h.unsqueeze(1)
            return linear_attention_encode(hh, hh, g * g, lengths)[:, 0]  # (g h)(g h)^T = g^2 h h^T
        gated = vector_gate(flat, self.w, self.b).reshape(B, 1, T, d)
        return linear_attention_encode(gated, gated, None, lengths)[:, 0]

    def forward(self, h, q, lengths):
        _check_reader_inputs(h, q, lengths)
        C = self.encode(h, lengths).unsqueeze(1)
        return linear_attention_lookup(q[:, None, None, :], C, lengths if self.mean else None, self.scale)[:, 0, 0, :]


class NoAttention(torch.nn.Module):
    """No attention: the last valid hidden state h[b, lengths[b] - 1] (zeros for an empty document)."""

    def forward(self, h, q, lengths):
        _check_reader_inputs(h, q, lengths)
        last = (lengths - 1).clamp_min(0)
        picked = h.gather(1, last.view(-1, 1, 1).expand(h.shape[0], 1, h.shape[2]))[:, 0]
        return picked * (lengths > 0).unsqueeze(1).to(h.dtype)


class CausalLinearAttention(torch.nn.Module):
    """A causal linear-attention layer x [B, T, D] -> [B, T, D]: q, k, v projections into `heads`
    heads of D / heads, linattn's chunked kernels, an output projection.

    decay: "none"; "per_head" (RetNet's fixed gammas 1 - 2^(-5-h)); "per_step" (Mamba-2-like) or
    "per_channel" (GLA), data-dependent log gammas = logsigmoid(W_a x + b_a) / 16 (near 1 at
    initialisation).
    """

    def __init__(self, model_size: int, heads: int, decay: str = "per_channel", feature_map: str = "identity",
                 normalize: bool = False, chunk_size: int = 32):
        super().__init__()
        if heads < 1 or model_size % heads:
            raise _core.ArgumentError("linattn.torch.CausalLinearAttention: model_size must be a multiple of heads")
        if decay not in ("none", "per_head", "per_step", "per_channel"):
            raise _core.ArgumentError(f"linattn.torch.CausalLinearAttention: argument 'decay': unknown decay {decay!r}")
        self.model_size, self.heads, self.decay_kind = model_size, heads, decay
        self.feature_map, self.normalize, self.chunk_size = feature_map, normalize, chunk_size
        D, dk = model_size, model_size // heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (torch.nn.Linear(D, D, bias=False) for _ in range(4))
        if decay == "per_step":
            self.decay_proj = torch.nn.Linear(D, heads)
        elif decay == "per_channel":
            self.decay_proj = torch.nn.Linear(D, heads * dk)
        elif decay == "per_head":
            self.register_buffer("head_gammas", torch.tensor(_core.retnet_decays(heads), dtype=torch.float32))

    def decay(self, x):
        """The decays forward() uses for x: None, [H] gammas, [B,H,T] or [B,H,T,dk] log gammas."""
        B, T, _ = x.shape
        if self.decay_kind == "none":
            return None
        if self.decay_kind == "per_head":
            return self.head_gammas
        a = F.logsigmoid(self.decay_proj(x)) / 16.0
        if self.decay_kind == "per_step":
            return a.transpose(1, 2).contiguous()
        return a.view(B, T, self.heads, -1).transpose(1, 2).contiguous()

    def forward(self, x, lengths=None):
        if x.dim() != 3 or x.shape[2] != self.model_size:
            raise _core.ArgumentError(f"linattn.torch.CausalLinearAttention: x must be [B, T, {self.model_size}], "
                                      f"got {tuple(x.shape)}")
        B, T, _ = x.shape

        def heads(y):
            return y.view(B, T, self.heads, -1).transpose(1, 2).contiguous()

        o = causal_linear_attention(heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x)), self.decay(x),
                                    None, lengths, self.feature_map, self.normalize, self.chunk_size)
        return self.out_proj(o.transpose(1, 2).reshape(B, T, self.model_size))
