"""Initialisers for recurrent weights. Each fills an array in place from a NumPy Generator."""
from __future__ import annotations

import numpy as np

RECURRENT_INITS = ("uniform", "orthogonal", "identity")


def uniform(w: np.ndarray, bound: float, rng: np.random.Generator) -> None:
    """U(-bound, bound); PyTorch's default for recurrent layers uses bound = 1/sqrt(H)."""
    w[...] = rng.uniform(-bound, bound, size=w.shape)


def orthogonal(w: np.ndarray, rng: np.random.Generator) -> None:
    """Each (H, H) gate block of w (shape (G*H, H)) gets its own random orthogonal matrix."""
    H = w.shape[1]
    for k in range(w.shape[0] // H):
        q, r = np.linalg.qr(rng.standard_normal((H, H)))
        w[k * H:(k + 1) * H] = q * np.sign(np.diag(r))  # sign fix makes q uniform (Haar)


def identity(w: np.ndarray, scale: float = 1.0) -> None:
    """Each (H, H) gate block becomes scale * I: the IRNN of Le, Jaitly & Hinton (2015)."""
    H = w.shape[1]
    for k in range(w.shape[0] // H):
        w[k * H:(k + 1) * H] = scale * np.eye(H)


def recurrent_params(G: int, input_size: int, hidden_size: int, bias: bool, dtype, rng,
                     init_hh: str = "uniform", forget_bias: float | None = None, suffix: str = "") -> dict:
    """weight_ih, weight_hh (and bias_ih, bias_hh) for G gate blocks, under PyTorch's names.

    Everything starts as PyTorch does, U(-1/sqrt(H), 1/sqrt(H)); then `init_hh` replaces the
    recurrent weights ("orthogonal", or "identity" with zero biases for the IRNN), and
    `forget_bias` sets the LSTM forget-gate bias (b_ih_f = forget_bias, b_hh_f = 0).
    """
    H, k = hidden_size, 1.0 / np.sqrt(hidden_size)
    p = {"weight_ih" + suffix: np.empty((G * H, input_size), dtype),
         "weight_hh" + suffix: np.empty((G * H, H), dtype)}
    if bias:
        p["bias_ih" + suffix] = np.empty(G * H, dtype)
        p["bias_hh" + suffix] = np.empty(G * H, dtype)
    for w in p.values():
        uniform(w, k, rng)
    if init_hh == "orthogonal":
        orthogonal(p["weight_hh" + suffix], rng)
    elif init_hh == "identity":
        identity(p["weight_hh" + suffix])
        if bias:
            p["bias_ih" + suffix][...] = 0
            p["bias_hh" + suffix][...] = 0
    if forget_bias is not None and bias:
        p["bias_ih" + suffix][H:2 * H] = forget_bias
        p["bias_hh" + suffix][H:2 * H] = 0
    return p
