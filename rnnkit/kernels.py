"""Numba kernels: a whole sequence of RNN, LSTM or GRU steps in one compiled call, forward and back.

The same equations as rnnkit.steps and the same loop as rnnkit.loop, fused: per step one product
for the recurrence (rnnkit.gemm, against W_hh packed once per call) and one pass over the gates,
with no temporaries and no Python between steps. The input projections xp = x @ W_ih.T + b_ih of
all steps come in precomputed; forward overwrites them with the gate activations backward
needs, and backward overwrites those with dxp, so a training step allocates each buffer once.
The LSTM can take x itself instead: its step product is then [x_t, h_prev] @ [W_ih, W_hh].T,
against both packed together, and it writes the gates into an xp it does not read. So can the
GRU in inference, its n gate's input and state terms from products of their own.

Lengths (B,) give packed-sequence semantics: at t >= lengths[b] row b is padding, its state
passes through unchanged and its output is zero, in either direction (see rnnkit.loop).

`ENABLED` is False when Numba is missing or RNNKIT_NUMBA=0; rnnkit.loop then runs the NumPy
steps instead. float32 uses a rational tanh (Eigen's, error < 3e-7) that vectorizes; float64
uses libm's.

Threads: a kernel runs on P threads (P <= the cores), one each for the whole sequence (Numba's
prange, OpenMP), in one of two ways. Where W is small (packing_parts), each thread works alone on
its own block of batch rows, whole steps, product and gates, and never meets another. Otherwise
the hidden units are cut into P parts: per step each part makes its own slice of the recurrent
product (its share of W_hh is packed apart), the parts meet, each does the gates of a block of
batch rows, and they meet again (see the comment above the kernels). There a step needs all
parts, so a part whose core is busy elsewhere stalls every step: P is 1 for steps, or sequences,
too small to pay for a second thread, and, unless RNNKIT_THREADS=N fixes it, no more than the
cores other processes leave idle (read from /proc/stat).
"""
from __future__ import annotations

import functools
import math
import os
import time

import numpy as np

from . import atomics
from . import gemm as packed
from .jit import ENABLED, OPTIONS, Twins, numba, prange
from .workspace import FRESH

if ENABLED:
    from numba.extending import overload


def _thread_count():
    value = os.environ.get("RNNKIT_THREADS", "")
    if value == "":
        return numba.get_num_threads() if ENABLED else 1
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"RNNKIT_THREADS must be a positive integer, got {value!r}")
    return int(value)


THREADS = _thread_count()
ADAPT = os.environ.get("RNNKIT_THREADS", "") == ""   # follow the other processes' load
MIN_UNITS = 32          # hidden units per part, at least
MIN_WORK = 8_000        # multiply-adds of the recurrence per part per step (B * G * H * H / P), at least
MIN_SEQUENCE = 3_000_000    # and of the whole sequence (T * B * G * H * H): less does not pay for waking a thread


def parts(T, B, G, H):
    """How many parts to cut the H hidden units into: one per thread, each worth its thread, and
    (unless RNNKIT_THREADS says otherwise) no more than the cores other processes leave free: the
    parts meet twice per step, so one whose core another process holds stalls all the others."""
    P = min(THREADS, H // MIN_UNITS)
    if MIN_WORK > 0:
        P = min(P, B * G * H * H // MIN_WORK) if T * B * G * H * H >= MIN_SEQUENCE else 1
    if ADAPT and P > 1:
        P = min(P, int(_cpus() - others_busy() + 0.3))
    return max(1, int(P))


_sample = None          # (monotonic time, busy CPU seconds of the machine, CPU seconds of this process)
_others = 0.0


def _cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _machine_busy_seconds():
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]   # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def others_busy():
    """Cores kept busy by other processes since the last look (Linux's /proc/stat less this
    process's own CPU time), re-read at most every 0.25 s; 0 where /proc/stat is missing."""
    global _sample, _others
    now = time.monotonic()
    if _sample is not None and now - _sample[0] < 0.25:
        return _others
    try:
        busy = _machine_busy_seconds()
    except (OSError, ValueError):
        return 0.0
    own = time.process_time()
    if _sample is not None:
        _others = max(0.0, (busy - _sample[1]) - (own - _sample[2])) / (now - _sample[0])
    _sample = (now, busy, own)
    return _others


def _edges(H, P):
    return np.array([H * k // P for k in range(P + 1)], np.int64)


def _units(H, P):
    """edges (P + 1,), and each part's units (P, m) padded to the largest part, with a mask of the real ones."""
    edges = _edges(H, P)
    unit = edges[:-1, None] + np.arange(int(np.diff(edges).max()))
    return edges, np.minimum(unit, H - 1), unit < edges[1:, None]


def _gate_rows(GH, H, P):
    """edges, each part's rows of W_hh (P, G*m): its m units of each gate side by side, and which are real."""
    edges, unit, real = _units(H, P)
    G, m = GH // H, unit.shape[1]
    rows = (np.arange(G)[:, None] * H + unit[:, None, :]).reshape(P, G * m)
    return edges, rows, np.broadcast_to(real[:, None, :], (P, G, m)).reshape(P, G * m)


def _read_only(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays


@functools.lru_cache(maxsize=64)
def forward_layout(GH, H, P):
    """edges, the columns that pack each part's gate rows of W_hh.T (rnnkit.gemm.pack), and those
    rows (P, G*m) with which are real: computed once per shape, read-only."""
    edges, rows, real = _gate_rows(GH, H, P)
    return _read_only(edges, packed.columns(rows, real), rows, real)


@functools.lru_cache(maxsize=64)
def backward_layout(GH, H, P):
    """edges, and the columns that pack each part's columns of W_hh: computed once per shape, read-only."""
    edges, unit, real = _units(H, P)
    return _read_only(edges, packed.columns(unit, real))


def weights_size(W_hh, P, I=0):
    """Values that hold W_hh packed either way, forward (below I rows of W_ih, where the step's
    product takes the input too) or backward, in P parts."""
    return _weights_size(*W_hh.shape, P, I)


@functools.lru_cache(maxsize=64)
def _weights_size(GH, H, P, I):
    return max(math.prod(packed.packed_shape(P, I + H, forward_layout(GH, H, P)[1].shape[1])),
               math.prod(packed.packed_shape(P, GH, backward_layout(GH, H, P)[1].shape[1])))


ALONE_BYTES = 1 << 20   # packed weights of at most this, the threads work alone (at 1 MB, RNN H=512, the two ran even)


def packing_parts(P, B, W_hh, I=0):
    """The parts to pack W_hh (below W_ih's I rows) in, for a kernel on P threads: P, where the
    threads split the hidden units and meet twice a step; or 1, where each works alone on its own
    block of batch rows, its step's product against all of W, and meets no other. Alone pays where
    each thread has rnnkit.gemm.MIN_ROWS rows or more and W is small, since every core then reads
    all of W at every step."""
    if P > 1 and B >= P * packed.MIN_ROWS and weights_size(W_hh, 1, I) * W_hh.itemsize <= ALONE_BYTES:
        return 1
    return P


def forward_weights(W_hh, b_hh, P, buffer, W_ih=None, b_ih=None, layout=forward_layout):
    """edges, Wk and bp: each part's gate rows of W_hh, its m units per gate side by side (zero
    rows where a part has fewer), transposed and packed for rnnkit.gemm into Wk (P, NP, H, V) in
    buffer, for hp = h_prev @ W_hh[rows].T; and the same rows of b_hh in bp (P, G*m).
    With W_ih (GH, I), the step's product takes the input too: Wk (P, NP, I + H, V) packs the
    same rows of [W_ih, W_hh].T, for hp = [x, h_prev] @ [W_ih, W_hh][rows].T, and bp adds b_ih.
    layout(GH, H, P) gives edges, the columns to pack, the rows and which are real: forward_layout's
    order, or another (rnnkit.cell_tile's)."""
    GH, H = W_hh.shape
    I = 0 if W_ih is None else W_ih.shape[1]
    edges, cols, rows, real = layout(GH, H, P)
    shape = packed.packed_shape(P, I + H, cols.shape[1])
    Wk = packed.packed_in(buffer, shape)
    if I:
        packed.pack[P](W_ih.T, cols, Wk[:, :, :I])
        if b_ih is not None:
            b_hh = b_hh + b_ih
    packed.pack[P](W_hh.T, cols, Wk[:, :, I:])
    return edges, Wk, np.where(real, b_hh[rows], 0)


@functools.lru_cache(maxsize=64)
def gru_input_layout(H, P, I):
    """For gru_input_weights, computed once per shape: edges; the columns that pack each part's r
    and z rows, and its n rows; where Wk, Wn and Wh start in the buffer and their shapes, [r, z]
    over I + H rows, n over I and over H; and bp's rows of [b_ih + b_hh, b_hh, b_ih] (P, 4m)
    with which are real."""
    edges, _, rows, real = forward_layout(3 * H, H, P)
    m = rows.shape[1] // 3
    rz, n = np.s_[:, :2 * m], np.s_[:, 2 * m:]
    rz_cols, n_cols = packed.columns(rows[rz], real[rz]), packed.columns(rows[n], real[n])
    shapes = (packed.packed_shape(P, I + H, rz_cols.shape[1]), packed.packed_shape(P, I, n_cols.shape[1]),
              packed.packed_shape(P, H, n_cols.shape[1]))
    starts = np.cumsum([0] + [math.prod(shape) for shape in shapes]).tolist()
    bias_rows = np.concatenate([rows[rz], 3 * H + rows[n], 6 * H + rows[n]], axis=1)
    bias_real = np.concatenate([real[rz], real[n], real[n]], axis=1)
    return _read_only(edges, rz_cols, n_cols, bias_rows, bias_real) + (starts, shapes)


def gru_input_size(H, P, I):
    """Values that hold the GRU's weights packed by gru_input_weights."""
    return gru_input_layout(H, P, I)[-2][-1]


GRU_INPUT_WORK = 1 << 19    # multiply-adds of a step's products per part, at least, for gru_input_weights
GRU_INPUT_EXCESS = 1.05     # and at most this many times those of the projection and the recurrence


def gru_input_pays(B, I, H, P):
    """Whether the GRU's step product with its input (gru_input_weights) pays, by A/B timings of
    inference on this project's machine: where each part's share of a step's products is
    GRU_INPUT_WORK or more (below it, the three products per step and their packing cost more
    than they save: (T, B, I, H) = (100, 4, 192, 192) and (200, 4, 64, 128) ran slower), and they
    make at most GRU_INPUT_EXCESS times the multiply-adds of the projection of all steps and the
    recurrent product (forward_weights), padding included: a packed matrix holds one value per
    multiply-add of a batch row. Where a part's units are not whole panels, the three groups pad
    more than one (H = 200 on two parts: 14% more, and slower; H = 650: 4%, still faster)."""
    size = gru_input_size(H, P, I)
    apart = math.prod(packed.packed_shape(P, H, forward_layout(3 * H, H, P)[1].shape[1])) + 3 * H * I
    return B * size >= P * GRU_INPUT_WORK and size <= GRU_INPUT_EXCESS * apart


def gru_input_weights(W_ih, W_hh, b_ih, b_hh, P, buffer):
    """The GRU's step product with its input, for inference: edges; Wk (P, NP, I + H, V), each
    part's r and z rows of [W_ih, W_hh].T packed as forward_weights packs the LSTM's; Wn and Wh,
    its n rows of W_ih.T (I rows) and of W_hh.T (H rows) apart, since n = tanh(W_in x + b_in +
    r (W_hn h_prev + b_hn)) needs the two terms apart; and bp (P, 4m): [b_ir + b_hr, b_iz + b_hz,
    b_hn, b_in] of those rows (zero where a part has fewer units). b_hh may not be None."""
    I = W_ih.shape[1]
    edges, rz_cols, n_cols, bias_rows, bias_real, starts, shapes = gru_input_layout(W_hh.shape[1], P, I)
    Wk, Wn, Wh = (packed.packed_in(buffer, shape, start) for start, shape in zip(starts, shapes))
    packed.pack[P](W_ih.T, rz_cols, Wk[:, :, :I])
    packed.pack[P](W_hh.T, rz_cols, Wk[:, :, I:])
    packed.pack[P](W_ih.T, n_cols, Wn)
    packed.pack[P](W_hh.T, n_cols, Wh)
    b_ih = np.zeros_like(b_hh) if b_ih is None else b_ih
    return edges, Wk, Wn, Wh, np.where(bias_real, np.concatenate((b_ih + b_hh, b_hh, b_ih))[bias_rows], 0)


def backward_weights(W_hh, P, buffer):
    """edges and Wk: each part's columns of W_hh (zero where it has fewer than m), packed for
    rnnkit.gemm into Wk (P, NP, G*H, V) in buffer, for dh_prev[:, j0:j1] = dhp @ W_hh[:, j0:j1]."""
    GH, H = W_hh.shape
    edges, cols = backward_layout(GH, H, P)
    shape = packed.packed_shape(P, GH, cols.shape[1])
    Wk = packed.packed_in(buffer, shape)
    packed.pack[P](W_hh, cols, Wk)
    return edges, Wk


if ENABLED:
    others_busy()                                      # the first look: later ones measure from here

def _fallback(*args, **kwargs):
    raise RuntimeError("rnnkit.kernels: Numba is not available (or RNNKIT_NUMBA=0)")


if ENABLED:
    def gemm(X, A, Wk, C):
        """C = [X, A] @ W with W packed: rnnkit.gemm, compiled when a kernel that calls it first compiles."""

    @overload(gemm, inline="always")
    def _gemm(X, A, Wk, C):
        product = packed.compiled(numba.np.numpy_support.as_dtype(C.dtype))
        return lambda X, A, Wk, C: product(X, A, Wk, C)

    jit = numba.njit(**OPTIONS)
    inline = numba.njit(inline="always", **OPTIONS)

    # float32's tanh, Eigen's rational approximation: x P(x^2) / Q(x^2) on [-TANH_LIM, TANH_LIM]
    TANH_LIM = np.float32(7.90531110763549805)      # tanh(TANH_LIM) rounds to 1 in float32
    TANH_P = tuple(np.float32(a) for a in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                                           5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                                           4.89352455891786e-03))
    TANH_Q = tuple(np.float32(a) for a in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                                           4.89352518554385e-03))

    def tanh(x):
        return np.tanh(x)

    @overload(tanh, inline="always")
    def _tanh(x):
        if x == numba.types.float32:
            def tanh32(x):
                x = min(max(x, -TANH_LIM), TANH_LIM)
                x2 = x * x
                p = TANH_P[0]
                p = p * x2 + TANH_P[1]
                p = p * x2 + TANH_P[2]
                p = p * x2 + TANH_P[3]
                p = p * x2 + TANH_P[4]
                p = p * x2 + TANH_P[5]
                p = p * x2 + TANH_P[6]
                q = TANH_Q[0]
                q = q * x2 + TANH_Q[1]
                q = q * x2 + TANH_Q[2]
                q = q * x2 + TANH_Q[3]
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

    @inline
    def dot_rows(a, W, out):
        """out = a @ W for a (n, K); one row is a matrix-vector product (no GEMM set-up)."""
        if a.shape[0] == 1:
            np.dot(a[0], W, out[0])
        else:
            np.dot(a, W, out)
else:
    jit = inline = None


def _kernel(f):
    return jit(f) if ENABLED else _fallback


def _twins(f):
    return Twins(f, _fallback)


def _inline(f):
    return inline(f) if ENABLED else f


# Each kernel walks the steps in order, and each step in two phases, both spread over the P parts,
# one thread each. First the product: each part p makes its units' [j0, j1) share (forward: its gate
# columns of h_prev @ W_hh.T; backward: its columns of dhp @ W_hh). Then the gate arithmetic, by
# batch rows: each part takes a block of rows, all units. (Split by units, the parts wrote
# interleaved pieces of every row, and the two cores fought over those cache lines.) Every gate
# loop runs over contiguous views with no branch inside, so LLVM vectorizes it (one fused loop with
# all the gates did 3.6x worse). A padded row (t >= lengths[b]) skips the cell: its saved values
# are zero, its output is zero and its state, or its gradient, passes through unchanged.
#
# The threads start once per sequence (one prange) and meet after each phase at a counter in `sync`
# (rnnkit.atomics), not at an OpenMP fork and join twice a step. Each phase's tasks are claimed: a
# thread does its own part's task, then waits for the phase to finish. While a thread has not
# started (late, or never, where the prange's iterations run one after another on fewer threads),
# the others do its tasks after STEAL_AFTER spins, so it stalls nothing; a thread that has started
# is waited for. Every kernel walks its tasks the same way: `first` gives a thread its first
# (block, phase, task), `after` the next one, until the task is -1.
#
# Where W is packed whole, not in P parts (packing_parts), each thread works alone: its task in every
# phase is its own block of rows (rows(p, P, B)), the product's as well as the gates', so it needs
# no other thread's results and never waits. It claims its block before its first step, and, done,
# claims any block no thread has claimed (unclaimed_block), so a late thread's rows wait for no one.
#
# Forward reads h_prev from one of two buffers and writes h into the other. Backward alternates
# the gates of step s with the product into dh_prev of that step, which needs all of its dhp.

@_inline
def units(edges, p):
    return edges[p], edges[p + 1]


@_inline
def rows(p, P, B):
    """Part p's block of the B batch rows in the gate phase."""
    return B * p // P, B * (p + 1) // P


@_inline
def part_width(edges):
    """m: the units of the largest part, the width of each gate block in a part's product."""
    m = edges[1] - edges[0]
    for p in range(1, edges.shape[0] - 1):
        m = max(m, edges[p + 1] - edges[p])
    return m


@_inline
def keep_state(t, b, keep, h_prev, c, h_prevs, c_prevs, has_c):
    if keep:
        h_prevs[t, b] = h_prev[b]
        if has_c:
            c_prevs[t, b] = c[b]


@_inline
def gate_blocks(a, m, G):
    """The G blocks of m in a part's product or bias row a, as views: a loop indexes each from 0, which
    LLVM vectorizes (an offset index such as a[m + q] may be negative to it, and stays scalar)."""
    if G == 3:
        return a[:m], a[m:2 * m], a[2 * m:3 * m]
    return a[:m], a[m:2 * m], a[2 * m:3 * m], a[3 * m:4 * m]


@_inline
def forward_scratch(Wk, h):
    """Each part's product (P, B, NP * V), the two state buffers (2, B, H), the first holding h0,
    and a row of m zeros: the gates' recurrent term where the product holds the input's too."""
    hps = np.empty((Wk.shape[0], h.shape[0], Wk.shape[1] * Wk.shape[3]), h.dtype)
    hs = np.empty((2,) + h.shape, h.dtype)
    hs[0] = h
    return hps, hs, np.zeros(hps.shape[2], h.dtype)


@_inline
def pass_state(b, a, saved_, o_, h_prev, h_next):
    """A padded row b in forward: its gates a and its other saved values saved_ are zero, its output
    o_ is zero, and its state passes through unchanged."""
    zero = a.dtype.type(0)
    a[:] = zero
    saved_[:] = zero
    o_[:] = zero
    h_next[b] = h_prev[b]


@_inline
def product_part(p, P, X, A, Wk, C):
    """Thread p's share of a step's product [X, A] @ W (X may have no columns), of P threads, and
    which part of C holds it and which rows: where the threads split the units (W packed in P
    parts), all rows times part p's columns, into C[p]; where each works alone (W packed whole),
    its block of rows times all columns, into C[0]."""
    if Wk.shape[0] < P:
        b0, b1 = rows(p, P, A.shape[0])
        gemm(X[b0:b1], A[b0:b1], Wk[0], C[0, b0:b1])
        return 0, b0, b1
    gemm(X, A, Wk[p], C[p])
    return p, 0, A.shape[0]


@_inline
def add_row(sums, row):
    """sums += row: a backward row's gradients into its task's column sums while they are in cache,
    for the bias gradients (loop.fused_backward)."""
    for j in range(row.shape[0]):
        sums[j] += row[j]


@_inline
def into_h_prev(p, P, edges, t, lengths, dhp_t, Wk, dhs, dh, direct, has_direct):
    """Thread p's share of dh = dhp_t @ W_hh (+ the direct path), as product_part splits it;
    padded rows keep their dh."""
    q, b0, b1 = product_part(p, P, dhp_t[:, :0], dhp_t, Wk, dhs)
    j0, j1 = units(edges, q)
    n = j1 - j0
    for b in range(b0, b1):
        dh_, dhs_ = dh[b, j0:j1], dhs[q, b, :n]
        if has_direct:
            direct_ = direct[b, j0:j1]
            for j in range(n):
                dh_[j] = dhs_[j] + direct_[j]
        elif t < lengths[b]:
            dh_[:] = dhs_


@_inline
def threads(Wk, sync):
    """P, the threads of a kernel (one per task of each of sync's phases), and whether each works
    alone, on its own block of batch rows through whole steps: W packed whole, not in P parts."""
    P = sync.shape[1] - 1
    return P, Wk.shape[0] < P


STEAL_AFTER = 2000      # spins (about 50 us) waiting on a thread that has not started, before doing its task


def phases(T, P, per_step=2):
    """The meeting points of a sequence of T steps on P parts, per_step phases a step: per phase, a
    claim flag per task and a count of those done; in the last row, a count of the threads that
    have started."""
    return np.zeros((per_step * T + 1, P + 1), np.int64)


@_inline
def claim(sync, k, q):
    row = sync[k]
    return atomics.load(row, q) == 0 and atomics.fetch_add(row, q, 1) == 0


@_inline
def wait_or_steal(sync, k):
    """-1 once every task of phase k is done. Before that, while some thread has not started after
    STEAL_AFTER spins, a task of phase k nobody has claimed, claimed now by this thread."""
    row, started = sync[k], sync[sync.shape[0] - 1]
    P = row.shape[0] - 1
    spins = 0
    while atomics.load(row, P) < P:
        atomics.pause()
        if atomics.load(started, 0) < P:
            spins += 1
            if spins >= STEAL_AFTER:
                for q in range(P):
                    if claim(sync, k, q):
                        return q
    return -1


@_inline
def own_or_left(sync, k, q):
    """Task q of phase k, unless a thread has taken it; then one left unclaimed, or -1 once the phase is done."""
    return q if claim(sync, k, q) else wait_or_steal(sync, k)


@_inline
def unclaimed_block(sync):
    """Where threads work alone, a block of rows no thread has started (its thread late, or never
    run, where the prange's iterations run one after another), claimed now in sync's first row; else -1."""
    for q in range(sync.shape[1] - 1):
        if claim(sync, 0, q):
            return np.int64(q)
    return np.int64(-1)


@_inline
def first(sync, p, alone):
    """Thread p's first (block, phase, task); the task is -1 when it has nothing to do. Where threads
    work alone, its own block of rows, claimed, unless a thread that finished early has taken it; a
    thread that works alone needs no other: its task in every phase is its block. Where they split
    the units, its own part's task in the first phase that still has one for it, counting the
    thread as started."""
    p = np.int64(p)
    if alone:
        b = p if claim(sync, 0, p) else unclaimed_block(sync)
        return b, 0, (b if sync.shape[0] > 1 else np.int64(-1))
    atomics.fetch_add(sync[sync.shape[0] - 1], 0, 1)                  # started
    return own_from(sync, p, 0)


@_inline
def after(sync, b, k, alone):
    """The (block, phase, task) after a task of phase k in block b; the task is -1 when the thread
    is done. Where threads split the units, count the task done, then take one left unclaimed in
    phase k, or, once it is done, the thread's own in a later phase."""
    if alone:
        if k + 1 < sync.shape[0] - 1:
            return b, k + 1, b
        b = unclaimed_block(sync)
        return b, 0, b
    row = sync[k]
    atomics.fetch_add(row, row.shape[0] - 1, 1)
    q = wait_or_steal(sync, k)
    return (b, k, q) if q >= 0 else own_from(sync, b, k + 1)


@_inline
def own_from(sync, p, k):
    """(p, phase, task): from phase k on, part p's own task in the first phase that has one left for
    it (where p started late, the others may have done its tasks of the phases before), or -1."""
    while k < sync.shape[0] - 1:
        q = own_or_left(sync, k, p)
        if q >= 0:
            return p, k, q
        k += 1
    return p, k, np.int64(-1)


# --- RNN: h = f(xp + h_prev @ W_hh.T + b_hh), f = tanh (relu=False) or relu ----------------------

@_inline
def rnn_activate(a_, u, v, bias, relu):
    """a_ = f(u + v + bias), called apart for each case, with u = a_ itself where the input was
    projected apart. Through one variable that could be a_ or another array, LLVM's run-time check
    that a_ does not overlap what the loop reads failed (a_ against itself) and sent the loop to its
    scalar version at every step (bench/SPEED.md, session 38)."""
    zero = a_.dtype.type(0)
    if relu:
        for k in range(a_.shape[0]):
            a_[k] = max(u[k] + v[k] + bias[k], zero)
    else:
        for k in range(a_.shape[0]):
            a_[k] = tanh(u[k] + v[k] + bias[k])


@_inline
def rnn_forward_rows(b0, b1, t, xp, bp, edges, h_prev, h_next, lengths, relu, keep, out, h_prevs, hps, zeros, fused):
    P = hps.shape[0]
    for b in range(b0, b1):
        keep_state(t, b, keep, h_prev, h_prev, h_prevs, h_prevs, False)
        a, o_ = xp[t if keep or not fused else 0, b], out[t, b]
        if t >= lengths[b]:
            pass_state(b, a, o_, o_, h_prev, h_next)
            continue
        for q in range(P):
            j0, j1 = units(edges, q)
            a_ = a[j0:j1]
            if fused:                                                 # hps holds the input's term too
                rnn_activate(a_, hps[q, b], zeros, bp[q], relu)
            else:
                rnn_activate(a_, a_, hps[q, b], bp[q], relu)
        o_[:] = a
        h_next[b] = a


@_inline
def rnn_forward_task(k, q, P, T, reverse, xp, x, Wk, bp, edges, hs, lengths, relu, keep, out, h_prevs, hps, zeros):
    s, t = k // 2, order(k // 2, T, reverse)
    if k % 2 == 0:
        product_part(q, P, x[t], hs[s % 2], Wk, hps)
    else:
        b0, b1 = rows(q, P, hs.shape[1])
        rnn_forward_rows(b0, b1, t, xp, bp, edges, hs[s % 2], hs[(s + 1) % 2], lengths, relu, keep, out, h_prevs, hps,
                         zeros, x.shape[2] > 0)


@_twins
def rnn_forward(xp, x, Wk, bp, edges, h, lengths, reverse, relu, keep, out, h_prevs, sync):
    """xp (T, B, H) becomes the saved h of each step; h (B, H) is h0 in, h_n out. x (T, B, I): the
    input, where Wk packs W_ih too (forward_weights) and xp is written, not read (one step of
    scratch when keep is False); else (T, B, 0)."""
    T = out.shape[0]
    hps, hs, zeros = forward_scratch(Wk, h)
    P, alone = threads(Wk, sync)
    for p in prange(P):
        b, k, q = first(sync, p, alone)
        while q >= 0:
            rnn_forward_task(k, q, P, T, reverse, xp, x, Wk, bp, edges, hs, lengths, relu, keep, out, h_prevs, hps,
                             zeros)
            b, k, q = after(sync, b, k, alone)
    h[:] = hs[T % 2]


@_inline
def rnn_backward_rows(b0, b1, t, saved, dout, dh, lengths, relu, sums):
    one = saved.dtype.type(1)
    zero = one - one
    for b in range(b0, b1):
        h_ = saved[t, b]
        if t >= lengths[b]:                                       # padding carries dh past the cell
            h_[:] = zero
            continue
        do_, dh_ = dout[t, b], dh[b]
        if relu:
            for q in range(h_.shape[0]):
                h_[q] = do_[q] + dh_[q] if h_[q] > zero else zero
        else:
            for q in range(h_.shape[0]):
                h_[q] = (do_[q] + dh_[q]) * (one - h_[q] * h_[q])    # through tanh
        add_row(sums, h_)


@_inline
def rnn_backward_task(k, q, P, T, reverse, saved, Wk, edges, dout, dh, lengths, relu, dhs, sums):
    if k % 2 == 1:                                                   # dh_prev of the step before
        t1 = order(T - (k + 1) // 2, T, reverse)
        into_h_prev(q, P, edges, t1, lengths, saved[t1], Wk, dhs, dh, dh, False)
    else:
        b0, b1 = rows(q, P, dh.shape[0])
        rnn_backward_rows(b0, b1, order(T - 1 - k // 2, T, reverse), saved, dout, dh, lengths, relu, sums[q])


@_twins
def rnn_backward(saved, Wk, edges, dout, dh, lengths, reverse, relu, sums, sync):
    """saved (T, B, H) becomes dxp = dhp; dh (B, H) is dh_n in, dh0 out; sums (P, H) gets dxp's
    column sums, each task's rows apart (loop.fused_backward)."""
    T, B, _ = saved.shape
    dhs = np.empty((Wk.shape[0], B, Wk.shape[1] * Wk.shape[3]), saved.dtype)
    P, alone = threads(Wk, sync)
    for p in prange(P):
        b, k, q = first(sync, p, alone)
        while q >= 0:
            rnn_backward_task(k, q, P, T, reverse, saved, Wk, edges, dout, dh, lengths, relu, dhs, sums)
            b, k, q = after(sync, b, k, alone)


# --- LSTM: saved = [i, f, g, o] over xp, tanh(c) and c_prev beside -------------------------------

@_inline
def lstm_forward_rows(b0, b1, t, xp, bp, edges, h_prev, h_next, c, lengths, keep, out, h_prevs, c_prevs, tcs, hps,
                      zeros, fused):
    P, H, m = hps.shape[0], h_prev.shape[1], part_width(edges)
    for b in range(b0, b1):
        keep_state(t, b, keep, h_prev, c, h_prevs, c_prevs, True)
        a, tcb, o_ = xp[t if keep or not fused else 0, b], tcs[t if keep else 0, b], out[t, b]
        if t >= lengths[b]:
            pass_state(b, a, tcb, o_, h_prev, h_next)                  # i, f, g, o and tanh(c)
            continue
        for q in range(P):
            j0, j1 = units(edges, q)
            n = j1 - j0
            xi, xf, xg, xo = a[j0:j1], a[H + j0:H + j1], a[2 * H + j0:2 * H + j1], a[3 * H + j0:3 * H + j1]
            if fused:                                                # hps holds the input's term too
                ai, af, ag, ao = gate_blocks(hps[q, b], m, 4)
                hi = hf = hg = ho = zeros
            else:
                ai, af, ag, ao = xi, xf, xg, xo
                hi, hf, hg, ho = gate_blocks(hps[q, b], m, 4)
            bi, bf, bg, bo = gate_blocks(bp[q], m, 4)
            c_, tc_, oq = c[b, j0:j1], tcb[j0:j1], o_[j0:j1]
            for k in range(n):
                ai[k] = sigmoid(ai[k] + hi[k] + bi[k])
            for k in range(n):
                af[k] = sigmoid(af[k] + hf[k] + bf[k])
            for k in range(n):
                ag[k] = tanh(ag[k] + hg[k] + bg[k])
            for k in range(n):
                ao[k] = sigmoid(ao[k] + ho[k] + bo[k])
            for k in range(n):
                c_[k] = af[k] * c_[k] + ai[k] * ag[k]                 # c = f c_prev + i g
            for k in range(n):
                tc_[k] = tanh(c_[k])
            for k in range(n):
                oq[k] = ao[k] * tc_[k]                               # h = o tanh(c)
            if fused and keep:                                       # the gates, where backward reads them
                for k in range(n):
                    xi[k], xf[k], xg[k], xo[k] = ai[k], af[k], ag[k], ao[k]
        h_next[b] = o_


@_inline
def lstm_forward_task(k, q, P, T, reverse, xp, x, Wk, bp, edges, hs, c, lengths, keep, out, h_prevs, c_prevs, tcs, hps,
                      zeros):
    s, t = k // 2, order(k // 2, T, reverse)
    if k % 2 == 0:
        product_part(q, P, x[t], hs[s % 2], Wk, hps)
    else:
        b0, b1 = rows(q, P, hs.shape[1])
        lstm_forward_rows(b0, b1, t, xp, bp, edges, hs[s % 2], hs[(s + 1) % 2], c, lengths, keep, out, h_prevs, c_prevs,
                          tcs, hps, zeros, x.shape[2] > 0)


@_twins
def lstm_forward(xp, x, Wk, bp, edges, h, c, lengths, reverse, keep, out, h_prevs, c_prevs, tcs, sync):
    """xp (T, B, 4H) becomes [i, f, g, o]; h, c (B, H) are h0, c0 in and h_n, c_n out.
    tcs holds tanh(c) per step, or has one step (scratch) when keep is False. x (T, B, I): the
    input, where Wk packs W_ih too (forward_weights) and xp is written, not read (one step of
    scratch when keep is False); else (T, B, 0)."""
    T = out.shape[0]
    hps, hs, zeros = forward_scratch(Wk, h)
    P, alone = threads(Wk, sync)
    for p in prange(P):
        b, k, q = first(sync, p, alone)
        while q >= 0:
            lstm_forward_task(k, q, P, T, reverse, xp, x, Wk, bp, edges, hs, c, lengths, keep, out, h_prevs,
                              c_prevs, tcs, hps, zeros)
            b, k, q = after(sync, b, k, alone)
    h[:] = hs[T % 2]


@_inline
def lstm_backward_rows(b0, b1, t, saved, tcs, c_prevs, dout, dh, dc, lengths, sums):
    one = saved.dtype.type(1)
    H = dh.shape[1]
    for b in range(b0, b1):
        a = saved[t, b]
        if t >= lengths[b]:
            a[:] = one - one                                         # i, f, g, o
            continue
        ai, af, ag, ao = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        tc_, cp_, do_, dh_, dc_ = tcs[t, b], c_prevs[t, b], dout[t, b], dh[b], dc[b]
        for q in range(H):
            i, f, g, o = ai[q], af[q], ag[q], ao[q]
            tc = tc_[q]
            dh_t = do_[q] + dh_[q]
            dc_t = dc_[q] + dh_t * o * (one - tc * tc)               # into c, through tanh(c)
            ai[q] = dc_t * g * i * (one - i)                         # di, through sigmoid
            af[q] = dc_t * cp_[q] * f * (one - f)                    # df
            ag[q] = dc_t * i * (one - g * g)                         # dg, through tanh
            ao[q] = dh_t * tc * o * (one - o)                        # do
            dc_[q] = dc_t * f                                        # into c_prev
        add_row(sums, a)


@_inline
def lstm_backward_task(k, q, P, T, reverse, saved, tcs, c_prevs, Wk, edges, dout, dh, dc, lengths, dhs, sums):
    if k % 2 == 1:                                                   # dh_prev of the step before
        t1 = order(T - (k + 1) // 2, T, reverse)
        into_h_prev(q, P, edges, t1, lengths, saved[t1], Wk, dhs, dh, dh, False)
    else:
        b0, b1 = rows(q, P, dh.shape[0])
        lstm_backward_rows(b0, b1, order(T - 1 - k // 2, T, reverse), saved, tcs, c_prevs, dout, dh, dc, lengths,
                           sums[q])


@_twins
def lstm_backward(saved, tcs, c_prevs, Wk, edges, dout, dh, dc, lengths, reverse, sums, sync):
    """saved (T, B, 4H) becomes dxp = dhp; dh, dc (B, H) are dh_n, dc_n in and dh0, dc0 out; sums
    (P, 4H) gets dxp's column sums, each task's rows apart (loop.fused_backward)."""
    T, B, _ = saved.shape
    dhs = np.empty((Wk.shape[0], B, Wk.shape[1] * Wk.shape[3]), saved.dtype)
    P, alone = threads(Wk, sync)
    for p in prange(P):
        b, k, q = first(sync, p, alone)
        while q >= 0:
            lstm_backward_task(k, q, P, T, reverse, saved, tcs, c_prevs, Wk, edges, dout, dh, dc, lengths, dhs,
                               sums)
            b, k, q = after(sync, b, k, alone)


# --- GRU: saved = [r, z, n] over xp, hp_n beside --------------------------------------------------

@_inline
def gru_forward_rows(b0, b1, t, xp, bp, edges, h_prev, h_next, lengths, keep, out, h_prevs, hp_ns, hps, hns, hhs,
                     zeros, fused):
    P, H, m = hps.shape[0], h_prev.shape[1], part_width(edges)
    for b in range(b0, b1):
        keep_state(t, b, keep, h_prev, h_prev, h_prevs, h_prevs, False)
        a, hpnb, o_ = xp[t if keep or not fused else 0, b], hp_ns[t if keep else 0, b], out[t, b]
        if t >= lengths[b]:
            pass_state(b, a, hpnb, o_, h_prev, h_next)                 # r, z, n and hp_n
            continue
        for q in range(P):
            j0, j1 = units(edges, q)
            n = j1 - j0
            if fused:                    # hps: r and z with the input's terms; hns, hhs: n's two terms
                ar, az, _ = gate_blocks(hps[q, b], m, 3)
                hr = hz = zeros
                an, hn, hpn_ = hns[q, b], hhs[q, b], hhs[q, b]
                br, bz, bn, b_in = gate_blocks(bp[q], m, 4)
                for k in range(n):
                    an[k] += b_in[k]                                 # the projection adds it, apart
            else:
                ar, az, an = a[j0:j1], a[H + j0:H + j1], a[2 * H + j0:2 * H + j1]
                hr, hz, hn = gate_blocks(hps[q, b], m, 3)
                br, bz, bn = gate_blocks(bp[q], m, 3)
                hpn_ = hpnb[j0:j1]
            hprev_, oq = h_prev[b, j0:j1], o_[j0:j1]
            for k in range(n):
                ar[k] = sigmoid(ar[k] + hr[k] + br[k])
            for k in range(n):
                az[k] = sigmoid(az[k] + hz[k] + bz[k])
            for k in range(n):
                hpn_[k] = hn[k] + bn[k]
            for k in range(n):
                an[k] = tanh(an[k] + ar[k] * hpn_[k])                # n = tanh(xp_n + r hp_n)
            for k in range(n):
                oq[k] = an[k] + az[k] * (hprev_[k] - an[k])          # h = n + z (h_prev - n)
        h_next[b] = o_


@_inline
def gru_forward_task(k, q, P, T, reverse, xp, x, Wk, Wn, Wh, bp, edges, hs, lengths, keep, out, h_prevs, hp_ns, hps,
                     hns, hhs, zeros):
    s, t = k // 2, order(k // 2, T, reverse)
    if k % 2 == 0:
        X, A = x[t], hs[s % 2]
        product_part(q, P, X, A, Wk, hps)
        if Wn.shape[1] > 0:
            product_part(q, P, X, A[:, :0], Wn, hns)
            product_part(q, P, X[:, :0], A, Wh, hhs)
    else:
        b0, b1 = rows(q, P, hs.shape[1])
        gru_forward_rows(b0, b1, t, xp, bp, edges, hs[s % 2], hs[(s + 1) % 2], lengths, keep, out, h_prevs, hp_ns, hps,
                         hns, hhs, zeros, Wn.shape[1] > 0)


@_twins
def gru_forward(xp, x, Wk, Wn, Wh, bp, edges, h, lengths, reverse, keep, out, h_prevs, hp_ns, sync):
    """xp (T, B, 3H) becomes [r, z, n]; h (B, H) is h0 in, h_n out.
    hp_ns holds W_hn h_prev + b_hn per step, or has one step (scratch) when keep is False.
    Inference (keep False) can take x (T, B, I) instead, with Wk, Wn and Wh from gru_input_weights
    and xp and hp_ns a scratch of one step; else x is (T, B, 0) and Wn, Wh have no panels."""
    T = out.shape[0]
    hps, hs, zeros = forward_scratch(Wk, h)
    hns = np.empty((Wn.shape[0], h.shape[0], Wn.shape[1] * Wn.shape[3]), h.dtype)
    hhs = np.empty_like(hns)
    P, alone = threads(Wk, sync)
    for p in prange(P):
        b, k, q = first(sync, p, alone)
        while q >= 0:
            gru_forward_task(k, q, P, T, reverse, xp, x, Wk, Wn, Wh, bp, edges, hs, lengths, keep, out, h_prevs,
                             hp_ns, hps, hns, hhs, zeros)
            b, k, q = after(sync, b, k, alone)
    h[:] = hs[T % 2]


@_inline
def gru_backward_rows(b0, b1, t, saved, hp_ns, h_prevs, dout, dh, direct, dhp_t, lengths, sums):
    one = saved.dtype.type(1)
    zero = one - one
    H = dh.shape[1]
    for b in range(b0, b1):
        a, d_ = saved[t, b], dhp_t[b]
        hpn_, dd_, dh_ = hp_ns[t, b], direct[b], dh[b]
        if t >= lengths[b]:                                          # padding carries dh
            a[:] = zero
            d_[:] = zero
            hpn_[:] = zero
            dd_[:] = dh_
            continue
        ar, az, an = a[:H], a[H:2 * H], a[2 * H:]
        dr_, dz_, dn_ = d_[:H], d_[H:2 * H], d_[2 * H:]
        hprev_, do_ = h_prevs[t, b], dout[t, b]
        for q in range(H):
            r, z, nn = ar[q], az[q], an[q]
            dh_t = do_[q] + dh_[q]
            dn = dh_t * (one - z) * (one - nn * nn)                  # into n, through tanh
            dr = dn * hpn_[q] * r * (one - r)                        # through sigmoid
            dz = dh_t * (hprev_[q] - nn) * z * (one - z)
            ar[q], az[q], an[q] = dr, dz, dn
            dr_[q], dz_[q], dn_[q] = dr, dz, dn * r                  # into hp_n via r
            hpn_[q] = dn * r
            dd_[q] = dh_t * z                                        # the direct path
        add_row(sums[:3 * H], a)
        add_row(sums[3 * H:], hpn_)


@_inline
def gru_backward_task(k, q, P, T, reverse, saved, hp_ns, h_prevs, Wk, edges, dout, dh, lengths, dhs, dhps, direct,
                      sums):
    if k % 2 == 1:                                                   # dh_prev of the step before
        into_h_prev(q, P, edges, 0, lengths, dhps[(k - 1) // 2 % 2], Wk, dhs, dh, direct, True)
    else:
        b0, b1 = rows(q, P, dh.shape[0])
        gru_backward_rows(b0, b1, order(T - 1 - k // 2, T, reverse), saved, hp_ns, h_prevs, dout, dh, direct,
                          dhps[k // 2 % 2], lengths, sums[q])


@_twins
def gru_backward(saved, hp_ns, h_prevs, Wk, edges, dout, dh, lengths, reverse, sums, sync):
    """saved (T, B, 3H) becomes dxp = [dr, dz, dn] and hp_ns (T, B, H) becomes dn * r, the rest of
    dhp = [dr, dz, dn * r]; dh (B, H) is dh_n in, dh0 out; sums (P, 4H) gets the column sums of
    dxp and of dn * r side by side, each task's rows apart (loop.fused_backward)."""
    T, B, G = saved.shape
    dhs = np.empty((Wk.shape[0], B, Wk.shape[1] * Wk.shape[3]), saved.dtype)
    dhps = np.empty((2, B, G), saved.dtype)                           # dhp of the last two steps
    direct = np.empty((B, dh.shape[1]), saved.dtype)
    P, alone = threads(Wk, sync)
    for p in prange(P):
        b, k, q = first(sync, p, alone)
        while q >= 0:
            gru_backward_task(k, q, P, T, reverse, saved, hp_ns, h_prevs, Wk, edges, dout, dh, lengths, dhs,
                              dhps, direct, sums)
            b, k, q = after(sync, b, k, alone)


# --- a large product against packed weights (the input projection of all steps, dx) ------------

PRODUCT_ROWS = 64       # rows of A per block, about: with a panel of W, they stay in a core's L2


def product_blocks(M, P):
    """How many blocks of rows packed_product cuts M rows into on P threads: about PRODUCT_ROWS rows
    each, and the same number for each thread. A prange hands each thread an equal run of its
    iterations: 11 blocks of 64 for M = 700 left one thread 6 and the other 5."""
    return P * -(-M // (P * PRODUCT_ROWS))


@_twins
def packed_product(A, Wk, bias, C, has_bias, blocks):
    """C = A @ W (+ bias) for A (M, K), W packed for rnnkit.gemm into Wk (NP, K, V) and C (M, N):
    `blocks` blocks of rows (product_blocks) of equal size but for whole tiles, spread over the
    threads, each adding the bias while it is in cache. A block's tiles are paired ones of PAIR_R
    rows where rnnkit.gemm.PAIRED_ROWS (a block has 32 rows or more), else of R rows. Rounded to
    R = 10 rows on Zen 5 (rnnkit.gemm.R_ON), blocks of 60 and 70 rows made paired tiles of 3 rows
    beside those of 4: `python bench/compare.py 81fcfee 6b6a352 --modes LSTM,GRU,RNN --sizes
    35,20,650,650 100,32,256,256 50,16,64,64 --rounds 4 --repeats 5` gave 0.967-0.979 (base/new)
    in training at (100, 32, 256, 256)."""
    M = A.shape[0]
    R = packed.PAIR_R if packed.PAIRED_ROWS else packed.R
    for i in prange(blocks):
        i0 = (i * M // blocks) // R * R
        i1 = M if i == blocks - 1 else ((i + 1) * M // blocks) // R * R
        gemm(A[i0:i1, :0], A[i0:i1], Wk, C[i0:i1])
        if has_bias:
            for r in range(i0, i1):
                c = C[r]
                for j in range(c.shape[0]):
                    c[j] += bias[j]


# --- one LSTM cell step (rnnkit.LSTMCell): both products and the gates in one call ----------------

@_kernel
def lstm_cell_forward(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh, saved, h, c):
    """Fills saved (B, 5H) = [i, f, g, o, tanh(c)] as rnnkit.steps.LSTMStep does, and h, c (B, H)."""
    B, H = h_prev.shape
    G = 4 * H
    xp = np.empty((B, G), x.dtype)
    hp = np.empty((B, G), x.dtype)
    dot_rows(x, W_ih.T, xp)
    dot_rows(h_prev, W_hh.T, hp)
    for b in range(B):
        a, xp_, hp_ = saved[b], xp[b], hp[b]
        for j in range(G):
            a[j] = xp_[j] + b_ih[j] + hp_[j] + b_hh[j]
        ai, af, ag, ao, tc_ = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:G], a[G:]      # views: see gate_blocks
        cp_, c_, h_ = c_prev[b], c[b], h[b]
        for j in range(H):
            ai[j] = sigmoid(ai[j])
        for j in range(H):
            af[j] = sigmoid(af[j])
        for j in range(H):
            ag[j] = tanh(ag[j])
        for j in range(H):
            ao[j] = sigmoid(ao[j])
        for j in range(H):
            c_[j] = af[j] * cp_[j] + ai[j] * ag[j]
        for j in range(H):
            tc_[j] = tanh(c_[j])
        for j in range(H):
            h_[j] = ao[j] * tc_[j]


# --- Embedding's backward: rows added into the rows of a table that ids pick --------------------

@_kernel
def add_rows(table, ids, rows):
    """table[ids[i]] += rows[i] for each i in turn: np.add.at(table, ids, rows), the same sums in
    the same order, without its per-element dispatch."""
    for i in range(ids.shape[0]):
        t, r = table[ids[i]], rows[i]
        for j in range(r.shape[0]):
            t[j] += r[j]
