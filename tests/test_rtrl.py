"""RTRL: forward-mode sensitivities give BPTT's gradient exactly (rnnkit's BPTT and torch autograd),
and online updates at every step learn."""
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.gradcheck import relative_error
from rnnkit.layers import Linear
from rnnkit.module import Module
from rnnkit.optim import Adam
from rnnkit.rtrl import RTRL, rtrl_gradients

from conftest import make_layer, torch_twin

CELLS = [("RNN", "tanh"), ("RNN", "relu"), ("LSTM", None), ("GRU", None)]
GRID = [(c, bias) for c in CELLS for bias in (True, False)]
IDS = [f"{c[0]}-{c[1]}-bias{b}" for c, b in GRID]
T, B, I, H = 7, 3, 3, 4


def spread(module, rng):
    """Weights U(-1, 1), so the cells leave their linear range."""
    for _, p, _ in module.named_parameters():
        p[...] = rng.uniform(-1, 1, p.shape)


def step_loss(h, R):
    """A nonlinear loss at each step, L_t = <R_t, h_t> + 0.5 |h_t|^2, and dL_t/dh_t (needs h_t: online)."""
    return float((R * h).sum() + 0.5 * (h * h).sum()), R + h


@pytest.mark.parametrize("cell,bias", GRID, ids=IDS)
def test_rtrl_equals_bptt_and_torch(cell, bias):
    mode, nl = cell
    rng = np.random.default_rng(GRID.index((cell, bias)))
    layer = make_layer(mode, nl or "tanh", input_size=I, hidden_size=H, bias=bias, dtype=np.float64, seed=0)
    spread(layer, rng)
    x = rng.standard_normal((T, B, I))
    R = rng.standard_normal((T, B, H))
    h0 = rng.standard_normal((B, H))
    c0 = rng.standard_normal((B, H))
    state = (h0, c0) if mode == "LSTM" else h0

    # RTRL, online: each step's dL_t/dh_t comes from that step's h_t, and the gradient at once
    rtrl = RTRL(layer)
    rtrl.reset(B, state)
    layer.zero_grad()
    loss_rtrl = 0.0
    for t in range(T):
        h = rtrl.step(x[t])
        loss, dh = step_loss(h, R[t])
        loss_rtrl += loss
        rtrl.backward(dh)
    g_rtrl = {k: v.copy() for k, v in layer.grads.items()}

    # BPTT through the library's layer
    layer.zero_grad()
    out, _ = layer.forward(x, (h0[None], c0[None]) if mode == "LSTM" else h0[None])
    layer.backward(R + out)
    np.testing.assert_allclose(loss_rtrl, step_loss(out, R)[0], rtol=1e-12)

    # torch autograd with the same weights
    twin = torch_twin(layer)
    hx = (torch.from_numpy(h0[None]), torch.from_numpy(c0[None])) if mode == "LSTM" else torch.from_numpy(h0[None])
    tout, _ = twin(torch.from_numpy(x), hx)
    ((torch.from_numpy(R) * tout).sum() + 0.5 * (tout * tout).sum()).backward()

    for name, p in twin.named_parameters():
        err_bptt = relative_error(g_rtrl[name], layer.grads[name])
        err_torch = relative_error(g_rtrl[name], p.grad.numpy())
        assert err_bptt < 1e-6, f"{name}: RTRL vs rnnkit BPTT relative error {err_bptt:.2e}"
        assert err_torch < 1e-6, f"{name}: RTRL vs torch autograd relative error {err_torch:.2e}"


@pytest.mark.parametrize("cls", [rnnkit.RNNCell, rnnkit.LSTMCell, rnnkit.GRUCell], ids=["RNN", "LSTM", "GRU"])
def test_rtrl_on_a_cell_uses_the_cell_names(cls):
    """Wrapping a cell: gradients land in cell.grads under weight_ih, ..., equal to stepping BPTT by hand."""
    rng = np.random.default_rng(5)
    cell = cls(I, H, dtype=np.float64, seed=1)
    spread(cell, rng)
    x, dout = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))
    g = rtrl_gradients(cell, x, dout)
    assert set(g) == set(cell.params)
    assert not any(cell.grads[k].any() for k in cell.grads)          # rtrl_gradients leaves grads alone

    state, caches = None, []
    for t in range(T):
        state, cache = cell.step(x[t], state)
        caches.append(cache)
    lstm = cls is rnnkit.LSTMCell
    dh, dc = np.zeros((B, H)), np.zeros((B, H))
    for t in reversed(range(T)):
        _, dstate = cell.step_backward((dh + dout[t], dc) if lstm else dh + dout[t], caches[t])
        dh, dc = dstate if lstm else (dstate, None)
    for name in cell.params:
        err = relative_error(g[name], cell.grads[name])
        assert err < 1e-6, f"{name}: RTRL vs stepped BPTT relative error {err:.2e}"


def test_rtrl_float32_runs_and_agrees_loosely():
    rng = np.random.default_rng(2)
    layer = rnnkit.GRU(I, H, seed=0)                                 # float32
    x, dout = rng.standard_normal((T, B, I)).astype(np.float32), rng.standard_normal((T, B, H)).astype(np.float32)
    g = rtrl_gradients(layer, x, dout)
    layer.forward(x)
    layer.backward(dout)
    for name, v in g.items():
        assert v.dtype == np.float32
        assert relative_error(v, layer.grads[name]) < 1e-4, name


class OnlineModel(Module):
    def __init__(self, H):
        super().__init__()
        self.cell = rnnkit.RNNCell(1, H, dtype=np.float64, seed=0)
        self.head = Linear(H, 1, dtype=np.float64, seed=1)


def test_online_rtrl_learns_a_delayed_copy():
    """One stream, an Adam step after every time step: predict the input of two steps ago."""
    rng = np.random.default_rng(0)
    steps, delay = 1000, 2
    u = rng.choice([-1.0, 1.0], size=steps)
    model = OnlineModel(16)
    opt = Adam(model, lr=1e-2)
    rtrl = RTRL(model.cell)
    rtrl.reset(1)
    errors = []
    for t in range(steps):
        h = rtrl.step(np.array([[u[t]]]))
        target = u[t - delay] if t >= delay else 0.0
        pred = model.head.forward(h)
        err = pred - target
        errors.append(float(err[0, 0] ** 2))
        model.zero_grad()
        rtrl.backward(model.head.backward(err))                      # d(0.5 err^2)/dh through the head
        opt.step()                                                   # online: every step
    first, last = np.mean(errors[:100]), np.mean(errors[-200:])
    assert last < 0.02 and first > 0.2, f"squared error {first:.3f} in the first 100 steps, {last:.4f} in the last 200"


def test_rtrl_errors():
    with pytest.raises(ValueError, match="num_layers=2"):
        RTRL(rnnkit.LSTM(2, 3, num_layers=2))
    with pytest.raises(TypeError, match="got Linear"):
        RTRL(Linear(2, 3))
    rtrl = RTRL(rnnkit.RNNCell(2, 3))
    with pytest.raises(ValueError, match="before reset"):
        rtrl.step(np.zeros((1, 2), np.float32))
    rtrl.reset(2)
    with pytest.raises(ValueError, match=r"batch size 2 \(set by reset\), got shape \(3, 2\)"):
        rtrl.step(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="dc applies to the LSTM only"):
        rtrl.gradient(np.zeros((2, 3)), np.zeros((2, 3)))
