"""Numba kernels: a whole sequence of RNN, LSTM or GRU steps in one compiled call, forward and back.

The same equations as rnnkit.steps and the same loop as rnnkit.loop, fused: per step one BLAS
product for the recurrence (np.dot inside Numba calls BLAS) and one pass over the gates, with
no temporaries and no Python between steps. The input projections xp = x @ W_ih.T + b_ih of
all steps come in precomputed; forward overwrites them with the gate activations backward
needs, and backward overwrites those with dxp, so a training step allocates each buffer once.

Lengths (B,) give packed-sequence semantics: at t >= lengths[b] row b is padding, its state
passes through unchanged and its output is zero, in either direction (see rnnkit.loop).

`ENABLED` is False when Numba is missing or RNNKIT_NUMBA=0; rnnkit.loop then runs the NumPy
steps instead. float32 uses a rational tanh (Eigen's, error < 3e-7) that vectorizes; float64
uses libm's.

The per-step products run on one BLAS thread (`one_blas_thread`): they are small and come one
after another, and on a busy machine a second thread that is not scheduled in time stalls every
step (measured: 20x slower under load). The few large products per sequence (input projection,
weight gradients) stay with NumPy's threaded BLAS.
"""
from __future__ import annotations

import os

import numpy as np

try:
    if os.environ.get("RNNKIT_NUMBA", "1") == "0":
        raise ImportError("disabled by RNNKIT_NUMBA=0")
    import numba
    from numba.extending import overload
except ImportError:
    numba = None

ENABLED = numba is not None


def _blas_thread_setter():
    """OpenBLAS's thread-local thread count for the BLAS that Numba calls (SciPy's), if found."""
    import ctypes
    import glob
    try:
        import scipy
        folder = os.path.join(os.path.dirname(scipy.__file__), os.pardir, "scipy.libs")
        for path in glob.glob(os.path.join(folder, "libscipy_openblas*.so*")):
            setter = ctypes.CDLL(path).openblas_set_num_threads_local
            setter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
            return setter
    except (ImportError, OSError, AttributeError):
        pass
    return None


_set_blas_threads = _blas_thread_setter() if ENABLED else None


class one_blas_thread:
    """with one_blas_thread(): ... runs the kernels' np.dot calls on one BLAS thread, then restores."""

    def __enter__(self):
        self.previous = _set_blas_threads(1) if _set_blas_threads is not None else None
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            _set_blas_threads(self.previous)
        return False


def _fallback(*args, **kwargs):
    raise RuntimeError("rnnkit.kernels: Numba is not available (or RNNKIT_NUMBA=0)")


if ENABLED:
    jit = numba.njit(cache=True, fastmath=True, error_model="numpy", nogil=True)
    inline = numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")

    def tanh(x):
        return np.tanh(x)

    @overload(tanh, inline="always")
    def _tanh(x):
        if x == numba.types.float32:
            def tanh32(x):
                lim = np.float32(7.90531110763549805)      # tanh(lim) rounds to 1 in float32
                x = min(max(x, -lim), lim)
                x2 = x * x
                p = np.float32(-2.76076847742355e-16)
                p = p * x2 + np.float32(2.00018790482477e-13)
                p = p * x2 + np.float32(-8.60467152213735e-11)
                p = p * x2 + np.float32(5.12229709037114e-08)
                p = p * x2 + np.float32(1.48572235717979e-05)
                p = p * x2 + np.float32(6.37261928875436e-04)
                p = p * x2 + np.float32(4.89352455891786e-03)
                q = np.float32(1.19825839466702e-06)
                q = q * x2 + np.float32(1.18534705686654e-04)
                q = q * x2 + np.float32(2.26843463243900e-03)
                q = q * x2 + np.float32(4.89352518554385e-03)
                return x * p / q
            return tanh32
        return lambda x: np.tanh(x)

    def sigmoid(x):
        return 0.5 * np.tanh(0.5 * x) + 0.5

    @overload(sigmoid, inline="always")
    def _sigmoid(x):
        half = np.float32(0.5) if x == numba.types.float32 else np.float64(0.5)
        return lambda x: half * tanh(half * x) + half            # 1/(1+exp(-x)), without overflow

    @inline
    def order(t, T, reverse):
        return T - 1 - t if reverse else t
else:
    jit = inline = None


def _kernel(f):
    return jit(f) if ENABLED else _fallback


# --- RNN: h = f(xp + h_prev @ W_hh.T + b_hh), f = tanh (relu=False) or relu ----------------------

@_kernel
def rnn_forward(xp, W_hh, b_hh, h, lengths, reverse, relu, keep, out, h_prevs):
    """xp (T, B, H) becomes the saved h of each step; h (B, H) is h0 in, h_n out."""
    T, B, H = xp.shape
    one = np.ones(1, xp.dtype)[0]
    zero = one - one
    hp = np.empty((B, H), xp.dtype)
    for s in range(T):
        t = order(s, T, reverse)
        np.dot(h, W_hh.T, hp)
        if keep:
            h_prevs[t] = h
        for b in range(B):
            live = t < lengths[b]
            for j in range(H):
                a = xp[t, b, j] + hp[b, j] + b_hh[j]
                h_new = (a if a > zero else zero) if relu else tanh(a)
                xp[t, b, j] = h_new
                out[t, b, j] = h_new if live else zero
                if live:
                    h[b, j] = h_new


@_kernel
def rnn_backward(saved, W_hh, dout, dh, lengths, reverse, relu):
    """saved (T, B, H) becomes dxp = dhp; dh (B, H) is dh_n in, dh0 out."""
    T, B, H = saved.shape
    one = np.ones(1, saved.dtype)[0]
    zero = one - one
    dh_skip = np.zeros((B, H), saved.dtype)
    for s in range(T - 1, -1, -1):
        t = order(s, T, reverse)
        padded = False
        for b in range(B):
            live = t < lengths[b]
            padded |= not live
            for j in range(H):
                h = saved[t, b, j]
                dh_t = dout[t, b, j] + dh[b, j] if live else zero
                dh_skip[b, j] = zero if live else dh[b, j]            # padding carries dh past the cell
                saved[t, b, j] = (dh_t if h > zero else zero) if relu else dh_t * (one - h * h)   # through f
        np.dot(saved[t], W_hh, dh)                                    # into h_prev
        if padded:
            dh += dh_skip


# --- LSTM: saved = [i, f, g, o] over xp, tanh(c) and c_prev beside -------------------------------

@_kernel
def lstm_forward(xp, W_hh, b_hh, h, c, lengths, reverse, keep, out, h_prevs, c_prevs, tcs):
    """xp (T, B, 4H) becomes [i, f, g, o]; h, c (B, H) are h0, c0 in and h_n, c_n out."""
    T, B, G = xp.shape
    one = np.ones(1, xp.dtype)[0]
    zero = one - one
    H = G // 4
    hp = np.empty((B, G), xp.dtype)
    for s in range(T):
        t = order(s, T, reverse)
        np.dot(h, W_hh.T, hp)
        if keep:
            h_prevs[t] = h
            c_prevs[t] = c
        for b in range(B):
            live = t < lengths[b]
            for j in range(H):
                i = sigmoid(xp[t, b, j] + hp[b, j] + b_hh[j])
                f = sigmoid(xp[t, b, H + j] + hp[b, H + j] + b_hh[H + j])
                g = tanh(xp[t, b, 2 * H + j] + hp[b, 2 * H + j] + b_hh[2 * H + j])
                o = sigmoid(xp[t, b, 3 * H + j] + hp[b, 3 * H + j] + b_hh[3 * H + j])
                c_new = f * c[b, j] + i * g
                tc = tanh(c_new)
                h_new = o * tc
                xp[t, b, j], xp[t, b, H + j], xp[t, b, 2 * H + j], xp[t, b, 3 * H + j] = i, f, g, o
                if keep:
                    tcs[t, b, j] = tc
                out[t, b, j] = h_new if live else zero
                if live:
                    h[b, j] = h_new
                    c[b, j] = c_new


@_kernel
def lstm_backward(saved, tcs, c_prevs, W_hh, dout, dh, dc, lengths, reverse):
    """saved (T, B, 4H) becomes dxp = dhp; dh, dc (B, H) are dh_n, dc_n in and dh0, dc0 out."""
    T, B, G = saved.shape
    one = np.ones(1, saved.dtype)[0]
    zero = one - one
    H = G // 4
    dh_skip = np.zeros((B, H), saved.dtype)
    for s in range(T - 1, -1, -1):
        t = order(s, T, reverse)
        padded = False
        for b in range(B):
            live = t < lengths[b]
            padded |= not live
            for j in range(H):
                i, f, g, o = saved[t, b, j], saved[t, b, H + j], saved[t, b, 2 * H + j], saved[t, b, 3 * H + j]
                tc = tcs[t, b, j]
                dh_t = dout[t, b, j] + dh[b, j] if live else zero
                dh_skip[b, j] = zero if live else dh[b, j]
                dc_t = dc[b, j] + dh_t * o * (one - tc * tc) if live else zero   # into c, through tanh(c)
                saved[t, b, j] = dc_t * g * i * (one - i)                           # di, through sigmoid
                saved[t, b, H + j] = dc_t * c_prevs[t, b, j] * f * (one - f)        # df
                saved[t, b, 2 * H + j] = dc_t * i * (one - g * g)                   # dg, through tanh
                saved[t, b, 3 * H + j] = dh_t * tc * o * (one - o)                  # do
                if live:
                    dc[b, j] = dc_t * f                                           # into c_prev
        np.dot(saved[t], W_hh, dh)                                                # into h_prev
        if padded:
            dh += dh_skip


# --- GRU: saved = [r, z, n] over xp, hp_n beside --------------------------------------------------

@_kernel
def gru_forward(xp, W_hh, b_hh, h, lengths, reverse, keep, out, h_prevs, hp_ns):
    """xp (T, B, 3H) becomes [r, z, n]; h (B, H) is h0 in, h_n out."""
    T, B, G = xp.shape
    one = np.ones(1, xp.dtype)[0]
    zero = one - one
    H = G // 3
    hp = np.empty((B, G), xp.dtype)
    for s in range(T):
        t = order(s, T, reverse)
        np.dot(h, W_hh.T, hp)
        if keep:
            h_prevs[t] = h
        for b in range(B):
            live = t < lengths[b]
            for j in range(H):
                r = sigmoid(xp[t, b, j] + hp[b, j] + b_hh[j])
                z = sigmoid(xp[t, b, H + j] + hp[b, H + j] + b_hh[H + j])
                hp_n = hp[b, 2 * H + j] + b_hh[2 * H + j]
                n = tanh(xp[t, b, 2 * H + j] + r * hp_n)
                h_new = n + z * (h[b, j] - n)
                xp[t, b, j], xp[t, b, H + j], xp[t, b, 2 * H + j] = r, z, n
                if keep:
                    hp_ns[t, b, j] = hp_n
                out[t, b, j] = h_new if live else zero
                if live:
                    h[b, j] = h_new


@_kernel
def gru_backward(saved, hp_ns, h_prevs, W_hh, dout, dh, lengths, reverse, dhp):
    """saved (T, B, 3H) becomes dxp, and dhp (T, B, 3H) is filled; dh (B, H) is dh_n in, dh0 out."""
    T, B, G = saved.shape
    one = np.ones(1, saved.dtype)[0]
    zero = one - one
    H = G // 3
    dh_direct = np.zeros((B, H), saved.dtype)
    for s in range(T - 1, -1, -1):
        t = order(s, T, reverse)
        for b in range(B):
            live = t < lengths[b]
            for j in range(H):
                r, z, n = saved[t, b, j], saved[t, b, H + j], saved[t, b, 2 * H + j]
                dh_t = dout[t, b, j] + dh[b, j] if live else zero
                dn = dh_t * (one - z) * (one - n * n)                                  # into n, through tanh
                dr = dn * hp_ns[t, b, j] * r * (one - r)                             # through sigmoid
                dz = dh_t * (h_prevs[t, b, j] - n) * z * (one - z)
                saved[t, b, j], saved[t, b, H + j], saved[t, b, 2 * H + j] = dr, dz, dn
                dhp[t, b, j], dhp[t, b, H + j], dhp[t, b, 2 * H + j] = dr, dz, dn * r   # into hp_n via r
                dh_direct[b, j] = dh_t * z if live else dh[b, j]                   # direct path, or padding
        np.dot(dhp[t], W_hh, dh)                                                   # into h_prev
        dh += dh_direct


# --- one LSTM cell step (rnnkit.LSTMCell): both products and the gates in one call ----------------

@_kernel
def lstm_cell_forward(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh, saved, h, c):
    """Fills saved (B, 5H) = [i, f, g, o, tanh(c)] as rnnkit.steps.LSTMStep does, and h, c (B, H)."""
    B, H = h_prev.shape
    xp = np.empty((B, 4 * H), x.dtype)
    hp = np.empty((B, 4 * H), x.dtype)
    if B == 1:                                         # matrix-vector products: no GEMM set-up
        np.dot(W_ih, x[0], xp[0])
        np.dot(W_hh, h_prev[0], hp[0])
    else:
        np.dot(x, W_ih.T, xp)
        np.dot(h_prev, W_hh.T, hp)
    for b in range(B):
        for j in range(H):
            i = sigmoid(xp[b, j] + b_ih[j] + hp[b, j] + b_hh[j])
            f = sigmoid(xp[b, H + j] + b_ih[H + j] + hp[b, H + j] + b_hh[H + j])
            g = tanh(xp[b, 2 * H + j] + b_ih[2 * H + j] + hp[b, 2 * H + j] + b_hh[2 * H + j])
            o = sigmoid(xp[b, 3 * H + j] + b_ih[3 * H + j] + hp[b, 3 * H + j] + b_hh[3 * H + j])
            c[b, j] = f * c_prev[b, j] + i * g
            tc = tanh(c[b, j])
            h[b, j] = o * tc
            saved[b, j], saved[b, H + j], saved[b, 2 * H + j], saved[b, 3 * H + j], saved[b, 4 * H + j] = i, f, g, o, tc
