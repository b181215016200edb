"""The LSTM's inference step with its gates inside the product's tiles: the cell on the sums in registers.

The compiled LSTM (rnnkit.kernels) makes each step's product [x_t, h_prev] @ [W_ih, W_hh].T, then,
in a pass of its own over the product's output, the gates; where its threads split the hidden
units, they meet between the two. In inference, on a CPU that runs paired tiles (rnnkit.gemm:
PAIR_R rows by two panels of V columns), this module does instead what oneDNN calls post-ops:
[W_ih, W_hh] is packed in groups of GROUP units, a group's four gates side by side, so that a
tile's two panels hold i and f, then g and o, of the same GROUP units. A tile's epilogue then
makes, from its sums still in registers, the cell of those units in each of its rows:

    c = sigmoid(f) c_prev + sigmoid(i) tanh(g),   h = sigmoid(o) tanh(c)

writing c and h, and no gate pre-activations, to memory. Where the threads split the units, each
does its own units in every row, and they meet once a step, where h is whole; where each works
alone on its block of rows (W small: rnnkit.kernels.packing_parts), it does every unit of its
rows. The tile is generated Python, compiled with LLVM's straight-line vectorizer (as rnnkit.gemm's
tiles), its tanh the kernels' float32 one (rnnkit.kernels.TANH_P, TANH_Q) written out in full:
through the kernels' inlined tanh and sigmoid it compiled in 51 s, written out in 11.5 s, to the
same vector instructions by count (throwaway timings and a look at the assembly). Its four rows
make four cells at once, so their chains of dependent operations overlap each other and the next
tile's products, where the gate loops of a pass of their own ran one chain at a time.

On two cores of an AMD EPYC (Zen 5), each revision against the one before, in one process
(`python bench/compare.py BASE NEW --in-process --modes LSTM --sizes ... --rounds 9 --repeats 7`;
medians of the rounds' ratios base/new, quartiles in brackets; bench/SPEED.md, session 51):
- threads that split the units, 32 rows or more (02114be against fe3f187): inference 1.046
  (1.029-1.055) at (T, B, I, H) = (100, 32, 256, 256), 1.018 (1.010-1.060) at (100, 64, 512, 512);
- threads alone on their rows as well (fe3f187 against 7aadc5f): 1.111 (1.080-1.161) at (100, 32,
  128, 128), 1.196 (1.181-1.216) at (50, 16, 64, 64);
- split, fewer than 32 rows as well (7aadc5f against e84363c): 1.048 (1.017-1.167) at (100, 16,
  256, 256), 1.077 (1.049-1.083) at (100, 20, 512, 512).
rnnkit.gemm's own paired tile into a scratch of the tile's rows, then the cell in a loop of its
own, vectorized over the GROUP units, ran only 1.006 as fast as the kernels' gate phase (a
throwaway copy): there the loop ran one row at a time.
"""
from __future__ import annotations

import functools

import numpy as np

from . import gemm as packed
from . import kernels
from .jit import ENABLED, ONLY_PRANGE, OPTIONS, numba, prange

GROUP = 16          # units of each gate a tile's two panels hold: 4 * GROUP = 2 * V columns
ROWS = packed.PAIR_R


def pays(I, B, H, P, parts, dtype, lengths):
    """Whether a compiled LSTM inference forward of B rows (lengths (B,), their steps) takes this
    way: with its input inside each step's product (I > 0), on P > 1 threads, which split the units
    (parts == P) or each work alone on a block of rows (parts == 1, rnnkit.kernels.packing_parts),
    on a CPU that runs paired tiles (rnnkit.gemm.PAIRED_ROWS), in float32, with whole tiles of rows
    in each thread's block, whole groups of units in each part, and no row padded (a padded row's
    state passes through, which the tile does not do)."""
    return (ENABLED and packed.PAIRED_ROWS > 0 and I > 0 and 1 < P and dtype == np.float32
            and B % (ROWS * (1 if parts == P else P)) == 0 and H % (GROUP * parts) == 0
            and lengths.min() == lengths.max())


@functools.lru_cache(maxsize=64)
def layout(GH, H, P):
    """rnnkit.kernels.forward_layout with each part's gate rows in groups of GROUP units, the four
    gates' rows of a group side by side: i, f (one panel), g, o (the next)."""
    edges, rows, real = kernels._gate_rows(GH, H, P)
    m = rows.shape[1] // 4
    order = np.arange(4 * m).reshape(4, m // GROUP, GROUP).transpose(1, 0, 2).reshape(-1)
    rows, real = np.ascontiguousarray(rows[:, order]), np.ascontiguousarray(real[:, order])
    return kernels._read_only(edges, packed.columns(rows, real), rows, real)


def _tanh_lines(y, x):
    """Source lines that set y = tanh(x), as rnnkit.kernels' float32 tanh computes it."""
    p = "TANH_P[0]"
    for j in range(1, len(kernels.TANH_P)):
        p = f"({p} * {y}_2 + TANH_P[{j}])"
    q = "TANH_Q[0]"
    for j in range(1, len(kernels.TANH_Q)):
        q = f"({q} * {y}_2 + TANH_Q[{j}])"
    return [f"    {y}_x = min(max({x}, -TANH_LIM), TANH_LIM)", f"    {y}_2 = {y}_x * {y}_x",
            f"    {y} = {y}_x * {p} / {q}"]


def _source(name, rows):
    """Python source of name(X, A, Wk, jp, i0, b, c, h, u0): the sums of [X, A][i0:i0+rows] @ panels
    jp and jp + 1 (rnnkit.gemm.sums_source), then, for each of those rows and the GROUP units from u0,
    with b the group's bias (i, f, g, o, GROUP each), the cell: c and h updated in place."""
    acc, sums = packed.sums_source(rows, 2)
    lines = [f"def {name}(X, A, Wk, jp, i0, b, c, h, u0):", "    k0 = 0", "    k1 = X.shape[1] + A.shape[1]"] + sums
    sigmoid_in = "HALF * ({} + b[{}])"
    for r in range(rows):
        lines += [f"    cr = c[i0 + {r}, u0:u0 + {GROUP}]", f"    hr = h[i0 + {r}, u0:u0 + {GROUP}]"]
        lines += [f"    cp{u} = cr[{u}]" for u in range(GROUP)]   # every load before any store: SLP needs it
        for u in range(GROUP):
            i, f, g, o = acc[r][0][u], acc[r][0][GROUP + u], acc[r][1][u], acc[r][1][GROUP + u]
            lines += _tanh_lines(f"ti{u}", sigmoid_in.format(i, u))          # sigmoid(x) = (tanh(x/2) + 1) / 2
            lines += _tanh_lines(f"tf{u}", sigmoid_in.format(f, GROUP + u))
            lines += _tanh_lines(f"tg{u}", f"{g} + b[{2 * GROUP + u}]")
            lines += _tanh_lines(f"to{u}", sigmoid_in.format(o, 3 * GROUP + u))
            lines += [f"    cc{u} = (HALF * tf{u} + HALF) * cp{u} + (HALF * ti{u} + HALF) * tg{u}"]
            lines += _tanh_lines(f"tc{u}", f"cc{u}")
            lines += [f"    hh{u} = (HALF * to{u} + HALF) * tc{u}"]
        lines += [f"    cr[{u}] = cc{u}" for u in range(GROUP)]
        lines += [f"    hr[{u}] = hh{u}" for u in range(GROUP)]
    return "\n".join(lines)


def cells(x_t, h_prev, Wq, bq, j0, j1, b0, b1, c, out_t):
    """A task's step: for units [j0, j1), group by group, each tile of rows [b0, b1)'s product against
    the group's two panels of Wq and its cell, into c and out_t."""
    for g in range((j1 - j0) // GROUP):
        b = bq[4 * GROUP * g:4 * GROUP * (g + 1)]
        for i0 in range(b0, b1, ROWS):
            tile(x_t, h_prev, Wq, 2 * g, i0, b, c, out_t, j0 + GROUP * g)


def lstm_inference(x, Wk, bp, edges, h, c, reverse, out, sync):
    """The LSTM forward in inference: x (T, B, I); Wk and bp packed in layout's order; h, c (B, H)
    h0, c0 in and h_n, c_n out; out (T, B, H). On sync's P threads, one phase a step
    (rnnkit.kernels.phases with per_step=1; walked by rnnkit.kernels.first and after)."""
    T, B = out.shape[0], out.shape[1]
    P, alone = kernels.threads(Wk, sync)
    for p in prange(P):
        b, k, q = kernels.first(sync, p, alone)
        while q >= 0:
            t = kernels.order(k, T, reverse)
            h_prev = h if k == 0 else out[kernels.order(k - 1, T, reverse)]
            part, b0, b1 = q, 0, B                               # split: part q's units, every row
            if alone:                                              # alone: block q's rows, every unit
                part, (b0, b1) = 0, kernels.rows(q, P, B)
            cells(x[t], h_prev, Wk[part], bp[part], edges[part], edges[part + 1], b0, b1, c, out[t])
            b, k, q = kernels.after(sync, b, k, alone)
    if T > 0:
        h[:] = out[kernels.order(T - 1, T, reverse)]


if ENABLED:
    scope = dict(TANH_LIM=kernels.TANH_LIM, TANH_P=kernels.TANH_P, TANH_Q=kernels.TANH_Q, HALF=np.float32(0.5))
    exec(_source("tile", ROWS), scope)
    tile = packed.build_tile(scope["tile"])
    cells = numba.njit(inline="always", **OPTIONS)(cells)
    lstm_inference = numba.njit(parallel=ONLY_PRANGE, **OPTIONS)(lstm_inference)


def forward(x, W_ih, b_ih, W_hh, b_hh, h, c, reverse, out, P, parts, buffer):
    """out (T, B, H) = the LSTM's outputs for x (T, B, I) from h and c (B, H), which become h_n and
    c_n, on P threads, where pays: [W_ih, W_hh] packed in `parts` parts (rnnkit.kernels.packing_parts)
    into buffer (rnnkit.kernels.weights_size values)."""
    edges, Wk, bp = kernels.forward_weights(W_hh, b_hh, parts, buffer, W_ih, b_ih, layout)
    sync = kernels.phases(x.shape[0], P, per_step=1)
    with packed.straight_line_vectorizer():                    # the tile's build, where it compiles
        lstm_inference(x, Wk, bp, edges, h, c, reverse, out, sync)
