"""Truncated BPTT(k2; k1): full BPTT when k1 = k2 = T, and torch with .detach() at each window's start otherwise."""
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.gradcheck import relative_error
from rnnkit.tbptt import tbptt

from conftest import make_layer, torch_twin

CELLS = [("RNN", "tanh"), ("LSTM", None), ("GRU", None)]
T, B, I, H = 11, 2, 3, 4


def make(mode, nl, num_layers=1, seed=0):
    layer = make_layer(mode, nl or "tanh", input_size=I, hidden_size=H, num_layers=num_layers, dtype=np.float64,
                       seed=seed)
    rng = np.random.default_rng(seed + 100)
    for _, p, _ in layer.named_parameters():
        p[...] = rng.uniform(-0.8, 0.8, p.shape)
    return layer


def loss_fn_for(R):
    """L = sum over the injected steps of <R_t, y_t> + 0.5 |y_t|^2."""
    def loss_fn(y, t0, t1):
        return float((R[t0:t1] * y).sum() + 0.5 * (y * y).sum()), R[t0:t1] + y
    return loss_fn


def run_tbptt(layer, x, R, k1, k2):
    """Per-update gradients (the layer's grads are zeroed after each update) and losses."""
    grads = []

    def on_update(t):
        grads.append({k: v.copy() for k, v in layer.grads.items()})
        layer.zero_grad()

    layer.zero_grad()
    losses = tbptt(layer, x, loss_fn_for(R), k1, k2, on_update=on_update)
    return grads, losses


def torch_tbptt(twin, x, R, k1, k2):
    """The same updates, built independently: the state at each window's start from a full no-grad
    run from t = 0, detached; then a fresh graph over the window and the loss on its newest k1 steps."""
    xt, Rt = torch.from_numpy(x), torch.from_numpy(R)
    grads, losses, t0 = [], [], 0
    while t0 < len(x):
        t1 = min(t0 + k1, len(x))
        s = max(0, t1 - k2)
        hs = None
        if s > 0:
            with torch.no_grad():
                _, hs = twin(xt[:s])
        twin.zero_grad()
        y, _ = twin(xt[s:t1], hs)
        y = y[t0 - s:]
        loss = (Rt[t0:t1] * y).sum() + 0.5 * (y * y).sum()
        loss.backward()
        grads.append({k: p.grad.numpy().copy() for k, p in twin.named_parameters()})
        losses.append(loss.item())
        t0 = t1
    return grads, losses


@pytest.mark.parametrize("cell", CELLS, ids=[c[0] for c in CELLS])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_k1_equals_k2_equals_T_is_full_bptt(cell, num_layers):
    rng = np.random.default_rng(0)
    layer = make(*cell, num_layers=num_layers)
    x, R = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))
    grads, losses = run_tbptt(layer, x, R, T, T)
    assert len(grads) == 1
    out, _ = layer.forward(x)                                      # full BPTT through the layer
    layer.zero_grad()
    layer.backward(R + out)
    np.testing.assert_allclose(losses[0], (R * out).sum() + 0.5 * (out * out).sum(), rtol=1e-12)
    for name, g in layer.grads.items():
        err = relative_error(grads[0][name], g)
        assert err < 1e-12, f"{name}: tbptt(T, T) vs full BPTT relative error {err:.2e}"


@pytest.mark.parametrize("cell", CELLS, ids=[c[0] for c in CELLS])
@pytest.mark.parametrize("k1,k2", [(1, 1), (3, 3), (4, 4), (2, 5), (3, 7), (1, 4), (5, 11)])
def test_truncated_matches_torch_with_detach(cell, k1, k2):
    rng = np.random.default_rng(k1 * 10 + k2)
    layer = make(*cell, num_layers=2 if cell[0] == "LSTM" else 1)
    x, R = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))
    grads, losses = run_tbptt(layer, x, R, k1, k2)
    tgrads, tlosses = torch_tbptt(torch_twin(layer), x, R, k1, k2)
    assert len(grads) == len(tgrads) == -(-T // k1)                # an update every k1 steps and one at T
    np.testing.assert_allclose(losses, tlosses, rtol=1e-10)
    for u, (g, tg) in enumerate(zip(grads, tgrads)):
        for name in tg:
            err = relative_error(g[name], tg[name])
            assert err < 1e-10, f"update {u}, {name}: relative error {err:.2e} against torch with detach"


def test_tbptt_errors():
    layer = rnnkit.GRU(I, H)
    x = np.zeros((T, B, I), np.float32)
    ok = lambda y, t0, t1: (0.0, np.zeros_like(y))  # noqa: E731
    with pytest.raises(ValueError, match="k2 .* must be at least k1 .* got k1=5, k2=3"):
        tbptt(layer, x, ok, 5, 3)
    with pytest.raises(ValueError, match="k1 must be a positive integer, got 0"):
        tbptt(layer, x, ok, 0, 3)
    with pytest.raises(ValueError, match="batch_first=False"):
        tbptt(rnnkit.GRU(I, H, batch_first=True), x, ok, 2, 3)
    with pytest.raises(TypeError, match="got RNNCell"):
        tbptt(rnnkit.RNNCell(I, H), x, ok, 2, 3)
    with pytest.raises(ValueError, match="dL/dy from loss_fn must have shape"):
        tbptt(layer, x, lambda y, t0, t1: (0.0, np.zeros((1, 1))), 2, 3)
