"""Optimizers, gradient clipping and learning-rate schedules, sorted by increasing complexity.

Every optimizer walks a module's (name, parameter, gradient) triples and updates in place,
following torch.optim's update rules exactly (same order of operations), so trajectories match
`torch.optim` with the same hyper-parameters:

    SGD      b = mu * b + (1 - dampening) * g          (b = g on the first step)
             p -= lr * (g + mu * b if nesterov else b)
    RMSprop  v = alpha * v + (1 - alpha) * g^2
             p -= lr * g / (sqrt(v - gbar^2 if centered else v) + eps)   (with momentum: via a buffer)
    Adam     m = b1 * m + (1 - b1) * g,   v = b2 * v + (1 - b2) * g^2
             p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    AdamW    Adam with decoupled weight decay: p *= 1 - lr * weight_decay before the step

weight_decay in SGD, RMSprop and Adam is L2 (g += weight_decay * p), as in torch.

`opt.lr` may be changed between steps (a schedule does that); `opt.state_dict()` and
`opt.load_state_dict()` carry everything needed to resume exactly.
"""
from __future__ import annotations

import math

import numpy as np

from . import checks


def _nonnegative(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class Optimizer:
    """Base: holds the module, the learning rate, the step count `t` and per-parameter slots."""

    slots: tuple[str, ...] = ()  # names of the per-parameter state arrays (e.g. "m", "v")

    def __init__(self, module, lr: float):
        self.module = module
        self.lr = _nonnegative("lr", lr)
        self.t = 0
        for slot in self.slots:
            setattr(self, slot, {name: np.zeros_like(p) for name, p, _ in module.named_parameters()})

    def hparams(self) -> dict:
        return {"lr": self.lr}

    def step(self) -> None:
        self.t += 1
        for name, p, g in self.module.named_parameters():
            self._update(name, p, g)

    def _update(self, name, p, g):
        raise NotImplementedError

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{"type", "t", "hparams": JSON-able scalars, "arrays": {"slot.param_name": array}}."""
        arrays = {f"{slot}.{name}": a.copy() for slot in self.slots for name, a in getattr(self, slot).items()}
        return {"type": type(self).__name__, "t": self.t, "hparams": self.hparams(), "arrays": arrays}

    def load_state_dict(self, state: dict) -> None:
        if state.get("type") != type(self).__name__:
            raise ValueError(f"optimizer state is for {state.get('type')!r}, not {type(self).__name__}")
        arrays = state["arrays"]
        expected = {f"{slot}.{name}": a for slot in self.slots for name, a in getattr(self, slot).items()}
        if set(arrays) != set(expected):
            missing, unknown = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
            raise ValueError(f"optimizer state: missing keys {missing[:5]}, unknown keys {unknown[:5]}")
        for key, a in arrays.items():
            if np.shape(a) != expected[key].shape:
                raise ValueError(f"optimizer state {key} must have shape {expected[key].shape}, got {np.shape(a)}")
        for key, a in arrays.items():
            expected[key][...] = a
        self.t = int(state["t"])
        for k, v in state["hparams"].items():
            setattr(self, k, tuple(v) if isinstance(v, list) else v)


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and L2 weight decay."""

    slots = ("buf",)

    def __init__(self, module, lr: float = 0.1, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        self.momentum = _nonnegative("momentum", momentum)
        self.dampening = _nonnegative("dampening", dampening)
        self.nesterov = bool(nesterov)
        self.weight_decay = _nonnegative("weight_decay", weight_decay)
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError(f"nesterov needs momentum > 0 and dampening 0, got momentum={momentum}, "
                             f"dampening={dampening}")
        super().__init__(module, lr)

    def hparams(self):
        return dict(lr=self.lr, momentum=self.momentum, dampening=self.dampening, nesterov=self.nesterov,
                    weight_decay=self.weight_decay)

    def _update(self, name, p, g):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            b = self.buf[name]
            if self.t == 1:
                b[...] = g
            else:
                b *= self.momentum
                b += (1 - self.dampening) * g
            g = g + self.momentum * b if self.nesterov else b
        p -= (self.lr * g).astype(p.dtype, copy=False)


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012) as torch.optim.RMSprop, with optional centering and momentum."""

    slots = ("v", "gbar", "buf")

    def __init__(self, module, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        self.alpha = checks.probability("alpha", alpha)
        self.eps = _nonnegative("eps", eps)
        self.weight_decay = _nonnegative("weight_decay", weight_decay)
        self.momentum = _nonnegative("momentum", momentum)
        self.centered = bool(centered)
        super().__init__(module, lr)

    def hparams(self):
        return dict(lr=self.lr, alpha=self.alpha, eps=self.eps, weight_decay=self.weight_decay,
                    momentum=self.momentum, centered=self.centered)

    def _update(self, name, p, g):
        if self.weight_decay:
            g = g + self.weight_decay * p
        v = self.v[name]
        v *= self.alpha
        v += (1 - self.alpha) * g * g
        if self.centered:
            gbar = self.gbar[name]
            gbar *= self.alpha
            gbar += (1 - self.alpha) * g
            avg = np.sqrt(v - gbar * gbar) + self.eps
        else:
            avg = np.sqrt(v) + self.eps
        if self.momentum:
            b = self.buf[name]
            b *= self.momentum
            b += g / avg
            p -= (self.lr * b).astype(p.dtype, copy=False)
        else:
            p -= (self.lr * g / avg).astype(p.dtype, copy=False)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction; weight_decay is L2 added to the gradient."""

    slots = ("m", "v")
    decoupled = False

    def __init__(self, module, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = _nonnegative("eps", eps)
        self.weight_decay = _nonnegative("weight_decay", weight_decay)
        super().__init__(module, lr)

    def hparams(self):
        return dict(lr=self.lr, betas=list(self.betas), eps=self.eps, weight_decay=self.weight_decay)

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1 ** self.t)
        bc2_sqrt = math.sqrt(1 - b2 ** self.t)
        for name, p, g in self.module.named_parameters():
            if self.weight_decay and self.decoupled:
                p *= p.dtype.type(1 - self.lr * self.weight_decay)  # decoupled decay (AdamW)
            elif self.weight_decay:
                g = g + self.weight_decay * p                        # L2 (Adam)
            m, v = self.m[name], self.v[name]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            denom = np.sqrt(v) / bc2_sqrt + self.eps
            p -= (step_size * m / denom).astype(p.dtype, copy=False)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019); torch's default decay 0.01."""

    decoupled = True

    def __init__(self, module, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(module, lr, betas, eps, weight_decay)


OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


# --- gradient clipping ------------------------------------------------------------------------------
def grad_norm(module) -> float:
    """The global L2 norm of every gradient of the module, as one vector."""
    return math.sqrt(sum(float(np.vdot(g, g)) for _, _, g in module.named_parameters()))


def clip_grad_norm(module, max_norm: float) -> float:
    """Scale all gradients by max_norm / norm when the global norm exceeds max_norm (as
    torch.nn.utils.clip_grad_norm_, with its 1e-6 guard). Returns the norm before clipping."""
    max_norm = _nonnegative("max_norm", max_norm)
    norm = grad_norm(module)
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        for _, _, g in module.named_parameters():
            g *= g.dtype.type(coef)
    return norm


def clip_grad_value(module, clip_value: float) -> None:
    """Clamp every gradient element to [-clip_value, clip_value] (torch.nn.utils.clip_grad_value_)."""
    clip_value = _nonnegative("clip_value", clip_value)
    for _, _, g in module.named_parameters():
        np.clip(g, -clip_value, clip_value, out=g)


# --- learning-rate schedules ------------------------------------------------------------------------
# A schedule is a function of the number of optimizer steps already taken (0 for the first step):
# stateless, so resuming needs nothing but the step count. The trainer sets opt.lr = schedule(t).
class Constant:
    def __init__(self, lr: float):
        self.base_lr = _nonnegative("lr", lr)

    def __call__(self, t: int) -> float:
        return self.base_lr


class StepDecay:
    """lr * gamma ** n, n = 0 before step `first`, then one more for every `step_size` steps:
    torch's StepLR when first = step_size (the default).

    Zaremba et al.'s "halve after epoch 4": step_size = steps per epoch, first = 4 epochs, gamma 0.5.
    """

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1, first: int | None = None):
        self.base_lr = _nonnegative("lr", lr)
        self.step_size = checks.positive_int("step_size", step_size)
        self.gamma = _nonnegative("gamma", gamma)
        self.first = self.step_size if first is None else checks.positive_int("first", first)

    def __call__(self, t: int) -> float:
        n = 0 if t < self.first else 1 + (t - self.first) // self.step_size
        return self.base_lr * self.gamma ** n


class Cosine:
    """eta_min + (lr - eta_min) * (1 + cos(pi * t / T_max)) / 2 for t <= T_max, then eta_min
    (torch's CosineAnnealingLR over its first half-period)."""

    def __init__(self, lr: float, T_max: int, eta_min: float = 0.0, warmup: int = 0):
        self.base_lr = _nonnegative("lr", lr)
        self.T_max = checks.positive_int("T_max", T_max)
        self.eta_min = _nonnegative("eta_min", eta_min)
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
        self.warmup = warmup

    def __call__(self, t: int) -> float:
        if t < self.warmup:                                 # linear warm-up, then the cosine
            return self.base_lr * (t + 1) / self.warmup
        t = min(t, self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
