"""The cost of exact RTRL against BPTT as the hidden size grows (float64, one sequence, single-threaded BLAS).

RTRL carries P_t = dh_t/dθ, (B, H, N) for N ≈ G*H*(I + H) parameters, and multiplies it by W_hh at
every step: memory O(H^3) and time O(H^4) per step, against O(H^2) for BPTT (which instead stores
all T states). Each row also checks that both give the same gradient.

    python bench/rtrl_cost.py [--hidden 4,8,16,32,64] [--cells rnn,lstm,gru] [--length 50]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")          # a fair comparison on a shared machine
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rnnkit  # noqa: E402
from rnnkit.gradcheck import relative_error  # noqa: E402
from rnnkit.rtrl import RTRL  # noqa: E402

LAYERS = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}


def best_of(fn, repeats):
    fn()                                              # warm up (first-call compilation, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def measure(cell, H, T, I=2, B=1, repeats=3):
    rng = np.random.default_rng(0)
    layer = LAYERS[cell](I, H, dtype=np.float64, seed=0)
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, H))

    def bptt():
        layer.zero_grad()
        layer.forward(x)
        layer.backward(dout)
        return {k: v.copy() for k, v in layer.grads.items()}

    def rtrl():
        layer.zero_grad()
        r = RTRL(layer)
        r.reset(B)
        for t in range(T):
            r.step(x[t])
            r.backward(dout[t])                       # the gradient available at every step
        return {k: v.copy() for k, v in layer.grads.items()}, r

    t_bptt, g_bptt = best_of(bptt, repeats)
    t_rtrl, (g_rtrl, r) = best_of(rtrl, repeats)
    err = max(relative_error(g_rtrl[k], g_bptt[k]) for k in g_bptt)
    mem = (r.P.nbytes + (r.C.nbytes if r.C is not None else 0)) / 2**20
    return dict(cell=cell, H=H, N=r.num_params, rtrl=1e3 * t_rtrl / T, bptt=1e3 * t_bptt / T, mem=mem, err=err)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", default="4,8,16,32,64", help="hidden sizes, comma-separated")
    p.add_argument("--cells", default="rnn,lstm,gru", help="cells, comma-separated from rnn, lstm, gru")
    p.add_argument("--length", type=int, default=50, help="steps T per sequence (default 50)")
    args = p.parse_args(argv)
    sizes = [int(h) for h in args.hidden.split(",")]
    cells = [c.strip() for c in args.cells.split(",")]
    for c in cells:
        if c not in LAYERS:
            p.error(f"--cells must name cells from rnn, lstm, gru, got {c!r}")
    print(f"# RTRL vs BPTT, float64, batch 1, input 2, T={args.length}, "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    print(f"# reproduce: python bench/rtrl_cost.py --hidden {args.hidden} --cells {args.cells} --length {args.length}")
    print(f"{'cell':<5} {'H':>4} {'params N':>9} {'RTRL ms/step':>13} {'BPTT ms/step':>13} {'ratio':>8} "
          f"{'dh/dθ MiB':>10} {'max rel err':>12}")
    for cell in cells:
        rows = []
        for H in sizes:
            r = measure(cell, H, args.length)
            rows.append(r)
            print(f"{cell:<5} {H:>4} {r['N']:>9,} {r['rtrl']:>13.3f} {r['bptt']:>13.3f} {r['rtrl'] / r['bptt']:>8.1f} "
                  f"{r['mem']:>10.2f} {r['err']:>12.1e}", flush=True)
        if len(rows) >= 2:
            a, b = rows[-2], rows[-1]
            slope = np.log(b["rtrl"] / a["rtrl"]) / np.log(b["H"] / a["H"])
            slope_b = np.log(b["bptt"] / a["bptt"]) / np.log(b["H"] / a["H"])
            print(f"{cell:<5} time grows as H^{slope:.1f} (RTRL) and H^{slope_b:.1f} (BPTT) "
                  f"between H={a['H']} and H={b['H']}")


if __name__ == "__main__":
    main()
