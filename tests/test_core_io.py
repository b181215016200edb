"""state_dict / safetensors round trips between rnnkit and torch.nn."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file as torch_load_file
from safetensors.torch import save_file as torch_save_file

import rnnkit

from conftest import make_layer, split_state


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_safetensors_round_trip_through_torch(mode, tmp_path):
    rng = np.random.default_rng(0)
    layer = make_layer(mode, input_size=3, hidden_size=4, num_layers=2, bidirectional=True, seed=5)
    path = tmp_path / "w.safetensors"
    layer.save(str(path))

    twin = getattr(torch.nn, mode)(3, 4, num_layers=2, bidirectional=True)
    twin.load_state_dict(torch_load_file(str(path)))              # rnnkit file -> torch.nn
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    out, _ = layer.forward(x)
    with torch.no_grad():
        out_t, _ = twin(torch.from_numpy(x))
    np.testing.assert_allclose(out, out_t.numpy(), rtol=1e-5, atol=1e-6)

    with torch.no_grad():                                        # change torch's weights, send them back
        for p in twin.parameters():
            p.mul_(0.5)
        out_t, _ = twin(torch.from_numpy(x))
    torch_save_file(twin.state_dict(), str(tmp_path / "back.safetensors"))
    fresh = make_layer(mode, input_size=3, hidden_size=4, num_layers=2, bidirectional=True, seed=6)
    fresh.load(str(tmp_path / "back.safetensors"))
    np.testing.assert_allclose(fresh.forward(x)[0], out_t.numpy(), rtol=1e-5, atol=1e-6)


def test_state_dict_names_and_shapes_equal_torch():
    for mode in ("RNN", "LSTM", "GRU"):
        layer = make_layer(mode, input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
        twin = getattr(torch.nn, mode)(3, 4, num_layers=2, bidirectional=True)
        ours = {k: v.shape for k, v in layer.state_dict().items()}
        assert ours == {k: tuple(v.shape) for k, v in twin.state_dict().items()}


def test_state_dict_is_a_copy_and_load_restores(tmp_path):
    layer = rnnkit.LSTM(2, 3, seed=0)
    sd = layer.state_dict()
    sd["weight_hh_l0"][...] = 0
    assert layer.params["weight_hh_l0"].any()
    layer.load_state_dict(sd)
    assert not layer.params["weight_hh_l0"].any()


def test_save_is_atomic_and_keeps_old_file_on_failure(tmp_path, monkeypatch):
    layer = rnnkit.GRU(2, 3, seed=0)
    path = tmp_path / "w.safetensors"
    layer.save(str(path))
    before = path.read_bytes()
    import os

    def crash(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", crash)
    layer.params["weight_ih_l0"][...] = 1.0
    with pytest.raises(OSError):
        layer.save(str(path))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary file left


def test_float64_layer_round_trip(tmp_path):
    layer = rnnkit.RNN(2, 3, dtype=np.float64, seed=0)
    layer.save(str(tmp_path / "w.safetensors"))
    other = rnnkit.RNN(2, 3, dtype=np.float64, seed=1)
    other.load(str(tmp_path / "w.safetensors"))
    x = np.random.default_rng(0).standard_normal((4, 1, 2))
    h_a = split_state(layer.forward(x)[1])[0]
    assert np.array_equal(h_a, split_state(other.forward(x)[1])[0])
