"""Feed-forward layers around the recurrent core, each a forward/backward pair."""
from __future__ import annotations

import numpy as np

from . import checks, kernels
from .module import Module


class Linear(Module):
    """y = x @ W.T + b over the last axis (torch.nn.Linear names: weight (out, in), bias (out,))."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, dtype=np.float32,
                 seed: int | None = None):
        super().__init__()
        self.in_features = checks.positive_int("in_features", in_features)
        self.out_features = checks.positive_int("out_features", out_features)
        self.dtype = checks.float_dtype("dtype", dtype)
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(in_features)  # PyTorch's default bound
        self.add_param("weight", rng.uniform(-k, k, (out_features, in_features)).astype(self.dtype))
        if bias:
            self.add_param("bias", rng.uniform(-k, k, out_features).astype(self.dtype))
        self._x = None

    def forward(self, x):
        x = np.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"input must have size {self.in_features} in its last dimension, got shape {x.shape}")
        x = x.astype(self.dtype, copy=False)
        self._x = x
        y = x.reshape(-1, self.in_features) @ self.params["weight"].T     # one product, not one per leading index
        if "bias" in self.params:
            y += self.params["bias"]
        return y.reshape(*x.shape[:-1], self.out_features)

    __call__ = forward

    def backward(self, dy):
        if self._x is None:
            raise ValueError("backward() called before forward()")
        x, self._x = self._x, None
        x2, dy2 = x.reshape(-1, self.in_features), dy.reshape(-1, self.out_features)
        self.grads["weight"] += dy2.T @ x2
        if "bias" in self.params:
            self.grads["bias"] += dy2.sum(0)
        return (dy2 @ self.params["weight"]).reshape(x.shape)


class Embedding(Module):
    """y = W[ids] (torch.nn.Embedding names: weight (num_embeddings, embedding_dim)), init N(0, 1)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, *, dtype=np.float32, seed: int | None = None):
        super().__init__()
        self.num_embeddings = checks.positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = checks.positive_int("embedding_dim", embedding_dim)
        self.dtype = checks.float_dtype("dtype", dtype)
        rng = np.random.default_rng(seed)
        self.add_param("weight", rng.standard_normal((num_embeddings, embedding_dim)).astype(self.dtype))
        self._ids = None

    def forward(self, ids):
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids must hold integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"ids must lie in [0, {self.num_embeddings}), got values in [{ids.min()}, {ids.max()}]")
        self._ids = ids
        return self.params["weight"][ids]

    __call__ = forward

    def backward(self, dy):
        """Scatter-add dy into the rows that were looked up; there is no input gradient."""
        if self._ids is None:
            raise ValueError("backward() called before forward()")
        ids, self._ids = self._ids, None
        ids, rows = ids.reshape(-1), dy.reshape(-1, self.embedding_dim)
        if kernels.ENABLED:
            kernels.add_rows(self.grads["weight"], ids, rows)
        else:
            np.add.at(self.grads["weight"], ids, rows)
        return None


class Dropout(Module):
    """Inverted dropout: y = x * m / (1 - p), m ~ Bernoulli(1 - p); the identity in eval mode.

    variational=True draws one mask per sequence and feature and reuses it at every time step
    (Gal & Ghahramani 2016); the time axis is `time_axis` (0 for (T, B, F) input).
    """

    def __init__(self, p: float = 0.5, *, variational: bool = False, time_axis: int = 0, seed: int | None = None):
        super().__init__()
        self.p = checks.probability("p", p)
        self.variational = bool(variational)
        self.time_axis = time_axis
        self.rng = np.random.default_rng(seed)
        self._mask = None

    def forward(self, x):
        if not self.training or self.p == 0:
            self._mask = None
            return x
        shape = list(x.shape)
        if self.variational:
            shape[self.time_axis] = 1
        keep = 1.0 - self.p
        self._mask = (self.rng.random(shape) < keep).astype(x.dtype) / np.asarray(keep, x.dtype)
        return x * self._mask

    __call__ = forward

    def backward(self, dy):
        return dy if self._mask is None else dy * self._mask
