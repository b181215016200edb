"""Single-step cells, for generation, streaming and hand-written loops (torch.nn.*Cell names).

    cell = LSTMCell(I, H)
    state, cache = cell.step(x_t, state)          # explicit cache, one per step
    dx_t, dstate_prev = cell.step_backward(dstate, cache)   # accumulates cell.grads

`forward` / `backward` do the same for the most recent step only, like the layers.
The equations, with the code's symbols, are in each class docstring.
"""
from __future__ import annotations

import numpy as np

from . import checks, kernels
from .grad_mode import is_grad_enabled
from .init import recurrent_params
from .module import Module
from .products import matmul
from .recurrent import set_cell_arguments


class CellBase(Module):
    mode = "RNN"

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True, nonlinearity: str = "tanh",
                 dtype=np.float32, seed: int | None = None, init_hh: str = "uniform",
                 forget_bias: float | None = None):
        super().__init__()
        self.step_math = set_cell_arguments(self, input_size, hidden_size, bias, nonlinearity, dtype, init_hh,
                                            forget_bias)
        rng = np.random.default_rng(seed)
        for name, value in recurrent_params(self.step_math.G, self.input_size, self.hidden_size, self.bias,
                                            self.dtype, rng, self.init_hh, forget_bias).items():
            self.add_param(name, value)
        self._cache = None

    def config(self) -> dict:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size, bias=self.bias,
                    nonlinearity=self.nonlinearity, dtype=self.dtype.name, init_hh=self.init_hh,
                    forget_bias=self.forget_bias)

    def _state(self, state, B):
        return checks.recurrent_state(state, (B, self.hidden_size), self.dtype, self.step_math.has_c,
                                      "state for LSTMCell", ("h", "c"))

    def step(self, x, state=None):
        """One step: x (B, I), state h or (h, c) each (B, H). Returns (new_state, cache).

        Under rnnkit.no_grad() the cache is None (nothing is kept for step_backward).
        """
        x = checks.floating_array("input", x, self.dtype, 2, self.input_size)
        h_prev, c_prev = self._state(state, x.shape[0])
        p = self.params
        saved = np.empty((x.shape[0], self.step_math.S * self.hidden_size), self.dtype)
        if kernels.ENABLED and self.mode == "LSTM":         # the products and the gates in one call
            h, c = np.empty_like(h_prev), np.empty_like(c_prev)
            b_ih, b_hh = (p["bias_ih"], p["bias_hh"]) if self.bias else (self._zeros(), self._zeros())
            kernels.lstm_cell_forward(x, h_prev, c_prev, p["weight_ih"], p["weight_hh"], b_ih, b_hh, saved, h, c)
            return (h, c), ((x, h_prev, c_prev, saved) if is_grad_enabled() else None)
        xp = matmul(x, p["weight_ih"].T)
        hp = matmul(h_prev, p["weight_hh"].T)
        if self.bias:
            xp += p["bias_ih"]
            hp += p["bias_hh"]
        h, c = self.step_math.forward(xp, hp, h_prev, c_prev, saved)
        h = np.array(h)  # own memory: h must not alias `saved`
        return ((h, c) if c is not None else h), ((x, h_prev, c_prev, saved) if is_grad_enabled() else None)

    def _zeros(self):
        return np.zeros(self.step_math.G * self.hidden_size, self.dtype)

    def step_backward(self, dstate, cache):
        """Back through one step. dstate is dh, or (dh, dc) for LSTM (either may be None).

        Returns (dx, dstate_prev) and adds this step's parameter gradients to grads.
        """
        x, h_prev, c_prev, saved = cache
        dh, dc = checks.recurrent_state(dstate, h_prev.shape, self.dtype, self.step_math.has_c,
                                        "dstate for LSTMCell", ("dh", "dc"))
        GH = self.step_math.G * self.hidden_size
        dxp = np.empty((h_prev.shape[0], GH), self.dtype)
        dhp = dxp if self.step_math.shared_grad else np.empty_like(dxp)
        dh_direct, dc_prev = self.step_math.backward(dh, dc, h_prev, c_prev, saved, dxp, dhp)
        p, g = self.params, self.grads
        g["weight_ih"] += dxp.T @ x
        g["weight_hh"] += dhp.T @ h_prev
        if self.bias:
            g["bias_ih"] += dxp.sum(0)
            g["bias_hh"] += dhp.sum(0)
        dh_prev = dhp @ p["weight_hh"]                 # into h_prev, through hp
        if dh_direct is not None:
            dh_prev += dh_direct
        dx = dxp @ p["weight_ih"]                      # into x, through xp
        return dx, ((dh_prev, dc_prev) if dc_prev is not None else dh_prev)

    def forward(self, input, hx=None):
        """torch.nn.*Cell semantics: returns h', or (h', c') for LSTMCell."""
        state, self._cache = self.step(input, hx)
        return state

    __call__ = forward

    def backward(self, grad_state):
        """Back through the most recent forward: grad_state is dh' or (dh', dc')."""
        if self._cache is None:
            raise ValueError("backward() called before forward(), or after a forward under rnnkit.no_grad(): "
                             "there is no step to back-propagate")
        cache, self._cache = self._cache, None
        return self.step_backward(grad_state, cache)


class RNNCell(CellBase):
    """h = f(x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh), f = tanh or relu."""
    mode = "RNN"


class LSTMCell(CellBase):
    """LSTM step, rows of W_ih and W_hh in gate order [i|f|g|o]:

        i = sigmoid(x W_ii + b_ii + h_prev W_hi + b_hi)
        f = sigmoid(x W_if + b_if + h_prev W_hf + b_hf)
        g = tanh(x W_ig + b_ig + h_prev W_hg + b_hg)
        o = sigmoid(x W_io + b_io + h_prev W_ho + b_ho)
        c = f * c_prev + i * g
        h = o * tanh(c)
    """
    mode = "LSTM"


class GRUCell(CellBase):
    """GRU step, rows of W_ih and W_hh in gate order [r|z|n]:

        r = sigmoid(x W_ir + b_ir + h_prev W_hr + b_hr)
        z = sigmoid(x W_iz + b_iz + h_prev W_hz + b_hz)
        n = tanh(x W_in + b_in + r * (h_prev W_hn + b_hn))
        h = (1 - z) * n + z * h_prev
    """
    mode = "GRU"
