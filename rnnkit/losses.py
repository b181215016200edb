"""Losses as (value, gradient) pairs: each returns the mean loss and d loss / d input.

Masks mark real positions (1) and padding (0); the mean is over real positions only, so a
padded batch gives the same loss and gradients as its sequences without padding.
"""
from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None):
    """Mean over unmasked positions of -log softmax(logits)[target].

    logits (..., V); targets (...) integers in [0, V); mask (...) of 0/1, or None for all ones.
    Returns (loss, dlogits).
    """
    targets = np.asarray(targets)
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"targets must have shape {logits.shape[:-1]}, got shape {targets.shape}")
    V = logits.shape[-1]
    if targets.size and (targets.min() < 0 or targets.max() >= V):
        raise ValueError(f"targets must lie in [0, {V}), got values in [{targets.min()}, {targets.max()}]")
    w = np.ones(targets.shape, logits.dtype) if mask is None else np.asarray(mask, logits.dtype)
    if w.shape != targets.shape:
        raise ValueError(f"mask must have shape {targets.shape}, got shape {w.shape}")
    n = max(w.sum(), 1.0)
    logp = log_softmax(logits)
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    loss = -(picked * w).sum() / n
    dlogits = np.exp(logp)                       # softmax
    np.put_along_axis(dlogits, targets[..., None], np.take_along_axis(dlogits, targets[..., None], -1) - 1, -1)
    dlogits *= (w / n)[..., None]
    return float(loss), dlogits.astype(logits.dtype, copy=False)


def mean_squared_error(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None):
    """Mean over unmasked elements of (pred - target)^2 (torch.nn.MSELoss when mask is None).

    pred, target (..., F) of one shape; mask covers the leading axes (e.g. (T, B) for (T, B, F)),
    0/1 per position. Returns (loss, dpred).
    """
    pred = np.asarray(pred)
    target = np.asarray(target, pred.dtype)
    if pred.shape != target.shape:
        raise ValueError(f"target must have shape {pred.shape}, got shape {target.shape}")
    w = _element_weights(pred, mask)
    n = max(float(w.sum()), 1.0)
    diff = pred - target
    loss = float((w * diff * diff).sum() / n)
    return loss, (2.0 * w * diff / n).astype(pred.dtype, copy=False)


def sigmoid_binary_cross_entropy(logits: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None):
    """Mean over unmasked elements of -[t log s(x) + (1 - t) log(1 - s(x))], s = sigmoid
    (torch.nn.BCEWithLogitsLoss when mask is None), computed stably as max(x, 0) - x t + log(1 + e^-|x|).

    targets in [0, 1], shaped like logits; mask covers leading axes as in mean_squared_error.
    Returns (loss, dlogits) with dlogits = (s(x) - t) / n.
    """
    x = np.asarray(logits)
    t = np.asarray(targets, x.dtype)
    if x.shape != t.shape:
        raise ValueError(f"targets must have shape {x.shape}, got shape {t.shape}")
    if t.size and (t.min() < 0 or t.max() > 1):
        raise ValueError(f"targets must lie in [0, 1], got values in [{t.min()}, {t.max()}]")
    w = _element_weights(x, mask)
    n = max(float(w.sum()), 1.0)
    per = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    loss = float((w * per).sum() / n)
    s = 0.5 * (1.0 + np.tanh(0.5 * x))                       # sigmoid without overflow
    return loss, (w * (s - t) / n).astype(x.dtype, copy=False)


def _element_weights(x: np.ndarray, mask) -> np.ndarray:
    """A 0/1 weight per element of x from a mask over its leading axes (all ones for None)."""
    if mask is None:
        return np.ones(x.shape, x.dtype)
    m = np.asarray(mask, x.dtype)
    if m.shape != x.shape[:m.ndim]:
        raise ValueError(f"mask must cover the leading axes of shape {x.shape}, got shape {m.shape}")
    return np.broadcast_to(m.reshape(m.shape + (1,) * (x.ndim - m.ndim)), x.shape)
