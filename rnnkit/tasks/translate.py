"""Translation (German -> English, Multi30k): subword tokenization, batching, training, BLEU.

    config = TranslateConfig(out_dir="runs/translate", attention="additive", seconds=90 * 60)
    report = train_translate(config)                  # Trainer run; checkpoints in out_dir
    tr = load_translator("runs/translate")
    tr.translate(["Ein Mann fährt Fahrrad."], beam=5)  # ["A man is riding a bike."]
    tr.bleu(src_lines, ref_lines)                      # sacreBLEU on detokenized output

Tokens are SentencePiece unigram subwords (Kudo 2018), one model per language, trained on the
training side of the corpus at the start of a run and stored in the checkpoint's vocab.json
(nothing is downloaded at run time). Ids 0-3 are <pad>, <unk>, <s>, </s>. The source gets </s>
appended; the decoder reads <s> y_1 .. y_n and predicts y_1 .. y_n </s>. Detokenization is
SentencePiece's own decode, so BLEU is sacreBLEU's on plain text against the raw references.
"""
from __future__ import annotations

import base64
import gzip
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import checks
from ..grad_mode import no_grad
from ..paths import read_user_bytes
from ..seq2seq import ATTENTIONS, Seq2Seq

PAD, UNK, BOS, EOS = 0, 1, 2, 3


@dataclass
class TranslateConfig:
    src: str | None = None          # training source sentences, one a line (.gz read as gzip); None: Multi30k train.de
    tgt: str | None = None          # training target sentences, line-aligned with src; None: Multi30k train.en
    valid_src: str | None = None    # validation source; None: Multi30k val.de
    valid_tgt: str | None = None    # validation target; None: Multi30k val.en
    out_dir: str | None = None      # run folder: checkpoints, curves.png, SentencePiece models
    attention: str = "additive"     # additive (Bahdanau), dot or general (Luong), none (single-vector bottleneck)
    encoder: str = "gru"            # bidirectional encoder cell: gru or lstm
    src_vocab: int = 8000           # SentencePiece vocabulary size of the source language
    tgt_vocab: int = 6000           # SentencePiece vocabulary size of the target language
    embed: int = 256                # embedding size, source and target
    enc_hidden: int = 256           # encoder units per direction (the memory is twice this)
    dec_hidden: int = 512           # decoder GRU units
    attn_size: int = 256            # additive attention's hidden size
    out_size: int = 256             # deep-output layer size before the softmax
    dropout: float = 0.3            # dropout on embeddings and on the deep output
    max_tokens: int = 64            # training pairs longer than this (subwords, either side) are skipped
    batch: int = 96                 # sentence pairs per batch (sorted by length within pools)
    lr: float = 2e-3                # Adam peak learning rate
    warmup: int = 200               # linear warm-up steps
    min_lr: float = 5e-5            # the cosine decay ends here
    clip_norm: float = 1.0          # clip the gradients' global norm
    max_steps: int = 100_000        # stop after this many optimizer steps
    epochs: int | None = None       # stop after this many epochs (None: steps / seconds decide)
    seconds: float | None = None    # wall-clock training budget; the lr decay follows time or steps, whichever leads
    eval_every: int = 500           # steps between validations (perplexity; the best is kept)
    beam: int = 5                   # beam width for the final BLEU (1: greedy)
    len_alpha: float = 0.7          # length normalisation: score = log p / length ** len_alpha
    seed: int = 0                   # seeds the weights, dropout and batch order
    progress: bool = False          # show a progress bar

    def __post_init__(self):
        checks.one_of("attention", self.attention, set(ATTENTIONS))
        checks.one_of("encoder", self.encoder, {"gru", "lstm"})
        for name in ("src_vocab", "tgt_vocab", "embed", "enc_hidden", "dec_hidden", "attn_size", "out_size",
                     "max_tokens", "batch", "eval_every", "beam"):
            checks.positive_int(name, getattr(self, name))
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {self.max_steps!r}")
        if self.epochs is not None:
            checks.positive_int("epochs", self.epochs)
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"seconds must be positive or None, got {self.seconds!r}")
        if self.attention == "dot" and self.dec_hidden != 2 * self.enc_hidden:
            raise ValueError(f"dot attention needs dec_hidden == 2 * enc_hidden, got dec_hidden={self.dec_hidden} "
                             f"and enc_hidden={self.enc_hidden}")
        checks.probability("dropout", self.dropout)
        if not self.len_alpha >= 0:
            raise ValueError(f"len_alpha must be >= 0, got {self.len_alpha!r}")


# --- data ---------------------------------------------------------------------------------------------
def default_path(split: str, lang: str) -> Path:
    """$RNNKIT_DATA/multi30k/<split>.<lang>.gz (split: train, val, test_2016_flickr)."""
    from ..paths import data_path

    return data_path("multi30k", f"{split}.{lang}.gz")


def read_lines(path, what: str) -> list[str]:
    """The lines of a UTF-8 text file (gzip when it ends in .gz), without their line ends."""
    path = Path(path)
    data = read_user_bytes(path, f"{what} file")
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ValueError(f"{what} file {str(path)!r} is not readable gzip: {e}") from None
    if b"\0" in data:
        raise ValueError(f"{what} file {str(path)!r} is not text (it holds NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} file {str(path)!r} is not UTF-8: {e}") from None
    return text.splitlines()


def read_parallel(src, tgt, what: str = "training") -> tuple[list[str], list[str]]:
    """Line-aligned sentence pairs; different line counts or an empty line are errors naming the file."""
    s, t = read_lines(src, f"{what} source"), read_lines(tgt, f"{what} target")
    if len(s) != len(t):
        raise ValueError(f"{what} files are not parallel: {str(src)!r} has {len(s)} lines but {str(tgt)!r} "
                         f"has {len(t)}")
    if not s:
        raise ValueError(f"{what} source file {str(src)!r} holds no sentences")
    for side, path, lines in (("source", src, s), ("target", tgt, t)):
        for i, line in enumerate(lines):
            if not line.strip():
                raise ValueError(f"line {i + 1} of {what} {side} file {str(path)!r} is empty")
    return s, t


# --- subwords -----------------------------------------------------------------------------------------
def train_sentencepiece(lines: list[str], vocab_size: int) -> bytes:
    """A SentencePiece unigram model (serialized) trained on `lines`; ids 0-3 <pad> <unk> <s> </s>."""
    import io

    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buf, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS, hard_vocab_limit=False,
        num_threads=2, minloglevel=2)
    return buf.getvalue()


class Subwords:
    """Source and target SentencePiece models: text <-> ids."""

    def __init__(self, src_model: bytes, tgt_model: bytes):
        import sentencepiece as spm

        self.src_model, self.tgt_model = src_model, tgt_model
        self.src = spm.SentencePieceProcessor(model_proto=src_model)
        self.tgt = spm.SentencePieceProcessor(model_proto=tgt_model)

    @classmethod
    def train(cls, src_lines, tgt_lines, src_vocab: int, tgt_vocab: int) -> Subwords:
        return cls(train_sentencepiece(src_lines, src_vocab), train_sentencepiece(tgt_lines, tgt_vocab))

    def encode_src(self, lines) -> list[list[int]]:
        return [ids + [EOS] for ids in self.src.encode(list(lines))]

    def encode_tgt(self, lines) -> list[list[int]]:
        return self.tgt.encode(list(lines))

    def decode_tgt(self, ids) -> list[str]:
        return self.tgt.decode([list(map(int, x)) for x in ids])

    def to_json(self) -> dict:
        return {"kind": "translate-sentencepiece", "src_model": base64.b64encode(self.src_model).decode("ascii"),
                "tgt_model": base64.b64encode(self.tgt_model).decode("ascii")}

    @classmethod
    def from_json(cls, d) -> Subwords:
        if not isinstance(d, dict) or d.get("kind") != "translate-sentencepiece":
            raise ValueError("vocab.json is not a translation vocabulary: expected kind 'translate-sentencepiece'")
        return cls(base64.b64decode(d["src_model"]), base64.b64decode(d["tgt_model"]))

    def save(self, folder) -> None:
        """src.model and tgt.model, loadable by sentencepiece.SentencePieceProcessor(model_file=...)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "src.model").write_bytes(self.src_model)
        (folder / "tgt.model").write_bytes(self.tgt_model)


# --- batches ------------------------------------------------------------------------------------------
def pad(seqs, dtype=np.int64):
    """(ids (T, B) padded with PAD, lengths (B,))."""
    lengths = np.array([len(s) for s in seqs], np.int64)
    ids = np.full((int(lengths.max()), len(seqs)), PAD, dtype)
    for b, s in enumerate(seqs):
        ids[:len(s), b] = s
    return ids, lengths


def make_batch(src_ids, tgt_ids):
    """(src, src_len, tgt_in, tgt_out, tgt_mask) from encoded pairs: tgt_in = <s> y, tgt_out = y </s>."""
    src, src_len = pad(src_ids)
    tgt_in, _ = pad([[BOS] + t for t in tgt_ids])
    tgt_out, tgt_len = pad([t + [EOS] for t in tgt_ids])
    mask = (np.arange(tgt_out.shape[0])[:, None] < tgt_len[None, :]).astype(np.float32)
    return src, src_len, tgt_in, tgt_out, mask


def length_batches(lengths, batch: int, rng=None, pool: int = 50):
    """Lists of indices with similar lengths: shuffled (when rng), sorted within pools of pool*batch."""
    order = np.arange(len(lengths)) if rng is None else rng.permutation(len(lengths))
    groups = []
    for s in range(0, len(order), pool * batch):
        idx = sorted(order[s:s + pool * batch], key=lambda i: lengths[i])
        groups += [idx[i:i + batch] for i in range(0, len(idx), batch)]
    if rng is not None:
        groups = [groups[g] for g in rng.permutation(len(groups))]
    return groups


def perplexity(model: Seq2Seq, src_ids, tgt_ids, batch: int = 128) -> dict:
    """Teacher-forced cross-entropy per target subword (</s> included) and its exponential."""
    total, n = 0.0, 0
    with no_grad():
        for idx in length_batches([len(s) for s in src_ids], batch):
            b = make_batch([src_ids[i] for i in idx], [tgt_ids[i] for i in idx])
            loss, k = model.loss(b)
            total, n = total + loss * k, n + k
    model._cache = model._dlogits = None
    mean = total / max(n, 1)
    return {"loss": mean, "ppl": math.exp(min(mean, 50.0))}


# --- the translator -----------------------------------------------------------------------------------
class Translator:
    """A trained model and its subwords: text in, text out."""

    def __init__(self, model: Seq2Seq, subwords: Subwords, len_alpha: float = 0.7):
        self.model, self.subwords, self.len_alpha = model.eval(), subwords, len_alpha

    def hypotheses(self, sentences: list[str], beam: int = 5, batch: int = 64, alpha: float | None = None):
        """The best hypothesis (rnnkit.decode.Hypothesis) for each sentence, in the input's order."""
        from ..decode import beam_search, greedy

        for i, s in enumerate(sentences):
            if not s.strip():
                raise ValueError(f"sentence {i + 1} is empty: there is nothing to translate")
        alpha = self.len_alpha if alpha is None else alpha
        src_ids = self.subwords.encode_src(sentences)
        out = [None] * len(sentences)
        for idx in length_batches([len(s) for s in src_ids], batch):
            src, src_len = pad([src_ids[i] for i in idx])
            if beam == 1:
                hyps = greedy(self.model, src, src_len, bos=BOS, eos=EOS, alpha=alpha)
            else:
                hyps = beam_search(self.model, src, src_len, bos=BOS, eos=EOS, beam=beam, alpha=alpha)
            for i, h in zip(idx, hyps):
                out[i] = h
        return out

    def translate(self, sentences: list[str], beam: int = 5, batch: int = 64) -> list[str]:
        hyps = self.hypotheses(sentences, beam, batch)
        return self.subwords.decode_tgt([h.tokens for h in hyps])

    def bleu(self, src_lines, ref_lines, beam: int = 5) -> dict:
        """sacreBLEU (cased, and lowercased) of the translations of src_lines against ref_lines."""
        import sacrebleu

        hyps = self.translate(src_lines, beam)
        return {"bleu": sacrebleu.corpus_bleu(hyps, [ref_lines]).score,
                "bleu_lc": sacrebleu.corpus_bleu(hyps, [ref_lines], lowercase=True).score,
                "hypotheses": hyps}

    def attention_png(self, sentence: str, path, beam: int = 5) -> str:
        """Save the attention weights (target pieces x source pieces) of one translation as a heatmap."""
        if self.model.attention == "none":
            raise ValueError("this model has no attention (trained with --attention none): there is no heatmap")
        h = self.hypotheses([sentence], beam)[0]
        sp_src, sp_tgt = self.subwords.src, self.subwords.tgt
        src_pieces = [sp_src.id_to_piece(i) for i in self.subwords.encode_src([sentence])[0][:-1]] + ["</s>"]
        tgt_pieces = [sp_tgt.id_to_piece(int(i)) for i in h.tokens]
        tgt_pieces += ["</s>"] * (h.attention.shape[0] - len(tgt_pieces))
        from ..plots import pyplot, save_png

        plt = pyplot()
        A = h.attention
        fig, ax = plt.subplots(figsize=(1.0 + 0.45 * A.shape[1], 1.0 + 0.4 * A.shape[0]))
        ax.imshow(A, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(A.shape[1]), src_pieces, rotation=60, ha="right")
        ax.set_yticks(range(A.shape[0]), tgt_pieces)
        ax.set_xlabel("source")
        ax.set_ylabel("translation")
        ax.set_title(f"{self.model.attention} attention", fontsize=10)
        fig.tight_layout()
        return save_png(fig, path, dpi=100)


def load_translator(path, which: str = "best") -> Translator:
    """The translator saved in a run folder (its best checkpoint, else the latest) or a checkpoint folder."""
    from .. import checkpoint as ckpt_io

    ck = ckpt_io.load_task(path, "translate", which, needs_vocab=True)
    model = Seq2Seq(**ck.config["model"])
    model.load_state_dict(ck.weights)
    return Translator(model, Subwords.from_json(ck.vocab), ck.config["translate"].get("len_alpha", 0.7))


# --- training -----------------------------------------------------------------------------------------
class BudgetCosine:
    """Linear warm-up, then cosine decay from lr to min_lr over whichever runs out first: max_steps
    or the trainer's wall-clock budget (trainer.elapsed / seconds)."""

    def __init__(self, lr: float, min_lr: float, warmup: int, max_steps: int, seconds: float | None):
        self.lr, self.min_lr, self.warmup, self.max_steps, self.seconds = lr, min_lr, warmup, max_steps, seconds
        self.trainer = None                     # set after the Trainer is built (its elapsed time drives decay)

    def __call__(self, t: int) -> float:
        if t < self.warmup:
            return self.lr * (t + 1) / self.warmup
        progress = (t - self.warmup) / max(self.max_steps - self.warmup, 1)
        if self.seconds and self.trainer is not None:
            progress = max(progress, self.trainer.elapsed / self.seconds)
        progress = min(progress, 1.0)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))


@dataclass
class TranslateReport:
    parameters: int           # model parameters
    steps: int                # optimizer steps taken
    epochs: float             # epochs completed
    train_seconds: float      # wall-clock seconds in the trainer
    valid_loss: float         # best validation cross-entropy per subword
    valid_ppl: float          # its exponential
    stopped: str              # why training stopped


def build_model(config: TranslateConfig, subwords: Subwords) -> Seq2Seq:
    return Seq2Seq(subwords.src.get_piece_size(), subwords.tgt.get_piece_size(), embed=config.embed,
                   enc_hidden=config.enc_hidden, dec_hidden=config.dec_hidden, attention=config.attention,
                   attn_size=config.attn_size, out_size=config.out_size, encoder=config.encoder,
                   dropout=config.dropout, seed=config.seed)


def train_translate(config: TranslateConfig, log=print) -> TranslateReport:
    """Train on config.src/tgt, validating on valid_src/tgt; checkpoints in config.out_dir (resumed if there)."""
    from .. import checkpoint as ckpt_io
    from .. import optim
    from ..train import TrainConfig, Trainer

    t0 = time.perf_counter()
    # the training files first: a user's missing file is named before a missing default one
    src_lines, tgt_lines = read_parallel(config.src or default_path("train", "de"),
                                         config.tgt or default_path("train", "en"), "training")
    vsrc_lines, vtgt_lines = read_parallel(config.valid_src or default_path("val", "de"),
                                           config.valid_tgt or default_path("val", "en"), "validation")
    out = Path(config.out_dir) if config.out_dir else None
    if out is not None and ckpt_io.has_checkpoint(out):
        subwords = Subwords.from_json(ckpt_io.load(out).vocab)          # resume: the run's own subwords
    else:
        subwords = Subwords.train(src_lines, tgt_lines, config.src_vocab, config.tgt_vocab)
    if out is not None:
        subwords.save(out)
    src_ids, tgt_ids = subwords.encode_src(src_lines), subwords.encode_tgt(tgt_lines)
    keep = [i for i in range(len(src_ids)) if len(src_ids[i]) <= config.max_tokens
            and len(tgt_ids[i]) + 1 <= config.max_tokens]
    src_ids, tgt_ids = [src_ids[i] for i in keep], [tgt_ids[i] for i in keep]
    vsrc_ids, vtgt_ids = subwords.encode_src(vsrc_lines), subwords.encode_tgt(vtgt_lines)
    model = build_model(config, subwords)
    log(f"{len(src_ids)} training pairs ({len(src_lines) - len(src_ids)} longer than {config.max_tokens} "
        f"subwords skipped), {len(vsrc_ids)} validation pairs; vocabularies {subwords.src.get_piece_size()} "
        f"(source) / {subwords.tgt.get_piece_size()} (target) subwords; attention {config.attention}; "
        f"{model.num_parameters():,} parameters")
    lengths = [len(s) + len(t) for s, t in zip(src_ids, tgt_ids)]

    def batches(epoch):
        rng = np.random.default_rng((config.seed, 7, epoch))
        for idx in length_batches(lengths, config.batch, rng):
            yield make_batch([src_ids[i] for i in idx], [tgt_ids[i] for i in idx])

    opt = optim.Adam(model, lr=config.lr)
    schedule = BudgetCosine(config.lr, config.min_lr, config.warmup, config.max_steps, config.seconds)
    tc = TrainConfig(out_dir=str(out) if out else None, max_steps=config.max_steps, max_epochs=config.epochs,
                     seconds=config.seconds, clip_norm=config.clip_norm, log_every=50,
                     eval_every=config.eval_every, progress=config.progress)
    trainer = Trainer(model, opt, batches, config=tc, schedule=schedule,
                      evaluate=lambda m: perplexity(m, vsrc_ids, vtgt_ids),
                      meta={"task": "translate", "translate": asdict(config)}, vocab=subwords.to_json(),
                      log=log if not config.progress else None)
    schedule.trainer = trainer
    result = trainer.fit()
    best = result.best_val_loss if result.best_val_loss is not None else float("nan")
    log(f"trained {result.steps} steps ({result.epochs} epochs), {result.seconds / 60:.1f} min of training in all "
        f"(this call {(time.perf_counter() - t0) / 60:.1f} min wall, data loading included); "
        f"best validation loss {best:.4f} "
        f"(perplexity {math.exp(min(best, 50.0)):.2f}); stopped by {result.stopped}")
    return TranslateReport(model.num_parameters(), result.steps, result.epochs, result.seconds, best,
                           math.exp(min(best, 50.0)), result.stopped)
