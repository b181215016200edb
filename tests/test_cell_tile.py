"""rnnkit.cell_tile: the LSTM's inference with the cell in the product's tiles equals the LSTM's
equations (float64, by NumPy) and PyTorch; a layer takes it where it pays."""
import numpy as np
import pytest

import rnnkit
from rnnkit import cell_tile, gemm, kernels, recurrent
from rnnkit.gradcheck import relative_error

from conftest import compile_every_call, split_on, torch_twin

pytestmark = pytest.mark.skipif(not kernels.ENABLED, reason="Numba not available")


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm_reference(x, W_ih, b_ih, W_hh, b_hh, h, c, reverse):
    """The LSTM's equations step by step, in float64: outputs, h_n, c_n."""
    x, W_ih, b_ih, W_hh, b_hh, h, c = (a.astype(np.float64) for a in (x, W_ih, b_ih, W_hh, b_hh, h, c))
    out = np.empty(x.shape[:2] + (h.shape[1],))
    for t in (reversed if reverse else iter)(range(x.shape[0])):
        i, f, g, o = np.split(x[t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = out[t] = sigmoid(o) * np.tanh(c)
    return out, h, c


@pytest.mark.parametrize("P,parts,H", [(2, 2, 64), (3, 3, 96), (2, 2, 32), (2, 1, 32), (3, 1, 48)])
@pytest.mark.parametrize("reverse", [False, True])
def test_cells_in_the_tiles_equal_the_equations(P, parts, H, reverse):
    """The kernel on P threads, which split the units (parts == P: each part's units whole groups)
    or each work alone on a block of rows (one part), from h0 and c0 not zero, forward and reverse:
    its outputs, h_n and c_n against the equations in float64."""
    T, B, I = 7, 4 * P, 24
    rng = np.random.default_rng(P * H + parts + reverse)
    W_ih, W_hh = (rng.uniform(-0.3, 0.3, (4 * H, n)).astype(np.float32) for n in (I, H))
    b_ih, b_hh = (rng.uniform(-0.5, 0.5, 4 * H).astype(np.float32) for _ in range(2))
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    h0, c0 = (rng.standard_normal((B, H)).astype(np.float32) for _ in range(2))
    h, c, out = h0.copy(), c0.copy(), np.empty((T, B, H), np.float32)
    buffer = np.empty(kernels.weights_size(W_hh, parts, I), np.float32)
    cell_tile.forward(x, W_ih, b_ih, W_hh, b_hh, h, c, reverse, out, P, parts, buffer)
    want = lstm_reference(x, W_ih, b_ih, W_hh, b_hh, h0, c0, reverse)
    for got, expected in zip((out, h, c), want):
        assert np.abs(got - expected).max() < 2e-6


def test_groups_put_each_units_four_gates_side_by_side():
    """layout: per part, groups of GROUP units, i and f of a group in one panel, g and o in the next."""
    H, P, G = 64, 2, cell_tile.GROUP
    edges, cols, rows, real = cell_tile.layout(4 * H, H, P)
    assert edges.tolist() == [0, 32, 64] and real.all()
    for p in range(P):
        for g in range(32 // G):
            units = edges[p] + g * G + np.arange(G)
            group = rows[p, 4 * G * g:4 * G * (g + 1)]
            assert group.tolist() == np.concatenate([gate * H + units for gate in range(4)]).tolist()
    assert (cols[:, :rows.shape[1]] == rows).all()


def test_where_it_pays(monkeypatch):
    """Threads that split the units or work alone on their rows, whole tiles of rows in each thread's
    block, whole groups of units in each part, float32, no padding."""
    monkeypatch.setattr(gemm, "PAIRED_ROWS", 32)
    full, padded = np.full(32, 100), np.r_[np.full(31, 100), 60]
    assert cell_tile.pays(256, 32, 256, 2, 2, np.float32, full)
    assert cell_tile.pays(512, 20, 512, 2, 2, np.float32, full[:20])      # tiles of 4 rows, 5 of them
    assert cell_tile.pays(128, 32, 128, 2, 1, np.float32, full)           # threads alone on their rows
    assert cell_tile.pays(64, 16, 64, 2, 1, np.float32, full[:16])
    assert not cell_tile.pays(0, 32, 256, 2, 2, np.float32, full)         # the input projected apart
    assert not cell_tile.pays(256, 32, 256, 1, 1, np.float32, full)       # one thread
    assert not cell_tile.pays(256, 32, 256, 2, 2, np.float64, full)
    assert not cell_tile.pays(256, 34, 256, 2, 2, np.float32, np.full(34, 100))  # a tile of 2 rows
    assert not cell_tile.pays(128, 20, 128, 2, 1, np.float32, full[:20])  # blocks of 10 rows
    assert not cell_tile.pays(650, 20, 650, 2, 2, np.float32, full[:20])  # 325 units a part
    assert not cell_tile.pays(256, 32, 256, 2, 2, np.float32, padded)
    monkeypatch.setattr(gemm, "PAIRED_ROWS", 0)
    assert not cell_tile.pays(256, 32, 256, 2, 2, np.float32, full)       # a CPU without paired tiles


@pytest.mark.parametrize("lengths", [None, [6] * 31 + [4]])
@pytest.mark.parametrize("alone", [False, True])
def test_a_layer_in_inference_takes_it_and_matches_torch(lengths, alone, monkeypatch):
    """A bidirectional LSTM in inference, each direction on two threads, which split the units or
    work alone on their rows: the cell in the tiles where the CPU runs paired tiles and no row is
    padded, the kernels' gate phase otherwise; PyTorch's outputs either way (packed sequences where
    padded)."""
    torch = pytest.importorskip("torch")
    split_on(monkeypatch, 2)
    compile_every_call(monkeypatch)
    if not alone:
        monkeypatch.setattr(kernels, "ALONE_BYTES", 0)
    monkeypatch.setattr(recurrent, "DIRECTIONS_AT_ONCE", False)         # each direction on both parts
    calls = []
    monkeypatch.setattr(cell_tile, "forward", lambda *args, f=cell_tile.forward: calls.append(args[9]) or f(*args))
    layer = rnnkit.LSTM(24, 64, seed=3, bidirectional=True)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 32, 24)).astype(np.float32)
    h0, c0 = (rng.standard_normal((2, 32, 64)).astype(np.float32) for _ in range(2))
    with rnnkit.no_grad():
        out, (h_n, c_n) = layer.forward(x, (h0, c0), lengths)
    assert calls == ([2, 2] if gemm.PAIRED_ROWS and lengths is None else [])
    assert kernels.packing_parts(2, 32, layer.params["weight_hh_l0"], 24) == (1 if alone else 2)
    twin, xt = torch_twin(layer), torch.from_numpy(x)
    if lengths is not None:
        xt = torch.nn.utils.rnn.pack_padded_sequence(xt, lengths, enforce_sorted=False)
    with torch.no_grad():
        out_t, (h_t, c_t) = twin(xt, (torch.from_numpy(h0), torch.from_numpy(c0)))
    if lengths is not None:
        out_t = torch.nn.utils.rnn.pad_packed_sequence(out_t, total_length=6)[0]
    for got, expected in ((out, out_t), (h_n, h_t), (c_n, c_t)):
        assert relative_error(got, expected.numpy()) < 1e-5
