"""Initialisation: PyTorch's default, orthogonal, identity (IRNN) and the LSTM forget-gate bias."""
import numpy as np
import pytest

import rnnkit


def test_default_is_uniform_within_one_over_sqrt_h():
    H = 64
    layer = rnnkit.LSTM(32, H, seed=0)
    bound = 1 / np.sqrt(H)
    for name, p, _ in layer.named_parameters():
        assert np.abs(p).max() <= bound, name
        # U(-k, k) has standard deviation k / sqrt(3)
        assert abs(p.std() - bound / np.sqrt(3)) < 0.05 * bound, name


def test_orthogonal_blocks():
    layer = rnnkit.GRU(5, 16, init_hh="orthogonal", dtype=np.float64, seed=0)
    W = layer.params["weight_hh_l0"]
    for k in range(3):
        block = W[16 * k:16 * (k + 1)]
        np.testing.assert_allclose(block @ block.T, np.eye(16), atol=1e-12)
    assert not np.allclose(W[:16], W[16:32])  # each gate gets its own matrix


def test_identity_irnn():
    layer = rnnkit.RNN(3, 8, nonlinearity="relu", init_hh="identity", num_layers=2, seed=0)
    for l in range(2):
        assert np.array_equal(layer.params[f"weight_hh_l{l}"], np.eye(8, dtype=np.float32))
        assert not layer.params[f"bias_ih_l{l}"].any() and not layer.params[f"bias_hh_l{l}"].any()
    # with zero input, a ReLU RNN with identity weights keeps a positive state unchanged
    h0 = np.abs(np.random.default_rng(0).standard_normal((2, 1, 8))).astype(np.float32)
    layer.params["weight_ih_l1"][...] = 0
    _, h_n = layer.forward(np.zeros((50, 1, 3), np.float32), h0)
    np.testing.assert_allclose(h_n, h0, rtol=1e-6)


def test_forget_bias():
    layer = rnnkit.LSTM(3, 4, forget_bias=1.0, seed=0)
    assert np.all(layer.params["bias_ih_l0"][4:8] == 1.0)
    assert np.all(layer.params["bias_hh_l0"][4:8] == 0.0)
    with pytest.raises(ValueError, match="forget_bias"):
        rnnkit.GRU(3, 4, forget_bias=1.0)


def test_seed_reproducible_and_default_dtype():
    a, b = rnnkit.LSTM(3, 4, seed=7), rnnkit.LSTM(3, 4, seed=7)
    for (n, p, _), (_, q, _) in zip(a.named_parameters(), b.named_parameters()):
        assert np.array_equal(p, q) and p.dtype == np.float32, n
    out, _ = a.forward(np.zeros((2, 1, 3)))
    assert out.dtype == np.float32
