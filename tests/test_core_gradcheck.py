"""Float64 central differences for every parameter, the input and the initial state of each layer."""
import itertools

import numpy as np
import pytest

import rnnkit
from rnnkit.gradcheck import numerical_grad, relative_error

from conftest import make_layer, random_state, split_state

CELLS = [("RNN", "tanh"), ("RNN", "relu"), ("LSTM", None), ("GRU", None)]
GRID = list(itertools.product(CELLS, [True, False], [1, 2], [False, True], [False, True]))
T, B, I, H = 4, 3, 3, 2
TOL = 1e-6


def loss_and_grads(layer, x, state, lengths, R):
    """L = sum(R_out * output) + sum(R_h * h_n) [+ sum(R_c * c_n)], with its analytic gradients."""
    out, final = layer.forward(x, state, lengths)
    h_n, c_n = split_state(final)
    L = (R["out"] * out).sum() + (R["h"] * h_n).sum()
    if c_n is not None:
        L += (R["c"] * c_n).sum()
    return L


@pytest.mark.parametrize("cell,bias,num_layers,bidirectional,ragged", GRID,
                         ids=[f"{c[0]}-{c[1]}-bias{b}-L{n}-bi{d}-ragged{r}" for c, b, n, d, r in GRID])
def test_finite_differences(cell, bias, num_layers, bidirectional, ragged):
    mode, nl = cell
    rng = np.random.default_rng(GRID.index((cell, bias, num_layers, bidirectional, ragged)))
    layer = make_layer(mode, nl or "tanh", input_size=I, hidden_size=H, num_layers=num_layers, bias=bias,
                       bidirectional=bidirectional, dtype=np.float64, seed=0)
    for _, p, _ in layer.named_parameters():  # spread the weights so the cells leave their linear range
        p[...] = rng.uniform(-1, 1, p.shape)
    x = rng.standard_normal((T, B, I))
    state = random_state(layer, B, rng, np.float64)
    h0, c0 = split_state(state)
    lengths = np.array([T, 2, 1]) if ragged else None
    D = layer.num_directions
    R = {"out": rng.standard_normal((T, B, D * H)), "h": rng.standard_normal(h0.shape),
         "c": rng.standard_normal(h0.shape)}

    def f():
        return loss_and_grads(layer, x, state, lengths, R)

    f()
    layer.zero_grad()
    grad_state = (R["h"], R["c"]) if c0 is not None else R["h"]
    dx, dstate = layer.backward(R["out"], grad_state)
    dh0, dc0 = split_state(dstate)
    checks = [("input", x, dx), ("h_0", h0, dh0)] + ([("c_0", c0, dc0)] if c0 is not None else [])
    checks += [(name, p, g) for name, p, g in layer.named_parameters()]
    for name, value, analytic in checks:
        numeric = numerical_grad(f, value)
        err = relative_error(analytic, numeric)
        assert err < TOL, f"{name}: relative error {err:.2e} between backward and finite differences"


def test_finite_differences_with_dropout_between_layers():
    rng = np.random.default_rng(7)
    layer = rnnkit.LSTM(I, H, num_layers=3, dropout=0.4, dtype=np.float64, seed=0)
    x = rng.standard_normal((T, B, I))
    R = rng.standard_normal((T, B, H))

    def f():
        layer.rng = np.random.default_rng(99)  # the same dropout masks on every forward
        return (R * layer.forward(x)[0]).sum()

    f()
    dx, _ = layer.backward(R)
    assert relative_error(dx, numerical_grad(f, x)) < TOL
    for name, p, g in layer.named_parameters():
        assert relative_error(g, numerical_grad(f, p)) < TOL, name
