"""`rnnkit demo`: train a small LSTM on text shipped with Python and print what it learned."""
from __future__ import annotations


def register(verbs, train_tasks):
    p = verbs.add_parser("demo", help="train a small character LSTM on the Zen of Python (under a minute)")
    p.add_argument("--steps", type=int, default=600, help="optimizer steps (default 600)")
    p.add_argument("--seconds", type=float, default=100.0, help="wall-clock budget in seconds (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args):
    from ..demo import DemoConfig, run as demo

    if args.steps < 1:
        raise ValueError(f"--steps must be a positive integer, got {args.steps}")
    demo(DemoConfig(steps=args.steps, seconds=args.seconds, seed=args.seed))
