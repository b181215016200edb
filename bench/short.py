"""Short calls of a layer: the NumPy steps against the compiled loop, and rnnkit against PyTorch.

    python bench/short.py            # about a minute
    python bench/short.py --quick    # T = 1, B = 1 only, a smoke test

Sampling from a language model calls its layers one step and one row at a time, and the compiled
loop (rnnkit.kernels) packs W_hh, and for the LSTM W_ih, at the start of every call. Where a call
is that short, rnnkit runs the NumPy steps instead (rnnkit.loop.compiled). For each (mode, H, T,
B), with I = H, this times a layer's inference (forward under no_grad) and training step (forward
and backward) three ways, each in its own fresh process, in turns over --rounds rounds (medians of
--repeats calls; a figure is the median of its rounds):
  numpy     rnnkit with the NumPy steps,
  compiled  rnnkit with the compiled loop,
  torch     torch.nn.RNN / LSTM / GRU with the same weights (as in bench/speed.py).
It prints numpy/compiled in time (below 1: the NumPy steps are faster), which of the two rnnkit
picks, and torch's time over that pick's (above 1: rnnkit is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed  # noqa: E402
from speed import MODES, median_time, parse_modes, require_positive, setup  # noqa: E402

GRID = [(1, 1), (2, 1), (4, 1), (1, 2), (4, 2), (1, 8), (1, 32)]     # (T, B)
SIZES = (64, 128, 256, 512)
WAYS = ("numpy", "compiled", "torch")


def worker(way, modes, grid, sizes, repeats):
    """Every configuration's times, in ms, for one way of running the layer, in this process."""
    if way == "torch":
        import torch  # noqa: F401   (before rnnkit: see bench/speed.py)
        lib = "torch"
    else:
        from rnnkit import loop
        lib = "rnnkit"
        short = 0 if way == "compiled" else sys.maxsize            # no call is short, or every call is
        loop.SHORT_STEPS = loop.SHORT_ROWS = dict.fromkeys(loop.SHORT_ROWS, short)
    times = {}
    for mode in modes:
        for H in sizes:
            for T, B in grid:
                train, infer = setup(lib, mode, T, B, H, H)
                for f in (train, infer) * 3:                           # warm-up (and compile or load)
                    f()
                times[f"{mode} {H} {T} {B}"] = [median_time(infer, repeats) * 1e3, median_time(train, repeats) * 1e3]
    print(json.dumps(times))


def spawn(way, args):
    return speed.spawn(way, "--modes", ",".join(args.modes), "--repeats", args.repeats, *(["--quick"] * args.quick),
                       script=__file__)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="T = 1, B = 1 only (a smoke test)")
    p.add_argument("--repeats", type=int, default=30, help="timed calls per measurement (default 30)")
    p.add_argument("--rounds", type=int, default=3, help="turns each way takes (default 3)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of RNN,LSTM,GRU")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    require_positive(("--repeats", args.repeats), ("--rounds", args.rounds))
    args.modes = parse_modes(args.modes)
    grid = [(1, 1)] if args.quick else GRID
    if args.worker:
        return worker(args.worker, args.modes, grid, SIZES, args.repeats)

    import numpy as np
    import rnnkit
    from rnnkit import loop

    runs = {way: [] for way in WAYS}
    for r in range(args.rounds):
        print(f"round {r + 1} of {args.rounds} ...", file=sys.stderr, flush=True)
        for way in WAYS:
            runs[way].append(spawn(way, args))
    med = {way: {key: [statistics.median(run[key][i] for run in runs[way]) for i in range(2)] for key in runs[way][0]}
           for way in WAYS}
    step_of = {mode: getattr(rnnkit, mode)(1, 1).step for mode in args.modes}
    print(f"rnnkit {rnnkit.__version__} numpy {np.__version__}: layer calls of T steps of B rows, I = H, "
          f"medians of {args.repeats} calls, median of {args.rounds} rounds; ms, inference / training")
    print(f"{'mode':5} {'H':>4} {'T':>3} {'B':>3} | {'numpy':>15} {'compiled':>15} {'numpy/compiled':>15} | "
          f"{'picks':8} {'torch':>15} {'torch/rnnkit':>13}")
    for key in med["numpy"]:
        mode, H, T, B = key.split()
        picked = "compiled" if loop.compiled(step_of[mode], int(T), int(B)) else "numpy"
        n, c, t = med["numpy"][key], med["compiled"][key], med["torch"][key]
        ours = med[picked][key]
        print(f"{mode:5} {H:>4} {T:>3} {B:>3} | {n[0]:7.3f} {n[1]:7.3f} {c[0]:7.3f} {c[1]:7.3f} "
              f"{n[0] / c[0]:7.2f} {n[1] / c[1]:7.2f} | {picked:8} {t[0]:7.3f} {t[1]:7.3f} "
              f"{t[0] / ours[0]:6.2f} {t[1] / ours[1]:6.2f}")
    print("reproduce: python bench/short.py" + (" --quick" if args.quick else ""))


if __name__ == "__main__":
    main()
