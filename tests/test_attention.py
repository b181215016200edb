"""Attention scores (additive, dot, general): float64 central differences and PyTorch autograd, over
several decoder steps sharing one set of keys, with ragged source lengths."""
import numpy as np
import pytest
import torch

from rnnkit.attention import AdditiveAttention, DotAttention, GeneralAttention, make_attention, masked_softmax
from rnnkit.gradcheck import numerical_grad

S, B, Q, K, A, STEPS = 5, 3, 4, 4, 3, 3
LENGTHS = np.array([5, 2, 4])


def close(analytic, numeric, name, rtol=1e-6, atol=1e-9):
    err = np.abs(analytic - numeric).max()
    assert err <= atol + rtol * np.abs(numeric).max(), f"d{name}: max abs error {err:.2e}"


def setup(kind, rng):
    attn = make_attention(kind, Q, K, A, dtype=np.float64, seed=3)
    for _, p, _ in attn.named_parameters():
        p *= 3.0                                                     # gradients well above rounding noise
    h = rng.standard_normal((S, B, K))
    h[np.arange(S)[:, None] >= LENGTHS[None, :]] = 0.0               # padding is zero, as the encoder leaves it
    q = rng.standard_normal((STEPS, B, Q))
    R = rng.standard_normal((STEPS, B, K))                           # loss = sum_t R_t . c_t
    mask = np.arange(S)[:, None] < LENGTHS[None, :]
    return attn, h, q, R, mask


def run(attn, h, q, R, mask):
    keys, kcache = attn.prepare(h)
    loss, caches = 0.0, []
    for t in range(STEPS):
        c, alpha, cache = attn.step(q[t], keys, h, mask)
        loss += float((R[t] * c).sum())
        caches.append(cache)
    return loss, keys, kcache, caches


def backward(attn, h, q, R, mask):
    attn.zero_grad()
    _, keys, kcache, caches = run(attn, h, q, R, mask)
    dq, dkeys, dh = np.zeros_like(q), np.zeros_like(keys), np.zeros_like(h)
    for t in reversed(range(STEPS)):
        dq[t], dk, dh_t = attn.step_backward(R[t], caches[t])
        dkeys += dk
        dh += dh_t
    dh += attn.prepare_backward(dkeys, kcache)
    return dq, dh


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_finite_differences(kind, rng):
    attn, h, q, R, mask = setup(kind, rng)
    dq, dh = backward(attn, h, q, R, mask)
    f = lambda: run(attn, h, q, R, mask)[0]  # noqa: E731
    close(dq, numerical_grad(f, q), "query")
    close(dh, numerical_grad(f, h), "h")
    for name, p, g in attn.named_parameters():
        close(g, numerical_grad(f, p), name)


def torch_score(kind, params, q, h):
    """e (S, B) from the same equations, in torch: q (B, Q), h (S, B, K)."""
    if kind == "additive":
        return torch.tanh(q @ params["W_q"].T + h @ params["W_k"].T + params["b"]) @ params["v"]
    if kind == "dot":
        return (q[None] * h).sum(-1)
    return (q[None] * (h @ params["W_a"].T)).sum(-1)


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_against_torch(kind, rng):
    attn, h, q, R, mask = setup(kind, rng)
    dq, dh = backward(attn, h, q, R, mask)
    params = {n: torch.tensor(p, requires_grad=True) for n, p in attn.params.items()}
    th, tq = torch.tensor(h, requires_grad=True), torch.tensor(q, requires_grad=True)
    tmask = torch.tensor(mask)
    keys = attn.prepare(h)[0]
    loss = 0.0
    for t in range(STEPS):
        alpha = torch.softmax(torch_score(kind, params, tq[t], th).masked_fill(~tmask, -torch.inf), dim=0)
        c = (alpha[:, :, None] * th).sum(0)
        ours_c, ours_alpha, _ = attn.step(q[t], keys, h, mask)
        np.testing.assert_allclose(ours_c, c.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg="context")
        np.testing.assert_allclose(ours_alpha, alpha.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg="alpha")
        loss = loss + (torch.tensor(R[t]) * c).sum()
    loss.backward()
    np.testing.assert_allclose(dq, tq.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg="dquery")
    np.testing.assert_allclose(dh, th.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg="dh")
    for name, p in params.items():
        np.testing.assert_allclose(attn.grads[name], p.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=f"d{name}")


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_padding_gets_no_weight(kind, rng):
    attn, h, q, _, mask = setup(kind, rng)
    keys = attn.prepare(h)[0]
    c, alpha, _ = attn.step(q[0], keys, h, mask)
    assert (alpha[~mask] == 0).all(), "padded positions must get zero attention"
    np.testing.assert_allclose(alpha.sum(0), 1.0, rtol=1e-12, err_msg="attention weights sum to 1")
    h2 = h.copy()
    h2[~mask] = 99.0                                              # whatever sits in the padding
    c2, _, _ = attn.step(q[0], attn.prepare(h2)[0], h2, mask)
    np.testing.assert_allclose(c2, c, rtol=1e-12, err_msg="padding must not change the context")


def test_masked_softmax_single_position():
    e = np.array([[3.0, -1.0], [7.0, 2.0]])
    mask = np.array([[True, True], [False, True]])
    a = masked_softmax(e, mask)
    np.testing.assert_allclose(a[:, 0], [1.0, 0.0])
    np.testing.assert_allclose(a[:, 1], np.exp([-1.0, 2.0]) / np.exp([-1.0, 2.0]).sum())


def test_errors_name_the_value():
    with pytest.raises(ValueError, match="query_size=4 and key_size=6"):
        DotAttention(4, 6)
    with pytest.raises(ValueError, match="attention must be one of .* got 'luong'"):
        make_attention("luong", 4, 4, 3)
    with pytest.raises(ValueError, match="attn_size must be a positive integer, got 0"):
        AdditiveAttention(4, 4, 0)
    attn = GeneralAttention(4, 6, seed=0)
    with pytest.raises(ValueError, match=r"query must have shape \(B, 4\), got shape \(2, 5\)"):
        attn.step(np.zeros((2, 5)), np.zeros((3, 2, 4)), np.zeros((3, 2, 6)), np.ones((3, 2), bool))
