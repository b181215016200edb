"""Gradient-flow diagnostics: do gradients survive the trip back through time?

For a recurrent cell or one-layer layer and a batch, three numbers tell the story:

    ||dL/dh_t||               the loss gradient reaching each step t (total, through the recurrence)
    ||dh_{T-1}/dh_t||_2       the spectral norm of the Jacobian product  prod_{s>t} dh_s/dh_{s-1}
    rho(W_h.)                 the spectral radius of each (H, H) gate block of W_hh

In a tanh RNN with default weights rho < 1 and tanh' <= 1, so both norms fall geometrically with
the distance T-1-t (Bengio et al. 1994; Pascanu et al. 2013); gates with a forget path near 1
(LSTM, GRU) or a ReLU recurrence started at the identity (IRNN) keep them.

Everything runs in float64 through the public cell API (step / step_backward). For the LSTM,
dh_{T-1}/dh_t holds c_t fixed: it measures what a change of h_t alone does to h_{T-1}.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .cells import CellBase, GRUCell, LSTMCell, RNNCell
from .plots import pyplot, save_png
from .recurrent import RNNBase

GATES = {"RNN": ("h",), "LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n")}


@dataclass
class GradientFlow:
    label: str                  # what was measured (a cell's name, a model file)
    loss: float                 # the loss on the batch
    grad_norms: np.ndarray      # (T,) ||dL/dh_t||, batch mean, t = 0 .. T-1
    jacobian_norms: np.ndarray  # (T,) ||dh_{T-1}/dh_t||_2, batch mean (1 at t = T-1)
    spectral_radius: dict = field(default_factory=dict)  # gate -> max |eigenvalue| of its W_hh block

    def summary(self) -> str:
        rho = " ".join(f"{g}={v:.2f}" for g, v in self.spectral_radius.items())
        T = len(self.grad_norms)
        return (f"{self.label:<22} loss {self.loss:8.4f}   ||dL/dh_0||/||dL/dh_{T - 1}|| "
                f"{_ratio(self.grad_norms[0], self.grad_norms[-1]):9.2e}   ||dh_{T - 1}/dh_0|| "
                f"{self.jacobian_norms[0]:9.2e}   rho(W_hh) {rho}")


def _ratio(a, b):
    return a / b if b > 0 else float("nan")


def recurrent_weights(module):
    """(mode, W_hh) of a cell or a one-layer, one-direction layer."""
    if isinstance(module, RNNBase):
        if module.num_layers != 1 or module.bidirectional:
            raise ValueError("diagnostics need one layer in one direction, got "
                             f"num_layers={module.num_layers}, bidirectional={module.bidirectional}")
        return module.mode, module.params["weight_hh_l0"]
    if isinstance(module, CellBase):
        return module.mode, module.params["weight_hh"]
    raise TypeError(f"module must be an RNN, LSTM or GRU cell or layer, got {type(module).__name__}")


def spectral_radius(module) -> dict[str, float]:
    """max |eigenvalue| of each (H, H) gate block of W_hh, by gate name (RNN: {'h': ...})."""
    mode, W_hh = recurrent_weights(module)
    H = W_hh.shape[1]
    return {gate: float(np.abs(np.linalg.eigvals(W_hh[k * H:(k + 1) * H].astype(np.float64))).max())
            for k, gate in enumerate(GATES[mode])}


def float64_cell(module) -> CellBase:
    """A float64 cell with the same weights as a cell or a one-layer layer."""
    mode, _ = recurrent_weights(module)
    suffix = "_l0" if isinstance(module, RNNBase) else ""
    cls = {"RNN": RNNCell, "LSTM": LSTMCell, "GRU": GRUCell}[mode]
    cell = cls(module.input_size, module.hidden_size, bias=module.bias, nonlinearity=module.nonlinearity,
               dtype=np.float64)
    cell.load_state_dict({name: module.params[name + suffix] for name in cell.params})
    return cell


def _forward(cell, x, state):
    caches, hs = [], []
    for t in range(x.shape[0]):
        state, cache = cell.step(x[t], state)
        caches.append(cache)
        hs.append(state[0] if isinstance(state, tuple) else state)
    return np.stack(hs), caches


def _backward(cell, caches, dh_last, dout, visit):
    """Walk back from dL/dh_{T-1} = dh_last (+ dout[t] at each t), calling visit(t, dL/dh_t)."""
    lstm = cell.mode == "LSTM"
    dh, dc = dh_last, (np.zeros_like(dh_last) if lstm else None)
    for t in range(len(caches) - 1, -1, -1):
        if dout is not None:
            dh = dh + dout[t]
        visit(t, dh)
        _, dstate = cell.step_backward((dh, dc) if lstm else dh, caches[t])
        dh, dc = dstate if lstm else (dstate, None)


def gradient_flow(module, x, loss_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], *, state=None,
                  label: str = "", jacobian_batch: int = 4) -> GradientFlow:
    """Measure a cell or one-layer layer on a batch x (T, B, I), time-major.

    loss_grad(h) gets every hidden state h (T, B, H) and returns (loss, dL/dh (T, B, H)), the
    gradient of the loss through its direct dependence on each h_t; the recurrence is added here.
    The Jacobian norms use the first `jacobian_batch` sequences of the batch (H backward passes each,
    run as one batch of jacobian_batch * H).
    """
    cell = float64_cell(module)
    x = np.asarray(x, np.float64)
    if x.ndim != 3 or x.shape[2] != cell.input_size:
        raise ValueError(f"x must have shape (T, B, {cell.input_size}), got shape {x.shape}")
    T, B, _ = x.shape
    H = cell.hidden_size
    hs, caches = _forward(cell, x, state)
    loss, dout = loss_grad(hs)
    dout = np.asarray(dout, np.float64)
    if dout.shape != hs.shape:
        raise ValueError(f"loss_grad must return dL/dh of shape {hs.shape}, got shape {dout.shape}")
    grad_norms = np.empty(T)

    def record_grad(t, dh):
        grad_norms[t] = np.linalg.norm(dh, axis=1).mean()

    _backward(cell, caches, np.zeros((B, H)), dout, record_grad)

    # dh_{T-1}/dh_t: back-propagate the H unit vectors e_k at once, as a batch of Bj * H copies
    Bj = min(B, max(1, int(jacobian_batch)))
    rep = lambda a: np.repeat(a[..., :Bj, :], H, axis=-2)  # noqa: E731  copy b*H + k backs e_k
    rep_state = None if state is None else (tuple(rep(np.asarray(s, np.float64)) for s in state)
                                            if isinstance(state, tuple) else rep(np.asarray(state, np.float64)))
    _, caches = _forward(cell, rep(x), rep_state)
    jacobian_norms = np.empty(T)

    def record_jacobian(t, dh):
        J = dh.reshape(Bj, H, H)                               # J[b, k, :] = d h_{T-1}[k] / d h_t
        jacobian_norms[t] = np.linalg.norm(J, 2, axis=(1, 2)).mean()

    _backward(cell, caches, np.tile(np.eye(H), (Bj, 1)), None, record_jacobian)
    return GradientFlow(label or module.mode, float(loss), grad_norms, jacobian_norms, spectral_radius(module))


def plot_gradient_flow(flows: list[GradientFlow], path: str, title: str = "") -> str:
    """Two panels, log scale: ||dL/dh_t|| against t, and ||dh_{T-1}/dh_t|| against steps back. A PNG."""
    plt = pyplot()

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    tiny = np.finfo(np.float64).tiny                           # log axes cannot show 0
    for f in flows:
        T = len(f.grad_norms)
        rho = ", ".join(f"{g} {v:.2f}" for g, v in f.spectral_radius.items())
        ax1.semilogy(np.arange(T), np.maximum(f.grad_norms, tiny), label=f"{f.label}  (rho: {rho})")
        ax2.semilogy(np.arange(T)[::-1], np.maximum(f.jacobian_norms, tiny), label=f.label)
    ax1.set_xlabel("time step t")
    ax1.set_ylabel("||dL/dh_t||  (batch mean)")
    ax1.set_title("loss gradient reaching each step")
    ax2.set_xlabel("steps back from the last, T-1-t")
    ax2.set_ylabel("||dh_{T-1}/dh_t||_2  (batch mean)")
    ax2.set_title("Jacobian product norm")
    for ax in (ax1, ax2):
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_png(fig, path, dpi=100)
