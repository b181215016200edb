"""Cells stepped by hand equal the layer; chunked (stateful) runs equal one long run."""
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.gradcheck import relative_error

from conftest import split_state, torch_twin

PAIRS = [(rnnkit.RNNCell, rnnkit.RNN), (rnnkit.LSTMCell, rnnkit.LSTM), (rnnkit.GRUCell, rnnkit.GRU)]


@pytest.mark.parametrize("cell_cls,layer_cls", PAIRS, ids=["RNN", "LSTM", "GRU"])
def test_cell_stepped_by_hand_equals_layer(cell_cls, layer_cls):
    rng = np.random.default_rng(0)
    T, B, I, H = 7, 3, 4, 5
    layer = layer_cls(I, H, dtype=np.float64, seed=2)
    cell = cell_cls(I, H, dtype=np.float64, seed=9)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})  # drop the "_l0" suffix
    x = rng.standard_normal((T, B, I))
    out, final = layer.forward(x)

    state, caches, outs = None, [], []
    for t in range(T):
        state, cache = cell.step(x[t], state)
        caches.append(cache)
        outs.append(split_state(state)[0])
    np.testing.assert_allclose(np.stack(outs), out, rtol=1e-13, atol=1e-13)

    # backward through time by hand with step_backward equals the layer's backward
    dout = rng.standard_normal(out.shape)
    dx_layer, _ = layer.backward(dout)
    dstate = (np.zeros((B, H)), np.zeros((B, H))) if layer.mode == "LSTM" else np.zeros((B, H))
    dxs = []
    for t in reversed(range(T)):
        dh, dc = split_state(dstate)
        dx, dstate = cell.step_backward((dh + dout[t], dc) if dc is not None else dh + dout[t], caches[t])
        dxs.append(dx)
    np.testing.assert_allclose(np.stack(dxs[::-1]), dx_layer, rtol=1e-12, atol=1e-12)
    for name, g in cell.grads.items():
        np.testing.assert_allclose(g, layer.grads[name + "_l0"], rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("layer_cls", [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU], ids=["RNN", "LSTM", "GRU"])
def test_truncated_bptt_chunks_match_torch_with_detach(layer_cls):
    """Passing a chunk's final state into the next chunk: same outputs as one run, and gradients
    that stop at the chunk boundary (torch: .detach() there). Gradients accumulate across backward calls."""
    rng = np.random.default_rng(1)
    T, B, I, H, k = 12, 2, 3, 4, 5
    layer = layer_cls(I, H, num_layers=2, dtype=np.float64, seed=0)
    twin = torch_twin(layer)
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, H))

    full, _ = layer.forward(x)
    state, outs = None, []
    for s in range(0, T, k):
        out, state = layer.forward(x[s:s + k], state)
        layer.backward(dout[s:s + k])
        outs.append(out)
    np.testing.assert_allclose(np.concatenate(outs), full, rtol=1e-13, atol=1e-13)

    hx = None
    for s in range(0, T, k):
        out_t, hx = twin(torch.from_numpy(x[s:s + k]), hx)
        (out_t * torch.from_numpy(dout[s:s + k])).sum().backward()
        hx = tuple(h.detach() for h in hx) if isinstance(hx, tuple) else hx.detach()
    for name, p in twin.named_parameters():
        assert relative_error(layer.grads[name], p.grad.numpy()) < 1e-10, name

    layer.zero_grad()
    assert all(not g.any() for _, _, g in layer.named_parameters())
