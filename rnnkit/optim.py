"""Optimizers over a module's (name, parameter, gradient) triples; each updates in place."""
from __future__ import annotations

import numpy as np


class Adam:
    """Adam (Kingma & Ba 2015) with bias correction."""

    def __init__(self, module, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        self.module, self.lr, self.betas, self.eps = module, lr, betas, eps
        self.t = 0
        self.m = {name: np.zeros_like(p) for name, p, _ in module.named_parameters()}
        self.v = {name: np.zeros_like(p) for name, p, _ in module.named_parameters()}

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        lr_t = self.lr * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        for name, p, g in self.module.named_parameters():
            m, v = self.m[name], self.v[name]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= (lr_t * m / (np.sqrt(v) + self.eps)).astype(p.dtype, copy=False)
