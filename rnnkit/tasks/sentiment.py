"""Sentence polarity (many-to-one): a bidirectional LSTM read out by max and mean pooling over time.

    e_t = E[w_t]                                            (T, B, D)
    h_t = BiLSTM(dropout(e))_t                              (T, B, 2H)
    s   = [max_t h_t ; mean_t h_t]                          (B, 4H)  over each sentence's own words
    p   = softmax(W dropout(s) + b)                         (B, 2)   negative, positive

Pooling over every step (not only the last state) lets a cue anywhere in the sentence reach the
output in one step; the LSTM under it is what makes "good, not bad" differ from "bad, not good".

Negation: Movie Review almost never negates a polar word ("not bad" occurs 4 times, all in
negative sentences), so trained on it alone the model reads "not" as one more negative word and
calls both "good, not bad" and "bad, not good" negative. `negation` adds synthetic sentences
built from the training part's own most polar and most neutral words ("riveting , not boring"
-> positive, "acting , not dull" -> positive; see negation_sentences), which teach that the
un-negated word carries the sentiment and that "not" flips the word it negates. The epoch is
chosen by dev accuracy (`select`): dev loss picks an earlier epoch, before the negation sentences
are learnt. `members` > 1 averages several models trained with different seeds.

Data: one sentence a line in two files, positive and negative (Pang & Lee's Movie Review
polarity, Latin-1). The protocol is k-fold cross-validation; each fold holds out 5% of its
training part as development set to pick the best epoch (Kim 2014 held out 10%).

    config = SentimentConfig(out_dir="runs/sentiment", folds=10)
    report = train_sentiment(config)          # per-fold accuracies, then a final model on all data
    clf = load_classifier("runs/sentiment")
    clf.classify("the food was good, not bad at all")   # ("positive", 0.947) with the defaults
"""
from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import checks
from ..layers import Dropout, Embedding, Linear
from ..losses import softmax_cross_entropy
from ..module import Module
from ..paths import read_user_bytes
from ..recurrent import LSTM

LABELS = ("negative", "positive")
PAD, UNK = "<pad>", "<unk>"


@dataclass
class SentimentConfig:
    pos: str | None = None          # positive sentences, one a line; None: $RNNKIT_DATA/rt-polarity/rt-polarity.pos
    neg: str | None = None          # negative sentences, one a line; None: $RNNKIT_DATA/rt-polarity/rt-polarity.neg
    encoding: str = "latin-1"       # the files' text encoding (Movie Review is Latin-1)
    out_dir: str | None = None      # run folder: the final model (and cv/fold-k during cross-validation)
    folds: int = 1                  # k-fold cross-validation first when > 1; 1: train the final model only
    embed: int = 128                # word embedding size
    hidden: int = 64                # LSTM units per direction
    dropout: float = 0.5            # dropout on the embeddings and on the pooled features
    word_dropout: float = 0.25      # alpha: a word seen c times becomes UNK with probability alpha / (alpha + c)
    min_count: int = 1              # words seen fewer times in training are UNK
    batch: int = 100                # sentences per batch
    lr: float = 2e-3                # Adam learning rate
    weight_decay: float = 0.0       # AdamW decoupled weight decay
    epochs: int = 4                 # passes over the training part, the best one on dev is kept
    select: str = "error"           # what "best on dev" means: "error" (1 - accuracy) or "loss" (cross-entropy)
    max_steps: int | None = None    # cap on optimizer steps per model (None: epochs decide)
    dev_fraction: float = 0.05      # share of the training part held out to choose the epoch
    clip_norm: float = 5.0          # clip the gradients' global norm
    negation: float = 0.3           # synthetic negation sentences, as a share of the training part (0: none)
    members: int = 3                # models averaged (an ensemble), each its own seed for weights and batch order
    polar_words: int = 100          # the training part's most positive, most negative and most neutral words they use
    seed: int = 0                   # seeds the folds, the weights, dropout and the batch order
    progress: bool = False          # show a progress bar

    def __post_init__(self):
        for name in ("embed", "hidden", "batch", "epochs", "min_count"):
            checks.positive_int(name, getattr(self, name))
        checks.probability("dropout", self.dropout)
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 1:
            raise ValueError(f"folds must be a positive integer, got {self.folds!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ValueError(f"max_steps must be a positive integer or None, got {self.max_steps!r}")
        if not (isinstance(self.negation, (int, float)) and 0 <= self.negation <= 10):
            raise ValueError(f"negation must be a number in [0, 10], got {self.negation!r}")
        checks.positive_int("polar_words", self.polar_words)
        checks.positive_int("members", self.members)
        checks.one_of("select", self.select, {"error", "loss"})
        if not 0 < self.dev_fraction < 1:
            raise ValueError(f"dev_fraction must lie in (0, 1), got {self.dev_fraction!r}")


# --- pooling ----------------------------------------------------------------------------------------
def pool_forward(h, lengths):
    """[max_t h_t ; mean_t h_t] over the first lengths[b] steps of each sequence.

    h (T, B, F), lengths (B,) -> (s (B, 2F), cache)."""
    T = h.shape[0]
    valid = (np.arange(T)[:, None] < lengths[None, :])[:, :, None]          # (T, B, 1)
    arg = np.where(valid, h, -np.inf).argmax(axis=0)                         # (B, F) the step that wins
    mx = np.take_along_axis(h, arg[None], axis=0)[0]
    mean = (h * valid).sum(0) / lengths[:, None].astype(h.dtype)
    return np.concatenate([mx, mean], axis=1), (arg, valid, lengths, h.shape)


def pool_backward(ds, cache):
    """ds (B, 2F) -> dh (T, B, F): the max half to its winning step, the mean half spread evenly."""
    arg, valid, lengths, (T, B, F) = cache
    dmax, dmean = ds[:, :F], ds[:, F:]
    dh = np.broadcast_to(dmean / lengths[:, None].astype(ds.dtype), (T, B, F)) * valid  # into the mean
    dh = dh.astype(ds.dtype)
    np.put_along_axis(dh, arg[None], np.take_along_axis(dh, arg[None], 0) + dmax[None], axis=0)  # into the max
    return dh


class SentimentModel(Module):
    """Embedding -> dropout -> BiLSTM -> [max; mean] pooling -> dropout -> Linear (2 classes)."""

    def __init__(self, num_words: int, *, embed: int = 128, hidden: int = 64, dropout: float = 0.5,
                 num_classes: int = 2, seed: int = 0, dtype=np.float32):
        super().__init__()
        self.args = dict(num_words=num_words, embed=embed, hidden=hidden, dropout=dropout,
                         num_classes=num_classes, seed=seed, dtype=np.dtype(dtype).name)
        rng = np.random.default_rng(seed)
        s = lambda: int(rng.integers(2**31))  # noqa: E731  one seed per part
        self.embed = Embedding(num_words, embed, dtype=dtype, seed=s())
        self.embed.params["weight"] *= 0.1
        self.drop_in = Dropout(dropout, seed=s())
        self.rnn = LSTM(embed, hidden, bidirectional=True, dtype=dtype, seed=s())
        self.drop_out = Dropout(dropout, seed=s())
        self.head = Linear(4 * hidden, num_classes, dtype=dtype, seed=s())
        self._cache = None

    def config(self) -> dict:
        return dict(self.args)

    def logits(self, ids, lengths):
        """ids (T, B) word ids, 0-padded; lengths (B,). Returns logits (B, num_classes)."""
        out, _ = self.rnn.forward(self.drop_in(self.embed(ids)), lengths=lengths)   # (T, B, 2H)
        pooled, self._cache = pool_forward(out, lengths)                          # (B, 4H)
        return self.head(self.drop_out(pooled))

    def loss(self, batch):
        ids, lengths, y = batch
        loss, self._dlogits = softmax_cross_entropy(self.logits(ids, lengths), y)
        return loss, len(y)

    def backward(self):
        dpooled = self.drop_out.backward(self.head.backward(self._dlogits))
        dout = pool_backward(dpooled, self._cache)
        self.embed.backward(self.drop_in.backward(self.rnn.backward(dout)[0]))
        self._cache = self._dlogits = None


# --- data ---------------------------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    """Lower-cased words, with punctuation and clitics ('s, n't) split off, as in Kim's clean_str."""
    text = text.lower()
    text = re.sub(r"[^a-z0-9(),!?'`.\-:;\"/&$%*+=\u00c0-\u00ff]", " ", text)
    text = re.sub(r"(\w)('s|'ve|n't|'re|'d|'ll|'m)\b", r"\1 \2", text)
    text = re.sub(r"([(),!?;:\"/])", r" \1 ", text)
    text = re.sub(r"(?<!\.)\.(?!\.)(\s|$)", r" . ", text)                   # a full stop, not "..."
    return text.split()


def read_lines(path, encoding: str, what: str) -> list[list[str]]:
    """Tokenized non-empty lines of a text file; a missing, undecodable, empty or binary file raises."""
    data = read_user_bytes(path, f"{what} file")
    if b"\0" in data:
        raise ValueError(f"{what} file {str(path)!r} is not text (it holds NUL bytes)")
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as e:
        raise ValueError(f"{what} file {str(path)!r} could not be decoded as {encoding}: {e}") from None
    lines = [tokenize(line) for line in text.split("\n")]   # not splitlines(): Latin-1 text holds \x85, \x0c
    lines = [t for t in lines if t]
    if not lines:
        raise ValueError(f"{what} file {str(path)!r} holds no sentences")
    return lines


def read_polarity(pos, neg, encoding: str = "latin-1"):
    """(sentences, labels): every line of `neg` (label 0) then of `pos` (label 1)."""
    from ..paths import data_path

    pos = pos or data_path("rt-polarity", "rt-polarity.pos")
    neg = neg or data_path("rt-polarity", "rt-polarity.neg")
    p, n = read_lines(pos, encoding, "positive"), read_lines(neg, encoding, "negative")
    return n + p, np.array([0] * len(n) + [1] * len(p), np.int64)


class WordIds:
    """Words <-> ids (0 PAD, 1 UNK), by decreasing training count; counts drive the word dropout."""

    def __init__(self, words, counts=None):
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.counts = np.zeros(len(self.words)) if counts is None else np.asarray(counts, float)

    @classmethod
    def build(cls, sentences, min_count: int = 1):
        c = Counter(w for s in sentences for w in s)
        words = [PAD, UNK] + sorted((w for w in c if c[w] >= min_count), key=lambda w: (-c[w], w))
        return cls(words, [0, 0] + [c[w] for w in words[2:]])

    def encode(self, sentence) -> list[int]:
        return [self.index.get(w, 1) for w in sentence]

    def to_json(self) -> dict:
        return {"kind": "sentiment", "words": self.words, "labels": list(LABELS)}

    @classmethod
    def from_json(cls, d):
        if not isinstance(d, dict) or d.get("kind") != "sentiment" or not isinstance(d.get("words"), list):
            raise ValueError("vocab.json is not a sentiment vocabulary: expected {\"kind\": \"sentiment\", \"words\"}")
        return cls(d["words"])


# --- negation: synthetic sentences that teach the scope of "not" -----------------------------------
def polar_words(sentences, labels, k: int, min_count: int = 10, neutral_below: float = 0.25):
    """The k most positive, the k most negative and the k most neutral words of a labelled set,
    ranked by their smoothed log-count ratio r(w) = log((1 + n_pos(w)) / (1 + n_neg(w))) (the
    weights of NBSVM, Wang & Manning 2012), n_pos(w) and n_neg(w) counting the positive and the
    negative sentences that hold w, among words in at least min_count sentences; neutral words
    have |r| < neutral_below. Returns (positive, negative, neutral)."""
    pos, neg = Counter(), Counter()
    for sentence, y in zip(sentences, labels):
        (pos if y == 1 else neg).update(set(sentence))
    words = [w for w in pos.keys() | neg.keys() if pos[w] + neg[w] >= min_count and w.isalpha() and w != "not"]
    ratio = {w: np.log((1 + pos[w]) / (1 + neg[w])) for w in words}
    positive = [w for w in sorted(words, key=lambda w: (-ratio[w], w))[:k] if ratio[w] > 0]
    negative = [w for w in sorted(words, key=lambda w: (ratio[w], w))[:k] if ratio[w] < 0]
    neutral = [w for w in sorted(words, key=lambda w: (abs(ratio[w]), w))[:k] if abs(ratio[w]) < neutral_below]
    return positive, negative, neutral


def negation_sentences(positive, negative, neutral, n: int, rng, carriers=()):
    """n sentences, with labels, from polar words a (label y_a) and b (of the other sign) and a
    neutral word m:
        "a , not b"  "a and not b"  "not b , a"  -> y_a       (the un-negated polar word decides)
        "not a"  "m , not a"                      -> 1 - y_a   (a negated polar word flips)
    Half of them get the first 1-4 words of a carrier sentence before them, and half the last 1-3
    after, so that the construction is also met inside a sentence. The Movie Review sentences
    rarely negate a polar word ("not bad" occurs 4 times, all in negative sentences), so a model
    trained on them alone reads "not" as a negative word."""
    sentences, labels = [], np.empty(n, np.int64)
    for i in range(n):
        y = int(rng.integers(2))
        a_list, b_list = (positive, negative) if y == 1 else (negative, positive)
        a, b = a_list[rng.integers(len(a_list))], b_list[rng.integers(len(b_list))]
        form = int(rng.integers(5 if len(neutral) else 4))
        if form == 3:
            words, y = ["not", a], 1 - y
        elif form == 4:
            words, y = [neutral[rng.integers(len(neutral))], ",", "not", a], 1 - y
        else:
            words = [[a, ",", "not", b], [a, "and", "not", b], ["not", b, ",", a]][form]
        if len(carriers) and rng.random() < 0.5:
            words = list(carriers[rng.integers(len(carriers))][:int(rng.integers(1, 5))]) + words
        if len(carriers) and rng.random() < 0.5:
            words = words + list(carriers[rng.integers(len(carriers))][-int(rng.integers(1, 4)):])
        sentences.append(words)
        labels[i] = y
    return sentences, labels


def make_batch(encoded, labels=None, rng=None, counts=None, alpha: float = 0.0):
    """(ids (T, B), lengths (B,), labels (B,)) from encoded sentences; word dropout when rng and alpha."""
    lengths = np.array([max(len(s), 1) for s in encoded], np.int64)
    ids = np.zeros((lengths.max(), len(encoded)), np.int64)
    for b, s in enumerate(encoded):
        ids[:len(s), b] = s if s else [1]
    if rng is not None and alpha > 0:
        drop = rng.random(ids.shape) < alpha / (alpha + counts[ids])
        ids = np.where(drop & (ids > 0), 1, ids)
    return ids, lengths, (np.zeros(len(encoded), np.int64) if labels is None else np.asarray(labels))


def predict_proba(models, encoded, batch: int = 256) -> np.ndarray:
    """P(positive) for each encoded sentence, in eval mode: the mean over the models (one model or a list)."""
    models = models if isinstance(models, (list, tuple)) else [models]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    p = np.zeros(len(encoded))
    for model in models:
        was = model.training
        model.eval()
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            ids, lengths, _ = make_batch([encoded[i] for i in idx])
            z = model.logits(ids, lengths).astype(np.float64)
            p[idx] += 1.0 / (1.0 + np.exp(z[:, 0] - z[:, 1])) / len(models)
        model._cache = None
        model.train(was)
    return p


def evaluate(models, encoded, labels) -> dict:
    p = np.clip(predict_proba(models, encoded), 1e-7, 1 - 1e-7)
    loss = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    accuracy = float(((p > 0.5) == labels).mean())
    return {"loss": float(loss), "accuracy": accuracy, "error": 1.0 - accuracy}


# --- training ---------------------------------------------------------------------------------------
def fit_models(config: SentimentConfig, sentences, labels, out_dir, log=print):
    """Train config.members models on (sentences, labels), each choosing its epoch on a held-out
    dev share. Returns (models, vocab, dev metrics of their average)."""
    from .. import optim
    from ..train import TrainConfig, Trainer

    rng = np.random.default_rng((config.seed, 1))
    order = rng.permutation(len(sentences))
    n_dev = max(1, int(round(config.dev_fraction * len(sentences))))
    dev_idx, tr_idx = order[:n_dev], order[n_dev:]
    if len(tr_idx) == 0:
        raise ValueError(f"too few sentences to hold out a dev set: got {len(sentences)}")
    train_sentences, train_y = [sentences[i] for i in tr_idx], labels[tr_idx]
    n_neg = int(round(config.negation * len(tr_idx)))
    if n_neg:                                          # from the training part only: nothing of dev or test
        positive, negative, neutral = polar_words(train_sentences, train_y, config.polar_words)
        if positive and negative:
            extra, extra_y = negation_sentences(positive, negative, neutral, n_neg,
                                                np.random.default_rng((config.seed, 3)), train_sentences)
            train_sentences, train_y = train_sentences + extra, np.concatenate([train_y, extra_y])
    vocab = WordIds.build(train_sentences, config.min_count)
    train = [vocab.encode(s) for s in train_sentences]
    dev = [vocab.encode(sentences[i]) for i in dev_idx]
    dev_y = labels[dev_idx]
    steps_per_epoch = -(-len(train) // config.batch)
    max_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        max_steps = min(max_steps, config.max_steps)
    models = []
    for k in range(config.members):
        seed = config.seed + 7919 * k                  # member k: its own weights, dropout and batch order
        folder = member_dir(out_dir, k, config.members)
        model = SentimentModel(len(vocab.words), embed=config.embed, hidden=config.hidden, dropout=config.dropout,
                               seed=seed)
        opt = optim.AdamW(model, lr=config.lr, weight_decay=config.weight_decay)

        def batches(epoch, seed=seed):
            r = np.random.default_rng((seed, 2, epoch))
            perm = r.permutation(len(train))
            chunk = 20 * config.batch                  # sort by length within chunks: little padding
            groups = []
            for s in range(0, len(perm), chunk):
                idx = sorted(perm[s:s + chunk], key=lambda i: len(train[i]))
                groups += [idx[i:i + config.batch] for i in range(0, len(idx), config.batch)]
            for g in r.permutation(len(groups)):
                idx = groups[g]
                yield make_batch([train[i] for i in idx], train_y[idx], r, vocab.counts, config.word_dropout)

        tc = TrainConfig(out_dir=folder, max_steps=max_steps, max_epochs=config.epochs, clip_norm=config.clip_norm,
                         eval_every=0, eval_at_epoch_end=True, monitor=config.select, log_every=20,
                         progress=config.progress, resume=False)
        trainer = Trainer(model, opt, batches, config=tc, evaluate=lambda m: evaluate(m, dev, dev_y),
                          meta={"task": "sentiment", "sentiment": asdict(config)}, vocab=vocab.to_json(),
                          log=log if not config.progress else None)
        trainer.fit()
        if folder:
            from .. import checkpoint as ckpt_io
            model.load_state_dict(ckpt_io.load(folder, "best").weights)
        models.append(model)
    return models, vocab, evaluate(models, dev, dev_y)


def member_dir(out_dir, k: int, members: int) -> str | None:
    """Where member k of an ensemble keeps its checkpoints: out_dir itself for one model."""
    if not out_dir:
        return None
    return str(out_dir) if members == 1 else str(Path(out_dir) / f"member-{k}")


def cross_validate(config: SentimentConfig, sentences, labels, log=print) -> list[float]:
    """Test accuracy of each of config.folds folds (stratified, shuffled by config.seed)."""
    import tempfile

    k = config.folds
    rng = np.random.default_rng((config.seed, 0))
    fold_of = np.empty(len(labels), np.int64)
    for c in np.unique(labels):                       # stratified: each fold gets a tenth of each class
        idx = rng.permutation(np.flatnonzero(labels == c))
        fold_of[idx] = np.arange(len(idx)) % k
    if np.bincount(fold_of, minlength=k).min() == 0:
        raise ValueError(f"too few sentences for {k} folds: got {len(labels)}")
    accs = []
    with tempfile.TemporaryDirectory(prefix="rnnkit-cv-") as tmp:
        for f in range(k):
            t0 = time.perf_counter()
            tr, te = np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)
            models, vocab, dev = fit_models(config, [sentences[i] for i in tr], labels[tr], Path(tmp) / f"fold-{f}",
                                         log=lambda msg: None)
            test = evaluate(models, [vocab.encode(sentences[i]) for i in te], labels[te])
            accs.append(test["accuracy"])
            log(f"fold {f + 1}/{k}: test accuracy {100 * test['accuracy']:.2f}%  (dev {100 * dev['accuracy']:.2f}%, "
                f"{len(tr)} train / {len(te)} test sentences, {time.perf_counter() - t0:.0f} s)")
    return accs


@dataclass
class SentimentReport:
    fold_accuracies: list       # test accuracy of each fold ([] without cross-validation)
    mean_accuracy: float | None  # their mean (None without cross-validation)
    dev_accuracy: float         # the final model's accuracy on its held-out dev share
    seconds: float              # wall-clock seconds in all


def train_sentiment(config: SentimentConfig, log=print) -> SentimentReport:
    """k-fold cross-validation when config.folds > 1, then the final model on all the data, saved
    to config.out_dir."""
    t0 = time.perf_counter()
    sentences, labels = read_polarity(config.pos, config.neg, config.encoding)
    log(f"{len(sentences)} sentences: {int(labels.sum())} positive, {int((labels == 0).sum())} negative")
    accs, mean = [], None
    if config.folds > 1:
        accs = cross_validate(config, sentences, labels, log)
        mean = float(np.mean(accs))
        log(f"{config.folds}-fold cross-validation accuracy: {100 * mean:.2f}% "
            f"(std {100 * np.std(accs):.2f}, min {100 * min(accs):.2f}, max {100 * max(accs):.2f})")
    if config.out_dir:
        import shutil
        out = Path(config.out_dir)
        for old in list(out.glob("ckpt-*")) + list(out.glob("member-*")) + [out / "latest.json", out / "best.json"]:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    _, _, dev = fit_models(config, sentences, labels, config.out_dir, log)
    log(f"final model: dev accuracy {100 * dev['accuracy']:.2f}%" +
        (f", saved in {config.out_dir}" if config.out_dir else ""))
    return SentimentReport(accs, mean, dev["accuracy"], time.perf_counter() - t0)


class Classifier:
    """A trained sentiment model (or the members of an ensemble) with its vocabulary, from a run folder."""

    def __init__(self, models, vocab: WordIds):
        self.models = [m.eval() for m in (models if isinstance(models, (list, tuple)) else [models])]
        self.vocab = vocab

    @classmethod
    def load(cls, path):
        from .. import checkpoint as ckpt_io

        members = sorted(Path(path).glob("member-*"), key=lambda d: int(d.name.split("-")[1])) \
            if Path(path).is_dir() else []
        models, vocab = [], None
        for folder in members or [path]:
            ck = ckpt_io.load_task(folder, "sentiment", needs_vocab=True)
            model = SentimentModel(**ck.config["model"])
            model.load_state_dict(ck.weights)
            models.append(model)
            vocab = vocab or WordIds.from_json(ck.vocab)
        return cls(models, vocab)

    def proba(self, texts: list[str]) -> np.ndarray:
        """P(positive) of each text."""
        return predict_proba(self.models, [self.vocab.encode(tokenize(t)) for t in texts])

    def classify(self, text: str) -> tuple[str, float]:
        """(label, probability of that label)."""
        if not tokenize(text):
            raise ValueError(f"nothing to classify: got {text!r}")
        p = float(self.proba([text])[0])
        return (LABELS[1], p) if p >= 0.5 else (LABELS[0], 1.0 - p)


def load_classifier(path) -> Classifier:
    return Classifier.load(path)
