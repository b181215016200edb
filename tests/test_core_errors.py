"""Bad input raises ValueError or TypeError naming the argument and the value received."""
import numpy as np
import pytest

import rnnkit


@pytest.fixture
def lstm():
    return rnnkit.LSTM(3, 4, num_layers=2, seed=0)


def test_wrong_rank(lstm):
    with pytest.raises(ValueError, match=r"input must have 3 dimensions, got shape \(5, 3\)"):
        lstm.forward(np.zeros((5, 3)))


def test_wrong_feature_size(lstm):
    with pytest.raises(ValueError, match=r"input must have size 3 in its last dimension, got shape \(5, 2, 4\)"):
        lstm.forward(np.zeros((5, 2, 4)))


def test_non_floating_input(lstm):
    with pytest.raises(TypeError, match="input must hold floating-point numbers, got dtype int64"):
        lstm.forward(np.zeros((5, 2, 3), dtype=np.int64))


@pytest.mark.parametrize("lengths,message", [
    ([5, 6], r"lengths must lie in \[1, 5\].*got \[5, 6\]"),
    ([0, 3], r"lengths must lie in \[1, 5\].*got \[0, 3\]"),
    ([5, 3, 2], r"lengths must have shape \(2,\) to match the batch, got shape \(3,\)"),
    ([2.0, 3.0], "lengths must hold integers, got dtype float64"),
])
def test_bad_lengths(lstm, lengths, message):
    with pytest.raises((ValueError, TypeError), match=message):
        lstm.forward(np.zeros((5, 2, 3)), lengths=np.array(lengths))


def test_state_of_wrong_shape(lstm):
    h = np.zeros((2, 2, 4))
    with pytest.raises(ValueError, match=r"c_0 must have shape \(2, 2, 4\), got shape \(1, 2, 4\)"):
        lstm.forward(np.zeros((5, 2, 3)), (h, np.zeros((1, 2, 4))))
    with pytest.raises(TypeError, match="hx for LSTM must be a tuple"):
        lstm.forward(np.zeros((5, 2, 3)), h)
    gru = rnnkit.GRU(3, 4)
    with pytest.raises(ValueError, match=r"h_0 must have shape \(1, 2, 4\), got shape \(1, 1, 4\)"):
        gru.forward(np.zeros((5, 2, 3)), np.zeros((1, 1, 4)))  # no broadcasting over the batch


def test_backward_before_forward_and_twice(lstm):
    with pytest.raises(ValueError, match="backward.. called before forward"):
        lstm.backward(np.zeros((5, 2, 4)))
    out, _ = lstm.forward(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"grad_output must have shape \(5, 2, 4\), got shape \(5, 2, 3\)"):
        lstm.backward(np.zeros((5, 2, 3)))
    lstm.backward(np.zeros_like(out))
    with pytest.raises(ValueError, match="backward.. called before forward"):
        lstm.backward(np.zeros_like(out))
    cell = rnnkit.GRUCell(3, 4)
    with pytest.raises(ValueError, match="backward.. called before forward"):
        cell.backward(np.zeros((1, 4)))


def test_load_state_dict_unknown_keys_and_shapes(lstm):
    sd = lstm.state_dict()
    sd["weight_hh_l7"] = sd.pop("weight_hh_l1")
    with pytest.raises(ValueError, match=r"unknown keys \['weight_hh_l7'\], missing keys \['weight_hh_l1'\]"):
        lstm.load_state_dict(sd)
    sd = lstm.state_dict()
    sd["bias_ih_l0"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"bias_ih_l0 must have shape \(16,\), got shape \(3,\)"):
        lstm.load_state_dict(sd)


def test_load_rejects_non_safetensors_file(lstm, tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        lstm.load(str(path))


@pytest.mark.parametrize("kwargs,exc,message", [
    (dict(hidden_size=0), ValueError, "hidden_size must be a positive integer, got 0"),
    (dict(num_layers=1.5), ValueError, "num_layers must be a positive integer, got 1.5"),
    (dict(dropout=1.0), ValueError, r"dropout must be a number in \[0, 1\), got 1.0"),
    (dict(nonlinearity="sigmoid"), ValueError, "nonlinearity must be one of .*got 'sigmoid'"),
    (dict(dtype=np.int32), TypeError, "dtype must be float32 or float64, got int32"),
    (dict(init_hh="zeros"), ValueError, "init_hh must be one of .*got 'zeros'"),
])
def test_bad_constructor_arguments(kwargs, exc, message):
    args = dict(input_size=3, hidden_size=4)
    args.update(kwargs)
    with pytest.raises(exc, match=message):
        rnnkit.RNN(**args)
