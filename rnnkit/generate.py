"""Sampling text from a language model: temperature, top-k, a prime string, a seed.

    text = sample(model, vocab, prime="ROMEO:", length=500, temperature=0.8, top_k=None, seed=1)

The same model, prime, settings and seed give the same text.
"""
from __future__ import annotations

import numpy as np

from . import checks
from .losses import log_softmax


def sample_logits(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None, rng=None) -> np.ndarray:
    """One id per row of logits (B, V): softmax(logits / temperature) restricted to the top_k largest.

    temperature 0 picks the most likely id (greedy)."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if top_k is not None:
        checks.positive_int("top_k", top_k)
    rng = rng if rng is not None else np.random.default_rng()
    logits = np.asarray(logits, np.float64)
    if temperature == 0:
        return logits.argmax(-1)
    z = logits / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(log_softmax(z))
    u = rng.random(z.shape[0])[:, None]                       # inverse CDF: one uniform per row
    ids = (np.cumsum(p, axis=-1) < u * p.sum(-1, keepdims=True)).sum(-1)
    return np.minimum(ids, z.shape[-1] - 1)


def sample(model, vocab, prime: str, length: int, temperature: float = 1.0, top_k: int | None = None,
           seed: int | None = None) -> str:
    """The prime followed by `length` sampled symbols. model.step(ids (T, B), state) -> (logits, state).

    A prime with symbols outside the vocabulary raises ValueError naming them."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be an integer >= 0, got {length!r}")
    if not vocab.split(prime):
        raise ValueError(f"the prime string must not be empty, got {prime!r}")
    ids = vocab.encode(prime, what="the prime string")
    rng = np.random.default_rng(seed)
    was_training = model.training
    model.eval()
    try:
        logits, state = model.step(ids[:, None])              # read the whole prime at once
        out = []
        for _ in range(length):
            i = int(sample_logits(logits[-1], temperature, top_k, rng)[0])
            out.append(i)
            logits, state = model.step(np.array([[i]]), state)
    finally:
        model.train(was_training)
    sep = "" if vocab.kind == "char" else " "
    return prime + (sep if out else "") + vocab.decode(out)
