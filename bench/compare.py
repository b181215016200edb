"""rnnkit against itself: two git revisions, a training step and inference, in turns.

    python bench/compare.py BASE [NEW] [--modes LSTM] [--sizes 100,32,256,256 35,20,650,650] [--rounds 6]

Each revision is checked out into a temporary git worktree (NEW defaults to HEAD). For every
configuration the two take turns, each in a fresh process: bench/speed.py's rnnkit worker (from
this checkout, so both are timed alike) with the revision's rnnkit first on the path. A round
runs both back to back, so a burst of load from another tenant tends to fall on both. Printed per
configuration: each revision's median time over the rounds, and the median, quartiles, min and max
of the rounds' ratios BASE/NEW, so above 1 means NEW is faster.

    python bench/compare.py BASE [NEW] --in-process ...

runs both revisions in one fresh process per configuration instead: each revision's rnnkit is
copied in as a package of its own name (rnnkit_base, rnnkit_new; rnnkit imports itself only
relatively), and a round times one, then the other, back to back, each the median of --repeats
calls. Fresh processes differ by where the allocator and the kernel place their memory; in one
process the two share that, and more of the machine's slow phases. The same revision against
itself, LSTM (100, 32, 256, 256), 15 rounds (bench/SPEED.md, session 47): the inference ratios'
quartiles 1.000-1.021 in one process against 0.960-1.012 in fresh processes; training
0.992-1.016 against 0.979-1.009.
"""
from __future__ import annotations

import argparse
import importlib
import json
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


NAMES = ("base", "new")


def in_turn(r):
    """The two revisions in round r's order: who goes first alternates."""
    return NAMES[::1 if r % 2 == 0 else -1]


def pair_worker(folder, mode, T, B, I, H, rounds, repeats):
    """--in-process: rnnkit_base and rnnkit_new from folder, timed in turns in this process; prints
    each one's per-round medians, training and inference, as JSON."""
    sys.path.insert(0, folder)
    steps = {}
    for name in NAMES:
        package = f"rnnkit_{name}"
        found = importlib.import_module(package).__file__
        if not found.startswith(os.path.join(folder, package)):
            raise SystemExit(f"{package} is not the copy in {folder} ({found})")
        steps[name] = speed.setup("rnnkit", mode, T, B, I, H, package=package)
        for step in steps[name]:
            step()                                                     # compiles, or loads the cache
    times = {name: {"train": [], "infer": []} for name in NAMES}
    for r in range(rounds):
        for name in in_turn(r):
            for key, step in zip(("train", "infer"), steps[name]):
                times[name][key].append(speed.median_time(step, repeats))
    print(json.dumps(times))


def fresh_processes(root, envs, mode, size, rounds, repeats):
    """Each revision's runs, {name: [{"train": s, "infer": s, ...}, ...]}, a fresh worker process each."""
    runs = {name: [] for name in NAMES}
    for r in range(rounds):
        for name in in_turn(r):
            runs[name].append(speed.spawn("rnnkit", mode, *size, repeats, env=envs[name], cwd=root))
    return runs


def in_process(root, envs, mode, size, rounds, repeats):
    """Each revision's runs as fresh_processes gives them, both revisions in one process (pair_worker)."""
    folder = os.path.join(root, "packages")
    for name in NAMES:
        target = os.path.join(folder, f"rnnkit_{name}")
        if not os.path.isdir(target):                                  # once: later configurations reuse
            shutil.copytree(os.path.join(root, name, "rnnkit"), target)   # the Numba cache it gains
    times = speed.spawn(folder, mode, *size, rounds, repeats, cwd=root, script=__file__, flag="--pair-worker")
    return {name: [dict(train=tr, infer=inf) for tr, inf in zip(t["train"], t["infer"])] for name, t in times.items()}


def size_arg(text):
    size = tuple(int(v) for v in text.split(","))
    if len(size) != 4 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"a size is T,B,I,H, four positive integers, got {text!r}")
    return size


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--pair-worker"]:                                   # in_process's own call
        folder, mode, *nums = argv[1:]
        return pair_worker(folder, mode, *map(int, nums))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", help="a git revision: the reference")
    p.add_argument("new", nargs="?", default="HEAD", help="a git revision to compare with it (default HEAD)")
    p.add_argument("--modes", default="LSTM", help="comma-separated subset of RNN,LSTM,GRU (default LSTM)")
    p.add_argument("--sizes", nargs="+", type=size_arg, default=speed.GRID,
                   help="T,B,I,H each (default: speed.py's grid)")
    p.add_argument("--rounds", type=int, default=6, help="turns each revision takes per configuration (default 6)")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (default 7)")
    p.add_argument("--in-process", action="store_true", help="both revisions in one process per configuration")
    args = p.parse_args(argv)
    speed.require_positive(("--rounds", args.rounds), ("--repeats", args.repeats))
    modes = speed.parse_modes(args.modes)
    root = tempfile.mkdtemp(prefix="rnnkit-compare-")
    try:
        (base, base_env), (new, new_env) = checkout(args.base, root, "base"), checkout(args.new, root, "new")
        print(f"base {base[:12]} / new {new[:12]}: medians of {args.repeats} runs, {args.rounds} rounds in turns"
              f"{', in one process' if args.in_process else ''}; ratio base/new (> 1: new is faster)")
        timed = in_process if args.in_process else fresh_processes
        for mode in modes:
            for size in args.sizes:
                runs = timed(root, dict(base=base_env, new=new_env), mode, size, args.rounds, args.repeats)
                for key in ("train", "infer"):
                    b, n = [run[key] * 1e3 for run in runs["base"]], [run[key] * 1e3 for run in runs["new"]]
                    ratios = [x / y for x, y in zip(b, n)]
                    low, _, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
                    print(f"{mode:5} {str(size):22} {key:5}: base {statistics.median(b):8.2f} ms  new "
                          f"{statistics.median(n):8.2f} ms  ratio median {statistics.median(ratios):.3f}"
                          f" (quartiles {low:.3f}-{high:.3f}, min {min(ratios):.3f}, max {max(ratios):.3f})",
                          flush=True)
    finally:
        for name in NAMES:
            if os.path.isdir(os.path.join(root, name)):
                git("worktree", "remove", "--force", os.path.join(root, name))
        shutil.rmtree(root, ignore_errors=True)
    print(f"reproduce: python bench/compare.py {base[:7]} {new[:7]} --modes {args.modes} --sizes "
          + " ".join(",".join(map(str, s)) for s in args.sizes) + f" --rounds {args.rounds} --repeats {args.repeats}"
          + (" --in-process" if args.in_process else ""))


if __name__ == "__main__":
    main()
