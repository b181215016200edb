"""PyTorch as oracle: random configurations, the same weights, every output and gradient compared."""
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.gradcheck import relative_error

from conftest import make_layer, random_state, split_state, torch_twin

TOLERANCE = {np.float64: 1e-6, np.float32: 1e-4}
CELLS = [("RNN", "tanh"), ("RNN", "relu"), ("LSTM", "tanh"), ("GRU", "tanh")]


def random_config(seed):
    rng = np.random.default_rng(seed)
    mode, nl = CELLS[seed % 4]
    T, B = int(rng.integers(1, 9)), int(rng.integers(1, 6))
    cfg = dict(input_size=int(rng.integers(1, 7)), hidden_size=int(rng.integers(1, 7)),
               num_layers=int(rng.integers(1, 4)), bias=bool(rng.random() < 0.8),
               batch_first=bool(rng.random() < 0.5), bidirectional=bool(rng.random() < 0.5))
    ragged, with_state = bool(rng.random() < 0.6), bool(rng.random() < 0.5)
    return rng, mode, nl, T, B, cfg, ragged, with_state


def run_torch(twin, x, state, lengths, batch_first):
    """Forward through torch, packing ragged batches with pack_padded_sequence."""
    xt = torch.from_numpy(x.copy()).requires_grad_()
    hx = None
    if state is not None:
        h0, c0 = split_state(state)
        hx = torch.from_numpy(h0.copy()).requires_grad_()
        if c0 is not None:
            hx = (hx, torch.from_numpy(c0.copy()).requires_grad_())
    inp = xt
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.from_numpy(lengths), batch_first=batch_first,
                                                      enforce_sorted=False)
    out, final = twin(inp, hx)
    if lengths is not None:
        T = x.shape[1] if batch_first else x.shape[0]
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    return xt, hx, out, final


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("seed", range(48))
def test_matches_torch(seed, dtype):
    rng, mode, nl, T, B, cfg, ragged, with_state = random_config(seed)
    layer = make_layer(mode, nl, dtype=dtype, seed=seed, **cfg)
    twin = torch_twin(layer)
    x = rng.standard_normal((B, T, cfg["input_size"]) if cfg["batch_first"] else (T, B, cfg["input_size"]))
    x = x.astype(dtype)
    lengths = rng.integers(1, T + 1, B) if ragged else None
    state = random_state(layer, B, rng, dtype) if with_state else None

    out, final = layer.forward(x, state, lengths)
    xt, hx, out_t, final_t = run_torch(twin, x, state, lengths, cfg["batch_first"])
    tol = TOLERANCE[dtype]
    h_n, c_n = split_state(final)
    h_t, c_t = split_state(final_t)
    assert relative_error(out, out_t.detach().numpy()) < tol, "output"
    assert relative_error(h_n, h_t.detach().numpy()) < tol, "h_n"
    if c_n is not None:
        assert relative_error(c_n, c_t.detach().numpy()) < tol, "c_n"

    R_out = rng.standard_normal(out.shape).astype(dtype)
    R_h = rng.standard_normal(h_n.shape).astype(dtype)
    R_c = rng.standard_normal(h_n.shape).astype(dtype)
    loss = (out_t * torch.from_numpy(R_out)).sum() + (h_t * torch.from_numpy(R_h)).sum()
    if c_t is not None:
        loss = loss + (c_t * torch.from_numpy(R_c)).sum()
    loss.backward()
    dx, dstate = layer.backward(R_out, (R_h, R_c) if c_n is not None else R_h)
    assert relative_error(dx, xt.grad.numpy()) < tol, "grad of input"
    if state is not None:
        dh0, dc0 = split_state(dstate)
        h0_t, c0_t = split_state(hx)
        assert relative_error(dh0, h0_t.grad.numpy()) < tol, "grad of h_0"
        if dc0 is not None:
            assert relative_error(dc0, c0_t.grad.numpy()) < tol, "grad of c_0"
    for name, p in twin.named_parameters():
        assert relative_error(layer.grads[name], p.grad.numpy()) < tol, f"grad of {name}"


def test_padded_outputs_are_zero_and_final_state_is_at_own_length():
    rng = np.random.default_rng(0)
    layer = rnnkit.GRU(3, 4, bidirectional=True, dtype=np.float64, seed=0)
    x = rng.standard_normal((6, 2, 3))
    out, h_n = layer.forward(x, lengths=np.array([6, 3]))
    assert np.all(out[3:, 1] == 0)
    alone, h_alone = layer.forward(x[:3, 1:2])      # the short sequence on its own
    np.testing.assert_allclose(out[:3, 1:2], alone, rtol=0, atol=1e-14)
    np.testing.assert_allclose(h_n[:, 1:2], h_alone, rtol=0, atol=1e-14)


def test_cells_match_torch_cells():
    rng = np.random.default_rng(3)
    for cls in (rnnkit.RNNCell, rnnkit.LSTMCell, rnnkit.GRUCell):
        cell = cls(5, 4, dtype=np.float64, seed=1)
        twin = torch_twin(cell)
        x = rng.standard_normal((3, 5))
        state = (rng.standard_normal((3, 4)), rng.standard_normal((3, 4))) if cls is rnnkit.LSTMCell \
            else rng.standard_normal((3, 4))
        new = cell.forward(x, state)
        xt = torch.from_numpy(x).requires_grad_()
        st = tuple(torch.from_numpy(s).requires_grad_() for s in state) if isinstance(state, tuple) \
            else torch.from_numpy(state).requires_grad_()
        new_t = twin(xt, st)
        grads = [rng.standard_normal((3, 4)) for _ in range(2)]
        if isinstance(new, tuple):
            for a, b in zip(new, new_t):
                assert relative_error(a, b.detach().numpy()) < 1e-12
            sum((t * torch.from_numpy(g)).sum() for t, g in zip(new_t, grads)).backward()
            dx, dstate = cell.backward(tuple(grads))
            st_grads = [s.grad.numpy() for s in st]
        else:
            assert relative_error(new, new_t.detach().numpy()) < 1e-12
            (new_t * torch.from_numpy(grads[0])).sum().backward()
            dx, dstate = cell.backward(grads[0])
            dstate, st_grads = (dstate,), [st.grad.numpy()]
        assert relative_error(dx, xt.grad.numpy()) < 1e-12, cls.__name__
        for a, b in zip(dstate, st_grads):
            assert relative_error(a, b) < 1e-12, cls.__name__
        for name, p in twin.named_parameters():
            assert relative_error(cell.grads[name], p.grad.numpy()) < 1e-12, f"{cls.__name__} {name}"
