"""`rnnkit train tagger` and `rnnkit tag DIR "words ..."`: part-of-speech tagging (rnnkit.tasks.tagger)."""
from __future__ import annotations

from .options import add_config_options, config_from_args


def register(verbs, train_tasks):
    from ..tasks.tagger import TaggerConfig

    t = train_tasks.add_parser("tagger", help="train a BiLSTM part-of-speech tagger on CoNLL-U files (UD English-EWT)")
    t.add_argument("--out", required=True, help="run folder for checkpoints")
    add_config_options(t, TaggerConfig, skip={"out_dir"})
    t.set_defaults(func=train)

    p = verbs.add_parser("tag", help="tag whitespace-separated words with a trained tagger")
    p.add_argument("dir", help="run folder written by `rnnkit train tagger`")
    p.add_argument("text", nargs="+", help="the sentence, words separated by spaces (\"I work at google .\")")
    p.set_defaults(func=tag)


def train(args):
    from ..tasks.tagger import TaggerConfig, train_tagger

    config = config_from_args(TaggerConfig, args, out_dir=args.out)
    result, dev, seconds = train_tagger(config)
    print(f"dev accuracy {100 * dev['accuracy']:.2f}% after {result.steps} steps ({seconds / 60:.1f} min); "
          f"model in {args.out}")


def tag(args):
    from ..tasks.tagger import load_tagger

    words = " ".join(args.text).split()
    tagger = load_tagger(args.dir)
    for w, t in zip(words, tagger.tag(words)):
        print(f"{w}\t{t}")
