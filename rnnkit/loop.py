"""The one time loop: run any step (RNN, LSTM, GRU) over a sequence in one direction, and back.

Packed-sequence semantics come from a boolean mask (T, B, 1): where mask[t, b] is False the state
passes through unchanged and the output is zero. Run forward, that holds each sequence's last
state to the end; run in reverse, it keeps the initial state until each sequence's own last step.
"""
from __future__ import annotations

import numpy as np


def run_forward(step, xp, W_hh, b_hh, h0, c0, mask, reverse):
    """xp: (T, B, G*H) input projections. Returns output (T, B, H), h_n, c_n and the cache."""
    T, B, _ = xp.shape
    H = h0.shape[1]
    dt = xp.dtype
    out = np.empty((T, B, H), dt)
    saved = np.empty((T, B, step.S * H), dt)
    h_prevs = np.empty((T, B, H), dt)
    c_prevs = np.empty((T, B, H), dt) if step.has_c else None
    h, c = h0, c0
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        h_prevs[t] = h
        if c_prevs is not None:
            c_prevs[t] = c
        hp = h @ W_hh.T
        if b_hh is not None:
            hp += b_hh
        h_new, c_new = step.forward(xp[t], hp, h, c, saved[t])
        if mask is None:
            out[t] = h_new
            h, c = out[t], c_new
        else:
            m = mask[t]
            np.multiply(h_new, m, out=out[t])          # padded outputs are zero
            h = np.where(m, h_new, h)                  # padding never updates the state
            if c is not None:
                c = np.where(m, c_new, c)
    return out, h, c, (h_prevs, c_prevs, saved)


def run_backward(step, W_hh, dout, dh_n, dc_n, mask, reverse, cache):
    """Back through run_forward. Returns dxp, dhp (each (T, B, G*H)), dh0 and dc0.

    dW_hh = sum_t dhp[t].T @ h_prevs[t] is left to the caller: one product over all steps.
    """
    h_prevs, c_prevs, saved = cache
    T, B, H = dout.shape
    GH = W_hh.shape[0]
    dxp = np.empty((T, B, GH), dout.dtype)
    dhp = dxp if step.shared_grad else np.empty_like(dxp)
    dh, dc = dh_n, dc_n
    for t in (range(T) if reverse else range(T - 1, -1, -1)):
        c_prev = c_prevs[t] if c_prevs is not None else None
        if mask is None:
            dh_new, dc_new = dout[t] + dh, dc
        else:
            m = mask[t]
            dh_new = np.where(m, dout[t] + dh, 0)      # padding steps carry dh past the cell
            dh_skip = np.where(m, 0, dh)
            if dc is not None:
                dc_new, dc_skip = np.where(m, dc, 0), np.where(m, 0, dc)
            else:
                dc_new = None
        dh_direct, dc = step.backward(dh_new, dc_new, h_prevs[t], c_prev, saved[t], dxp[t], dhp[t])
        dh = dhp[t] @ W_hh                              # into h_prev, through hp = h_prev @ W_hh.T
        if dh_direct is not None:
            dh += dh_direct
        if mask is not None:
            dh += dh_skip
            if dc is not None:
                dc += dc_skip
    return dxp, dhp, dh, dc
