"""`rnnkit train translate` and `rnnkit translate DIR "sentence"`: encoder-decoder translation
(rnnkit.tasks.translate)."""
from __future__ import annotations

from .options import add_config_options, config_from_args


def register(verbs, train_tasks):
    from ..tasks.translate import TranslateConfig

    t = train_tasks.add_parser("translate", help="train an encoder-decoder translator (Multi30k German->English)")
    t.add_argument("--out", required=True, dest="out_dir", metavar="DIR", help="run folder for checkpoints")
    add_config_options(t, TranslateConfig, skip={"out_dir"})
    t.set_defaults(func=train)

    p = verbs.add_parser("translate", help="translate a sentence with a model trained by `rnnkit train translate`")
    p.add_argument("dir", help="run folder written by `rnnkit train translate`")
    p.add_argument("text", nargs="+", help="the sentence")
    p.add_argument("--beam", type=int, default=5, help="beam width (1: greedy; default 5)")
    p.add_argument("--attention-png", metavar="FILE", help="also save the attention heatmap (source x target)")
    p.set_defaults(func=translate)


def train(args):
    from ..tasks.translate import TranslateConfig, train_translate

    train_translate(config_from_args(TranslateConfig, args))


def translate(args):
    from . import UserError
    from ..tasks.translate import load_translator

    text = " ".join(args.text)
    if not text.strip():
        raise UserError("the sentence is empty: there is nothing to translate")
    if args.beam < 1:
        raise UserError(f"--beam must be a positive integer, got {args.beam}")
    translator = load_translator(args.dir)
    if args.attention_png and translator.model.attention == "none":
        raise UserError("this model has no attention (trained with --attention none): there is no heatmap to save")
    print(translator.translate([text], beam=args.beam)[0])
    if args.attention_png:
        translator.attention_png(text, args.attention_png, beam=args.beam)
