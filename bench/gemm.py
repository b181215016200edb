"""The recurrent product of one step on one core: rnnkit.gemm against NumPy's BLAS.

A step multiplies the state (B rows) by the same weights, W (K, N): h_prev @ W_hh.T forward
(K = H, N = G*H), dhp @ W_hh backward (K = G*H, N = H). BLAS packs W again at every call;
rnnkit.gemm packs it once per sequence and reuses the packed panels at every step. Both run on
one thread (NumPy's OpenBLAS set to one), as the recurrence does per part; times are medians of
--repeats batches of calls, alternating the two, and the packing is timed apart (once per call of
a layer, not per step).

    python bench/gemm.py [--repeats 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from rnnkit import gemm  # noqa: E402
from rnnkit.blas import thread_setter  # noqa: E402

# (B, K, N) of the per-step products in bench/speed.py's grid: LSTM forward and backward, RNN forward
SHAPES = [(16, 64, 256), (32, 128, 512), (32, 512, 128), (32, 256, 1024), (64, 512, 2048), (64, 2048, 512),
          (20, 650, 2600), (20, 2600, 650), (20, 650, 650), (1, 128, 512)]


def per_call(f, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        f()
    return (time.perf_counter() - t0) / calls


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="timed batches per product (default 7)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be a positive integer, got {args.repeats}")
    if not gemm.ENABLED:
        raise SystemExit("rnnkit.gemm needs Numba")
    product = gemm.compiled()
    set_threads = thread_setter("numpy")
    if set_threads is not None:
        set_threads(1)
    rng = np.random.default_rng(0)
    print(f"one core, float32, GFLOP/s (median of {args.repeats}); pack: once per layer call, in ms")
    print(f"{'B':>4} {'K':>5} {'N':>5} | {'rnnkit.gemm':>11} {'NumPy BLAS':>10} {'ratio':>5} | {'pack ms':>7}")
    ratios = []
    for B, K, N in SHAPES:
        A = rng.standard_normal((B, K)).astype(np.float32)
        W = rng.standard_normal((N, K)).astype(np.float32).T         # as W_hh.T: a transposed view
        cols = np.full((1, gemm.panels(N) * gemm.V), -1)
        cols[0, :N] = np.arange(N)
        packed = np.empty(gemm.packed_shape(1, K, N), np.float32)
        C = np.empty((B, packed.shape[1] * gemm.V), np.float32)
        out = np.empty((B, N), np.float32)
        ours, theirs = (lambda: product(A, packed[0], C)), (lambda: np.dot(A, W, out=out))
        gemm.pack(W, cols, packed)
        ours(), theirs()
        assert np.allclose(C[:, :N], out, rtol=1e-3, atol=1e-3)
        calls = max(3, int(2e8 / (2 * B * K * N)))
        t_ours, t_theirs = [], []
        for _ in range(args.repeats):
            t_ours.append(per_call(ours, calls))
            t_theirs.append(per_call(theirs, calls))
        t_pack = statistics.median(per_call(lambda: gemm.pack(W, cols, packed), 3) for _ in range(args.repeats))
        flops = 2.0 * B * K * N
        g_ours, g_theirs = flops / statistics.median(t_ours) / 1e9, flops / statistics.median(t_theirs) / 1e9
        ratios.append(g_ours / g_theirs)
        print(f"{B:>4} {K:>5} {N:>5} | {g_ours:11.1f} {g_theirs:10.1f} {g_ours / g_theirs:5.2f} | {t_pack * 1e3:7.3f}",
              flush=True)
    print(f"rnnkit.gemm / NumPy BLAS: median {statistics.median(ratios):.2f}, min {min(ratios):.2f}")
    print("reproduce: python bench/gemm.py" + ("" if args.repeats == 7 else f" --repeats {args.repeats}"))


if __name__ == "__main__":
    main()
