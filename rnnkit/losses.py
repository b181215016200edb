"""Losses as (value, gradient) pairs: each returns the mean loss and d loss / d input."""
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
