"""`rnnkit bench speed`: run bench/speed.py (rnnkit against PyTorch on this CPU) from a source checkout."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from . import UserError


def register(verbs, train_tasks):
    p = verbs.add_parser("bench", help="benchmarks against PyTorch (needs a source checkout and torch)")
    which = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    speed = which.add_parser("speed", help="training and inference time against PyTorch (a few minutes)")
    speed.add_argument("--quick", action="store_true", help="a smaller grid and 3 repeats (a smoke test)")
    speed.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 5)")
    speed.add_argument("--rounds", type=int, default=None, help="turns each library takes per configuration (default 3)")
    speed.add_argument("--modes", default="RNN,LSTM,GRU", help="comma-separated subset of RNN,LSTM,GRU")
    speed.set_defaults(func=run_speed)


def run_speed(args):
    script = Path(__file__).resolve().parents[2] / "bench" / "speed.py"
    if not script.is_file():
        raise UserError(f"benchmark script {str(script)!r} not found: run from a source checkout of rnnkit")
    cmd = [sys.executable, str(script), "--modes", args.modes]
    if args.quick:
        cmd.append("--quick")
    for name in ("repeats", "rounds"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be a positive integer, got {value}")
        if value is not None:
            cmd += [f"--{name}", str(value)]
    done = subprocess.run(cmd)
    if done.returncode != 0:
        raise UserError(f"the benchmark exited with status {done.returncode}")
