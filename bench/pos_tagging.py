"""Part-of-speech tagging on UD English-EWT: train the BiLSTM tagger (word + character CNN, no
pretrained embeddings), then UPOS accuracy on the test file and the training time.

    python bench/pos_tagging.py [--out runs/tagger] [--max-steps N]

Published: bilty (Plank et al. 2016) 94.43 without embeddings; Stanza 96.2 with a character LM.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")   # small matrices: one BLAS thread is faster than several sharing cores

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

from rnnkit.tasks.conllu_data import read_conllu  # noqa: E402
from rnnkit.tasks.tagger import TaggerConfig, default_path, load_tagger, train_tagger  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/tagger", help="run folder (default runs/tagger)")
    p.add_argument("--max-steps", type=int, default=TaggerConfig.max_steps)
    args = p.parse_args()
    print(f"command: rnnkit train tagger --out {args.out} --max-steps {args.max_steps}   "
          f"(then: rnnkit tag {args.out} \"I work at google .\")")
    t0 = time.perf_counter()
    result, dev, seconds = train_tagger(TaggerConfig(out_dir=args.out, max_steps=args.max_steps, progress=False))
    tagger = load_tagger(args.out)
    test = tagger.accuracy(read_conllu(default_path("test")))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), numpy float32")
    print(f"training: {result.steps} steps, {result.epochs} full epochs, {result.seconds / 60:.1f} min of training "
          f"and validation (the trainer's clock, summed over resumes); this process {seconds / 60:.1f} min")
    print(f"UPOS accuracy: dev {100 * dev['accuracy']:.2f}%  test {100 * test['accuracy']:.2f}%  "
          f"(goal >= 95.0; bilty without embeddings 94.43)")
    words = "I work at google .".split()
    print("example:", " ".join(f"{w}/{t}" for w, t in zip(words, tagger.tag(words))))
    print(f"total {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
