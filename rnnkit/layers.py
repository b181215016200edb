"""Feed-forward layers around the recurrent core, each a forward/backward pair."""
from __future__ import annotations

import numpy as np

from . import checks
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
        y = x @ self.params["weight"].T
        if "bias" in self.params:
            y += self.params["bias"]
        return y

    __call__ = forward

    def backward(self, dy):
        if self._x is None:
            raise ValueError("backward() called before forward()")
        x, self._x = self._x, None
        x2, dy2 = x.reshape(-1, self.in_features), dy.reshape(-1, self.out_features)
        self.grads["weight"] += dy2.T @ x2
        if "bias" in self.params:
            self.grads["bias"] += dy2.sum(0)
        return dy @ self.params["weight"]
