"""The operators from NumPy, against the formulas written out in float64 NumPy."""
import numpy as np
import pytest

import linattn
from conftest import rows


def softmax_ref(q, k, v, scale=None, causal=False, kv_lengths=None):
    B, H, Tq, d = q.shape
    scale = 1 / np.sqrt(d) if scale is None else scale
    out = np.zeros((B, H, Tq, v.shape[-1]))
    for b in range(B):
        n = k.shape[2] if kv_lengths is None else kv_lengths[b]
        for i in range(Tq):
            m = min(n, i + 1) if causal else n
            if m == 0 or (causal and i >= n):  # causal: the lengths apply to the queries too
                continue
            s = scale * q[b, :, i, None, :].astype(np.float64) @ k[b, :, :m].transpose(0, 2, 1)  # [H, 1, m]
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            out[b, :, i] = (p @ v[b, :, :m])[:, 0]
    return out


def phi_ref(x, feature_map):
    x = x.astype(np.float64)
    return {"identity": x, "relu": np.maximum(x, 0), "elu+1": np.where(x > 0, x + 1, np.exp(x))}[feature_map]


def causal_ref(q, k, v, log_decay=None, gates=None, s0=None, normalize=False, eps=1e-6, lengths=None):
    """The recurrence token by token; log_decay broadcastable to [B, H, T, dk]."""
    B, H, T, dk = q.shape
    dv = v.shape[-1]
    out = np.zeros((B, H, T, dv))
    S = np.zeros((B, H, dk, dv)) if s0 is None else s0.astype(np.float64).copy()
    z = np.zeros((B, H, dk))
    for b in range(B):
        n = T if lengths is None else lengths[b]
        for t in range(n):
            g = 1.0 if gates is None else gates[b, :, t, None, None]
            if log_decay is not None:
                gam = np.exp(np.broadcast_to(log_decay, (B, H, T, dk))[b, :, t])  # [H, dk]
                S[b] *= gam[:, :, None]
                z[b] *= gam
            S[b] += g * k[b, :, t, :, None] * v[b, :, t, None, :]
            z[b] += (g if gates is None else gates[b, :, t, None]) * k[b, :, t]
            o = np.einsum("hk,hkv->hv", q[b, :, t], S[b])
            if normalize:
                o /= (np.einsum("hk,hk->h", q[b, :, t], z[b]) + eps)[:, None]
            out[b, :, t] = o
    return out, S, z


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_attention(rng, causal):
    q, k, v = rows(rng, 2, 3, 9, 5), rows(rng, 2, 3, 9, 5), rows(rng, 2, 3, 9, 7)
    lens = np.array([9, 4])
    out, lse = linattn.softmax_attention(q, k, v, causal=causal, kv_lengths=lens, return_lse=True)
    np.testing.assert_allclose(out, softmax_ref(q, k, v, causal=causal, kv_lengths=lens), rtol=1e-4, atol=1e-5)
    assert lse.shape == (2, 3, 9)


def test_softmax_attention_zero_length_answers_zero(rng):
    q, k, v = rows(rng, 1, 1, 2, 4), rows(rng, 1, 1, 3, 4), rows(rng, 1, 1, 3, 4)
    out, lse = linattn.softmax_attention(q, k, v, kv_lengths=[0], return_lse=True)
    assert not out.any() and np.isneginf(lse).all()


def test_additive_attention(rng):
    A = 6
    q, k, v = rows(rng, 2, 1, 3, 4), rows(rng, 2, 1, 8, 5), rows(rng, 2, 1, 8, 5)
    w_k, w_q, bias, w = rows(rng, A, 5), rows(rng, A, 4), rows(rng, A), rows(rng, A)
    out = linattn.additive_attention(q, k, v, w_k, w_q, bias, w, kv_lengths=[8, 5])
    for b, n in enumerate([8, 5]):
        for i in range(3):
            s = np.tanh(k[b, 0, :n] @ w_k.T + q[b, 0, i] @ w_q.T + bias) @ w
            p = np.exp(s - s.max())
            np.testing.assert_allclose(out[b, 0, i], (p / p.sum()) @ v[b, 0, :n], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("feature_map", ["identity", "relu", "elu+1"])
def test_linear_encode_and_lookup(rng, feature_map):
    k, v, q = rows(rng, 2, 2, 11, 5), rows(rng, 2, 2, 11, 3), rows(rng, 2, 2, 4, 5)
    g = rng.random((2, 2, 11)).astype(np.float32)
    lens = np.array([11, 6])
    M, z = linattn.linear_attention_encode(k, v, gates=g, lengths=lens, feature_map=feature_map, normalize=True)
    for b in range(2):
        n = lens[b]
        pk = phi_ref(k[b, :, :n], feature_map) * g[b, :, :n, None]
        np.testing.assert_allclose(M[b], pk.transpose(0, 2, 1) @ v[b, :, :n], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(z[b], pk.sum(1), rtol=1e-4, atol=1e-5)
    r = linattn.linear_attention_lookup(q, M, feature_map=feature_map, mean=True, scale=10, counts=lens)
    expected = 10 * phi_ref(q, feature_map) @ M.astype(np.float64) / lens[:, None, None, None]
    np.testing.assert_allclose(r, expected, rtol=1e-4, atol=1e-5)
    rn = linattn.linear_attention_lookup(q, M, normalizer=z, normalize=True, feature_map=feature_map)
    pq = phi_ref(q, feature_map)
    expected = (pq @ M) / (np.einsum("bhtk,bhk->bht", pq, z) + 1e-6)[..., None]
    np.testing.assert_allclose(rn, expected, rtol=1e-3, atol=1e-5)


def test_gates(rng):
    h, w = rows(rng, 7, 5), rows(rng, 5)
    np.testing.assert_allclose(linattn.scalar_gate(h, w, 0.5), 1 / (1 + np.exp(-(h @ w + 0.5))), rtol=1e-5)
    W, b = rows(rng, 5, 5), rows(rng, 5)
    out, gate = linattn.vector_gate(h, W, b, return_gate=True)
    ref_gate = 1 / (1 + np.exp(-(h @ W.T + b)))
    np.testing.assert_allclose(gate, ref_gate, rtol=1e-5)
    np.testing.assert_allclose(out, ref_gate * h, rtol=1e-5, atol=1e-6)


DECAYS = ["none", "per_head", "per_step", "per_channel"]


def decay_of(kind, rng, B, H, T, dk):
    """(the operator's decay argument, the log decay the reference applies)"""
    if kind == "none":
        return None, None
    if kind == "per_head":
        g = np.array(linattn.retnet_decays(H), np.float32)
        return g, np.log(g.astype(np.float64))[None, :, None, None]
    if kind == "per_step":
        a = -rng.random((B, H, T)).astype(np.float32) * 0.3
        return a, a[..., None]
    a = -rng.random((B, H, T, dk)).astype(np.float32) * 0.3
    return a, a


@pytest.mark.parametrize("kind", DECAYS)
@pytest.mark.parametrize("algorithm", ["chunked", "recurrent", "automatic"])
def test_causal_linear_attention_every_decay(rng, kind, algorithm):
    B, H, T, dk, dv = 2, 3, 37, 6, 5  # T not a multiple of the chunk, widths not of the SIMD width
    q, k, v = rows(rng, B, H, T, dk), rows(rng, B, H, T, dk), rows(rng, B, H, T, dv)
    decay, log_decay = decay_of(kind, rng, B, H, T, dk)
    gates = rng.random((B, H, T)).astype(np.float32)
    s0 = rows(rng, B, H, dk, dv)
    lens = np.array([T, 20])
    r = linattn.causal_linear_attention(q, k, v, decay=decay, gates=gates, lengths=lens, initial_state=s0,
                                        chunk_size=16, algorithm=algorithm, return_state=True)
    out, S, _ = causal_ref(q, k, v, log_decay, gates, s0, lengths=lens)
    np.testing.assert_allclose(r.out, out, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(r.final_state, S, rtol=1e-3, atol=1e-3)
    assert not r.out[1, :, 20:].any()  # padding answers 0


def test_causal_in_pieces_equals_at_once(rng):
    B, H, T, d = 1, 2, 50, 8
    q, k, v = rows(rng, B, H, T, d), rows(rng, B, H, T, d), rows(rng, B, H, T, d)
    a = -rng.random((B, H, T, d)).astype(np.float32) * 0.1
    whole = linattn.causal_linear_attention(q, k, v, decay=a)
    first = linattn.causal_linear_attention(q[:, :, :20], k[:, :, :20], v[:, :, :20], decay=a[:, :, :20],
                                            return_state=True)
    second = linattn.causal_linear_attention(q[:, :, 20:], k[:, :, 20:], v[:, :, 20:], decay=a[:, :, 20:],
                                             initial_state=first.final_state)
    np.testing.assert_allclose(np.concatenate([first.out, second], axis=2), whole, rtol=1e-4, atol=1e-4)


def test_causal_normalized_with_normaliser_state(rng):
    B, H, T, d = 1, 1, 20, 4
    q, k, v = (np.abs(rows(rng, B, H, T, d)) + 0.1 for _ in range(3))
    r = linattn.causal_linear_attention(q, k, v, normalize=True, return_state=True)
    out, S, z = causal_ref(q, k, v, normalize=True)
    np.testing.assert_allclose(r.out, out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r.final_normalizer, z, rtol=1e-4)


def test_causal_backward_with_saved_chunk_states_equals_recomputed(rng):
    B, H, T, d = 2, 2, 70, 8
    q, k, v = rows(rng, B, H, T, d), rows(rng, B, H, T, d), rows(rng, B, H, T, d)
    a = -rng.random((B, H, T, d)).astype(np.float32) * 0.2
    dout = rows(rng, B, H, T, d)
    r = linattn.causal_linear_attention(q, k, v, decay=a, return_chunk_states=True)
    assert r.chunk_states.shape == (B, H, (T + 31) // 32 + 1, d * d)
    saved = linattn.causal_linear_attention_backward(q, k, v, dout, decay=a, chunk_states=r.chunk_states)
    again = linattn.causal_linear_attention_backward(q, k, v, dout, decay=a)
    for x, y in zip(saved[:5], again[:5]):
        if x is not None:
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4)
    assert saved.ddecay.shape == a.shape and saved.dgates is None and saved.dinitial_state is None


def test_causal_backward_matches_finite_differences(rng):
    """A directional derivative of sum(out * dout), in float64 references, against the backward's."""
    B, H, T, d = 1, 2, 9, 3
    q, k, v = rows(rng, B, H, T, d), rows(rng, B, H, T, d), rows(rng, B, H, T, d)
    a = -rng.random((B, H, T)).astype(np.float32) * 0.3
    dout = rows(rng, B, H, T, d)
    g = linattn.causal_linear_attention_backward(q, k, v, dout, decay=a, algorithm="recurrent")
    loss = lambda q, k, v, a: (causal_ref(q, k, v, a[..., None])[0] * dout).sum()  # noqa: E731
    eps = 1e-6
    for name, grad in (("q", g.dq), ("k", g.dk), ("v", g.dv), ("a", g.ddecay)):
        args = {"q": q.astype(np.float64), "k": k.astype(np.float64), "v": v.astype(np.float64),
                "a": a.astype(np.float64)}
        direction = rng.standard_normal(args[name].shape)
        plus, minus = dict(args), dict(args)
        plus[name] = args[name] + eps * direction
        minus[name] = args[name] - eps * direction
        numeric = (loss(**plus) - loss(**minus)) / (2 * eps)
        np.testing.assert_allclose((grad * direction).sum(), numeric, rtol=1e-3, atol=1e-4, err_msg=name)


def test_causal_step_equals_the_sequence(rng):
    B, H, T, d = 2, 2, 6, 4
    q, k, v = rows(rng, B, H, T, d), rows(rng, B, H, T, d), rows(rng, B, H, T, d)
    a = -rng.random((B, H, T, d)).astype(np.float32) * 0.2
    whole = linattn.causal_linear_attention(q, k, v, decay=a)
    state = np.zeros((B, H, d, d), np.float32)
    for t in range(T):
        o = linattn.causal_linear_attention_step(q[:, :, t], k[:, :, t], v[:, :, t], state, decay=a[:, :, t:t + 1])
        np.testing.assert_allclose(o, whole[:, :, t], rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match="'state'.*in place"):
        linattn.causal_linear_attention_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], state.astype(np.float64))
    with pytest.raises(linattn.ArgumentError, match="read-only"):
        frozen = state.copy()
        frozen.flags.writeable = False
        linattn.causal_linear_attention_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], frozen)


def test_length_one_and_empty_sequences(rng):
    q = rows(rng, 1, 1, 1, 4)
    out = linattn.causal_linear_attention(q, q, q)
    np.testing.assert_allclose(out[0, 0, 0], q[0, 0, 0] * (q[0, 0, 0] @ q[0, 0, 0]), rtol=1e-5)
    empty = np.zeros((1, 1, 0, 4), np.float32)
    assert linattn.causal_linear_attention(empty, empty, empty).shape == (1, 1, 0, 4)
    M = linattn.linear_attention_encode(empty, empty)
    assert not M.any()


def test_operator_errors_name_the_argument(rng):
    q, k, v = rows(rng, 1, 2, 5, 4), rows(rng, 1, 2, 5, 4), rows(rng, 1, 2, 5, 3)
    with pytest.raises(linattn.ArgumentError, match="'k'"):
        linattn.softmax_attention(q, rows(rng, 1, 2, 5, 3), v)
    with pytest.raises(linattn.ArgumentError, match="'v'.*heads"):
        linattn.causal_linear_attention(q, k, rows(rng, 1, 3, 5, 3))
    with pytest.raises(linattn.ArgumentError, match="'q': expected 4 dimensions"):
        linattn.causal_linear_attention(q[0], k, v)
    with pytest.raises(linattn.ArgumentError, match="decay"):
        linattn.causal_linear_attention(q, k, v, decay=np.ones((1, 2), np.float32))
    with pytest.raises(linattn.ArgumentError, match="per_step|decay"):
        linattn.causal_linear_attention(q, k, v, decay=np.ones((1, 2, 5), np.float32))  # log gammas must be <= 0
    with pytest.raises(linattn.ArgumentError, match="per_step|decay"):
        linattn.causal_linear_attention(q, k, v, decay=np.full((1, 2, 5), np.nan, np.float32))
    with pytest.raises(linattn.ArgumentError, match="algorithm"):
        linattn.causal_linear_attention(q, k, v, algorithm="fast")
    with pytest.raises(linattn.ArgumentError, match="lengths"):
        linattn.causal_linear_attention(q, k, v, lengths=[9])
    with pytest.raises(TypeError, match="'lengths': expected integers"):
        linattn.causal_linear_attention(q, k, v, lengths=[2.5])
    with pytest.raises(linattn.ArgumentError, match="feature_map"):
        linattn.linear_attention_encode(k, v, feature_map="softplus")
    with pytest.raises(linattn.ArgumentError, match="normaliz"):
        linattn.linear_attention_lookup(q, linattn.linear_attention_encode(k, v), normalize=True)


def test_causal_automatic_choice_is_inspectable_and_followed():
    c = linattn.causal_automatic_choice(12, 10, decay="per_channel", gated=True)
    assert set(c) == {"max_recurrent_length", "measured", "recurrent_ns_per_token", "chunked_ns_per_token",
                      "measured_at_length", "measured_heads", "recurrent_from_bytes", "last_probe_heads",
                      "last_recurrent_ns_per_token", "last_chunked_ns_per_token"}
    assert c["measured"] and c["recurrent_ns_per_token"] > 0 and c["chunked_ns_per_token"] > 0
    assert c["last_probe_heads"] > 1 and c["last_recurrent_ns_per_token"] > 0
    assert c == linattn.causal_automatic_choice(12, 10, decay="per_channel", gated=True)  # kept, not re-measured
    plain = linattn.causal_automatic_choice(12, 10)
    limit, from_bytes = plain["max_recurrent_length"], plain["recurrent_from_bytes"]
    assert limit is None or limit >= 1
    # automatic's output is bit for bit the output of the algorithm the choice names
    rng = np.random.default_rng(3)
    T = 40
    q, k = (rng.standard_normal((1, 2, T, 12), dtype=np.float32) for _ in range(2))
    v = rng.standard_normal((1, 2, T, 10), dtype=np.float32)
    call_bytes = linattn.causal_working_set_bytes(1, 2, T, 12, 10)
    assert call_bytes == 1 * 2 * T * (2 * 12 + 2 * 10) * 4  # q, k, v and out, fp32
    large = from_bytes is not None and call_bytes >= from_bytes
    named = "recurrent" if limit is None or T <= limit or large else "chunked"
    np.testing.assert_array_equal(linattn.causal_linear_attention(q, k, v),
                                  linattn.causal_linear_attention(q, k, v, algorithm=named))
    with pytest.raises(linattn.ArgumentError, match="decay"):
        linattn.causal_automatic_choice(4, 4, decay="sideways")
    with pytest.raises(linattn.ArgumentError):
        linattn.causal_automatic_choice(0, 4)


def test_relatives_match_numpy_and_their_gradients():
    rng = np.random.default_rng(5)
    q = rng.standard_normal((2, 3, 4, 6), dtype=np.float32)
    k = rng.standard_normal((2, 3, 9, 6), dtype=np.float32)
    v = rng.standard_normal((2, 3, 9, 5), dtype=np.float32)
    # Galerkin: layer-normalised keys and values, mean read-out
    ln = lambda x: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    want = q.astype(np.float64) @ (np.swapaxes(ln(k.astype(np.float64)), -1, -2) @ ln(v.astype(np.float64))) / 9
    np.testing.assert_allclose(linattn.galerkin_attention(q, k, v), want, rtol=1e-4, atol=1e-5)
    # content lambda: a softmax over positions per key channel
    w = np.exp(k - k.max(2, keepdims=True)).astype(np.float64)
    w /= w.sum(2, keepdims=True)
    lam = np.swapaxes(w, -1, -2) @ v
    np.testing.assert_allclose(linattn.content_lambda_encode(k, v), lam, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(linattn.content_lambda_attention(q, k, v), q @ lam, rtol=1e-4, atol=1e-5)
    # gradients of sum(out * r) against a finite difference of one element of each input
    r = rng.standard_normal((2, 3, 4, 5), dtype=np.float32)
    for fwd, bwd in [(linattn.galerkin_attention, linattn.galerkin_attention_backward),
                     (linattn.content_lambda_attention, linattn.content_lambda_attention_backward)]:
        grads = bwd(q, k, v, r)
        for which, x in enumerate((q, k, v)):
            idx = (1, 2, 3, 4)
            h = 1e-2
            xp, xm = x.copy(), x.copy()
            xp[idx] += h
            xm[idx] -= h
            args_p = [q, k, v]
            args_m = [q, k, v]
            args_p[which], args_m[which] = xp, xm
            fd = ((fwd(*args_p) * r).sum(dtype=np.float64) - (fwd(*args_m) * r).sum(dtype=np.float64)) / (2 * h)
            assert abs(grads[which][idx] - fd) <= 2e-2 * max(1.0, abs(fd)), (fwd.__name__, which, grads[which][idx], fd)
    with pytest.raises(linattn.ArgumentError, match="lengths"):
        linattn.galerkin_attention(q, k, v, lengths=[10, 2])


def test_kslot_memory_matches_numpy_and_its_gradients():
    rng = np.random.default_rng(6)
    s = rng.standard_normal((2, 3, 9, 4), dtype=np.float32)   # write scores, K = 4
    v = rng.standard_normal((2, 3, 9, 5), dtype=np.float32)
    u = rng.standard_normal((2, 3, 2, 4), dtype=np.float32)   # read scores
    softmax = lambda x: np.exp(x - x.max(-1, keepdims=True)) / np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)
    C = np.swapaxes(softmax(s.astype(np.float64)), -1, -2) @ v
    np.testing.assert_allclose(linattn.kslot_memory_encode(s, v), C, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(linattn.kslot_memory_lookup(u, C.astype(np.float32)), softmax(u.astype(np.float64)) @ C,
                               rtol=1e-5, atol=1e-6)
    # the authors' position encoding, and padding past the lengths
    n = np.array([9, 4])
    t = (np.arange(9) + 1)[None, :, None] / n[:, None, None]
    kk = ((np.arange(4) + 1) / 4)[None, None, :]
    a = softmax(s.astype(np.float64)) * ((1 - kk) * (1 - t) + kk * t)[:, None]
    a[1, :, 4:] = 0
    np.testing.assert_allclose(linattn.kslot_memory_encode(s, v, lengths=n, position_encoding=True),
                               np.swapaxes(a, -1, -2) @ v, rtol=1e-5, atol=1e-6)
    # gradients of sum(lookup(u, encode(s, v)) * r) against finite differences
    r = rng.standard_normal((2, 3, 2, 5), dtype=np.float32)
    loss = lambda u_, s_, v_: (linattn.kslot_memory_lookup(u_, linattn.kslot_memory_encode(s_, v_)) * r).sum(dtype=np.float64)
    du, dC = linattn.kslot_memory_lookup_backward(u, linattn.kslot_memory_encode(s, v), r)
    ds, dv = linattn.kslot_memory_encode_backward(s, v, dC)
    for which, (x, g) in enumerate(((u, du), (s, ds), (v, dv))):
        idx = (1, 2, 1, 3)
        h = 1e-2
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        args_p, args_m = [u, s, v], [u, s, v]
        args_p[which], args_m[which] = xp, xm
        fd = (loss(*args_p) - loss(*args_m)) / (2 * h)
        assert abs(g[idx] - fd) <= 2e-2 * max(1.0, abs(fd)), (which, g[idx], fd)
    with pytest.raises(linattn.ArgumentError, match="slot count K"):
        linattn.kslot_memory_lookup(u[..., :3], C.astype(np.float32))


def test_causal_calibration_environment_variable():
    # Read once at the first use: a fresh interpreter for each value.
    import os
    import subprocess
    import sys
    code = ("import linattn, sys\n"
            "try:\n"
            "    print(linattn.causal_automatic_choice(8, 8)['measured'])\n"
            "except linattn.ArgumentError as e:\n"
            "    print('error:', e)\n")
    def run(value):
        env = dict(os.environ, LINATTN_CAUSAL_CALIBRATION=value)
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              timeout=120, check=True).stdout
    assert run("off").strip() == "False"
    assert run("measure").strip() == "True"
    out = run("sideways")
    assert out.startswith("error:") and "LINATTN_CAUSAL_CALIBRATION" in out and "sideways" in out, out
