"""rnnkit against itself: two git revisions, a training step and inference, in turns.

    python bench/compare.py BASE [NEW] [--modes LSTM] [--sizes 100,32,256,256 35,20,650,650] [--rounds 6]

Each revision is checked out into a temporary git worktree (NEW defaults to HEAD). For every
configuration the two take turns, each in a fresh process: bench/speed.py's rnnkit worker (from
this checkout, so both are timed alike) with the revision's rnnkit first on the path. A round
runs both back to back, so a burst of load from another tenant tends to fall on both. Printed per
configuration: each revision's median time over the rounds, and the median, min and max of the
rounds' ratios BASE/NEW, so above 1 means NEW is faster.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import speed

HERE = os.path.dirname(os.path.abspath(__file__))


def git(*args):
    done = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def checkout(rev, root, name):
    """A worktree of rev at root/name; its rnnkit is what a worker with it on the path imports
    (run from root: a worker's own folder comes first on its path)."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    tree = os.path.join(root, name)
    git("worktree", "add", "--detach", tree, sha)
    env = dict(os.environ, PYTHONPATH=tree)
    found = subprocess.run([sys.executable, "-c", "import rnnkit; print(rnnkit.__file__)"], env=env, cwd=root,
                           check=True, capture_output=True, text=True).stdout.strip()
    if not found.startswith(tree):
        raise SystemExit(f"revision {rev}: its worktree's rnnkit is not the one imported ({found})")
    return sha, env


def size_arg(text):
    size = tuple(int(v) for v in text.split(","))
    if len(size) != 4 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"a size is T,B,I,H, four positive integers, got {text!r}")
    return size


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", help="a git revision: the reference")
    p.add_argument("new", nargs="?", default="HEAD", help="a git revision to compare with it (default HEAD)")
    p.add_argument("--modes", default="LSTM", help="comma-separated subset of RNN,LSTM,GRU (default LSTM)")
    p.add_argument("--sizes", nargs="+", type=size_arg, default=speed.GRID,
                   help="T,B,I,H each (default: speed.py's grid)")
    p.add_argument("--rounds", type=int, default=6, help="turns each revision takes per configuration (default 6)")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (default 7)")
    args = p.parse_args(argv)
    speed.require_positive(("--rounds", args.rounds), ("--repeats", args.repeats))
    modes = speed.parse_modes(args.modes)
    root = tempfile.mkdtemp(prefix="rnnkit-compare-")
    try:
        (base, base_env), (new, new_env) = checkout(args.base, root, "base"), checkout(args.new, root, "new")
        print(f"base {base[:12]} / new {new[:12]}: medians of {args.repeats} runs, {args.rounds} rounds in turns;"
              f" ratio base/new (> 1: new is faster)")
        for mode in modes:
            for size in args.sizes:
                runs = {"base": [], "new": []}
                for r in range(args.rounds):                          # who goes first alternates
                    order = [("base", base_env), ("new", new_env)][::1 if r % 2 == 0 else -1]
                    for name, env in order:
                        runs[name].append(speed.spawn("rnnkit", mode, *size, args.repeats, env=env, cwd=root))
                for key in ("train", "infer"):
                    b, n = [run[key] * 1e3 for run in runs["base"]], [run[key] * 1e3 for run in runs["new"]]
                    ratios = [x / y for x, y in zip(b, n)]
                    print(f"{mode:5} {str(size):22} {key:5}: base {statistics.median(b):8.2f} ms  new "
                          f"{statistics.median(n):8.2f} ms  ratio median {statistics.median(ratios):.3f}"
                          f" (min {min(ratios):.3f}, max {max(ratios):.3f})", flush=True)
    finally:
        for sub in os.listdir(root):
            git("worktree", "remove", "--force", os.path.join(root, sub))
        shutil.rmtree(root, ignore_errors=True)
    print(f"reproduce: python bench/compare.py {base[:7]} {new[:7]} --modes {args.modes} --sizes "
          + " ".join(",".join(map(str, s)) for s in args.sizes) + f" --rounds {args.rounds} --repeats {args.repeats}")


if __name__ == "__main__":
    main()
