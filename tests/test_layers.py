"""Linear, Embedding and Dropout: float64 central differences and PyTorch with copied weights."""
import numpy as np
import pytest
import torch

from rnnkit import kernels
from rnnkit.gradcheck import numerical_grad, relative_error
from rnnkit.layers import Dropout, Embedding, Linear


@pytest.mark.parametrize("shape", [(5, 4), (3, 2, 4), (2, 3, 2, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(shape, bias, rng):
    layer = Linear(4, 3, bias=bias, dtype=np.float64, seed=0)
    x = rng.standard_normal(shape)
    w = rng.standard_normal(shape[:-1] + (3,))                     # loss = sum(w * y)
    f = lambda: float((layer.forward(x) * w).sum())                # noqa: E731
    f()
    layer.zero_grad()
    dx = layer.backward(w)
    assert relative_error(dx, numerical_grad(f, x)) < 1e-8, "dx"
    for name, p in layer.params.items():
        assert relative_error(layer.grads[name], numerical_grad(f, p)) < 1e-8, name


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_linear_matches_torch(dtype, tol, rng):
    layer = Linear(7, 5, dtype=dtype, seed=3)
    twin = torch.nn.Linear(7, 5, dtype=torch.float64 if dtype == np.float64 else torch.float32)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x = rng.standard_normal((4, 3, 7)).astype(dtype)
    dy = rng.standard_normal((4, 3, 5)).astype(dtype)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = twin(xt)
    yt.backward(torch.from_numpy(dy))
    y = layer.forward(x)
    dx = layer.backward(dy)
    assert relative_error(y, yt.detach().numpy()) < tol, "output"
    assert relative_error(dx, xt.grad.numpy()) < tol, "dx"
    assert relative_error(layer.grads["weight"], twin.weight.grad.numpy()) < tol, "dweight"
    assert relative_error(layer.grads["bias"], twin.bias.grad.numpy()) < tol, "dbias"


def test_embedding_gradcheck_and_torch(rng):
    layer = Embedding(6, 3, dtype=np.float64, seed=1)
    ids = np.array([[0, 5, 2], [2, 2, 1]])                         # repeated ids accumulate
    w = rng.standard_normal((2, 3, 3))
    f = lambda: float((layer.forward(ids) * w).sum())              # noqa: E731
    f()
    layer.zero_grad()
    assert layer.backward(w) is None
    assert relative_error(layer.grads["weight"], numerical_grad(f, layer.params["weight"])) < 1e-8, "dweight"

    twin = torch.nn.Embedding(6, 3, dtype=torch.float64)
    twin.load_state_dict({"weight": torch.from_numpy(layer.params["weight"].copy())})
    out = twin(torch.from_numpy(ids))
    out.backward(torch.from_numpy(w))
    assert np.array_equal(layer.forward(ids), out.detach().numpy()), "output"
    assert relative_error(layer.grads["weight"], twin.weight.grad.numpy()) < 1e-12, "dweight vs torch"


@pytest.mark.skipif(not kernels.ENABLED, reason="Numba not available")
def test_embedding_backward_compiled_adds_as_np_add_at(rng, monkeypatch):
    ids = rng.integers(0, 10, (50, 7))                             # each id about 35 times
    dy = rng.standard_normal((50, 7, 16)).astype(np.float32)
    grads = []
    for compiled in (True, False):
        monkeypatch.setattr(kernels, "ENABLED", compiled)
        layer = Embedding(10, 16, seed=0)
        layer.forward(ids)
        layer.backward(dy[:, :, ::-1] if compiled else dy[:, :, ::-1].copy())   # a strided view too
        grads.append(layer.grads["weight"])
    assert np.array_equal(*grads)


def test_embedding_rejects_bad_ids():
    layer = Embedding(4, 2)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 4\), got values in \[0, 4\]"):
        layer.forward(np.array([0, 4]))
    with pytest.raises(TypeError, match="ids must hold integers, got dtype float64"):
        layer.forward(np.array([0.0, 1.0]))


def test_linear_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"size 3 in its last dimension, got shape \(2, 4\)"):
        Linear(3, 2).forward(np.zeros((2, 4), np.float32))


def test_dropout_gradcheck_with_fixed_mask(rng):
    for variational in (False, True):
        layer = Dropout(0.4, variational=variational, seed=7)
        x = rng.standard_normal((5, 3, 4))
        w = rng.standard_normal((5, 3, 4))

        def f():
            layer.rng = np.random.default_rng(7)                   # the same mask every call
            return float((layer.forward(x) * w).sum())

        f()
        dx = layer.backward(w)
        assert relative_error(dx, numerical_grad(f, x)) < 1e-8, f"dx variational={variational}"


def test_dropout_statistics_and_modes(rng):
    x = np.ones((200, 50, 8), np.float32)
    layer = Dropout(0.3, seed=0)
    y = layer.forward(x)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.7)}
    assert abs((y == 0).mean() - 0.3) < 0.01                        # drop rate p
    assert abs(y.mean() - 1.0) < 0.02                               # inverted: expectation kept
    layer.eval()
    assert layer.forward(x) is x and layer.backward(x) is x         # identity in eval mode
    assert Dropout(0.0).forward(x) is x


def test_variational_dropout_reuses_mask_across_time():
    x = np.ones((6, 4, 10), np.float32)                             # (T, B, F)
    y = Dropout(0.5, variational=True, seed=2).forward(x)
    assert (y == y[0]).all(), "one mask for every time step"
    assert not (y[0] == y[0, 0]).all(), "masks differ across batch and features"
    yb = Dropout(0.5, variational=True, time_axis=1, seed=2).forward(np.ones((4, 6, 10), np.float32))
    assert (yb == yb[:, :1]).all(), "time_axis=1 for batch-first input"


def test_dropout_rejects_bad_p():
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\), got 1.0"):
        Dropout(1.0)
