"""Bidirectional layers: rnnkit against PyTorch, and rnnkit's two directions at once against one after the other.

    python bench/bidirectional.py [--rounds 3] [--repeats 5] [--modes LSTM,GRU]    (about six minutes)

A bidirectional layer's two directions are independent until the next layer. rnnkit runs them at
once, each on a core of its own, where that pays (rnnkit.recurrent.RNNBase._directions): where a
direction's W_ih and W_hh, packed, take less than a core's L2 and the work is worth two threads,
in training, and in inference where each direction's recurrence would otherwise split its hidden
units over the threads and meet twice a step. Elsewhere (the RNN's two smallest rows, the LSTM at
(100, 32, 256, 256), every mode at H = 650, and inference where each thread works alone on its
rows) the two rnnkit columns time the same code, which shows the machine's noise. For each (mode, T, B, I,
H, layers) of GRID, three workers take turns in each round, each in a fresh process and each first
in one round in three: rnnkit as it ships ("at once"), rnnkit with
rnnkit.recurrent.DIRECTIONS_AT_ONCE off ("one by one": each direction on all the threads, one after
the other, as before), and PyTorch at its default thread count. Times (training step: forward and
backward with every gradient, no optimizer; inference: forward only, as in bench/speed.py, the same
weights in both libraries) are medians of --repeats runs after warm-up, the figure the median of
the rounds.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

import speed

# batches of a few sentences, as a tagger or a classifier meets them, up to bench/speed.py's sizes
GRID = [(50, 1, 64, 128, 1), (50, 4, 64, 64, 1), (100, 8, 128, 256, 1), (100, 1, 128, 128, 2),
        (100, 32, 256, 256, 1), (35, 20, 650, 650, 1)]
WORKERS = ("rnnkit", "one-by-one", "torch")


def worker(kind, mode, T, B, I, H, layers, repeats):
    lib = "torch" if kind == "torch" else "rnnkit"
    if lib == "torch":
        import torch  # noqa: F401  (before rnnkit: see bench/speed.py)
    from rnnkit import recurrent
    recurrent.DIRECTIONS_AT_ONCE = kind != "one-by-one"
    train, infer = speed.setup(lib, mode, T, B, I, H, layers, bidirectional=True)
    train(), infer()
    print(json.dumps(dict(train=speed.median_time(train, repeats), infer=speed.median_time(infer, repeats))))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="turns each worker takes per configuration (default 3)")
    p.add_argument("--modes", default=",".join(speed.MODES), help="comma-separated subset of RNN,LSTM,GRU")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        kind, mode, *nums = args.worker
        return worker(kind, mode, *map(int, nums))
    speed.require_positive(("--repeats", args.repeats), ("--rounds", args.rounds))
    modes = speed.parse_modes(args.modes)
    import torch
    print(f"bidirectional layers, rnnkit vs torch {torch.__version__} (default threads: {torch.get_num_threads()}), "
          f"float32, medians of {args.repeats} runs after warm-up, median of {args.rounds} rounds")
    head = (f"{'mode':5} {'T':>4} {'B':>3} {'I':>4} {'H':>4} {'L':>2} | train ms: {'at once':>8} {'one by one':>10} "
            f"{'torch':>8} {'torch/rk':>8} | infer ms: {'at once':>8} {'one by one':>10} {'torch':>8} {'torch/rk':>8}")
    print(head)
    print("-" * len(head))
    for mode in modes:
        for config in GRID:
            print(f"timing {mode} {config} ...", file=sys.stderr, flush=True)
            runs = {kind: [] for kind in WORKERS}
            for r in range(args.rounds):
                for kind in WORKERS[r % 3:] + WORKERS[:r % 3]:             # each first in turn
                    runs[kind].append(speed.spawn(kind, mode, *config, args.repeats, script=__file__))
            t = {kind: {key: statistics.median(r[key] for r in rs) * 1e3 for key in ("train", "infer")}
                 for kind, rs in runs.items()}
            cells = [f"{t['rnnkit'][key]:8.2f} {t['one-by-one'][key]:10.2f} {t['torch'][key]:8.2f} "
                     f"{t['torch'][key] / t['rnnkit'][key]:8.2f}" for key in ("train", "infer")]
            print(f"{mode:5} " + " ".join(f"{v:>{w}}" for v, w in zip(config, (4, 3, 4, 4, 2)))
                  + f" | train ms: {cells[0]} | infer ms: {cells[1]}", flush=True)
    print("reproduce: python bench/bidirectional.py"
          + ("" if args.repeats == 5 else f" --repeats {args.repeats}")
          + ("" if args.rounds == 3 else f" --rounds {args.rounds}")
          + ("" if modes == speed.MODES else f" --modes {','.join(modes)}"))


if __name__ == "__main__":
    main()
