"""Sentence polarity on Movie Review (Pang & Lee 2005): 10-fold cross-validation accuracy of the
BiLSTM with max/mean pooling (random embeddings), then the final model on all data and 18
pairs of sentences with the same words in another order ("good, not bad" / "bad, not good").

    python bench/sentiment.py [--out runs/sentiment] [--folds 10]   # any SentimentConfig field: --help

Published (10-fold CV): Kim 2014 CNN-rand 76.1%; NBSVM (Wang & Manning 2012) 79.4%.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")   # small matrices: one BLAS thread is faster than several sharing cores

import argparse  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402

from rnnkit.cli.options import add_config_options, config_from_args  # noqa: E402
from rnnkit.tasks.sentiment import SentimentConfig, load_classifier, train_sentiment  # noqa: E402


# The same words in another order: the first of each pair is positive, the second negative. The
# first twelve were looked at while the negation sentences were designed (share 0.1 or 0.3, carrier
# words or not, the neutral-word form, 3 seeds each); the last six were written after the design was
# fixed and are the fair test.
PAIRS = [("the food was good, not bad at all", "the food was bad, not good at all"),
         ("good, not bad", "bad, not good"),
         ("funny, not boring", "boring, not funny"),
         ("a clever film, not a dull one", "a dull film, not a clever one"),
         ("it is moving and not predictable", "it is predictable and not moving"),
         ("not a mess, a delight", "not a delight, a mess"),
         ("a smart script, not a stupid one", "a stupid script, not a smart one"),
         ("charming and not tedious", "tedious and not charming"),
         ("the acting is solid, not weak", "the acting is weak, not solid"),
         ("not pretentious, just beautiful", "not beautiful, just pretentious"),
         ("it was fresh, not stale", "it was stale, not fresh"),
         ("exciting, not dull at all", "dull, not exciting at all"),
         ("a warm story, not a cold one", "a cold story, not a warm one"),
         ("inventive and not derivative", "derivative and not inventive"),
         ("the ending is satisfying, not silly", "the ending is silly, not satisfying"),
         ("not tiresome, just wonderful", "not wonderful, just tiresome"),
         ("thoughtful, not shallow", "shallow, not thoughtful"),
         ("the cast is lively, not wooden", "the cast is wooden, not lively")]
CHOSEN_ON = 12


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/sentiment", help="run folder for the final model (default runs/sentiment)")
    add_config_options(p, SentimentConfig, skip={"out_dir"})
    p.set_defaults(folds=10)
    args = p.parse_args(argv)
    print("command: python bench/sentiment.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])))
    config = config_from_args(SentimentConfig, args, out_dir=args.out)
    print(f"config: {config}")
    report = train_sentiment(config)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), numpy float32; "
          f"{report.seconds / 60:.1f} min in all")
    print("per-fold test accuracy (%):", " ".join(f"{100 * a:.2f}" for a in report.fold_accuracies))
    if report.mean_accuracy is not None:
        print(f"{args.folds}-fold CV accuracy: {100 * report.mean_accuracy:.2f}%  "
              "(goal >= 77; Kim 2014 CNN-rand 76.1, NBSVM 79.4)")
    clf = load_classifier(args.out)
    right = []
    for good, bad in PAIRS:
        (lg, pg), (lb, pb) = clf.classify(good), clf.classify(bad)
        right.append(lg == "positive" and lb == "negative")
        for text, label, prob in ((good, lg, pg), (bad, lb, pb)):
            print(f"rnnkit classify {args.out} \"{text}\"  ->  {label} {prob:.4f}")
    print(f"word-order pairs labelled right (first positive, second negative): {sum(right[:CHOSEN_ON])} of "
          f"{CHOSEN_ON} seen while designing, {sum(right[CHOSEN_ON:])} of {len(PAIRS) - CHOSEN_ON} held out")


if __name__ == "__main__":
    main()
