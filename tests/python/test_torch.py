"""linattn.torch: autograd functions and modules, against the same formulas in plain PyTorch.

Gradients are checked two ways: torch.autograd.gradcheck on linattn's float32 functions (finite
differences, tolerances for float32), and linattn's gradients against those PyTorch's autograd
computes for the reference formulas in float64."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import linattn  # noqa: E402
import linattn.torch as lt  # noqa: E402

torch.manual_seed(0)


def f32(*shape, positive=False):
    x = torch.randn(*shape)
    return (x.abs() + 0.1 if positive else x).requires_grad_()


def gradcheck(fn, inputs):
    # float32 finite differences: eps 1e-2 keeps the truncation and rounding errors near 1e-3
    # (gradcheck warns that the inputs are not float64: that is the point here).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.autograd.gradcheck(fn, inputs, eps=1e-2, atol=2e-2, rtol=2e-2, nondet_tol=1e-5)


def compare_with_reference(ours, reference, inputs, rtol=1e-4, atol=1e-4):
    """Forward values and every input's gradient of sum(out * w) against the reference in float64."""
    out = ours(*inputs)
    w = torch.randn_like(out)
    grads = torch.autograd.grad((out * w).sum(), [x for x in inputs if x is not None and x.requires_grad])
    ref_inputs = [None if x is None else x.detach().double().requires_grad_(x.requires_grad) for x in inputs]
    ref_out = reference(*ref_inputs)
    ref_grads = torch.autograd.grad((ref_out * w.double()).sum(), [x for x in ref_inputs if x is not None and x.requires_grad])
    torch.testing.assert_close(out.double(), ref_out, rtol=rtol, atol=atol)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g.double(), r, rtol=rtol, atol=atol)


def mask(lengths, T):
    return torch.arange(T)[None, :] < lengths[:, None]  # [B, T]


def softmax_ref(q, k, v, lengths):
    s = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    s = s.masked_fill(~mask(lengths, k.shape[2])[:, None, None, :], float("-inf"))
    return torch.softmax(s, -1) @ v


def test_softmax_attention():
    q, k, v = f32(2, 2, 3, 4), f32(2, 2, 6, 4), f32(2, 2, 6, 5)
    lengths = torch.tensor([6, 3])
    assert gradcheck(lambda q, k, v: lt.softmax_attention(q, k, v, lengths), (q, k, v))
    compare_with_reference(lambda q, k, v: lt.softmax_attention(q, k, v, lengths),
                           lambda q, k, v: softmax_ref(q, k, v, lengths), (q, k, v))


def test_additive_attention():
    A = 5
    q, k, v = f32(2, 1, 2, 3), f32(2, 1, 6, 4), f32(2, 1, 6, 4)
    w_k, w_q, bias, w = f32(A, 4), f32(A, 3), f32(A), f32(A)
    lengths = torch.tensor([6, 2])

    def ref(q, k, v, w_k, w_q, bias, w):
        s = torch.tanh((k @ w_k.T)[:, :, None] + (q @ w_q.T)[:, :, :, None] + bias) @ w  # [B,1,Tq,Tk]
        s = s.masked_fill(~mask(lengths, 6)[:, None, None, :], float("-inf"))
        return torch.softmax(s, -1) @ v

    ours = lambda *x: lt.additive_attention(*x, lengths)  # noqa: E731
    assert gradcheck(ours, (q, k, v, w_k, w_q, bias, w))
    compare_with_reference(ours, ref, (q, k, v, w_k, w_q, bias, w))


@pytest.mark.parametrize("feature_map", ["identity", "elu+1"])
def test_linear_encode_and_lookup(feature_map):
    k, v, g, q = f32(2, 2, 7, 4), f32(2, 2, 7, 3), f32(2, 2, 7, positive=True), f32(2, 2, 3, 4)
    lengths = torch.tensor([7, 4])
    phi = (lambda x: x) if feature_map == "identity" else (lambda x: torch.nn.functional.elu(x) + 1)

    def ours(q, k, v, g):
        M = lt.linear_attention_encode(k, v, g, lengths, feature_map)
        return lt.linear_attention_lookup(q, M, lengths, 10.0, feature_map)

    def ref(q, k, v, g):
        m = mask(lengths, 7)[:, None, :, None].to(k.dtype)
        M = (phi(k) * g[..., None] * m).transpose(-1, -2) @ v
        return 10.0 * phi(q) @ M / lengths[:, None, None, None]

    assert gradcheck(ours, (q, k, v, g))
    compare_with_reference(ours, ref, (q, k, v, g))


def test_gates():
    h, w, b = f32(6, 4), f32(4), f32(1)
    assert gradcheck(lt.scalar_gate, (h, w, b))
    compare_with_reference(lt.scalar_gate, lambda h, w, b: torch.sigmoid(h @ w + b), (h, w, b))
    W, bv = f32(4, 4), f32(4)
    assert gradcheck(lt.vector_gate, (h, W, bv))
    compare_with_reference(lt.vector_gate, lambda h, W, b: torch.sigmoid(h @ W.T + b) * h, (h, W, bv))


def causal_ref(q, k, v, log_decay, gates, s0):
    B, H, T, dk = q.shape
    S = torch.zeros(B, H, dk, v.shape[-1], dtype=q.dtype) if s0 is None else s0
    outs = []
    for t in range(T):
        if log_decay is not None:
            S = S * torch.exp(log_decay[:, :, t])[..., None]
        g = 1.0 if gates is None else gates[:, :, t, None, None]
        S = S + g * k[:, :, t, :, None] * v[:, :, t, None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, :, t], S))
    return torch.stack(outs, 2), S


@pytest.mark.parametrize("kind", ["none", "per_head", "per_step", "per_channel"])
def test_causal_linear_attention(kind):
    B, H, T, d = 2, 2, 11, 3
    q, k, v, g, s0 = f32(B, H, T, d), f32(B, H, T, d), f32(B, H, T, d), f32(B, H, T, positive=True), f32(B, H, d, d)
    if kind == "none":
        decay, log_decay = None, None
    elif kind == "per_head":
        decay = torch.tensor(linattn.retnet_decays(H))
        log_decay = torch.log(decay.double())[None, :, None, None].expand(B, H, T, d)
    elif kind == "per_step":
        decay = (-torch.rand(B, H, T) * 0.3 - 0.05).requires_grad_()  # stays <= 0 under gradcheck's steps
        log_decay = None
    else:
        decay = (-torch.rand(B, H, T, d) * 0.3 - 0.05).requires_grad_()
        log_decay = None

    def ours(q, k, v, decay, g, s0):
        out, S = lt.causal_linear_attention(q, k, v, decay, g, None, chunk_size=4, initial_state=s0, return_state=True)
        return torch.cat([out.flatten(), S.flatten()])

    def ref(q, k, v, decay, g, s0):
        a = log_decay if kind in ("none", "per_head") else (decay[..., None].expand(B, H, T, d) if kind == "per_step" else decay)
        out, S = causal_ref(q, k, v, a, g, s0)
        return torch.cat([out.flatten(), S.flatten()])

    inputs = (q, k, v, decay, g, s0)
    assert gradcheck(ours, inputs)
    compare_with_reference(ours, ref, inputs, rtol=2e-4, atol=2e-4)


def test_causal_lengths_pad_with_zeros():
    q = f32(2, 1, 8, 4)
    out = lt.causal_linear_attention(q, q, q, lengths=torch.tensor([8, 3]))
    assert not out[1, :, 3:].any()
    out.sum().backward()
    assert torch.isfinite(q.grad).all()


def test_inputs_are_not_copied_and_outputs_share_the_kernels_buffers():
    x = torch.randn(2, 3, 4)
    assert lt._checked(x, "op", "x").data_ptr() == x.data_ptr()
    a = linattn.linear_attention_encode(np.ones((1, 1, 2, 3), np.float32), np.ones((1, 1, 2, 3), np.float32))
    assert torch.from_numpy(a).data_ptr() == a.ctypes.data


def test_errors():
    q = f32(1, 1, 4, 3)
    with pytest.raises(TypeError, match="float32"):
        lt.causal_linear_attention(q.double(), q, q)
    with pytest.raises(TypeError, match="Tensor"):
        lt.causal_linear_attention(np.zeros((1, 1, 4, 3), np.float32), q, q)
    with pytest.raises(TypeError, match="lengths"):
        lt.causal_linear_attention(q, q, q, lengths=torch.tensor([4.0]))
    with pytest.raises(linattn.ArgumentError, match="decay"):
        lt.causal_linear_attention(q, q, q, torch.ones(1, 1, 4))  # log decays must be <= 0
    with pytest.raises(linattn.ArgumentError):
        lt.CausalLinearAttention(10, 3)
    with pytest.raises(linattn.ArgumentError, match="lengths"):
        lt.LinearAttention()(torch.randn(2, 3, 4), torch.randn(2, 4), torch.tensor([3, 3], dtype=torch.int32))


def test_an_input_changed_in_place_before_backward_is_reported():
    leaf = torch.randn(1, 1, 4, 3, requires_grad=True)
    x = leaf * 1.0
    M2 = lt.linear_attention_encode(x, x)
    x.add_(1.0)  # a tracked in-place change
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        M2.sum().backward()


# --- modules ------------------------------------------------------------------------------------------------------

def reader_inputs(B=3, T=9, d=8):
    h = torch.randn(B, T, d, requires_grad=True)
    return h, torch.randn(B, d, requires_grad=True), torch.tensor([9, 5, 1])


def test_linear_attention_module():
    h, q, lengths = reader_inputs()
    r = lt.LinearAttention()(h, q, lengths)
    m = mask(lengths, 9)[..., None].float()
    C = (h * m).transpose(1, 2) @ (h * m)
    torch.testing.assert_close(r, 1000 * (q[:, None] @ C)[:, 0] / lengths[:, None], rtol=1e-4, atol=1e-2)
    r.sum().backward()
    assert h.grad is not None and q.grad is not None


@pytest.mark.parametrize("gate", ["scalar", "vector"])
def test_gated_linear_attention_module(gate):
    h, q, lengths = reader_inputs()
    module = lt.GatedLinearAttention(8, gate=gate)
    with torch.no_grad():
        module.w.normal_(0, 0.3)
    r = module(h, q, lengths)
    m = mask(lengths, 9)[..., None].float()
    g = torch.sigmoid(h @ module.w + module.b)[..., None] if gate == "scalar" else torch.sigmoid(h @ module.w.T + module.b)
    hg = g * h * m
    ref = 1000 * (q[:, None] @ (hg.transpose(1, 2) @ hg))[:, 0] / lengths[:, None]
    torch.testing.assert_close(r, ref, rtol=1e-4, atol=1e-2)
    r.sum().backward()
    assert module.w.grad.abs().sum() > 0 and module.b.grad.abs().sum() > 0


@pytest.mark.parametrize("scorer", ["additive", "dot"])
def test_softmax_attention_module(scorer):
    h, q, lengths = reader_inputs()
    module = lt.SoftmaxAttention(8, 8, scorer=scorer, attention_size=6)
    r = module(h, q, lengths)
    if scorer == "dot":
        s = (h @ q[:, :, None])[..., 0] / 8 ** 0.5
    else:
        s = torch.tanh(h @ module.w_h.T + (q @ module.w_q.T)[:, None] + module.bias) @ module.w
    p = torch.softmax(s.masked_fill(~mask(lengths, 9), float("-inf")), -1)
    torch.testing.assert_close(r, (p[:, None] @ h)[:, 0], rtol=1e-4, atol=1e-5)
    r.sum().backward()


def test_no_attention_module():
    h, q, lengths = reader_inputs()
    r = lt.NoAttention()(h, q, torch.tensor([9, 5, 0]))
    torch.testing.assert_close(r[0], h[0, 8])
    torch.testing.assert_close(r[1], h[1, 4])
    assert not r[2].any()


@pytest.mark.parametrize("decay", ["none", "per_head", "per_step", "per_channel"])
def test_causal_layer_equals_its_reference_and_learns(decay):
    torch.manual_seed(1)
    layer = lt.CausalLinearAttention(8, 2, decay=decay, chunk_size=4)
    x = torch.randn(2, 10, 8)
    y = layer(x)
    # The same layer with the recurrence in plain PyTorch.
    B, T, H = 2, 10, 2
    heads = lambda t: t.view(B, T, H, -1).transpose(1, 2)  # noqa: E731
    a = layer.decay(x)
    if decay == "per_head":
        a = torch.log(a)[None, :, None, None].expand(B, H, T, 4)
    elif decay == "per_step":
        a = a[..., None].expand(B, H, T, 4)
    o, _ = causal_ref(heads(layer.q_proj(x)), heads(layer.k_proj(x)), heads(layer.v_proj(x)), a, None, None)
    torch.testing.assert_close(y, layer.out_proj(o.transpose(1, 2).reshape(B, T, 8)), rtol=1e-4, atol=1e-4)
    # A few steps of training lower the loss of copying a shifted input.
    target = torch.roll(x, 1, dims=1)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = ((layer(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
