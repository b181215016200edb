"""Character- and word-level language models end to end: read, train, evaluate, sample.

    result = train_charlm(CharLMConfig(text="input.txt", out="runs/shakespeare", seconds=180))
    model, vocab, config = load_lm("runs/shakespeare")
    print(sample(model, vocab, "ROMEO:", 500, temperature=0.8, seed=1))
    metrics = evaluate_file("runs/shakespeare", "input.txt")   # loss, bits per char or perplexity

The command line (rnnkit.cli.lm) fills these configs; nothing here parses arguments.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from . import checkpoint as ckpt_io
from . import optim
from .models import LanguageModel, ModelConfig, evaluate_lm, lm_batches, model_from_config
from .text import CharVocab, WordVocab, read_text, read_words, split_train_valid, vocab_from_json
from .train import Trainer, TrainConfig, TrainResult


@dataclass
class LMConfig:
    out: str = "runs/lm"              # run folder: checkpoints, curves.png
    # model
    hidden: int = 512                 # recurrent units per layer
    layers: int = 2                   # stacked recurrent layers
    cell: str = "lstm"                # "rnn", "lstm" or "gru"
    embed: int | None = None          # embedding size; None: the hidden size
    dropout: float = 0.0              # dropout on embeddings, between layers and before the softmax
    variational: bool = False         # one dropout mask for all time steps of a sequence
    init_scale: float | None = None   # initialise every weight U(-s, s); None: PyTorch's defaults
    forget_bias: float | None = None  # LSTM forget-gate bias; None: PyTorch's default
    # data
    batch: int = 64                   # contiguous streams per batch
    unroll: int = 100                 # truncated-BPTT length (time steps per batch)
    eval_batch: int = 32              # streams when evaluating
    # optimization
    optimizer: str = "adam"           # "sgd", "rmsprop", "adam" or "adamw"
    lr: float = 2e-3                  # (peak) learning rate
    momentum: float = 0.0             # SGD / RMSprop momentum
    weight_decay: float = 0.0         # L2 (sgd, rmsprop, adam) or decoupled (adamw) weight decay
    schedule: str = "constant"        # "constant", "cosine" (to 0 at max_steps) or "step"
    warmup: int = 0                   # cosine: linear warm-up steps
    decay: float = 0.5                # step: multiply the lr by this ...
    decay_every: float = 1.0          # step: ... every this many epochs ...
    decay_after: float = 4.0          # step: ... the first time after this many epochs
    clip: float | None = 5.0          # clip gradients to this global norm; None: no clipping
    # run
    max_steps: int = 100_000          # stop after this many optimizer steps
    max_epochs: int | None = None     # stop after this many epochs; None: no limit
    seconds: float | None = None      # wall-clock budget, evaluation included; None: no limit
    eval_every: int = 500             # steps between validations (0: at the end only)
    eval_at_epoch_end: bool = False   # validate after every epoch as well
    patience: int | None = None       # early stopping after this many validations without improvement
    log_every: int = 20               # steps between progress updates
    seed: int = 0                     # weights, dropout and data order
    progress: bool = True             # show a progress bar
    resume: bool = True               # continue from the run folder's latest checkpoint if there is one


@dataclass
class CharLMConfig(LMConfig):
    text: str = ""                    # a UTF-8 text file: the first 90% trains, the last 10% validates
    valid_fraction: float = 0.1       # the share of the text kept for validation


@dataclass
class WordLMConfig(LMConfig):
    train: str = ""                   # training text, whitespace-separated words, one sentence a line
    valid: str = ""                   # validation text
    test: str | None = None           # test text, evaluated at the end (one stream) when given
    hidden: int = 200                 # Zaremba et al. 2014 "small" configuration ...
    batch: int = 20
    unroll: int = 20
    eval_batch: int = 10
    optimizer: str = "sgd"
    # Zaremba et al. use lr 1 and clip 5 on the loss summed over the unroll (mean over the batch);
    # rnnkit's loss is the mean over all unroll * batch tokens, a factor `unroll` smaller, so the
    # same updates are lr = 1 * unroll and clip = 5 / unroll.
    lr: float = 20.0
    clip: float = 0.25
    schedule: str = "step"
    init_scale: float | None = 0.1
    max_epochs: int | None = 13
    eval_every: int = 0
    eval_at_epoch_end: bool = True


def _check(cfg: LMConfig):
    if cfg.optimizer not in optim.OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(optim.OPTIMIZERS)}, got {cfg.optimizer!r}")
    if cfg.schedule not in ("constant", "cosine", "step"):
        raise ValueError(f"schedule must be 'constant', 'cosine' or 'step', got {cfg.schedule!r}")
    for name in ("batch", "unroll", "eval_batch"):
        if not isinstance(getattr(cfg, name), int) or getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be a positive integer, got {getattr(cfg, name)!r}")
    if not isinstance(cfg.max_steps, int) or cfg.max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {cfg.max_steps!r}")


def make_optimizer(model, cfg: LMConfig):
    kw = dict(lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer in ("sgd", "rmsprop"):
        kw["momentum"] = cfg.momentum
    return optim.OPTIMIZERS[cfg.optimizer](model, **kw)


def make_schedule(cfg: LMConfig, steps_per_epoch: int):
    if cfg.schedule == "cosine":
        return optim.Cosine(cfg.lr, T_max=cfg.max_steps, warmup=cfg.warmup)
    if cfg.schedule == "step":
        return optim.StepDecay(cfg.lr, step_size=max(1, round(cfg.decay_every * steps_per_epoch)), gamma=cfg.decay,
                               first=max(1, round(cfg.decay_after * steps_per_epoch)))
    return optim.Constant(cfg.lr)


def build_model(cfg: LMConfig, vocab_size: int) -> LanguageModel:
    return LanguageModel(ModelConfig(
        input_size=vocab_size, output_size=vocab_size, vocab_input=True, embed=cfg.embed, hidden=cfg.hidden,
        layers=cfg.layers, cell=cfg.cell, dropout=cfg.dropout, variational=cfg.variational,
        init_scale=cfg.init_scale, forget_bias=cfg.forget_bias, seed=cfg.seed))


def _train(cfg: LMConfig, kind: str, vocab, train_ids, valid_ids, log=None) -> TrainResult:
    model = build_model(cfg, len(vocab))
    batches = lm_batches(train_ids, cfg.batch, cfg.unroll, seed=cfg.seed)
    steps_per_epoch = sum(1 for _ in batches(0))
    opt = make_optimizer(model, cfg)
    evaluate = (lambda m: evaluate_lm(m, valid_ids, cfg.eval_batch, cfg.unroll)) if len(valid_ids) > 1 else None
    tc = TrainConfig(out_dir=cfg.out, max_steps=cfg.max_steps, max_epochs=cfg.max_epochs, seconds=cfg.seconds,
                     clip_norm=cfg.clip, log_every=cfg.log_every, eval_every=cfg.eval_every,
                     eval_at_epoch_end=cfg.eval_at_epoch_end, patience=cfg.patience, resume=cfg.resume,
                     progress=cfg.progress)
    meta = {"task": kind, "lm_config": asdict(cfg), "steps_per_epoch": steps_per_epoch}
    trainer = Trainer(model, opt, batches, evaluate=evaluate, config=tc,
                      schedule=make_schedule(cfg, steps_per_epoch), meta=meta, vocab=vocab.to_json(), log=log)
    return trainer.fit()


def train_charlm(cfg: CharLMConfig, log=None) -> TrainResult:
    """Train a character-level model on cfg.text (first 90% train, last 10% validation)."""
    _check(cfg)
    text = read_text(cfg.text, min_chars=2)
    train_text, valid_text = split_train_valid(text, 1 - cfg.valid_fraction)
    vocab = CharVocab.build(text)
    need = cfg.batch * (2 * cfg.unroll) + 1
    if len(train_text) < need:
        raise ValueError(f"text file {cfg.text!r} is too short: {len(train_text)} training characters, need at "
                         f"least {need} for batch {cfg.batch} and unroll {cfg.unroll}")
    return _train(cfg, "charlm", vocab, vocab.encode(train_text), vocab.encode(valid_text), log)


def word_ids(vocab, tokens, what: str) -> np.ndarray:
    """Ids of words; words outside the vocabulary become <unk> when the vocabulary has one."""
    if "<unk>" in vocab.index:
        unk = vocab.index["<unk>"]
        return np.array([vocab.index.get(t, unk) for t in tokens], np.int64)
    return vocab.encode(tokens, what=what)


def train_wordlm(cfg: WordLMConfig, log=None) -> TrainResult:
    """Train a word-level model on cfg.train, validating on cfg.valid (and testing on cfg.test)."""
    _check(cfg)
    if not cfg.train or not cfg.valid:
        raise ValueError("train wordlm needs both a training file and a validation file")
    train_tokens = read_words(cfg.train)
    vocab = WordVocab.build(train_tokens)
    need = cfg.batch * (2 * cfg.unroll) + 1
    if len(train_tokens) < need:
        raise ValueError(f"training file {cfg.train!r} is too short: {len(train_tokens)} words, need at least "
                         f"{need} for batch {cfg.batch} and unroll {cfg.unroll}")
    valid_ids = word_ids(vocab, read_words(cfg.valid), f"validation file {cfg.valid!r}")
    result = _train(cfg, "wordlm", vocab, vocab.encode(train_tokens), valid_ids, log)
    if cfg.test:
        model, vocab, _ = load_lm(cfg.out)
        test = evaluate_tokens(model, vocab, read_words(cfg.test), 1, cfg.unroll)
        result.val = dict(result.val or {}, test_loss=test["loss"], test_perplexity=test["perplexity"])
    return result


def load_lm(path, which: str = "latest"):
    """(model in eval mode, vocabulary, config.json) from a run folder or checkpoint folder."""
    ck = ckpt_io.load_task(path, ("charlm", "wordlm"), which, needs_vocab=True)
    vocab = vocab_from_json(ck.vocab)
    model = model_from_config(ck.config.get("model_class"), ck.config.get("model", {}))
    model.load_state_dict(ck.weights)
    return model.eval(), vocab, ck.config


def evaluate_tokens(model, vocab, tokens, batch: int = 1, unroll: int = 128) -> dict:
    """Loss (nats per token), bits per token and perplexity of a model on a text."""
    ids = word_ids(vocab, tokens, "the text") if vocab.kind == "word" else vocab.encode(tokens, what="the text")
    if len(ids) < 2:
        raise ValueError(f"the text is too short to evaluate: {len(ids)} token(s)")
    batch = max(1, min(batch, (len(ids) - 1) // 2))
    model.eval()
    m = evaluate_lm(model, ids, batch, unroll)
    return {"loss": m["loss"], "bits": m["loss"] / math.log(2), "perplexity": math.exp(min(m["loss"], 700)),
            "tokens": m["tokens"]}


def evaluate_file(path, text_file, which: str = "latest", batch: int = 1) -> dict:
    model, vocab, config = load_lm(path, which)
    if vocab.kind == "word":
        tokens = read_words(text_file)
    else:
        tokens = read_text(text_file, min_chars=2)
    return dict(evaluate_tokens(model, vocab, tokens, batch), kind=vocab.kind)
