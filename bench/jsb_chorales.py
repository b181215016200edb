"""JSB Chorales, polyphonic music: test NLL per time step of ~20k-parameter tanh RNN, LSTM and GRU.

Chung et al. (2014), "Empirical evaluation of gated recurrent neural networks on sequence modeling",
Table 2, JSB Chorales test NLL: tanh RNN 9.10, LSTM 8.67, GRU 8.54 (models of about 20k parameters:
100, 36 and 46 units). Each cell here is trained with the defaults of `rnnkit train music`, so the
numbers are reproduced by

    rnnkit train music --cell rnn  --out runs/jsb-rnn     # and lstm, gru

Usage: python bench/jsb_chorales.py [--cells rnn lstm gru] [--out runs/bench-jsb] [--max-steps N]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rnnkit.tasks.music import MusicConfig, train_music

CHUNG_2014 = {"rnn": 9.10, "lstm": 8.67, "gru": 8.54}    # test NLL per time step, Table 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"], choices=sorted(CHUNG_2014))
    ap.add_argument("--out", default="runs/bench-jsb", help="parent folder of the run folders")
    ap.add_argument("--max-steps", type=int, default=MusicConfig.max_steps)
    args = ap.parse_args()
    rows = []
    for cell in args.cells:
        out = str(Path(args.out) / cell)
        print(f"$ rnnkit train music --cell {cell} --out {out} --max-steps {args.max_steps}", flush=True)
        r = train_music(MusicConfig(cell=cell, out=out, max_steps=args.max_steps, progress=False), log=print)
        rows.append(r)
    print("\n| cell | units | parameters | valid NLL | test NLL | Chung et al. 2014 | steps | training time |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        goal = CHUNG_2014[r["cell"]]
        verdict = "reached" if r["test_nll"] <= goal else "not reached"
        print(f"| {r['cell']} | {r['hidden']} | {r['params']:,} | {r['valid_nll']:.3f} | {r['test_nll']:.3f} | "
              f"{goal:.2f} ({verdict}) | {r['steps']} ({r['stopped']}) | {r['seconds']:.0f} s |")


if __name__ == "__main__":
    main()
