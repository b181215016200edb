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
after another, between single-threaded gate loops, and a second thread that sleeps between them
costs more than it brings. Measured on this 2-core machine, idle: LSTM (T, B, H) = (35, 20, 650)
inference 96 ms on one thread against 190 ms on two, (100, 32, 128) 11 ms against 16 ms; under
load two threads were up to 20x slower. The few large products per sequence (input projection,
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


# Each kernel walks the steps in order and, per step, makes one BLAS product for the recurrence and
# then short loops over one batch row at a time. Every loop runs over contiguous row views with no
# branch inside, so LLVM vectorizes it (one fused loop with all the gates did 3.6x worse). A padded
# row (t >= lengths[b]) skips the cell: its saved values are zero, its output is zero and its state,
# or its gradient, passes through unchanged.

# --- RNN: h = f(xp + h_prev @ W_hh.T + b_hh), f = tanh (relu=False) or relu ----------------------

@_kernel
def rnn_forward(xp, W_hh, b_hh, h, lengths, reverse, relu, keep, out, h_prevs):
    """xp (T, B, H) becomes the saved h of each step; h (B, H) is h0 in, h_n out."""
    T, B, H = xp.shape
    zero = xp.dtype.type(0)
    hp = np.empty((B, H), xp.dtype)
    for s in range(T):
        t = order(s, T, reverse)
        np.dot(h, W_hh.T, hp)
        if keep:
            h_prevs[t] = h
        for b in range(B):
            a, hp_ = xp[t, b], hp[b]
            if t >= lengths[b]:
                a[:] = zero
                out[t, b] = zero
                continue
            if relu:
                for j in range(H):
                    a[j] = max(a[j] + hp_[j] + b_hh[j], zero)
            else:
                for j in range(H):
                    a[j] = tanh(a[j] + hp_[j] + b_hh[j])
            out[t, b] = a
            h[b] = a


@_kernel
def rnn_backward(saved, W_hh, dout, dh, lengths, reverse, relu):
    """saved (T, B, H) becomes dxp = dhp; dh (B, H) is dh_n in, dh0 out."""
    T, B, H = saved.shape
    one = saved.dtype.type(1)
    zero = one - one
    dh_skip = np.zeros((B, H), saved.dtype)
    for s in range(T - 1, -1, -1):
        t = order(s, T, reverse)
        padded = False
        for b in range(B):
            h_, do_, dh_ = saved[t, b], dout[t, b], dh[b]
            if t >= lengths[b]:                                       # padding carries dh past the cell
                padded = True
                dh_skip[b] = dh_
                h_[:] = zero
                continue
            dh_skip[b] = zero
            if relu:
                for j in range(H):
                    h_[j] = do_[j] + dh_[j] if h_[j] > zero else zero
            else:
                for j in range(H):
                    h_[j] = (do_[j] + dh_[j]) * (one - h_[j] * h_[j])    # through tanh
        np.dot(saved[t], W_hh, dh)                                    # into h_prev
        if padded:
            dh += dh_skip


# --- LSTM: saved = [i, f, g, o] over xp, tanh(c) and c_prev beside -------------------------------

@_kernel
def lstm_forward(xp, W_hh, b_hh, h, c, lengths, reverse, keep, out, h_prevs, c_prevs, tcs):
    """xp (T, B, 4H) becomes [i, f, g, o]; h, c (B, H) are h0, c0 in and h_n, c_n out.
    tcs holds tanh(c) per step, or has one step (scratch) when keep is False."""
    T, B, G = xp.shape
    zero = xp.dtype.type(0)
    H = G // 4
    hp = np.empty((B, G), xp.dtype)
    for s in range(T):
        t = order(s, T, reverse)
        np.dot(h, W_hh.T, hp)
        if keep:
            h_prevs[t] = h
            c_prevs[t] = c
        for b in range(B):
            a, tc_ = xp[t, b], tcs[t if keep else 0, b]
            if t >= lengths[b]:
                a[:] = zero
                tc_[:] = zero
                out[t, b] = zero
                continue
            hp_, c_, h_ = hp[b], c[b], out[t, b]
            for j in range(2 * H):
                a[j] = sigmoid(a[j] + hp_[j] + b_hh[j])                    # i, f
            for j in range(2 * H, 3 * H):
                a[j] = tanh(a[j] + hp_[j] + b_hh[j])                       # g
            for j in range(3 * H, G):
                a[j] = sigmoid(a[j] + hp_[j] + b_hh[j])                    # o
            for j in range(H):
                c_[j] = a[H + j] * c_[j] + a[j] * a[2 * H + j]             # c = f c_prev + i g
            for j in range(H):
                tc_[j] = tanh(c_[j])
            for j in range(H):
                h_[j] = a[3 * H + j] * tc_[j]                              # h = o tanh(c)
            h[b] = h_


@_kernel
def lstm_backward(saved, tcs, c_prevs, W_hh, dout, dh, dc, lengths, reverse):
    """saved (T, B, 4H) becomes dxp = dhp; dh, dc (B, H) are dh_n, dc_n in and dh0, dc0 out."""
    T, B, G = saved.shape
    one = saved.dtype.type(1)
    zero = one - one
    H = G // 4
    dh_skip = np.zeros((B, H), saved.dtype)
    for s in range(T - 1, -1, -1):
        t = order(s, T, reverse)
        padded = False
        for b in range(B):
            a, dh_ = saved[t, b], dh[b]
            if t >= lengths[b]:
                padded = True
                dh_skip[b] = dh_
                a[:] = zero
                continue
            dh_skip[b] = zero
            tc_, cp_, do_, dc_ = tcs[t, b], c_prevs[t, b], dout[t, b], dc[b]
            for j in range(H):
                i, f, g, o = a[j], a[H + j], a[2 * H + j], a[3 * H + j]
                tc = tc_[j]
                dh_t = do_[j] + dh_[j]
                dc_t = dc_[j] + dh_t * o * (one - tc * tc)                 # into c, through tanh(c)
                a[j] = dc_t * g * i * (one - i)                            # di, through sigmoid
                a[H + j] = dc_t * cp_[j] * f * (one - f)                   # df
                a[2 * H + j] = dc_t * i * (one - g * g)                    # dg, through tanh
                a[3 * H + j] = dh_t * tc * o * (one - o)                   # do
                dc_[j] = dc_t * f                                          # into c_prev
        np.dot(saved[t], W_hh, dh)                                         # into h_prev
        if padded:
            dh += dh_skip


# --- GRU: saved = [r, z, n] over xp, hp_n beside --------------------------------------------------

@_kernel
def gru_forward(xp, W_hh, b_hh, h, lengths, reverse, keep, out, h_prevs, hp_ns):
    """xp (T, B, 3H) becomes [r, z, n]; h (B, H) is h0 in, h_n out.
    hp_ns holds W_hn h_prev + b_hn per step, or has one step (scratch) when keep is False."""
    T, B, G = xp.shape
    zero = xp.dtype.type(0)
    H = G // 3
    hp = np.empty((B, G), xp.dtype)
    for s in range(T):
        t = order(s, T, reverse)
        np.dot(h, W_hh.T, hp)
        if keep:
            h_prevs[t] = h
        for b in range(B):
            a, hpn_ = xp[t, b], hp_ns[t if keep else 0, b]
            if t >= lengths[b]:
                a[:] = zero
                hpn_[:] = zero
                out[t, b] = zero
                continue
            hp_, h_, o_ = hp[b], h[b], out[t, b]
            for j in range(2 * H):
                a[j] = sigmoid(a[j] + hp_[j] + b_hh[j])                    # r, z
            for j in range(H):
                hpn_[j] = hp_[2 * H + j] + b_hh[2 * H + j]
            for j in range(H):
                a[2 * H + j] = tanh(a[2 * H + j] + a[j] * hpn_[j])         # n = tanh(xp_n + r hp_n)
            for j in range(H):
                o_[j] = a[2 * H + j] + a[H + j] * (h_[j] - a[2 * H + j])   # h = n + z (h_prev - n)
            h[b] = o_


@_kernel
def gru_backward(saved, hp_ns, h_prevs, W_hh, dout, dh, lengths, reverse, dhp):
    """saved (T, B, 3H) becomes dxp, and dhp (T, B, 3H) is filled; dh (B, H) is dh_n in, dh0 out."""
    T, B, G = saved.shape
    one = saved.dtype.type(1)
    zero = one - one
    H = G // 3
    dh_direct = np.zeros((B, H), saved.dtype)
    for s in range(T - 1, -1, -1):
        t = order(s, T, reverse)
        for b in range(B):
            a, d_, dh_, dd_ = saved[t, b], dhp[t, b], dh[b], dh_direct[b]
            if t >= lengths[b]:                                            # padding carries dh
                a[:] = zero
                d_[:] = zero
                dd_[:] = dh_
                continue
            hpn_, hprev_, do_ = hp_ns[t, b], h_prevs[t, b], dout[t, b]
            for j in range(H):
                r, z, n = a[j], a[H + j], a[2 * H + j]
                dh_t = do_[j] + dh_[j]
                dn = dh_t * (one - z) * (one - n * n)                      # into n, through tanh
                dr = dn * hpn_[j] * r * (one - r)                          # through sigmoid
                dz = dh_t * (hprev_[j] - n) * z * (one - z)
                a[j], a[H + j], a[2 * H + j] = dr, dz, dn
                d_[j], d_[H + j], d_[2 * H + j] = dr, dz, dn * r           # into hp_n via r
                dd_[j] = dh_t * z                                          # the direct path
        np.dot(dhp[t], W_hh, dh)                                           # into h_prev
        dh += dh_direct


# --- one LSTM cell step (rnnkit.LSTMCell): both products and the gates in one call ----------------

@_kernel
def lstm_cell_forward(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh, saved, h, c):
    """Fills saved (B, 5H) = [i, f, g, o, tanh(c)] as rnnkit.steps.LSTMStep does, and h, c (B, H)."""
    B, H = h_prev.shape
    G = 4 * H
    xp = np.empty((B, G), x.dtype)
    hp = np.empty((B, G), x.dtype)
    if B == 1:                                         # matrix-vector products: no GEMM set-up
        np.dot(W_ih, x[0], xp[0])
        np.dot(W_hh, h_prev[0], hp[0])
    else:
        np.dot(x, W_ih.T, xp)
        np.dot(h_prev, W_hh.T, hp)
    for b in range(B):
        a, xp_, hp_, cp_, c_, h_ = saved[b], xp[b], hp[b], c_prev[b], c[b], h[b]
        for j in range(G):
            a[j] = xp_[j] + b_ih[j] + hp_[j] + b_hh[j]
        for j in range(2 * H):
            a[j] = sigmoid(a[j])                                           # i, f
        for j in range(2 * H, 3 * H):
            a[j] = tanh(a[j])                                              # g
        for j in range(3 * H, G):
            a[j] = sigmoid(a[j])                                           # o
        for j in range(H):
            c_[j] = a[H + j] * cp_[j] + a[j] * a[2 * H + j]
        for j in range(H):
            a[G + j] = tanh(c_[j])
        for j in range(H):
            h_[j] = a[3 * H + j] * a[G + j]
