"""C = A @ W for the recurrent product of every step, with W packed once per sequence.

A time loop multiplies the same weights by a new state at every step: h_prev @ W_hh.T forward,
dhp @ W_hh backward, each a small product (a batch of rows) against a large matrix. A BLAS call
repacks the whole of W at each step, for each product. Here W is packed once, by `pack`, into
column panels of V values, (NP, K, V), zero-padded to NP * V columns, and `gemm` walks them:
for each tile of up to R rows of A and one panel it keeps the R * V sums in registers over K,
reading per k one row of the panel (V contiguous values) and R values of A; the rows split into
as few tiles as hold them, of even sizes. Per value of W read, 8 rows by one panel make as many
multiply-adds as 4 rows by two panels (the tile before), but need 8 broadcasts where that needed
4 and half the bytes of W: on an Intel core with two 512-bit FMA units it ran 1.03-1.47x as
fast at 13 of 14 per-step shapes and 0.92x at the 14th (one core, a throwaway timing).
Generated straight-line code for each tile shape, compiled with LLVM's straight-line (SLP)
vectorizer on and its loop vectorizer off, becomes vector FMAs on those registers (the loop
vectorizer would instead vectorize the sum over k, with gathers, and lose most of the speed). A
batch of one row (a matrix-vector product) takes WIDE panels per tile instead, so that each tile
still keeps 8 registers of sums. `python bench/gemm.py` compares it with NumPy's BLAS.

On a core that runs each 512-bit FMA as two 256-bit halves (AMD's Zen 4, which LLVM names
znver4), a product of PAIRED_ROWS rows or more runs paired tiles instead: PAIR_R = 4 rows by two
panels (rnnkit's tile in sessions 16-22, all on such a core); and there every product takes K
whole, with no chunks and no prefetching (WHOLE_K). Why these run faster there is not known (the
project's machine has no hardware counters). On two cores of an AMD EPYC (L1 32 KB, L2 1 MB a
core), each layer in its own process in turns, with this file's tile shape set from the
environment (a throwaway A/B, four rounds, medians of 9 calls), time 8 x 1 over 4 x 2: LSTM
inference 1.086 at (T, B, I, H) = (100, 64, 512, 512) and 1.050 at (100, 32, 256, 256), training
1.089 at (100, 64, 512, 512); GRU and RNN inference at (100, 64, 512, 512) 1.152 and 1.105; at 20
rows (the 650s) 0.995-1.026; at 16 rows (LSTM (100, 32, 128, 128), each thread alone on its rows)
0.916 in training. So fewer than 32 rows keep 8 x 1. Those, too, ran faster over the whole of K,
with no prefetching. A throwaway copy of the tiles with a loop of its own, one core, W packed
once, a copy of the script on the other core, GFLOP/s in chunks of KC / whole: (B, K, N) = (20,
1300, 1280) 108.6-109.5 / 114.2-114.9, (16, 512, 128) 110.4-112.0 / 111.4-112.9; with prefetching
as well (as built for other CPUs) at (20, 650, 1280), (20, 2600, 320) and (20, 1300, 1280),
104.6-106.7 / 111.9-115.3. The layers, each in its own process in turns, four rounds, time with
chunks and prefetching over without, training and inference: 0.999-1.027 at RNN, LSTM and GRU
(35, 20, 650, 650) and LSTM (100, 32, 128, 128), (50, 16, 64, 64) and (100, 32, 256, 256); in
another four rounds, 1.017-1.046 at LSTM and GRU (35, 20, 650, 650).

AMD's Zen 5 (znver5) runs the same way, but for a product whose rows of A over the whole of K take
more than WHOLE_BYTES (512 KB): those, a weight gradient over all steps (K = T * B), take K in
chunks (with no prefetching). There, where NumPy's BLAS is narrower and the weight gradients go
through rnnkit.gemm (rnnkit.products.NARROW_BLAS), a throwaway A/B on two cores of an AMD EPYC (L1
48 KB, L2 1 MB a core), each variant a copy of rnnkit with its own Numba cache, bench/speed.py's
worker in fresh processes in turns, four rounds, time as on other CPUs over this way, training and
inference: LSTM (T, B, I, H) = (100, 64, 512, 512) 1.102 and 1.178, (100, 32, 256, 256) 1.135 and
1.280, (35, 20, 650, 650) 1.071 and 1.234, (100, 32, 128, 128) 1.114 and 1.149, GRU (100, 64, 512,
512) 1.068 and 1.068; with K whole in every product instead, training: 0.818, 0.880, 1.108, 0.949
and 0.851 (below 1, slower than as on other CPUs). `python bench/compare.py 104126c ac2bf77
--modes LSTM,GRU,RNN --sizes 35,20,650,650 100,32,128,128 100,64,512,512 100,32,256,256
50,16,64,64 --rounds 3 --repeats 5` (base/new, above 1: this way faster; training, inference):
LSTM 1.063 and 1.136 at (35, 20, 650, 650), 1.021 and 1.297 at (100, 64, 512, 512), 1.057 and
1.034 at (100, 32, 256, 256), 0.928 and 0.976 at (100, 32, 128, 128); GRU 0.966-1.117, RNN
0.987-1.198.

On Zen 5 a tile of one panel takes up to 10 rows (R_ON; its 32 registers hold the 20 sums), so
that the 20 rows of a batch at (35, 20, 650, 650) make two tiles of 10, not three of 7, 7 and 6:
per value of W read, more multiply-adds, and one pass over each panel fewer. A throwaway A/B on two
cores of an AMD EPYC (copies of rnnkit, each with its own Numba cache, bench/speed.py's worker in
fresh processes, the two in turns and each first in every other round, medians of 7 calls), time
with 8 rows over 10: LSTM inference 1.031 over ten rounds (0.991-1.065, nine above 1). `python
bench/compare.py 81fcfee b7f0dce --modes LSTM,GRU,RNN --sizes 35,20,650,650 100,32,256,256
100,64,512,512 --rounds 4 --repeats 5` (base/new, training and inference): at (35, 20, 650, 650)
LSTM 1.000 and 1.011, GRU 1.013 and 1.017, RNN 1.062 and 1.056; elsewhere 0.988-1.025. On Zen 4
(sessions 33-35) tiles of 10 rows ran no faster than of 7.

The rows of A may come in two parts, X and A, for [X, A] @ W with no copy of the two side by
side: the LSTM's [x_t, h_prev] @ [W_ih, W_hh].T, x_t read straight from the input. X may have no
columns. C may have the padded width, NP * V, or any narrower: it gets the first columns of the
product.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from .jit import ENABLED, FAST, Twins, WithoutSSA, numba, prange
from .prefetch import prefetch, prefetch_l1
from .transpose import transpose8

V = 32          # columns per panel: two AVX-512 (four AVX2) registers of float32
R = 8           # rows per tile with AVX-512: R * V / 16 = 16 accumulating registers of its 32 (4 with AVX2)
R_ON = {"znver5": 10}   # by LLVM's name of the CPU, where Numba compiles for AVX-512: its own R (see above)
AVX512 = False  # whether Numba compiles for AVX-512, so that the tiles take 512-bit vectors
WIDE = 4        # panels per tile of one row: WIDE * V / 16 = 8 accumulating registers
MIN_ROWS = 4    # the fewest rows of a tile that runs near full speed (where fewer, each row of W serves too few)
KC = 256        # rows of W per chunk of K: a chunk of a panel, KC * V values, fills 32 KB
LINE = 64       # bytes per cache line
PREFETCH_BYTES = 3 << 19    # packed W past this (1.5 MB), multiplied by at most PREFETCH_ROWS rows,
PREFETCH_ROWS = 32          # is prefetched a chunk ahead: see gemm
AHEAD = 16      # rows of a panel ahead that a tile of one panel that does not prefetch for L2 prefetches into L1
                # at each k (0: none; see _tile_source; 8 and 16 ran alike, 0.976-1.033)
PAIR_R = 4      # rows per tile of two panels: PAIR_R * 2 * V / 16 = 16 accumulating registers
PAIRED_FROM = {"znver4": 32, "znver5": 32}    # by LLVM's name of the CPU: products of this many rows or more
PAIRED_ROWS = 0                 # run paired tiles; this CPU's, where Numba compiles for AVX-512 (0: never)
WHOLE_K = False                 # whether products take K whole, with no prefetching (where PAIRED_ROWS)
WHOLE_BYTES = 1 << 19           # where WHOLE_K, the most bytes of A's rows over the whole of K that take it whole


def panels(N):
    """Panels of V columns that hold N columns."""
    return -(-N // V)


def pack(W, cols, out):
    """out[p, jp, k, v] = W[k, cols[p, jp * V + v]], and 0 where that column is -1: each row p of
    cols picks the columns of W (K, N) that become one packed matrix, out[p] (NP, K, V). pack[P]:
    on P threads, a panel each."""
    NP = out.shape[1]
    for i in prange(out.shape[0] * NP):
        p, jp = i // NP, i % NP
        pack_panel(W, cols[p, jp * V:(jp + 1) * V], out[p, jp])


def pack_panel(W, picked, panel):
    """A panel, the V picked columns of W (K, N): where W's rows are contiguous and the picked
    columns too, a copy of V values side by side per row; where W's columns are contiguous (W_hh.T,
    a transposed view, whose V values of a panel row lie down V rows of W_hh), transpose_columns;
    else V values picked from each row of W."""
    if W.strides[0] > W.strides[1] and picked[0] >= 0 and picked[V - 1] == picked[0] + V - 1:
        j0 = picked[0]
        for k in range(panel.shape[0]):                                # element by element: a slice copy
            row, out = W[k], panel[k]                                  # per row cost more than its V values
            for v in range(V):
                out[v] = row[j0 + v]
    elif W.strides[0] == W.itemsize:
        transpose_columns(W, picked, panel)
    else:
        pick_columns(W, picked, panel, 0, V)


def consecutive(picked):
    """Bit g set where picked[8g:8g + 8] are 8 consecutive columns, for each group g of the panel."""
    groups = 0
    for g in range(V // 8):
        run = picked[8 * g] >= 0
        for r in range(1, 8):
            run = run and picked[8 * g + r] == picked[8 * g] + r
        if run:
            groups |= 1 << g
    return groups


def transpose_columns(W, picked, panel):
    """pack_panel where W's columns are contiguous: where 8 picked columns are consecutive, the
    panel's rows 8 at a time, each block of 8 x 8 transposed in registers (rnnkit.transpose); the
    other columns picked value by value, a group of 8 columns at a time (W_hh's rows a multiple of
    256 bytes apart share a few of L1's sets, and 32 of them evict each other). Picked value by
    value everywhere, one panel row at a time, the packing of W_hh.T on one thread took 1.8-4.0x as
    long (`python bench/gemm.py`, pack ms at its forward shapes, K <= N)."""
    Wt, K, groups = W.T, panel.shape[0], consecutive(picked)
    K8 = K - K % 8
    for v0 in range(0, V, 8):
        if not groups >> (v0 // 8) & 1:
            pick_columns(W, picked, panel, v0, v0 + 8)
    for k0 in range(0, K8, 8):
        for v0 in range(0, V, 8):
            if groups >> (v0 // 8) & 1:
                transpose8(Wt, picked[v0], k0, panel, v0)
    for k in range(K8, K):
        for v0 in range(0, V, 8):
            if groups >> (v0 // 8) & 1:
                for r in range(8):
                    panel[k, v0 + r] = Wt[picked[v0] + r, k]


def pick_columns(W, picked, panel, v0, v1):
    """panel[k, v] = W[k, picked[v]], 0 where picked[v] is -1, for v in [v0, v1), row by row."""
    zero = panel.dtype.type(0)
    for k in range(panel.shape[0]):
        out = panel[k]
        for v in range(v0, v1):
            j = picked[v]
            out[v] = W[k, j] if j >= 0 else zero


def columns(index, real):
    """Column indices for pack, (P, panels * V): index (P, n) where real, -1 elsewhere and in the padding."""
    P, n = index.shape
    cols = np.full((P, panels(n) * V), -1, np.int64)
    cols[:, :n] = np.where(real, index, -1)
    return cols


def packed_shape(P, K, N):
    """The shape pack fills for P matrices of K rows and N columns each."""
    return (P, panels(N), K, V)


def packed_in(buffer, shape, start=0):
    """buffer's values from start on, as many as shape holds, viewed in that shape (for pack to fill)."""
    return buffer[start:start + math.prod(shape)].reshape(shape)


def _tile_source(name, rows, panel_count=1, prefetching=False):
    """Python source of name(X, A, Wk, C, i0, jp, k0, k1, add): C[i0:i0+rows, panels jp to
    jp+panel_count-1] = (or, where add, +=) [X, A][i0:i0+rows, k0:k1] @ rows k0 to k1 - 1 of those
    panels, X's columns against the panels' first rows and A's against the rest. Prefetching, it
    takes (flat, pf0, step) too and, at its k-th multiply-add of a row, prefetches line pf0 + ((k *
    step) >> 16) of flat (Wk's values, lines of LINE bytes): step is lines per k in 16-bit fixed
    point, so the lines come evenly over the loop, with no branch and no division in it. The k loops index
    views that start at their first row, from 0: indexed from k0 (which LLVM cannot know is not
    negative) each read also computed Python's wrap-around of a negative index and a multiply by the
    stride, about 11 instructions in a loop of 41 for 16 FMAs (one core, `python bench/gemm.py
    --repeats 5`: rnnkit.gemm / NumPy BLAS, median over the shapes, 1.50 before, 1.65-1.71 in three
    runs after).

    A tile of one panel that does not prefetch for L2 prefetches into L1, at each k, the row of its
    panel AHEAD rows on (a float32 row's two cache lines): the first tile of rows to meet a chunk of
    a panel reads it from L2, and so does the next where the chunk and the rows of A overflow L1
    (48 KB on the project's Xeon: 256 rows of a panel, 32 KB, beside 16 rows of A). One core, the
    two builds in one process in turns (a throwaway timing, 40-60 rounds, medians of the rounds'
    time ratios without/with), per (B, K of X, K, N): in a phase when the machine ran slow (about
    80 GFLOP/s), 1.195 at (16, 128, 256, 512) (the LSTM's step at (100, 32, 128, 128), each thread
    alone on its rows), 1.122 at (32, 256, 512, 512), 1.071 at (64, 512, 1024, 1024), 1.193 at (32,
    0, 512, 256), 1.102 at (16, 64, 128, 256); but 0.919 at (32, 0, 128, 512) and 0.971-0.987 at
    (16, 0, 256, 256), (32, 0, 256, 384) and (20, 0, 650, 650), where most tiles find the chunk in
    L1 and the prefetches only take load slots. In a fast phase (about 140 GFLOP/s): 1.022-1.075 at
    five of these shapes and 0.995 at (20, 0, 650, 650). Not in the tile of one row by WIDE panels
    (0.720 at (1, 64, 192, 512): eight more loads a k beside its eight FMAs), nor in the tiles that
    prefetch for L2 (0.903-0.968 at (20, 0, 650, 1300), (20, 0, 650, 2600) and (20, 0, 2600, 650))."""
    acc, sums = sums_source(rows, panel_count, prefetching)
    lines = [f"def {name}(X, A, Wk, C, i0, jp, k0, k1, add{', flat, pf0, step' if prefetching else ''}):"] + sums
    for op in ("+=", "="):
        lines.append("    if add:" if op == "+=" else "    else:")
        for r in range(rows):
            for p in range(panel_count):
                lines.append(f"        c = C[i0 + {r}, (jp + {p}) * {V}:(jp + {p + 1}) * {V}]")
                lines += [f"        c[{v}] {op} {acc[r][p][v]}" for v in range(V)]
    return "\n".join(lines)


def sums_source(rows, panel_count=1, prefetching=False):
    """The names of a tile's sums, acc[r][p][v] for row i0 + r and column v of panel jp + p, and
    the lines of Python source that compute them (see _tile_source), from X, A, Wk, i0, jp, k0 and
    k1 (and, prefetching, flat, pf0 and step)."""
    acc = [[[f"c{r}_{p}_{v}" for v in range(V)] for p in range(panel_count)] for r in range(rows)]
    lines = ["    zero = A.dtype.type(0)",
             "    K0 = X.shape[1]"]
    if prefetching:
        lines += ["    line = LINE // Wk.itemsize", "    done = 0"]
    lines += [f"    {' = '.join(acc[r][p])} = zero" for r in range(rows) for p in range(panel_count)]
    for source, lo, hi, start in (("X", "min(k0, K0)", "min(k1, K0)", "lo"),
                                  ("A", "max(k0, K0) - K0", "k1 - K0", "K0 + lo")):
        lines += [f"    lo = {lo}", f"    n = max({hi} - lo, 0)"]
        lines += [f"    w{p}s = Wk[jp + {p}, {start}:{start} + n]" for p in range(panel_count)]
        lines += [f"    a{r}s = {source}[i0 + {r}, lo:lo + n]" for r in range(rows)]
        lines += ["    for k in range(n):"]
        if prefetching:
            lines += ["        prefetch(flat, (pf0 + (((done + k) * step) >> 16)) * line)"]
        elif AHEAD and panel_count == 1:
            lines += [f"        prefetch_l1(w0s, (k + {AHEAD}, {h}))" for h in range(0, V, LINE // 4)]
        lines += [f"        w{p} = w{p}s[k]" for p in range(panel_count)]
        lines += [f"        a{r} = a{r}s[k]" for r in range(rows)]
        lines += [f"        {acc[r][p][v]} += a{r} * w{p}[{v}]"
                  for r in range(rows) for p in range(panel_count) for v in range(V)]
        lines += ["    done += n"] if prefetching else []
    return acc, lines


@contextlib.contextmanager
def straight_line_vectorizer():
    """LLVM's SLP vectorizer on and its loop vectorizer off, for what compiles inside."""
    config = numba.core.config
    saved = config.SLP_VECTORIZE, config.LOOP_VECTORIZE
    config.SLP_VECTORIZE, config.LOOP_VECTORIZE = 1, 0
    try:
        yield
    finally:
        config.SLP_VECTORIZE, config.LOOP_VECTORIZE = saved


def _target_features():
    """The CPU features Numba compiles for: NUMBA_CPU_FEATURES where set, else the host's."""
    config = numba.core.config
    return config.CPU_FEATURES if config.CPU_FEATURES is not None else numba.core.codegen.get_host_cpu_features()


def target_name():
    """LLVM's name of the CPU Numba compiles for: NUMBA_CPU_NAME where set, else the host's."""
    from llvmlite import binding                       # Numba's compiler: present wherever Numba is
    config = numba.core.config
    return config.CPU_NAME if config.CPU_NAME is not None else binding.get_host_cpu_name()


def tile_scope():
    """The names a tile's source refers to."""
    return {"prefetch": prefetch, "prefetch_l1": prefetch_l1, "LINE": LINE}


def build_tile(f):
    """A tile's source compiled as gemm runs it: without Numba's reference counts (see whole_panels)
    and without its SSA pass (rnnkit.jit.WithoutSSA); compiled on its first call, or for a
    signature, under straight_line_vectorizer."""
    return numba.njit(_nrt=False, pipeline_class=WithoutSSA, **FAST)(f)


def _tiles():
    """tile_{rows} by one panel for 1 to R rows, and tile_{rows}_prefetching; pair_{rows} by two
    panels for 1 to PAIR_R rows, where PAIRED_ROWS; tile_wide (one row by WIDE panels); and
    tile_rows(X, A, Wk, C, i0, rows, jp, k0, k1, add, flat, pf0, step, count), which calls the tile
    of `rows` rows by `count` panels, the prefetching one where step > 0. The tiles compile without
    Numba's reference counts (see whole_panels)."""
    shapes = {f"tile_{rows}{suffix}": (rows, 1, bool(suffix))
              for rows in range(1, R + 1) for suffix in ("", "_prefetching")}
    if PAIRED_ROWS:
        shapes.update({f"pair_{rows}": (rows, 2, False) for rows in range(1, PAIR_R + 1)})
    shapes["tile_wide"] = (1, WIDE, False)
    scope = tile_scope()
    for name, (rows, panel_count, prefetching) in shapes.items():
        exec(_tile_source(name, rows, panel_count, prefetching), scope)
    tiles = {name: build_tile(scope[name]) for name in shapes}
    args = "X, A, Wk, C, i0, jp, k0, k1, add"
    branches = [f"    elif count == 2 and rows == {rows}:\n        pair_{rows}({args})"
                for rows in range(PAIR_R, 0, -1)] if PAIRED_ROWS else []
    branches += ["    elif step > 0:"]
    branches += [f"        {'if' if rows == R else 'elif'} rows == {rows}:\n"
                 f"            tile_{rows}_prefetching({args}, flat, pf0, step)" for rows in range(R, 0, -1)]
    branches += [f"    elif rows == {rows}:\n        tile_{rows}({args})" for rows in range(R, 0, -1)]
    source = "\n".join(branches).replace("elif", "if", 1)
    exec("def tile_rows(X, A, Wk, C, i0, rows, jp, k0, k1, add, flat, pf0, step, count):\n" + source, tiles)
    return dict(tiles, tile_rows=numba.njit(inline="always", **FAST)(tiles["tile_rows"]))


if ENABLED:
    AVX512 = "+avx512f" in _target_features().split(",")
    R = R_ON.get(target_name(), R) if AVX512 else 4     # AVX2's 16 registers hold the sums of 4 rows
    PAIRED_ROWS = PAIRED_FROM.get(target_name(), 0) if AVX512 else 0
    WHOLE_K = PAIRED_ROWS > 0
    AHEAD = 0 if WHOLE_K else AHEAD     # there, no prefetching of any kind (not measured on such a CPU)
    globals().update(_tiles())
    pack_panel = numba.njit(inline="always", **FAST)(pack_panel)
    pick_columns = numba.njit(inline="always", **FAST)(pick_columns)
    consecutive = numba.njit(inline="always", **FAST)(consecutive)
    transpose_columns = numba.njit(inline="always", **FAST)(transpose_columns)
pack = Twins(pack)


def panel_rows(X, A, Wk, C, jp, k0, k1, add, flat, first, lines, count=1):
    """C[:, jp*V:(jp+count)*V] = (or +=) [X, A][:, k0:k1] @ panels jp to jp + count - 1, rows k0 to
    k1 - 1, in as few tiles as hold the rows (R rows a tile by one panel, PAIR_R by two), of as even
    a size as they divide into: 20 rows are tiles of 7, 7 and 6, not 8, 8 and 4 (one core, 56 rows
    at K = 256, 650 and 1300, two timings of 8 rows a tile: 4 rows a tile ran at 0.61-0.78 of its
    speed, 6 and 7 rows at 0.80-1.05; a throwaway timing). The tiles prefetch `lines` cache lines
    of flat from line `first` on, each tile its share."""
    B = A.shape[0]
    tiles = -(-B // (R if count == 1 else PAIR_R))
    n = max(k1 - k0, 1)
    for t in range(tiles):
        i0 = B * t // tiles
        l0, l1 = lines * t // tiles, lines * (t + 1) // tiles
        step = ((l1 - l0) << 16) // n                                 # lines per k, 16-bit fixed point
        tile_rows(X, A, Wk, C, i0, B * (t + 1) // tiles - i0, jp, k0, k1, add, flat, first + l0, step, count)


if ENABLED:
    panel_rows = numba.njit(inline="always", **FAST)(panel_rows)


def next_chunk(c, jp, chunks, first_panel, panels, K, line):
    """The chunk of W that gemm multiplies after panel jp's chunk c: its first cache line in Wk
    (line values a line) and its lines; (0, 0) after the last."""
    if jp + 1 < panels:
        jp += 1
    elif c + 1 < chunks:
        jp, c = first_panel, c + 1
    else:
        return 0, 0
    k0, k1 = K * c // chunks, K * (c + 1) // chunks
    return (jp * K + k0) * V // line, (k1 - k0) * V // line


if ENABLED:
    next_chunk = numba.njit(inline="always", **FAST)(next_chunk)


def whole_panels(X, A, Wk, C):
    """gemm over the panels that C holds whole, the padded one at its edge left out; returns how
    many. It and the tiles allocate nothing, so they compile without Numba's reference counts:
    with them, every view of an array (each tile takes one per row of A, of W's panel and of C)
    and every call of a tile counted references up and down with atomic instructions on the
    arrays' shared counters, in the hot loop of every step's product. `python bench/compare.py
    6580185 3c02fe5` (the command and all figures in bench/SPEED.md, session 28), base/new time:
    LSTM inference 1.084 at (50, 16, 64, 64), 1.082 at (200, 1, 64, 128), 1.052 at (35, 20, 650,
    650); LSTM training 1.086 at (200, 1, 64, 128), 1.041 at (35, 20, 650, 650); GRU and RNN
    1.019-1.068 at H = 512 and 650 but the RNN's (35, 20, 650, 650) training (0.987); the rest
    within the noise. Without the tiles' counts removed (da63327), the layers gained nothing."""
    B, K = A.shape[0], X.shape[1] + A.shape[1]
    whole = min(Wk.shape[0], C.shape[1] // V)
    wide = whole // WIDE * WIDE if B == 1 else 0
    for jp in range(0, wide, WIDE):
        tile_wide(X, A, Wk, C, 0, jp, 0, K, False)
    paired = 0 < PAIRED_ROWS <= B
    whole_k = WHOLE_K and B * K * A.itemsize <= WHOLE_BYTES
    chunks = -(-K // KC) if R < B and not whole_k else 1
    flat, line = Wk.reshape(-1), LINE // Wk.itemsize
    prefetching = Wk.size * Wk.itemsize > PREFETCH_BYTES and B <= PREFETCH_ROWS and not WHOLE_K
    for c in range(chunks):
        k0, k1 = K * c // chunks, K * (c + 1) // chunks
        jp = wide
        while jp < whole:
            count = 2 if paired and jp + 1 < whole else 1
            first, lines = next_chunk(c, jp, chunks, wide, whole, K, line) if prefetching else (0, 0)
            panel_rows(X, A, Wk, C, jp, k0, k1, c > 0, flat, first, lines, count)
            jp += count
    return whole


if ENABLED:
    whole_panels = numba.njit(cache=True, _nrt=False, **FAST)(whole_panels)


def gemm(X, A, Wk, C):
    """C = [X, A] @ W for X (B, K0), A (B, K - K0) and Wk, W packed by pack (NP, K, V): X's columns
    (none, for a plain A @ W) meet W's first K0 rows, without a copy of the two side by side.
    C (B, N), N <= NP * V, gets the first N columns. Where N stops inside a panel, that panel goes
    through a scratch of V columns. Where WHOLE_K, a product takes K whole (unless A's rows over it
    take more than WHOLE_BYTES) and never prefetches.
    Otherwise, where more than a tile of rows meets a panel, K goes in chunks
    of at most KC rows (the chunk of a panel stays in L1 while every tile of rows reads it), the
    first chunk's product written to C, each later one's added. Where Wk takes more than
    PREFETCH_BYTES and A has at most PREFETCH_ROWS rows, the tiles of each chunk prefetch the next
    chunk into L2, spread over their loops: each core reads such a W from L3, at about 11 GB/s on
    the project's machine, and each value read serves only B multiply-adds. On one core, in a
    throwaway timing, prefetching/not: 1.18-1.26 at (B, K, N) = (20, 650, 2600), (20, 1300, 1300)
    and (20, 2600, 650), 1.03-1.06 at (20, 650, 650), 1.00-1.05 at (32, 512, 1024); at 64 rows,
    0.99-1.02, and a layer at (100, 64, 512, 512) ran slower with it (`python bench/compare.py`,
    LSTM inference 0.914); where W fits L2, 0.89-0.98.

    The edge panel goes through whole_panels too, whose tiles take k0, jp and add as variables.
    Passed as constants (0, 0, False) through the inlined panel_rows, they reached each tile as
    Numba literals, which compile a build of their own: from nothing, every tile compiled twice
    per dtype, 7-15 s each. A clean clone's `python -m pytest -q -n 2` on the project's 2-core
    machine: 549.8 s before, 456.8 s after (one run each)."""
    whole = whole_panels(X, A, Wk, C)
    if whole < Wk.shape[0]:
        edge = np.empty((A.shape[0], V), C.dtype)
        whole_panels(X, A, Wk[whole:whole + 1], edge)
        C[:, whole * V:] = edge[:, :C.shape[1] - whole * V]


_compiled = {}


def compiled(dtype=np.float32):
    """gemm compiled for float32 or float64 arrays (on the first call for that dtype, or loaded from
    Numba's cache) under the straight-line vectorizer. Given its signature it never compiles again,
    so the kernels that call it (compiled with the loop vectorizer, which their gate loops need)
    link this build. One dtype at a time: its tiles take minutes to compile from nothing."""
    dtype = np.dtype(dtype)
    if dtype not in _compiled:
        t = numba.from_dtype(dtype)
        signature = numba.void(numba.types.Array(t, 2, "A"), numba.types.Array(t, 2, "A"),
                               numba.types.Array(t, 3, "C"), numba.types.Array(t, 2, "C"))
        with straight_line_vectorizer():
            _compiled[dtype] = numba.njit([signature], cache=True, **FAST)(gemm)
    return _compiled[dtype]
