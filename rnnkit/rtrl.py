"""Real-time recurrent learning (Williams & Zipser 1989): exact gradients carried forward in time.

BPTT stores the whole sequence and walks back through it. RTRL instead carries, at every step,
the sensitivity of the state to every parameter, P_t = dh_t/dθ (and C_t = dc_t/dθ for the LSTM),
so the gradient of a loss at step t is available at once, dL_t/dθ = dL_t/dh_t · P_t, and the
weights can be updated online, at every step, with no memory of the past beyond P_t.

For a vanilla RNN, h_t = f(a_t) with a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh:

    P_t = f'(a_t) ⊙ (W_hh P_{t-1} + ∂a_t/∂θ)          ∂a_t/∂θ: x_t for W_ih, h_{t-1} for W_hh, 1 for biases

The LSTM and GRU follow the same pattern through their gates (the tangent equations sit beside
each forward below). The price is memory B*H*N and time B*G*H*H*N per step for N parameters
(N ≈ G*H*(I + H)): O(H^4) per step against O(H^2) for BPTT, so RTRL is for small H.

    rtrl = RTRL(cell)                      # an RNNCell, LSTMCell or GRUCell, or a 1-layer RNN/LSTM/GRU
    rtrl.reset(batch_size)
    for t in range(T):
        h = rtrl.step(x[t])                # forward one step, carrying dh/dθ
        loss, dh = ...                     # the loss at step t and dL_t/dh_t
        rtrl.backward(dh)                  # cell.grads += dL_t/dh_t · P_t
        opt.step(); cell.zero_grad()       # online: update at every step (or accumulate for the sum)

The gradients land in the wrapped module's `grads` under its own names, so they compare name by
name with BPTT through the same cell or layer. With the weights held fixed, the accumulated
gradient over a sequence equals BPTT's exactly; updated online, P_t mixes sensitivities to the
weights of earlier steps, which is RTRL's usual (and useful) approximation.
"""
from __future__ import annotations

import numpy as np

from . import checks
from .cells import CellBase
from .recurrent import RNNBase
from .steps import sigmoid


def _col(v):
    """(B, H) -> (B, H, 1): a per-unit factor applied to every parameter's sensitivity."""
    return v[:, :, None]


class RTRL:
    """Forward-mode sensitivities for one recurrent layer (one direction); see the module docstring."""

    def __init__(self, module):
        if isinstance(module, RNNBase):
            if module.num_layers != 1 or module.bidirectional:
                raise ValueError("RTRL needs one layer in one direction, got "
                                 f"num_layers={module.num_layers}, bidirectional={module.bidirectional}")
            suffix = "_l0"
        elif isinstance(module, CellBase):
            suffix = ""
        else:
            raise TypeError(f"module must be an RNN, LSTM or GRU cell or layer, got {type(module).__name__}")
        self.module, self.suffix = module, suffix
        self.mode = module.mode
        self.nonlinearity = module.nonlinearity
        self.I, self.H = module.input_size, module.hidden_size
        self.G = {"RNN": 1, "LSTM": 4, "GRU": 3}[self.mode]
        self.dtype = module.dtype
        # The flat parameter axis of P: [weight_ih, bias_ih | weight_hh, bias_hh], each raveled.
        # The input-side block comes first, so its immediate term is one slice [:n_ih].
        names = ["weight_ih", "bias_ih", "weight_hh", "bias_hh"] if module.bias else ["weight_ih", "weight_hh"]
        self.names = [n + suffix for n in names]
        self.offsets, n = {}, 0
        for name in self.names:
            self.offsets[name] = (n, n + module.params[name].size)
            n += module.params[name].size
        self.num_params = n
        GH, I, H = self.G * self.H, self.I, self.H
        self.n_ih = GH * I + (GH if module.bias else 0)
        k = np.arange(GH)
        # ∂a/∂W[k, j] = input_j on row k: the columns of row k's entries in the flat axis
        self._rows_w = k[:, None]
        self._cols_ih = self.offsets[self.names[0]][0] + k[:, None] * I + np.arange(I)[None, :]
        o_hh = self.offsets["weight_hh" + suffix][0]
        self._cols_hh = o_hh + k[:, None] * H + np.arange(H)[None, :]
        if module.bias:
            self._cols_bih = self.offsets["bias_ih" + suffix][0] + k
            self._cols_bhh = self.offsets["bias_hh" + suffix][0] + k
        self.P = self.C = self.h = self.c = None

    def _param(self, name):
        return self.module.params[name + self.suffix]

    def reset(self, batch_size: int, state=None) -> None:
        """Start a sequence: state h (or (h, c)) each (B, H), zeros if None; sensitivities zero."""
        B = checks.positive_int("batch_size", batch_size)
        shape = (B, self.H)
        if self.mode == "LSTM":
            h, c = (None, None) if state is None else state
            self.c = np.zeros(shape, self.dtype) if c is None else checks.state_array("c", c, self.dtype, shape)
            self.C = np.zeros((B, self.H, self.num_params), self.dtype)
        else:
            h = state
        self.h = np.zeros(shape, self.dtype) if h is None else checks.state_array("h", h, self.dtype, shape)
        self.P = np.zeros((B, self.H, self.num_params), self.dtype)

    # --- one step: forward and the sensitivities beside it -----------------------------------------
    def step(self, x):
        """x (B, I). Advances the state and P (and C); returns h_t (B, H)."""
        if self.P is None:
            raise ValueError("step() called before reset(batch_size)")
        B = self.P.shape[0]
        x = checks.floating_array("x", x, self.dtype, 2, self.I)
        if x.shape[0] != B:
            raise ValueError(f"x must have batch size {B} (set by reset), got shape {x.shape}")
        W_ih, W_hh = self._param("weight_ih"), self._param("weight_hh")
        h_prev = self.h
        xp = x @ W_ih.T                                        # (B, G*H)
        hp = h_prev @ W_hh.T
        if self.module.bias:
            xp += self._param("bias_ih")
            hp += self._param("bias_hh")
        # tangents of the projections: dHP = W_hh P_{t-1} + ∂hp/∂θ, dXP = ∂xp/∂θ (input columns only)
        dHP = np.matmul(W_hh, self.P)                          # (B, G*H, N)
        dHP[:, self._rows_w, self._cols_hh] += h_prev[:, None, :]
        dXP = np.zeros((B, self.G * self.H, self.n_ih), self.dtype)
        dXP[:, self._rows_w, self._cols_ih] += x[:, None, :]
        if self.module.bias:
            dHP[:, self._rows_w[:, 0], self._cols_bhh] += 1.0
            dXP[:, self._rows_w[:, 0], self._cols_bih] += 1.0
        forward = {"RNN": self._rnn, "LSTM": self._lstm, "GRU": self._gru}[self.mode]
        self.h, self.P = forward(xp, hp, h_prev, dXP, dHP)
        return self.h

    def _rnn(self, xp, hp, h_prev, dXP, dHP):
        h = np.tanh(xp + hp) if self.nonlinearity == "tanh" else np.maximum(xp + hp, 0)
        fprime = 1.0 - h * h if self.nonlinearity == "tanh" else (h > 0).astype(self.dtype)
        dA = dHP                                               # da = dxp + dhp
        dA[:, :, :self.n_ih] += dXP
        return h, fprime[:, :, None] * dA                      # P_t = f'(a) ⊙ da

    def _lstm(self, xp, hp, h_prev, dXP, dHP):
        H = self.H
        a = xp + hp
        i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 3 * H:])
        g = np.tanh(a[:, 2 * H:3 * H])
        c_prev = self.c
        c = f * c_prev + i * g
        tc = np.tanh(c)
        h = o * tc
        dA = dHP
        dA[:, :, :self.n_ih] += dXP
        e = _col
        di = e(i * (1 - i)) * dA[:, :H]                        # through sigmoid
        df = e(f * (1 - f)) * dA[:, H:2 * H]
        dg = e(1 - g * g) * dA[:, 2 * H:3 * H]                 # through tanh
        do = e(o * (1 - o)) * dA[:, 3 * H:]
        C = df * e(c_prev) + e(f) * self.C + di * e(g) + e(i) * dg   # dc = df c_prev + f dc_prev + di g + i dg
        P = do * e(tc) + e(o * (1 - tc * tc)) * C                    # dh = do tanh(c) + o tanh'(c) dc
        self.c, self.C = c, C
        return h, P

    def _gru(self, xp, hp, h_prev, dXP, dHP):
        H = self.H
        r = sigmoid(xp[:, :H] + hp[:, :H])
        z = sigmoid(xp[:, H:2 * H] + hp[:, H:2 * H])
        hp_n = hp[:, 2 * H:]
        n = np.tanh(xp[:, 2 * H:] + r * hp_n)
        h = (1 - z) * n + z * h_prev
        e = _col
        dHP[:, :2 * H, :self.n_ih] += dXP[:, :2 * H]             # da_r, da_z = dxp + dhp (dXP is zero past n_ih)
        dr = e(r * (1 - r)) * dHP[:, :H]                       # through sigmoid
        dz = e(z * (1 - z)) * dHP[:, H:2 * H]
        dan = e(r) * dHP[:, 2 * H:] + dr * e(hp_n)             # d(r * hp_n)
        dan[:, :, :self.n_ih] += dXP[:, 2 * H:]                # + dxp_n
        dn = e(1 - n * n) * dan                                # through tanh
        P = e(1 - z) * dn + e(h_prev - n) * dz + e(z) * self.P  # dh = (1-z) dn + (h_prev - n) dz + z dh_prev
        return h, P

    # --- gradients ------------------------------------------------------------------------------
    def gradient(self, dh, dc=None) -> dict[str, np.ndarray]:
        """dL_t/dθ = dL_t/dh_t · P_t (+ dL_t/dc_t · C_t), summed over the batch, by parameter name."""
        if self.P is None:
            raise ValueError("gradient() called before reset(batch_size) and step()")
        shape = self.P.shape[:2]
        dh = checks.state_array("dh", dh, self.dtype, shape)
        flat = np.einsum("bh,bhn->n", dh, self.P)
        if dc is not None:
            if self.mode != "LSTM":
                raise ValueError(f"dc applies to the LSTM only, got dc for {self.mode}")
            flat += np.einsum("bh,bhn->n", checks.state_array("dc", dc, self.dtype, shape), self.C)
        return {name: flat[a:b].reshape(self.module.params[name].shape) for name, (a, b) in self.offsets.items()}

    def backward(self, dh, dc=None) -> None:
        """Add this step's gradient dL_t/dh_t · P_t into the module's grads (name by name)."""
        for name, g in self.gradient(dh, dc).items():
            self.module.grads[name] += g

    @property
    def state(self):
        """The current state: h, or (h, c) for the LSTM."""
        return (self.h, self.c) if self.mode == "LSTM" else self.h


def rtrl_gradients(module, x, dout, state=None) -> dict[str, np.ndarray]:
    """The gradient of L = sum_t <dout[t], h_t> by RTRL over a whole sequence x (T, B, I).

    dout (T, B, H): dL/dh_t from each step's own loss. Returns {name: gradient}; the module's
    grads are untouched. With fixed weights this equals BPTT of the same loss.
    """
    rtrl = RTRL(module)
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must have 3 dimensions (T, B, I), got shape {x.shape}")
    dout = np.asarray(dout)
    if dout.shape != x.shape[:2] + (rtrl.H,):
        raise ValueError(f"dout must have shape {x.shape[:2] + (rtrl.H,)}, got shape {dout.shape}")
    rtrl.reset(x.shape[1], state)
    total = {name: np.zeros_like(module.params[name]) for name in rtrl.names}
    for t in range(x.shape[0]):
        rtrl.step(x[t])
        for name, g in rtrl.gradient(dout[t]).items():
            total[name] += g
    return total
