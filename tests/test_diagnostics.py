"""Gradient-flow diagnostics against torch autograd, and the phenomenon they exist to show."""
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.diagnostics import gradient_flow, spectral_radius

from conftest import make_layer

CELLS = [("RNN", "tanh"), ("RNN", "relu"), ("LSTM", None), ("GRU", None)]
T, B, I, H = 6, 3, 2, 4


def make(mode, nl, seed=0):
    layer = make_layer(mode, nl or "tanh", input_size=I, hidden_size=H, dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed + 7)
    for _, p, _ in layer.named_parameters():
        p[...] = rng.uniform(-0.9, 0.9, p.shape)
    return layer


def torch_cell_of(layer):
    """torch.nn.*Cell with the layer's weights (names without the _l0 suffix)."""
    kw = {"nonlinearity": layer.nonlinearity} if layer.mode == "RNN" else {}
    cell = getattr(torch.nn, layer.mode + "Cell")(I, H, dtype=torch.float64, **kw)
    cell.load_state_dict({k[:-3]: torch.from_numpy(v.copy()) for k, v in layer.state_dict().items()})
    return cell


@pytest.mark.parametrize("cell", CELLS, ids=[f"{m}-{n}" for m, n in CELLS])
def test_grad_and_jacobian_norms_match_torch(cell):
    mode, _ = cell
    layer = make(*cell)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, I))
    R = rng.standard_normal((T, B, H))

    def loss_grad(h):                     # L = sum_t <R_t, h_t>^2 / 2 : a gradient at every step
        s = (R * h).sum(axis=2, keepdims=True)
        return float(0.5 * (s * s).sum()), s * R

    flow = gradient_flow(layer, x, loss_grad, jacobian_batch=B)

    tcell = torch_cell_of(layer)
    lstm = mode == "LSTM"
    zeros = torch.zeros(B, H, dtype=torch.float64)
    state = (zeros, zeros.clone()) if lstm else zeros
    hs, states = [], []
    for t in range(T):
        state = tcell(torch.from_numpy(x[t]), state)
        h = state[0] if lstm else state
        h.retain_grad()
        hs.append(h)
        states.append(state)
    loss = sum(0.5 * ((torch.from_numpy(R[t]) * hs[t]).sum(1) ** 2).sum() for t in range(T))
    loss.backward()
    expected = np.array([np.linalg.norm(h.grad.numpy(), axis=1).mean() for h in hs])   # total dL/dh_t
    np.testing.assert_allclose(flow.loss, loss.item(), rtol=1e-12)
    np.testing.assert_allclose(flow.grad_norms, expected, rtol=1e-10, err_msg="||dL/dh_t||")

    # d h_{T-1} / d h_t with c_t held fixed, by torch.autograd.functional.jacobian, sequence by sequence
    jac = np.empty(T)
    for t in range(T):
        norms = []
        for b in range(B):
            c_t = states[t][1][b:b + 1].detach() if lstm else None

            def from_h(h_t, t=t, b=b, c_t=c_t):
                st = (h_t, c_t) if lstm else h_t
                for s in range(t + 1, T):
                    st = tcell(torch.from_numpy(x[s, b:b + 1]), st)
                return st[0] if lstm else st

            J = torch.autograd.functional.jacobian(from_h, hs[t][b:b + 1].detach())[0, :, 0, :]
            norms.append(np.linalg.norm(J.numpy(), 2))
        jac[t] = np.mean(norms)
    np.testing.assert_allclose(flow.jacobian_norms, jac, rtol=1e-10, err_msg="||dh_{T-1}/dh_t||")
    assert flow.jacobian_norms[-1] == pytest.approx(1.0)


def test_spectral_radius_per_gate():
    rng = np.random.default_rng(0)
    lstm = rnnkit.LSTM(2, 5, seed=0)
    W = lstm.params["weight_hh_l0"]
    rho = spectral_radius(lstm)
    assert list(rho) == ["i", "f", "g", "o"]
    for k, gate in enumerate(rho):
        assert rho[gate] == pytest.approx(max(abs(np.linalg.eigvals(W[k * 5:(k + 1) * 5].astype(np.float64)))))
    assert spectral_radius(rnnkit.RNN(2, 7, init_hh="identity")) == {"h": pytest.approx(1.0)}
    cell = rnnkit.GRUCell(2, 3)
    cell.params["weight_hh"][...] = rng.standard_normal((9, 3))
    assert list(spectral_radius(cell)) == ["r", "z", "n"]


def test_tanh_rnn_vanishes_where_irnn_keeps_gradient():
    """Default tanh RNN: the gradient 60 steps back is tiny; the IRNN (ReLU, W_hh = I) keeps it."""
    rng = np.random.default_rng(0)
    x = rng.random((60, 4, 2))

    def last_step_loss(h):
        dh = np.zeros_like(h)
        dh[-1] = 1.0
        return float(h[-1].sum()), dh

    rnn = gradient_flow(rnnkit.RNN(2, 32, seed=0), x, last_step_loss)
    irnn = gradient_flow(rnnkit.RNN(2, 32, nonlinearity="relu", init_hh="identity", seed=0), x, last_step_loss)
    assert rnn.grad_norms[0] / rnn.grad_norms[-1] < 1e-6
    assert rnn.jacobian_norms[0] < 1e-6
    assert irnn.grad_norms[0] / irnn.grad_norms[-1] > 0.1
    assert irnn.jacobian_norms[0] == pytest.approx(1.0)


def test_diagnose_cli(tmp_path, capsys):
    out = tmp_path / "g.png"
    assert main(["diagnose", "--cells", "rnn,gru", "--hidden", "8", "--length", "12", "--batch", "2",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "rnn (fresh)" in text and "gru (fresh)" in text and "rho(W_hh)" in text
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv,message", [
    (["--cells", "lstm,tanh"], "--cells must name cells from rnn, irnn, lstm, gru, got 'tanh'"),
    (["--length", "1"], "--length must be a positive integer >= 2, got 1"),
    (["--cells", ""], "nothing to diagnose: give --cells or --model"),
    (["--out", "g.jpg"], "--out must name a .png file, got 'g.jpg'"),
    (["--cells", "", "--model", "missing.safetensors"], "missing.safetensors"),
])
def test_diagnose_cli_errors_are_one_line(argv, message, capsys):
    assert main(["diagnose"] + argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_gradient_flow_errors():
    with pytest.raises(ValueError, match="num_layers=2"):
        gradient_flow(rnnkit.GRU(2, 3, num_layers=2), np.zeros((3, 1, 2)), lambda h: (0.0, h))
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, 2\), got shape \(3, 2\)"):
        gradient_flow(rnnkit.GRU(2, 3), np.zeros((3, 2)), lambda h: (0.0, h))
    with pytest.raises(ValueError, match="loss_grad must return dL/dh of shape"):
        gradient_flow(rnnkit.GRU(2, 3), np.zeros((3, 1, 2)), lambda h: (0.0, h[-1]))
