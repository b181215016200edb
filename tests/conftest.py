"""Shared test helpers: PyTorch twins of rnnkit layers, and a loss that touches every output."""
from __future__ import annotations

import numpy as np
import pytest

import rnnkit


def torch_twin(layer):
    """The torch.nn layer with the same configuration and weights as an rnnkit layer or cell."""
    import torch

    tdtype = torch.float64 if layer.dtype == np.float64 else torch.float32
    is_cell = isinstance(layer, rnnkit.cells.CellBase)
    kind = layer.mode + ("Cell" if is_cell else "")
    kw = dict(bias=layer.bias, dtype=tdtype)
    if not is_cell:
        kw.update(num_layers=layer.num_layers, batch_first=layer.batch_first,
                  dropout=layer.dropout, bidirectional=layer.bidirectional)
    if layer.mode == "RNN":
        kw["nonlinearity"] = layer.nonlinearity
    twin = getattr(torch.nn, kind)(layer.input_size, layer.hidden_size, **kw)
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.state_dict().items()})
    return twin


def make_layer(mode, nonlinearity="tanh", **kw):
    cls = {"RNN": rnnkit.RNN, "LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU}[mode]
    if mode == "RNN":
        kw["nonlinearity"] = nonlinearity
    return cls(**kw)


def random_state(layer, B, rng, dtype):
    shape = (layer.num_layers * layer.num_directions, B, layer.hidden_size)
    h0 = rng.standard_normal(shape).astype(dtype)
    if layer.mode == "LSTM":
        return h0, rng.standard_normal(shape).astype(dtype)
    return h0


def split_state(state):
    """(h, c) for LSTM states, (h, None) otherwise."""
    return state if isinstance(state, tuple) else (state, None)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
