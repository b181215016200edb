"""Penn Treebank word LM, Zaremba et al. (2014) "small": test perplexity <= 114.5 (paper: 120.7 valid, 114.5 test).

    python bench/ptb.py                    # the full run: 13 epochs (long: the lead schedules it)
    python bench/ptb.py --max-steps 5      # a smoke test

2 LSTM layers of 200 units, unroll 20, batch 20, 13 epochs, SGD lr 1 halved every epoch after the
4th, gradients clipped at global norm 5, weights U(-0.1, 0.1), no dropout. Zaremba's loss is summed
over the 20 unrolled steps; rnnkit's is the mean over all tokens, 20 times smaller, so the same
updates are lr 20 and clip 0.25 here (WordLMConfig's defaults). Data:
$RNNKIT_DATA/ptb/ptb.{train,valid,test}.txt. Validation after every epoch (10 streams); the test
set is read as one stream at the end. Any WordLMConfig field can be overridden; --help lists them.
BLAS runs on one thread unless OPENBLAS_NUM_THREADS is set.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from rnnkit.cli.options import add_config_options, config_from_args  # noqa: E402
from rnnkit.lm import WordLMConfig, train_wordlm  # noqa: E402
from rnnkit.paths import data_path  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_options(p, WordLMConfig, skip={"train", "valid", "test", "out"})
    p.add_argument("--out", default="runs/ptb-small", help="run folder (default runs/ptb-small)")
    p.set_defaults(resume=False, log_every=50)
    args = p.parse_args(argv)
    files = {k: str(data_path("ptb", f"ptb.{k}.txt").resolve()) for k in ("train", "valid", "test")}
    cfg = config_from_args(WordLMConfig, args, out=args.out, **files)
    print("command: OPENBLAS_NUM_THREADS=%s python bench/ptb.py %s"
          % (os.environ["OPENBLAS_NUM_THREADS"], " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))))
    print(f"config: {cfg}", flush=True)
    t0 = time.perf_counter()
    result = train_wordlm(cfg)
    wall = time.perf_counter() - t0
    print("\nvalidation perplexity per evaluation:")
    print(f"{'step':>7} {'seconds':>9} {'val ppl':>9}")
    for step, seconds, m in result.history["val"]:
        print(f"{step:7d} {seconds:9.1f} {math.exp(m['loss']):9.2f}")
    val = result.val or {}
    print(f"\nstopped: {result.stopped} after {result.steps} steps ({result.epochs} epochs), "
          f"{result.seconds:.1f}s of training, {wall:.1f}s wall time in all")
    print(f"RESULT PTB valid perplexity {math.exp(val['loss']):.2f}, test perplexity {val['test_perplexity']:.2f} "
          f"(target <= 114.5), wall time {wall / 60:.1f} min; checkpoint {result.checkpoint}")


if __name__ == "__main__":
    main()
