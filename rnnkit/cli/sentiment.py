"""`rnnkit train sentiment` and `rnnkit classify DIR "text"`: sentence polarity (rnnkit.tasks.sentiment)."""
from __future__ import annotations

from .options import add_config_options, config_from_args


def register(verbs, train_tasks):
    from ..tasks.sentiment import SentimentConfig

    t = train_tasks.add_parser("sentiment", help="train a BiLSTM sentence-polarity classifier (Movie Review)")
    t.add_argument("--out", required=True, help="run folder for the final model")
    add_config_options(t, SentimentConfig, skip={"out_dir"})
    t.set_defaults(func=train)

    p = verbs.add_parser("classify", help="the polarity of a sentence, with a trained sentiment model")
    p.add_argument("dir", help="run folder written by `rnnkit train sentiment`")
    p.add_argument("text", nargs="+", help="the sentence")
    p.set_defaults(func=classify)


def train(args):
    from ..tasks.sentiment import SentimentConfig, train_sentiment

    train_sentiment(config_from_args(SentimentConfig, args, out_dir=args.out))


def classify(args):
    from ..tasks.sentiment import load_classifier

    label, p = load_classifier(args.dir).classify(" ".join(args.text))
    print(f"{label}\t{p:.4f}")
