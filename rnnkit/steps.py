"""The element-wise math of one time step of each recurrent cell, forward and backward.

Matrix products stay outside: the caller passes the input projection xp = x @ W_ih.T + b_ih and
the recurrent projection hp = h_prev @ W_hh.T + b_hh, each (B, G*H) for G gate blocks, and gets
back the gradients with respect to both (dxp, dhp). That keeps every product batched where the
time loop can batch it (all x_t at once, all weight gradients after the loop) and leaves here
only the arithmetic that is different for each cell.

`saved` is a (B, S*H) slice that forward fills with what backward needs; nothing else is kept.
"""
from __future__ import annotations

import numpy as np


def sigmoid(x, out=None):
    # 1/(1+exp(-x)) written through tanh: no overflow warnings for large |x|
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


class RNNStep:
    """Elman step: h = f(xp + hp), with f = tanh or relu.   saved = [h]"""

    G, S, has_c, shared_grad = 1, 1, False, True

    def __init__(self, nonlinearity: str = "tanh"):
        self.nonlinearity = nonlinearity

    def forward(self, xp, hp, h_prev, c_prev, saved):
        a = np.add(xp, hp, out=saved)
        h = np.tanh(a, out=a) if self.nonlinearity == "tanh" else np.maximum(a, 0, out=a)
        return h, None

    def backward(self, dh, dc, h_prev, c_prev, saved, dxp, dhp):
        h = saved
        if self.nonlinearity == "tanh":
            np.multiply(dh, 1.0 - h * h, out=dxp)  # through tanh
        else:
            np.multiply(dh, h > 0, out=dxp)  # through relu
        return None, None


class LSTMStep:
    """LSTM step (PyTorch's gate order i, f, g, o):

        [a_i, a_f, a_g, a_o] = xp + hp
        i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
        c = f * c_prev + i * g
        h = o * tanh(c)

    saved = [i, f, g, o, tanh(c)]
    """

    G, S, has_c, shared_grad = 4, 5, True, True

    def forward(self, xp, hp, h_prev, c_prev, saved):
        H = h_prev.shape[1]
        a = np.add(xp, hp, out=saved[:, :4 * H])
        sigmoid(a[:, :2 * H], out=a[:, :2 * H])
        np.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])
        sigmoid(a[:, 3 * H:], out=a[:, 3 * H:])
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        c = f * c_prev + i * g
        tc = np.tanh(c, out=saved[:, 4 * H:])
        h = o * tc
        return h, c

    def backward(self, dh, dc, h_prev, c_prev, saved, dxp, dhp):
        H = h_prev.shape[1]
        i, f, g, o, tc = (saved[:, k * H:(k + 1) * H] for k in range(5))
        dc = dc + dh * o * (1.0 - tc * tc)            # into c, through h = o * tanh(c)
        np.multiply(dc * g, i * (1.0 - i), out=dxp[:, :H])                  # di, through sigmoid
        np.multiply(dc * c_prev, f * (1.0 - f), out=dxp[:, H:2 * H])        # df, through sigmoid
        np.multiply(dc * i, 1.0 - g * g, out=dxp[:, 2 * H:3 * H])           # dg, through tanh
        np.multiply(dh * tc, o * (1.0 - o), out=dxp[:, 3 * H:])             # do, through sigmoid
        return None, dc * f                           # into c_prev


class GRUStep:
    """GRU step (PyTorch's gate order r, z, n; b_hn sits inside the reset product):

        r = sigmoid(xp_r + hp_r)
        z = sigmoid(xp_z + hp_z)
        n = tanh(xp_n + r * hp_n)        where hp_n = h_prev @ W_hn.T + b_hn
        h = (1 - z) * n + z * h_prev

    saved = [r, z, n, hp_n]
    """

    G, S, has_c, shared_grad = 3, 4, False, False

    def forward(self, xp, hp, h_prev, c_prev, saved):
        H = h_prev.shape[1]
        rz = np.add(xp[:, :2 * H], hp[:, :2 * H], out=saved[:, :2 * H])
        sigmoid(rz, out=rz)
        r, z = rz[:, :H], rz[:, H:]
        hp_n = saved[:, 3 * H:]
        hp_n[...] = hp[:, 2 * H:]
        n = np.add(xp[:, 2 * H:], r * hp_n, out=saved[:, 2 * H:3 * H])
        np.tanh(n, out=n)
        h = n + z * (h_prev - n)
        return h, None

    def backward(self, dh, dc, h_prev, c_prev, saved, dxp, dhp):
        H = h_prev.shape[1]
        r, z, n, hp_n = (saved[:, k * H:(k + 1) * H] for k in range(4))
        dn = dh * (1.0 - z) * (1.0 - n * n)                       # into n, through tanh
        np.multiply(dn * hp_n, r * (1.0 - r), out=dxp[:, :H])      # dr, through sigmoid
        np.multiply(dh * (h_prev - n), z * (1.0 - z), out=dxp[:, H:2 * H])  # dz, through sigmoid
        dxp[:, 2 * H:] = dn
        dhp[:, :2 * H] = dxp[:, :2 * H]
        np.multiply(dn, r, out=dhp[:, 2 * H:])                      # into hp_n, through r * hp_n
        return dh * z, None                                        # into h_prev, the direct path
