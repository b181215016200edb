"""`rnnkit diagnose`: gradient flow through time (dL/dh_t, dh_T/dh_t, spectral radius) with a PNG plot."""
from __future__ import annotations

import os


def register(verbs, train_tasks):
    p = verbs.add_parser("diagnose", help="measure how gradients flow back through time, and plot it")
    p.add_argument("--cells", default="rnn,irnn,lstm,gru",
                   help="freshly initialised cells to measure, comma-separated from rnn, irnn, lstm, gru "
                        "(default all four; '' for none)")
    p.add_argument("--model", action="append", default=[], metavar="FILE",
                   help="a trained adding-problem model (from `rnnkit train adding --save FILE`); repeatable")
    p.add_argument("--hidden", type=int, default=64, help="units of the fresh cells (default 64)")
    p.add_argument("--length", type=int, default=200, help="steps T of the adding batch (default 200)")
    p.add_argument("--batch", type=int, default=16, help="sequences in the batch (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="gradient_flow.png", help="the PNG to write (default gradient_flow.png)")
    p.set_defaults(func=run)


def run(args):
    from ..adding import CELLS, AddingModel, gradient_flow, load_model
    from ..diagnostics import plot_gradient_flow
    from . import UserError

    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    for c in cells:
        if c not in CELLS:
            raise UserError(f"--cells must name cells from {', '.join(CELLS)}, got {c!r}")
    for name in ("hidden", "length", "batch"):
        if getattr(args, name) < (2 if name == "length" else 1):
            raise UserError(f"--{name} must be a positive integer{' >= 2' if name == 'length' else ''}, "
                            f"got {getattr(args, name)}")
    if not cells and not args.model:
        raise UserError("nothing to diagnose: give --cells or --model")
    if not args.out.endswith(".png"):
        raise UserError(f"--out must name a .png file, got {args.out!r}")
    # a fresh LSTM gets the chrono initialisation for T = --length, as `rnnkit train adding` trains it
    models = [(f"{c} (fresh{', chrono' if c == 'lstm' else ''})",
               AddingModel(c, args.hidden, chrono=args.length if c == "lstm" else None, seed=args.seed))
              for c in cells]
    models += [(f"{m.cell} ({os.path.basename(path)})", m) for path in args.model for m in [load_model(path)]]
    flows = []
    for label, model in models:
        flows.append(gradient_flow(model, args.length, args.batch, args.seed, label))
        print(flows[-1].summary())
    title = f"gradient flow through time, adding problem T={args.length}, batch {args.batch}"
    print(f"wrote {plot_gradient_flow(flows, args.out, title)}")
