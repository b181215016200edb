"""`rnnkit train tagger` and `rnnkit tag DIR "words ..."`: part-of-speech tagging (rnnkit.tasks.tagger)."""
from __future__ import annotations


def register(verbs, train_tasks):
    t = train_tasks.add_parser("tagger", help="train a BiLSTM part-of-speech tagger on CoNLL-U files (UD English-EWT)")
    t.add_argument("--train", help="training CoNLL-U file (default: $RNNKIT_DATA/ud-english-ewt/en_ewt-ud-train.conllu)")
    t.add_argument("--dev", help="development CoNLL-U file (default: the EWT dev file)")
    t.add_argument("--out", required=True, help="run folder for checkpoints")
    t.add_argument("--max-steps", type=int, help="optimizer steps (default 3500, about 9 epochs of EWT)")
    t.add_argument("--seconds", type=float, help="wall-clock budget in seconds")
    t.add_argument("--batch", type=int, help="sentences per batch (default 32)")
    t.add_argument("--lr", type=float, help="Adam learning rate (default 2e-3)")
    t.add_argument("--eval-every", type=int, help="steps between evaluations on dev (default 500)")
    t.add_argument("--seed", type=int, help="random seed (default 0)")
    t.set_defaults(func=train)

    p = verbs.add_parser("tag", help="tag whitespace-separated words with a trained tagger")
    p.add_argument("dir", help="run folder written by `rnnkit train tagger`")
    p.add_argument("text", nargs="+", help="the sentence, words separated by spaces (\"I work at google .\")")
    p.set_defaults(func=tag)


def train(args):
    from ..tasks.tagger import TaggerConfig, train_tagger

    given = {k: getattr(args, a) for k, a in (("train", "train"), ("dev", "dev"), ("max_steps", "max_steps"),
                                               ("seconds", "seconds"), ("batch", "batch"), ("lr", "lr"),
                                               ("eval_every", "eval_every"), ("seed", "seed"))
             if getattr(args, a) is not None}
    config = TaggerConfig(out_dir=args.out, **given)
    result, dev, seconds = train_tagger(config)
    print(f"dev accuracy {100 * dev['accuracy']:.2f}% after {result.steps} steps ({seconds / 60:.1f} min); "
          f"model in {args.out}")


def tag(args):
    from ..tasks.tagger import load_tagger

    words = " ".join(args.text).split()
    tagger = load_tagger(args.dir)
    for w, t in zip(words, tagger.tag(words)):
        print(f"{w}\t{t}")
