"""Tiny Shakespeare character LM: validation loss against wall-clock time.

    python bench/shakespeare.py --seconds 180      # the 3-minute target: validation loss <= 1.88 nats/char
    OPENBLAS_NUM_THREADS=2 python bench/shakespeare.py --seconds 2700 --hidden 512 --layers 2 --embed 64 \
        --unroll 100 --batch 32 --dropout 0.2 --lr 2e-3 --schedule cosine --warmup 50 --max-steps 3200 \
        --eval-every 400                           # the 45-minute target: <= 1.50 (reached 1.4119)

First 90% of $RNNKIT_DATA/tinyshakespeare/input.txt trains, the last 10% validates (nanoGPT's split).
The budget counts training and the periodic validations; the final validation runs after it.
Any CharLMConfig field can be overridden (--hidden 512 --lr 1e-3 ...); --help lists them.
BLAS runs on one thread (OPENBLAS_NUM_THREADS=1 unless already set): on a small shared machine
threads spinning against other processes cost more than they gain.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from rnnkit.cli.options import add_config_options, config_from_args  # noqa: E402
from rnnkit.lm import CharLMConfig, train_charlm  # noqa: E402
from rnnkit.paths import data_path  # noqa: E402

# tuned for the 3-minute budget on 2 shared cores
TUNED = dict(hidden=256, layers=1, embed=64, batch=32, unroll=64, eval_batch=32, optimizer="adam", lr=3e-3,
             clip=5.0, eval_every=150, log_every=10, seed=0, resume=False)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_options(p, CharLMConfig, skip={"text", "out"})
    p.add_argument("--out", default=None, help="run folder (default runs/shakespeare-<seconds>s)")
    p.set_defaults(**TUNED, seconds=180.0)
    args = p.parse_args(argv)
    text = str(data_path("tinyshakespeare", "input.txt").resolve())
    out = args.out or f"runs/shakespeare-{args.seconds:g}s"
    cfg = config_from_args(CharLMConfig, args, text=text, out=out)
    print("command: OPENBLAS_NUM_THREADS=%s python bench/shakespeare.py %s"
          % (os.environ["OPENBLAS_NUM_THREADS"], " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))))
    print(f"config: {cfg}")
    t0 = time.perf_counter()
    result = train_charlm(cfg)
    wall = time.perf_counter() - t0
    print("\nvalidation loss against wall-clock time (training + periodic validation):")
    print(f"{'step':>7} {'seconds':>9} {'val loss':>9} {'bits/char':>9}")
    for step, seconds, m in result.history["val"]:
        print(f"{step:7d} {seconds:9.1f} {m['loss']:9.4f} {m['loss'] / 0.6931471805599453:9.4f}")
    best = result.best_val_loss
    print(f"\nstopped: {result.stopped} after {result.steps} steps, {result.seconds:.1f}s of training "
          f"({wall:.1f}s in all, with setup and the final validation)")
    print(f"RESULT tinyshakespeare validation loss {result.val['loss']:.4f} nats/char (best {best:.4f}) "
          f"within a {cfg.seconds:g}s budget; checkpoint {result.checkpoint}")


if __name__ == "__main__":
    main()
