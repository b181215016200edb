"""`rnnkit train charlm`, `rnnkit train wordlm`, `rnnkit sample`, `rnnkit eval`: language models."""
from __future__ import annotations

import sys

from .options import add_config_options, config_from_args


def register(verbs, train_tasks):
    from ..lm import CharLMConfig, WordLMConfig

    p = train_tasks.add_parser("charlm", help="train a character-level language model on a text file",
                               description="Train a character-level language model: the first 90% of --text "
                                           "trains, the last 10% validates. Checkpoints and curves.png go to --out; "
                                           "running again with the same --out resumes.")
    add_config_options(p, CharLMConfig, required={"text", "out"})
    p.set_defaults(func=run_train, config_class=CharLMConfig)

    p = train_tasks.add_parser("wordlm", help="train a word-level language model (defaults: Zaremba et al. small)",
                               description="Train a word-level language model on --train, validating on --valid. "
                                           "The defaults are the 'small' configuration of Zaremba et al. (2014).")
    add_config_options(p, WordLMConfig, required={"train", "valid", "out"})
    p.set_defaults(func=run_train, config_class=WordLMConfig)

    p = verbs.add_parser("sample", help="generate text from a trained language model",
                         description="Print text sampled from the language model saved in DIR.")
    p.add_argument("dir", metavar="DIR", help="run folder (or checkpoint folder) of a trained language model")
    p.add_argument("--prime", default=None, help="text the sample starts from (default: a newline, or <eos> for "
                                                  "a word model)")
    p.add_argument("--length", type=int, default=500, help="symbols to generate (default 500)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature; 0 is greedy (default 1)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely symbols only")
    p.add_argument("--seed", type=int, default=None, help="random seed: the same seed gives the same text")
    p.add_argument("--which", choices=("latest", "best"), default="latest", help="which checkpoint (default latest)")
    p.set_defaults(func=run_sample)

    p = verbs.add_parser("eval", help="loss and bits per character (or perplexity) of a language model on a text",
                         description="Evaluate the language model saved in DIR on a text file.")
    p.add_argument("dir", metavar="DIR", help="run folder (or checkpoint folder) of a trained language model")
    p.add_argument("--text", required=True, help="text file to evaluate on")
    p.add_argument("--batch", type=int, default=16, help="contiguous streams evaluated at once (default 16)")
    p.add_argument("--which", choices=("latest", "best"), default="latest", help="which checkpoint (default latest)")
    p.set_defaults(func=run_eval)


def run_train(args):
    from ..lm import CharLMConfig, train_charlm, train_wordlm

    cfg = config_from_args(args.config_class, args)
    result = (train_charlm if isinstance(cfg, CharLMConfig) else train_wordlm)(cfg)
    val = result.val or {}
    line = f"trained {result.steps} steps ({result.stopped}) in {result.seconds:.1f}s; train loss {result.train_loss:.4f}"
    if "loss" in val:
        line += f"; validation loss {val['loss']:.4f}"
    if "test_perplexity" in val:
        line += f"; test perplexity {val['test_perplexity']:.2f}"
    print(line)
    print(f"checkpoint: {result.checkpoint}")


def run_sample(args):
    from ..generate import sample
    from ..lm import load_lm

    if args.length < 0:
        raise ValueError(f"--length must be an integer >= 0, got {args.length}")
    model, vocab, _ = load_lm(args.dir, args.which)
    if args.prime is None:
        prime = "\n" if vocab.kind == "char" else "<eos>"
    else:
        prime = args.prime.replace("\\n", "\n").replace("\\t", "\t")     # "\n" typed in a shell
    text = sample(model, vocab, prime, args.length, args.temperature, args.top_k, args.seed)
    sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))


def run_eval(args):
    from ..lm import evaluate_file

    if args.batch < 1:
        raise ValueError(f"--batch must be a positive integer, got {args.batch}")
    m = evaluate_file(args.dir, args.text, args.which, args.batch)
    if m["kind"] == "char":
        print(f"loss {m['loss']:.4f} nats/char  {m['bits']:.4f} bits/char  ({m['tokens']} characters)")
    else:
        print(f"loss {m['loss']:.4f} nats/word  perplexity {m['perplexity']:.2f}  ({m['tokens']} words)")
