"""`rnnkit train sentiment` and `rnnkit classify DIR "text"`: sentence polarity (rnnkit.tasks.sentiment)."""
from __future__ import annotations


def register(verbs, train_tasks):
    t = train_tasks.add_parser("sentiment", help="train a BiLSTM sentence-polarity classifier (Movie Review)")
    t.add_argument("--pos", help="positive sentences, one a line (default: $RNNKIT_DATA/rt-polarity/rt-polarity.pos)")
    t.add_argument("--neg", help="negative sentences, one a line (default: $RNNKIT_DATA/rt-polarity/rt-polarity.neg)")
    t.add_argument("--encoding", help="the files' encoding (default latin-1)")
    t.add_argument("--out", required=True, help="run folder for the final model")
    t.add_argument("--folds", type=int, help="k-fold cross-validation before the final model (default 1: none)")
    t.add_argument("--max-steps", type=int, help="cap on optimizer steps per model (default: --epochs decide)")
    t.add_argument("--epochs", type=int, help="epochs per model, the best on dev is kept (default 4)")
    t.add_argument("--seed", type=int, help="random seed (default 0)")
    t.set_defaults(func=train)

    p = verbs.add_parser("classify", help="the polarity of a sentence, with a trained sentiment model")
    p.add_argument("dir", help="run folder written by `rnnkit train sentiment`")
    p.add_argument("text", nargs="+", help="the sentence")
    p.set_defaults(func=classify)


def train(args):
    from ..tasks.sentiment import SentimentConfig, train_sentiment

    given = {k: getattr(args, k) for k in ("pos", "neg", "encoding", "folds", "max_steps", "epochs", "seed")
             if getattr(args, k) is not None}
    train_sentiment(SentimentConfig(out_dir=args.out, **given))


def classify(args):
    from ..tasks.sentiment import load_classifier

    label, p = load_classifier(args.dir).classify(" ".join(args.text))
    print(f"{label}\t{p:.4f}")
