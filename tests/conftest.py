"""Shared test helpers: PyTorch twins of rnnkit layers, and a loss that touches every output; and,
under pytest-xdist, the Numba kernels compiled once, shared out between the workers."""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import pytest

import rnnkit

WARM_DTYPES = (np.float32, np.float64)   # shared out in turn: with two workers, one each
WARM_WAIT = 900                          # seconds, at most, that a worker waits for the others to compile


def warm_kernels(dtypes):
    """Compile the layer kernels for `dtypes` (RNN, LSTM and GRU; serial and threaded; forward,
    backward and inference; the LSTM's cell, and its inference with the cell in the product's tiles
    too) into Numba's on-disk cache, by running small layers through them. From nothing, one process
    took 465 s for float32: 185.1 s for rnnkit.gemm (its tiles), then 279.8 s for the three layers'
    kernels; gemm's tiles built without Numba's SSA pass (rnnkit.jit.WithoutSSA), 127.8 s (a
    throwaway timing)."""
    from rnnkit import kernels
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        for mode in ("LSTM", "GRU", "RNN"):
            for threads in (1, 2):
                with pytest.MonkeyPatch.context() as monkeypatch:
                    split_on(monkeypatch, threads)
                    layer = make_layer(mode, input_size=5, hidden_size=7, dtype=dtype)
                    x = rng.standard_normal((32, 4, 5)).astype(dtype)      # 128 rows: packed products
                    out, _ = layer(x, lengths=[32, 5, 20, 1])
                    layer.backward(np.ones_like(out))
                    with rnnkit.no_grad():
                        layer(x)
            if mode == "LSTM":
                rnnkit.LSTMCell(5, 7, dtype=dtype)(x[0])
        with pytest.MonkeyPatch.context() as monkeypatch:          # rnnkit.cell_tile's kernel, where it pays
            split_on(monkeypatch, 2)
            compile_every_call(monkeypatch)
            monkeypatch.setattr(kernels, "ALONE_BYTES", 0)
            with rnnkit.no_grad():
                rnnkit.LSTM(5, 32, dtype=dtype)(rng.standard_normal((2, 32, 5)).astype(dtype))


def split_on(monkeypatch, threads):
    """Layers of any size run on `threads` parts, whatever the other processes' load."""
    from rnnkit import kernels
    monkeypatch.setattr(kernels, "MIN_UNITS", 1)
    monkeypatch.setattr(kernels, "MIN_WORK", 0)
    monkeypatch.setattr(kernels, "THREADS", threads)
    monkeypatch.setattr(kernels, "ADAPT", False)


def compile_every_call(monkeypatch):
    """The compiled loop for every call of a layer, however short (rnnkit.loop.compiled)."""
    from rnnkit import loop
    monkeypatch.setattr(loop, "SHORT_STEPS", dict.fromkeys(loop.SHORT_STEPS, 0))
    monkeypatch.setattr(loop, "SHORT_ROWS", dict.fromkeys(loop.SHORT_ROWS, 0))


def pytest_configure(config):
    """Each pytest-xdist worker compiles its share of the kernels (WARM_DTYPES in turn), then waits
    for the others before its first test, so that each kernel compiles in one worker and the rest
    load it from the cache. Without it, on a fresh clone both workers compiled nearly every kernel,
    the same ones at the same time. A clean clone's `bash .ci/run` on the project's 2-core machine:
    730 tests in 626.7 s without it; 601.8 s with the layers shared out by mode (the LSTM's
    compilation, which took the pieces all layers share with it, held the other worker up); 404.9
    s by dtype."""
    worker, count, folder = _warm_run()
    from rnnkit import kernels
    if worker is None or count < 2 or not kernels.ENABLED:
        return
    part = int(worker.removeprefix("gw"))
    os.makedirs(folder, exist_ok=True)
    try:
        warm_kernels(WARM_DTYPES[part::count])
    except Exception:             # the tests meet the same failure, and report it
        pass
    finally:
        open(os.path.join(folder, worker), "w").close()
    deadline = time.monotonic() + WARM_WAIT
    while len(os.listdir(folder)) < count and time.monotonic() < deadline:
        time.sleep(0.2)


def pytest_unconfigure(config):
    """A worker's mark goes at its end (every worker passed the wait long before); the last takes the folder."""
    worker, count, folder = _warm_run()
    if worker is not None and count >= 2 and os.path.isdir(folder):
        try:
            os.remove(os.path.join(folder, worker))
            os.rmdir(folder)
        except OSError:
            pass


def _warm_run():
    """This pytest-xdist worker's name (None outside a worker), the number of workers, and the
    folder where each marks that it has compiled its share."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    folder = os.path.join(tempfile.gettempdir(), "rnnkit-warm-" + os.environ.get("PYTEST_XDIST_TESTRUNUID", "run"))
    return worker, count, folder


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
