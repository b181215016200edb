"""The one time loop: run any step (RNN, LSTM, GRU) over a sequence in one direction, and back.

Packed-sequence semantics come from a boolean mask (T, B, 1): where mask[t, b] is False the state
passes through unchanged and the output is zero. Run forward, that holds each sequence's last
state to the end; run in reverse, it keeps the initial state until each sequence's own last step.

With Numba (rnnkit.kernels.ENABLED) the whole loop is one compiled call per direction (but for
calls too short to pay for it: `compiled`); without it, or with RNNKIT_NUMBA=0, each step runs
the NumPy math of rnnkit.steps. Both give the same numbers (tests/test_kernels.py) and take the
same arguments; each backward reads its own cache.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import gemm as packed
from . import cell_tile, kernels, workspace
from .products import matmul, product
from .steps import GRUStep, LSTMStep, RNNStep
from .workspace import FRESH


class Cache(NamedTuple):
    h_prevs: np.ndarray          # (T, B, H) the state each step started from (unmasked: the output's memory)
    c_prevs: np.ndarray | None   # (T, B, H) LSTM only
    saved: np.ndarray            # (T, B, S*H) what the step kept; fused: the gates, over xp
    extra: np.ndarray | None     # fused only: tanh(c) for LSTM, hp_n for GRU
    fused: bool
    weights: np.ndarray | None = None   # fused only: the packed weights' scratch, for backward's packing


def run_forward(step, xp, W_hh, b_hh, h0, c0, mask, reverse, keep=True, parts=1, ws=FRESH):
    """xp: (T, B, G*H) input projections, overwritten. Returns output (T, B, H), h_n, c_n, cache.

    keep=False (inference) keeps nothing for backward and returns cache None. parts: threads for
    the compiled loop (rnnkit.kernels.parts); the NumPy steps ignore it. The cache's arrays, and
    scratch, come from the workspace ws (rnnkit.workspace); the output never does.
    """
    if compiled(step, *xp.shape[:2]):
        return fused_forward(step, xp, W_hh, b_hh, h0, c0, mask, reverse, keep, parts, ws)
    T, B, _ = xp.shape
    H = h0.shape[1]
    dt = xp.dtype
    out, h_prevs = outputs(T, B, H, dt, mask, reverse, keep, ws)
    saved = ws.empty((T, B, step.S * H), dt)
    c_prevs = ws.empty((T, B, H), dt) if step.has_c and keep else None
    h, c = h0, c0
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        if keep:
            h_prevs[t] = h
            if c_prevs is not None:
                c_prevs[t] = c
        hp = matmul(h, W_hh.T)
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
    if not keep:
        ws.give_back(h_prevs, saved)
        return out, h, c, None
    return out, h, c, Cache(h_prevs, c_prevs, saved, None, False)


def outputs(T, B, H, dt, mask, reverse, keep, ws):
    """The output (T, B, H) and h_prevs, the state each step started from, for backward (no steps
    without keep). Without a mask, h_prevs[t] is h0 at the first step and the output of the step
    before (after, in reverse) at the others: one array of T + 1 steps holds both, and h_prevs
    costs no memory of its own (the layer's output is read-only until backward: RNNBase.forward).
    With a mask, padding steps output zeros while the state passes through: h_prevs apart, from ws."""
    if keep and mask is None:
        hs = workspace.empty((T + 1, B, H), dt)
        return (hs[:T], hs[1:]) if reverse else (hs[1:], hs[:T])
    return workspace.empty((T, B, H), dt), ws.empty((T if keep else 0, B, H), dt)


def release(cache, ws):
    """Give a cache's arrays back to ws once backward is done with them. An h_prevs that is a view
    of the output's memory (outputs), which the caller may still hold, is not ws's: it skips it."""
    ws.give_back(cache.h_prevs, cache.c_prevs, cache.saved, cache.extra)


def run_backward(step, W_hh, dout, dh_n, dc_n, mask, reverse, cache, parts=1, ws=FRESH):
    """Back through run_forward. Returns dxp (T, B, G*H), dhp, dh0, dc0 and the bias gradients.

    dhp is a tuple of column blocks (T, B, n) that side by side make the gradient of
    hp = h_prev @ W_hh.T (+ b_hh), without copying them together: (dxp,) for RNN and LSTM, where
    the two are equal, and (dxp[..., :2H], dn * r) for the fused GRU. dW_hh = sum_t dhp[t].T @
    h_prevs[t] is left to the caller: one product per block over all steps. The bias gradients,
    (db_ih, db_hh), are the column sums of dxp and of dhp over all steps and rows.
    """
    if cache.fused:
        return fused_backward(step, W_hh, dout, dh_n, dc_n, mask, reverse, cache, parts, ws)
    h_prevs, c_prevs, saved = cache.h_prevs, cache.c_prevs, cache.saved
    T, B, H = dout.shape
    GH = W_hh.shape[0]
    dxp = workspace.empty((T, B, GH), dout.dtype)
    dhp = dxp if step.shared_grad else workspace.empty(dxp.shape, dxp.dtype)
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
    db_ih = dxp.sum((0, 1))
    return dxp, (dhp,), dh, dc, (db_ih, db_ih if dhp is dxp else dhp.sum((0, 1)))


# --- the fused path: one Numba call per direction -------------------------------------------------

# a call that the NumPy steps run even with Numba: of at most SHORT_STEPS steps, or SHORT_ROWS rows
# over all its steps (T * B)
SHORT_STEPS = {RNNStep: 1, LSTMStep: 0, GRUStep: 0}
SHORT_ROWS = {RNNStep: 8, LSTMStep: 2, GRUStep: 2}


def compiled(step, T, B):
    """Whether the compiled loop runs a call of T steps of B rows: with Numba, for rnnkit's own
    steps, but not for a call too short to pay for packing W_hh (and W_ih) at its start, which the
    NumPy steps run faster: one of at most SHORT_STEPS steps (the RNN's step is a product and a
    tanh) or SHORT_ROWS rows over all its steps. Sampling calls a layer a step and a row at a time.
    `python bench/short.py` (one run on the project's 2-core machine), the NumPy steps' time over
    the compiled loop's at T = 1, B = 1 and I = H = 64 to 512, inference and training: RNN 0.40-0.63
    and 0.69-0.79, LSTM 0.44-0.91 and 0.80-0.99, GRU 0.37-0.64 and 0.78-0.85. The NumPy LSTM and GRU
    steps make a pass over memory per operation, so past a few rows the compiled loop wins even at
    T = 1 (at B = 32 the NumPy LSTM took 1.47-2.00 and 1.02-1.77 of its time); the RNN's one step
    took 0.50-1.15 and 0.74-1.04 there."""
    if not kernels.ENABLED or type(step) not in SHORT_ROWS:
        return False
    return T > SHORT_STEPS[type(step)] and T * B > SHORT_ROWS[type(step)]


def lengths_of(mask, T, B):
    return np.full(B, T, np.int64) if mask is None else mask[:, :, 0].sum(0).astype(np.int64)


def takes_input(step, x, W_hh, keep, parts):
    """Whether the input projection goes inside each step's product (run_input), for a batch of
    rnnkit.gemm.MIN_ROWS rows or more: for the compiled LSTM, and for the compiled GRU in inference
    (keep False) where its threads split the units (rnnkit.kernels.packing_parts) and its step's
    products are large enough, with little padding (rnnkit.kernels.gru_input_pays); but not where
    input_apart. The GRU's n gate takes its input's and its state's terms from products of their
    own (gru_input_weights). Where each thread works alone on its rows, W is small and the step's
    three products and their packing cost more than the projection of all steps; in training the
    packed weights would grow by W_ih, past PyTorch's peak at (35, 20, 650, 650). A batch of fewer
    rows runs tiles of fewer rows.

    The compiled RNN takes its input inside where the tiles take K whole (rnnkit.gemm.WHOLE_K: Zen
    4 and 5), in training and inference. Its step's product has only H columns, and with K in chunks (on
    the Xeon of sessions 23-32) it ran slower than the projection of all steps in one product. Over
    the whole of K it ran faster at (35, 20, 650, 650) inference, within the noise elsewhere.
    Throwaway A/B timings on Zen 4 (each variant in its own process, in turns, five or six rounds
    of medians of 15 calls, in a loaded hour), inside over apart in time: inference 0.869 at (T, B,
    I, H) = (35, 20, 650, 650), 0.910 at (100, 64, 512, 512), 0.800 at (100, 32, 256, 256), 0.728 at
    (100, 32, 128, 128) and 0.832 at (50, 16, 64, 64); training 0.958, 0.961, 0.938, 0.781 and
    0.888. `python bench/compare.py adeaa60 d3c8b40 --modes RNN --sizes
    35,20,650,650 100,32,128,128 100,64,512,512 --rounds 3 --repeats 5` (apart/inside, above 1:
    inside faster; training, inference): 0.981 and 1.089 at (35, 20, 650, 650), 0.991 and 0.974
    at (100, 32, 128, 128), 1.008 and 1.022 at (100, 64, 512, 512)."""
    T, B, I = x.shape
    if not compiled(step, T, B) or B < packed.MIN_ROWS:
        return False
    if type(step) is RNNStep:                          # compiled holds for the RNN, LSTM and GRU steps only
        return packed.WHOLE_K
    if type(step) is GRUStep and (keep or kernels.packing_parts(parts, B, W_hh, I) == 1
                                  or not kernels.gru_input_pays(B, I, W_hh.shape[1], parts)):
        return False
    return not input_apart(step, B, I, W_hh, keep, parts)


L2_BYTES = 2 << 20          # a core's L2 on the project's machine (lscpu: 2 MB a core)
# batch rows, at most, for input_apart: in inference, in training (the GRU's input never goes
# inside in training, so its 0 is never read)
APART_ROWS = {LSTMStep: (20, 32), GRUStep: (48, 0)}
ALONE_APART_ON = {"emeraldrapids"}      # by LLVM's name of the CPU: where the LSTM's input goes apart
ALONE_APART = kernels.ENABLED and packed.target_name() in ALONE_APART_ON      # to leave its threads alone


def input_apart(step, B, I, W_hh, keep, parts):
    """Whether the LSTM's or the GRU's input goes apart after all, projected for all steps in one
    product: where each part's packed weights with the input's ([W_ih, W_hh], or the GRU's three
    groups) are past a core's L2 and the batch has few rows (APART_ROWS), so that each value of W a
    step reads from L3 serves few multiply-adds. One core read W from L3 at about 11 GB/s (a
    throwaway timing of rnnkit.gemm at 20 rows, K = 512 to 1024, N = 2048 to 4096), whatever the
    other core did; apart, a step reads W_hh alone. Throwaway A/B timings (inside/apart, five rounds
    of medians of 7 calls). LSTM: training (35, 20, 650, 650) 1.05-1.10, (100, 20, 384, 384)
    1.07-1.12, (100, 20, 512, 512) 1.03-1.07, (35, 32, 650, 650) 0.99-1.06, (100, 32, 512, 512)
    1.01-1.03, (100, 64, 512, 512) 0.97-1.01; inference (100, 20, 384, 384) 1.06-1.10, (100, 20,
    512, 512) 1.01-1.07, (50, 8, 1024, 1024) 1.06-1.11, (35, 20, 650, 650) 1.00-1.02, (35, 24, 650,
    650) 0.93-0.98, (35, 32, 650, 650) 0.92-1.03, (100, 64, 512, 512) 0.86-0.90. GRU inference (the
    last three rounds): (100, 4, 512, 512) 1.65-1.70, (100, 8, 512, 512) 1.36-1.44, (100, 20, 512,
    512) 1.18-1.21, (35, 20, 650, 650) 1.11-1.21, (100, 32, 512, 512) 1.04-1.13, (35, 32, 650, 650)
    1.11-1.13, (35, 48, 650, 650) 1.05-1.09, (100, 48, 512, 512) 0.97-1.02, (35, 64, 650, 650)
    1.00-1.02, (100, 64, 512, 512) 0.95-0.99; where its weights fit L2, mixed: (100, 8, 256, 256)
    0.86-0.94, (100, 16, 256, 256) 1.09-1.12, (100, 32, 256, 256) 0.91-0.95. Where the tiles take
    K whole (rnnkit.gemm.WHOLE_K: Zen 4 and 5), the LSTM's input never goes apart in inference. There, at
    (35, 20, 650, 650), inside over apart in time (a throwaway A/B, each in its own process in
    turns, the medians of 8 rounds and their range): inference 0.955 (0.912-1.037), training 0.993
    (0.962-1.051), where inside raised the training step's memory from 23.5 MB to 29.5.

    Where ALONE_APART (the Xeon whose LLVM name is emeraldrapids), the LSTM's input also goes apart
    where [W_ih, W_hh] would have its threads split the units, meeting twice a step, and W_hh alone
    lets each work alone on its rows (rnnkit.kernels.packing_parts). There, at (100, 32, 256, 256),
    inside over apart in time (a throwaway A/B in one process, the two ways in turns, medians of 15
    rounds and quartiles): inference 1.090 (1.061-1.104), training 1.052 (1.021-1.075); where the
    threads work alone either way or split either way, apart ran no faster: inference 0.917 at
    (100, 32, 128, 128), 0.911 at (50, 16, 64, 64), 1.018 at (100, 64, 512, 512)."""
    if type(step) is LSTMStep and packed.WHOLE_K and not keep:
        return False
    if type(step) is GRUStep:
        P = parts                                      # the GRU's input goes inside only on P parts
        size = kernels.gru_input_size(W_hh.shape[1], P, I)
    else:
        P = kernels.packing_parts(parts, B, W_hh, I)
        if ALONE_APART and P > 1 and kernels.packing_parts(parts, B, W_hh) == 1:
            return True                                # apart, each thread works alone on its rows
        size = kernels.weights_size(W_hh, P, I)
    return B <= APART_ROWS[type(step)][keep] and size * W_hh.itemsize / P > L2_BYTES


def run_input(step, x, W_ih, b_ih, W_hh, b_hh, h0, c0, mask, reverse, keep=True, parts=1, ws=FRESH):
    """run_forward from the input x (T, B, I): its projection xp = x @ W_ih.T + b_ih of all steps
    in one product (rnnkit.products), or, where takes_input, inside each step's product: one
    product [x_t, h_prev] @ [W_ih, W_hh].T per step (the GRU's n gate: two), and no xp written
    out and read back. For the RNN and LSTM, whose steps only ever add xp and hp, b_ih joins b_hh
    in hp (the kernel's or the NumPy step's) rather than the projection: NumPy's BLAS, which takes
    the large products, adds no bias, and a pass of its own over xp took 0.37 ms beside the
    product's 8.4 ms at (M, K, N) = (700, 650, 2600), 4.0 beside 45 at (6400, 512, 2048). A
    throwaway A/B of the compiled layers, five rounds, bias apart/joined: inference at (35, 20,
    650, 650) LSTM 1.006-1.072, RNN 0.996-1.027; training within the noise (0.96-1.02)."""
    if takes_input(step, x, W_hh, keep, parts):
        return fused_forward(step, None, W_hh, b_hh, h0, c0, mask, reverse, keep, parts, ws, x, W_ih, b_ih)
    T, B, I = x.shape
    xp = ws.empty((T, B, W_ih.shape[0]), x.dtype)
    if b_ih is not None and type(step) in (RNNStep, LSTMStep):
        b_ih, b_hh = None, b_ih if b_hh is None else b_hh + b_ih     # hp adds both, with no pass over xp
    product(x.reshape(T * B, I), W_ih.T, parts, xp.reshape(T * B, -1), b_ih, ws, keep=keep)
    out, h, c, cache = run_forward(step, xp, W_hh, b_hh, h0, c0, mask, reverse, keep, parts, ws)
    if cache is None or cache.saved is not xp:                 # else backward overwrites it
        ws.give_back(xp)
    return out, h, c, cache


def fused_forward(step, xp, W_hh, b_hh, h0, c0, mask, reverse, keep, P, ws, x=None, W_ih=None, b_ih=None):
    """The compiled loop, from xp; or, where takes_input, from x (T, B, I), W_ih and b_ih, with xp None.
    The LSTM's inference from x goes to rnnkit.cell_tile where that pays (its cell in the product's tiles)."""
    H, dt = h0.shape[1], h0.dtype
    W_hh = np.ascontiguousarray(W_hh)
    GH = W_hh.shape[0]
    own_xp = None                                      # xp made here, from ws: given back in inference
    if x is None:
        T, B, _ = xp.shape
        xp = np.ascontiguousarray(xp)
        x = np.empty((T, B, 0), dt)
    else:
        T, B, _ = x.shape
        xp = own_xp = ws.empty((T if keep else 1, B, GH), dt)   # the gates for backward, or a scratch
        x, W_ih = np.ascontiguousarray(x), np.ascontiguousarray(W_ih)
    b_hh = np.zeros(GH, dt) if b_hh is None else np.ascontiguousarray(b_hh)
    lengths = lengths_of(mask, T, B)
    h = h0.copy()                                      # the kernels update the state in place
    c = None if c0 is None else c0.copy()
    out, h_prevs = outputs(T, B, H, dt, mask, reverse, keep, ws)
    kept = (T if keep else 0, B, H)
    scratch = (T if keep else 1, B, H)                 # tanh(c) or hp_n: a one-step scratch without keep
    c_prevs = extra = None
    I = x.shape[2]
    parts = kernels.packing_parts(P, B, W_hh, I)
    if isinstance(step, LSTMStep) and not keep and cell_tile.pays(I, B, H, P, parts, dt, lengths):
        buffer = ws.flat(kernels.weights_size(W_hh, parts, I), dt)
        cell_tile.forward(x, W_ih, b_ih, W_hh, b_hh, h, c, reverse, out, P, parts, buffer)
        ws.give_back(h_prevs, buffer, own_xp)
        return out, h, c, None
    if isinstance(step, GRUStep) and I > 0:            # inference only (takes_input): it keeps no gates
        buffer = ws.flat(kernels.gru_input_size(H, parts, I), dt)
        edges, Wk, Wn, Wh, bp = kernels.gru_input_weights(W_ih, W_hh, b_ih, b_hh, parts, buffer)
    else:
        buffer = ws.flat(kernels.weights_size(W_hh, parts, I), dt)
        edges, Wk, bp = kernels.forward_weights(W_hh, b_hh, parts, buffer, W_ih, b_ih)
        Wn = Wh = np.empty((parts, 0, 0, packed.V), dt)   # the GRU's n products apart: only with x
    sync = kernels.phases(T, P)
    if isinstance(step, LSTMStep):
        c_prevs, extra = ws.empty(kept, dt), ws.empty(scratch, dt)
        kernels.lstm_forward[P](xp, x, Wk, bp, edges, h, c, lengths, reverse, keep, out, h_prevs, c_prevs, extra,
                                sync)
    elif isinstance(step, GRUStep):
        extra = ws.empty(scratch, dt)
        kernels.gru_forward[P](xp, x, Wk, Wn, Wh, bp, edges, h, lengths, reverse, keep, out, h_prevs, extra, sync)
    else:
        relu = step.nonlinearity == "relu"
        kernels.rnn_forward[P](xp, x, Wk, bp, edges, h, lengths, reverse, relu, keep, out, h_prevs, sync)
    if not keep:
        ws.give_back(h_prevs, c_prevs, extra, buffer, own_xp)
        return out, h, c, None
    return out, h, c, Cache(h_prevs, c_prevs, xp, extra, True, buffer)


def fused_backward(step, W_hh, dout, dh_n, dc_n, mask, reverse, cache, P, ws):
    """The compiled backward loop. Its kernel sums each row's gradients into the bias gradients as it
    writes them, a row of sums per task (no two threads add to one): NumPy's dxp.sum(0) after it
    took 0.36 ms of LSTM (100, 32, 128, 128)'s 12.5 ms training step (a throwaway timing)."""
    T, B, H = dout.shape
    saved = cache.saved                                # becomes dxp
    W_hh = np.ascontiguousarray(W_hh)
    dout = np.ascontiguousarray(dout)
    lengths = lengths_of(mask, T, B)
    dh = dh_n.copy()                                   # dh_n in, dh0 out
    dc = None if dc_n is None else dc_n.copy()
    dhp = (saved,)
    parts = kernels.packing_parts(P, B, W_hh)
    buffer, size = cache.weights, kernels.weights_size(W_hh, parts)
    if buffer.size < size:                             # forward's is too small only where its parts were fewer
        ws.give_back(buffer)
        buffer = ws.flat(size, W_hh.dtype)
    edges, Wk = kernels.backward_weights(W_hh, parts, buffer)
    sync = kernels.phases(T, P)
    GH = W_hh.shape[0]
    sums = np.zeros((P, GH + (H if isinstance(step, GRUStep) else 0)), dout.dtype)
    if isinstance(step, LSTMStep):
        kernels.lstm_backward[P](saved, cache.extra, cache.c_prevs, Wk, edges, dout, dh, dc, lengths, reverse, sums,
                                 sync)
    elif isinstance(step, GRUStep):                # cache.extra (hp_n) becomes dn * r
        kernels.gru_backward[P](saved, cache.extra, cache.h_prevs, Wk, edges, dout, dh, lengths, reverse, sums, sync)
        dhp = (saved[:, :, :2 * H], cache.extra)
    else:
        kernels.rnn_backward[P](saved, Wk, edges, dout, dh, lengths, reverse, step.nonlinearity == "relu", sums,
                                sync)
    ws.give_back(buffer)
    sums = sums.sum(0)
    db_ih = sums[:GH]
    db_hh = np.concatenate((sums[:2 * H], sums[GH:])) if isinstance(step, GRUStep) else db_ih
    return saved, dhp, dh, dc, (db_ih, db_hh)
