"""The adding problem at T = 200 for the tanh RNN, the IRNN, the LSTM and the GRU: test MSE and wall time.

Each cell trains with its preset (rnnkit.adding.PRESETS) until its test MSE falls below 0.01, or
--max-steps, or --seconds. Predicting 1 scores about 0.167. With --save-dir, the trained models are
saved and their gradient flow is plotted beside them (what `rnnkit diagnose --model FILE` does).

    python bench/adding.py [--length 200] [--cells rnn,irnn,lstm,gru] [--max-steps 4000] [--seconds 600]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")          # small matrices: threads only contend
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from rnnkit.adding import CELLS, AddingConfig, build_model, gradient_flow, train  # noqa: E402
from rnnkit.diagnostics import plot_gradient_flow  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--length", type=int, default=200, help="steps T per sequence (default 200)")
    p.add_argument("--cells", default=",".join(CELLS), help="cells, comma-separated (default all four)")
    p.add_argument("--max-steps", type=int, default=4000, help="optimizer steps per cell at most (default 4000)")
    p.add_argument("--seconds", type=float, default=600.0, help="wall-clock budget per cell (default 600)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-dir", default=None, help="save each trained model and a gradient-flow plot here")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    args = p.parse_args(argv)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    for c in cells:
        if c not in CELLS:
            p.error(f"--cells must name cells from {', '.join(CELLS)}, got {c!r}")
    command = (f"python bench/adding.py --length {args.length} --cells {','.join(cells)} --max-steps {args.max_steps} "
               f"--seconds {args.seconds:g} --seed {args.seed}")
    log = (lambda m: None) if args.quiet else (lambda m: print("  " + m, flush=True))
    results, flows = [], []
    start = time.perf_counter()
    for cell in cells:
        cfg = AddingConfig(length=args.length, cell=cell, max_steps=args.max_steps, seconds=args.seconds,
                           seed=args.seed)
        model = build_model(cfg)
        results.append(train(cfg, log=log, model=model))
        if args.save_dir:
            os.makedirs(args.save_dir, exist_ok=True)
            path = os.path.join(args.save_dir, f"adding-{cell}-T{args.length}.safetensors")
            model.save(path)
            model.eval()
            flows.append(gradient_flow(model, args.length, 16, args.seed, label=f"{cell} (trained)"))
    total = time.perf_counter() - start

    print(f"\nThe adding problem, T = {args.length}, batch 50, test set of 1000; goal: test MSE < 0.01 "
          f"(predicting 1 scores {results[0].baseline_mse:.3f})")
    print(f"reproduce: {command}")
    print(f"{'cell':<5} {'H':>4} {'optimizer':>13} {'dtype':>8} {'steps':>6} {'wall s':>7} {'test MSE':>9} {'best':>8} "
          f"{'< 0.01 at step':>15}  note")
    for r in results:
        solved = "-" if r.solved_step is None else str(r.solved_step)
        print(f"{r.cell:<5} {r.hidden:>4} {r.optimizer + ' ' + format(r.lr, 'g'):>13} {r.dtype:>8} {r.steps:>6} "
              f"{r.seconds:>7.0f} {r.test_mse:>9.4f} {r.best_mse:>8.4f} {solved:>15}  "
              f"{'diverged (non-finite gradient)' if r.diverged else ''}")
    print(f"total wall time {total:.0f} s (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})")
    if flows:
        png = plot_gradient_flow(flows, os.path.join(args.save_dir, f"gradient_flow_trained_T{args.length}.png"),
                                 f"gradient flow after training on the adding problem, T={args.length}")
        for f in flows:
            print(f.summary())
        print(f"wrote {png}")


if __name__ == "__main__":
    main()
