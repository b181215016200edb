"""The recurrent product of one step on one core: rnnkit.gemm against NumPy's BLAS.

A step multiplies the state (B rows) by the same weights, W (K, N): h_prev @ W_hh.T forward
(K = H, N = G*H), dhp @ W_hh backward (K = G*H, N = H). BLAS packs W again at every call;
rnnkit.gemm packs it once per sequence and reuses the packed panels at every step. Both run on
one thread (NumPy's OpenBLAS set to one), as the recurrence does per part; times are medians of
--repeats batches of calls, alternating the two, and the packing is timed apart (once per call of
a layer, not per step; from W_hh.T forward and from W_hh itself backward, as the kernels pack).

--layer times the large products of a layer instead: the input projection of all steps (T*B
rows, plus the bias) and the gradient of the input, with rnnkit.gemm (W packed at every call, the
packing counted; rnnkit.products.packed_product) against NumPy's BLAS in row blocks
(rnnkit.products.matmul), both on as many threads as the machine has cores. rnnkit.products.packs
picks between the two by these figures.

Beside rnnkit.gemm's GFLOP/s on one core stands their share of the core's multiply-add peak,
timed before the products by bench/fma_peak.py (the best of its rounds).

    python bench/gemm.py [--repeats 7] [--layer]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fma_peak import core_peak  # noqa: E402
from rnnkit import gemm  # noqa: E402
from rnnkit.blas import thread_setter  # noqa: E402

# (B, K, N) of the per-step products in bench/speed.py's grid: LSTM forward and backward, RNN forward; and
# (32, 512, 512), a thread's share of the LSTM's inference step at (100, 32, 256, 256), [x_t, h_prev] @
# half the units' columns of [W_ih, W_hh].T, where the step's product takes the input (rnnkit.loop.takes_input)
SHAPES = [(16, 64, 256), (32, 128, 512), (32, 512, 128), (32, 256, 1024), (32, 512, 512), (64, 512, 2048),
          (64, 2048, 512), (20, 650, 2600), (20, 2600, 650), (20, 650, 650), (1, 128, 512)]
# (M, K, N) of the layer products in that grid: x @ W_ih.T (K = I, N = G*H) and dxp @ W_ih (K = G*H, N = I)
# that rnnkit.products.packs weighs: where the layer runs on two parts or more (rnnkit.kernels.parts) and
# M >= 2K, or M >= K in inference; those whose W has more than products.PACK_VALUES values go to BLAS
# ((700, 650, 650), (700, 650, 1950) and (700, 650, 2600): the RNN's, the GRU's and the LSTM's projections at
# (35, 20, 650, 650), in inference only; the GRU and the LSTM take their input apart there, rnnkit.loop.input_apart)
LAYER_SHAPES = [(800, 64, 256), (800, 256, 64), (200, 64, 512), (3200, 128, 512), (3200, 512, 128),
                (3200, 256, 256), (3200, 256, 768), (3200, 768, 256), (3200, 256, 1024), (3200, 1024, 256),
                (6400, 512, 512), (6400, 512, 1536), (6400, 512, 2048), (6400, 2048, 512), (700, 650, 650),
                (700, 650, 1950), (700, 650, 2600)]


def per_call(f, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        f()
    return (time.perf_counter() - t0) / calls


def in_turns(ours, theirs, flops, repeats, budget):
    """GFLOP/s of ours and of theirs: medians of `repeats` batches each, taken in turns, a batch
    being as many calls as do `budget` flops (3 at least)."""
    calls = max(3, int(budget / flops))
    t_ours, t_theirs = [], []
    for _ in range(repeats):
        t_ours.append(per_call(ours, calls))
        t_theirs.append(per_call(theirs, calls))
    return flops / statistics.median(t_ours) / 1e9, flops / statistics.median(t_theirs) / 1e9


def summary(what, ratios, command, repeats):
    print(f"{what}: median {statistics.median(ratios):.2f}, min {min(ratios):.2f}")
    print(f"reproduce: {command}" + ("" if repeats == 7 else f" --repeats {repeats}"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="timed batches per product (default 7)")
    p.add_argument("--layer", action="store_true", help="a layer's large products, on all cores, packing included")
    args = p.parse_args(argv)
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be a positive integer, got {args.repeats}")
    if not gemm.ENABLED:
        raise SystemExit("rnnkit.gemm needs Numba")
    if args.layer:
        return layer_products(args.repeats)
    product = gemm.compiled()
    set_threads = thread_setter("numpy")
    if set_threads is not None:
        set_threads(1)
    rng = np.random.default_rng(0)
    peak = core_peak()
    print(f"one core, float32, GFLOP/s (median of {args.repeats}); pack: once per layer call, in ms")
    print(f"the core's multiply-add peak (bench/fma_peak.py): {peak:.1f} GFLOP/s")
    print(f"{'B':>4} {'K':>5} {'N':>5} | {'rnnkit.gemm':>11} {'% peak':>6} {'NumPy BLAS':>10} {'ratio':>5} | "
          f"{'pack ms':>7}")
    ratios = []
    for B, K, N in SHAPES:
        A = rng.standard_normal((B, K)).astype(np.float32)
        if K <= N:                                                    # forward: W_hh.T, a transposed view
            W = rng.standard_normal((N, K)).astype(np.float32).T
        else:                                                         # backward (K = G*H > N): W_hh itself
            W = rng.standard_normal((K, N)).astype(np.float32)
        cols = np.full((1, gemm.panels(N) * gemm.V), -1)
        cols[0, :N] = np.arange(N)
        packed = np.empty(gemm.packed_shape(1, K, N), np.float32)
        C = np.empty((B, packed.shape[1] * gemm.V), np.float32)
        out = np.empty((B, N), np.float32)
        ours, theirs = (lambda: product(A[:, :0], A, packed[0], C)), (lambda: np.dot(A, W, out=out))
        gemm.pack[1](W, cols, packed)
        ours(), theirs()
        assert np.allclose(C[:, :N], out, rtol=1e-3, atol=1e-3)
        g_ours, g_theirs = in_turns(ours, theirs, 2.0 * B * K * N, args.repeats, 2e8)
        t_pack = statistics.median(per_call(lambda: gemm.pack[1](W, cols, packed), 3) for _ in range(args.repeats))
        ratios.append(g_ours / g_theirs)
        print(f"{B:>4} {K:>5} {N:>5} | {g_ours:11.1f} {100 * g_ours / peak:5.1f}% {g_theirs:10.1f} "
              f"{g_ours / g_theirs:5.2f} | {t_pack * 1e3:7.3f}", flush=True)
    summary("rnnkit.gemm / NumPy BLAS", ratios, "python bench/gemm.py", args.repeats)


def layer_products(repeats):
    from rnnkit import products
    from rnnkit.workspace import Workspace
    parts, ws, rng = os.cpu_count() or 1, Workspace(), np.random.default_rng(0)
    if parts == 1:
        raise SystemExit("--layer: one core, where rnnkit's layer products are NumPy's BLAS")
    print(f"{parts} threads, float32, GFLOP/s (median of {repeats}), W packed at every call of rnnkit's")
    print(f"{'M':>5} {'K':>5} {'N':>5} | {'product':>8} {'BLAS':>6} {'ratio':>5}")
    ratios = []
    for M, K, N in LAYER_SHAPES:
        a = rng.standard_normal((M, K)).astype(np.float32)
        W = rng.standard_normal((N, K)).astype(np.float32).T             # as W_ih.T
        bias = rng.standard_normal(N).astype(np.float32)
        out = np.empty((M, N), np.float32)
        ours = lambda: products.packed_product(a, W, parts, out, bias, ws)  # noqa: E731
        theirs = lambda: products.matmul(a, W, parts, out).__iadd__(bias)  # noqa: E731
        expected = a @ W + bias
        ours()
        assert np.allclose(out, expected, rtol=1e-3, atol=1e-3)
        theirs()
        g_ours, g_theirs = in_turns(ours, theirs, 2.0 * M * K * N, repeats, 4e8)
        ratios.append(g_ours / g_theirs)
        print(f"{M:>5} {K:>5} {N:>5} | {g_ours:8.1f} {g_theirs:6.1f} {g_ours / g_theirs:5.2f}", flush=True)
    summary("product / BLAS", ratios, "python bench/gemm.py --layer", repeats)


if __name__ == "__main__":
    main()
