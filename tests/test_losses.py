"""Losses: values and gradients against PyTorch, and float64 central differences; masks for padding."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.gradcheck import numerical_grad, relative_error
from rnnkit.losses import mean_squared_error, sigmoid_binary_cross_entropy, softmax_cross_entropy


def torch_value_grad(fn, x, *args):
    xt = torch.from_numpy(x.copy()).requires_grad_()
    loss = fn(xt, *args)
    loss.backward()
    return loss.item(), xt.grad.numpy()


@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 7)])
def test_cross_entropy_matches_torch(shape, rng):
    logits = rng.standard_normal(shape) * 3
    targets = rng.integers(0, shape[-1], shape[:-1])
    loss, dlogits = softmax_cross_entropy(logits, targets)
    tl, tg = torch_value_grad(lambda x: F.cross_entropy(x.reshape(-1, shape[-1]), torch.from_numpy(targets.ravel())),
                              logits)
    assert abs(loss - tl) < 1e-12
    assert relative_error(dlogits, tg) < 1e-12


def test_cross_entropy_mask_is_torch_ignore_index(rng):
    logits = rng.standard_normal((5, 3, 4))                          # (T, B, V)
    targets = rng.integers(0, 4, (5, 3))
    lengths = np.array([5, 2, 3])
    mask = np.arange(5)[:, None] < lengths[None, :]
    loss, dlogits = softmax_cross_entropy(logits, targets, mask)
    ignored = np.where(mask, targets, -100)
    tl, tg = torch_value_grad(lambda x: F.cross_entropy(x.reshape(-1, 4), torch.from_numpy(ignored.ravel()),
                                                        ignore_index=-100), logits)
    assert abs(loss - tl) < 1e-12
    assert relative_error(dlogits, tg.reshape(logits.shape)) < 1e-12
    assert (dlogits[~mask] == 0).all(), "padding gets no gradient"


def test_cross_entropy_gradcheck_and_stability(rng):
    logits = rng.standard_normal((3, 4, 6))
    targets = rng.integers(0, 6, (3, 4))
    mask = rng.random((3, 4)) < 0.7
    _, g = softmax_cross_entropy(logits, targets, mask)
    num = numerical_grad(lambda: softmax_cross_entropy(logits, targets, mask)[0], logits)
    assert relative_error(g, num) < 1e-8
    big = np.array([[1000.0, 0.0, -1000.0]])
    loss, g = softmax_cross_entropy(big, np.array([2]))
    assert np.isfinite(loss) and np.isfinite(g).all() and abs(loss - 2000.0) < 1e-9


def test_cross_entropy_errors():
    with pytest.raises(ValueError, match=r"targets must have shape \(2,\), got shape \(3,\)"):
        softmax_cross_entropy(np.zeros((2, 3)), np.zeros(3, int))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\), got values in \[0, 3\]"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))


def test_mse_matches_torch_and_gradcheck(rng):
    pred, target = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 2))
    loss, g = mean_squared_error(pred, target)
    tl, tg = torch_value_grad(lambda x: F.mse_loss(x, torch.from_numpy(target)), pred)
    assert abs(loss - tl) < 1e-12 and relative_error(g, tg) < 1e-12
    mask = np.arange(4)[:, None] < np.array([4, 1, 2])[None, :]      # (T, B) over (T, B, F)
    loss, g = mean_squared_error(pred, target, mask)
    tl, tg = torch_value_grad(lambda x: F.mse_loss(x[torch.from_numpy(mask)], torch.from_numpy(target[mask])), pred)
    assert abs(loss - tl) < 1e-12 and relative_error(g, tg) < 1e-12
    num = numerical_grad(lambda: mean_squared_error(pred, target, mask)[0], pred)
    assert relative_error(g, num) < 1e-8


def test_bce_matches_torch_and_gradcheck(rng):
    x = rng.standard_normal((5, 3)) * 4
    t = (rng.random((5, 3)) < 0.5).astype(float)
    loss, g = sigmoid_binary_cross_entropy(x, t)
    tl, tg = torch_value_grad(lambda z: F.binary_cross_entropy_with_logits(z, torch.from_numpy(t)), x)
    assert abs(loss - tl) < 1e-12 and relative_error(g, tg) < 1e-12
    mask = rng.random(5) < 0.6
    mask[0] = True
    loss, g = sigmoid_binary_cross_entropy(x, t, mask)
    tl, tg = torch_value_grad(
        lambda z: F.binary_cross_entropy_with_logits(z[torch.from_numpy(mask)], torch.from_numpy(t[mask])), x)
    assert abs(loss - tl) < 1e-12 and relative_error(g, tg) < 1e-12
    soft = rng.random((5, 3))                                        # soft targets in [0, 1]
    num = numerical_grad(lambda: sigmoid_binary_cross_entropy(x, soft, mask)[0], x)
    assert relative_error(sigmoid_binary_cross_entropy(x, soft, mask)[1], num) < 1e-8
    loss, g = sigmoid_binary_cross_entropy(np.array([800.0, -800.0]), np.array([0.0, 1.0]))
    assert abs(loss - 800.0) < 1e-9 and np.isfinite(g).all()


def test_loss_shape_errors():
    with pytest.raises(ValueError, match=r"target must have shape \(2, 3\), got shape \(3, 2\)"):
        mean_squared_error(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\]"):
        sigmoid_binary_cross_entropy(np.zeros(2), np.array([0.0, 2.0]))
    with pytest.raises(ValueError, match="mask must cover the leading axes"):
        mean_squared_error(np.zeros((2, 3)), np.zeros((2, 3)), np.ones(3))
