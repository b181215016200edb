"""Part-of-speech tagging (many-to-many): a bidirectional LSTM over words and their characters.

Each word is the concatenation of a word embedding (lower-cased form) and a character CNN over
its characters (Ma & Hovy 2016), so rare and unknown words still have a representation built
from their spelling (suffixes, capitals, digits, hyphens):

    e_t  = [E_word[lower(w_t)] ; CharCNN(w_t)]              (T, B, Dw + F)
    h_t  = BiLSTM(dropout(e))_t                             (T, B, 2H)
    p_t  = softmax(W dropout(h_t) + b)                      (T, B, n_tags)

Training replaces a word's embedding id (not its characters) by UNK with probability
alpha / (alpha + count(w)) (word dropout, Kiperwasser & Goldberg 2016), so the UNK vector is
learnt from the rare words it will stand for at test time.

    config = TaggerConfig(out_dir="runs/tagger")
    result = train_tagger(config)                    # rnnkit.train.Trainer: checkpoints, resume
    tagger = load_tagger("runs/tagger")              # the best checkpoint (lowest dev loss)
    tagger.tag(["I", "work", "at", "google", "."])   # ['PRON', 'VERB', 'ADP', 'PROPN', 'PUNCT']
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, fields

import numpy as np

from .. import checks
from ..layers import Dropout, Embedding, Linear
from ..losses import softmax_cross_entropy
from ..module import Module
from ..recurrent import LSTM
from .conllu_data import UPOS_TAGS, read_conllu

PAD, UNK, BOW, EOW = "<pad>", "<unk>", "<w>", "</w>"   # special symbols; PAD is id 0, UNK id 1


@dataclass
class TaggerConfig:
    train: str | None = None        # training CoNLL-U file; None: $RNNKIT_DATA/ud-english-ewt/en_ewt-ud-train.conllu
    dev: str | None = None          # development CoNLL-U file (validation, best checkpoint); None: EWT dev
    out_dir: str | None = None      # run folder for checkpoints; None writes nothing
    word_dim: int = 100             # word embedding size
    char_dim: int = 32              # character embedding size
    char_filters: int = 100         # character-CNN filters (the character representation's size)
    char_width: int = 3             # character-CNN window, in characters
    max_word_chars: int = 24        # longer words keep their first and last max_word_chars // 2 characters
    hidden: int = 128               # LSTM units per direction
    layers: int = 2                 # stacked bidirectional LSTM layers
    dropout: float = 0.33           # dropout on the word vectors, between LSTM layers and before the output layer
    word_dropout: float = 0.25      # alpha: a word seen c times becomes UNK with probability alpha / (alpha + c)
    batch: int = 32                 # sentences per batch (sorted by length in buckets to limit padding)
    lr: float = 2e-3                # Adam learning rate, decayed by a cosine to lr / 20 over max_steps
    max_steps: int = 3500           # optimizer steps (about 9 epochs of EWT)
    eval_every: int = 500           # steps between evaluations on dev
    clip_norm: float = 5.0          # clip the gradients' global norm
    seconds: float | None = None    # wall-clock budget; None: no limit
    seed: int = 0                   # seeds the weights, dropout and the order of batches
    progress: bool = True           # show a progress bar

    def __post_init__(self):
        for name in ("word_dim", "char_dim", "char_filters", "char_width", "max_word_chars", "hidden",
                     "layers", "batch", "eval_every"):
            checks.positive_int(name, getattr(self, name))
        checks.probability("dropout", self.dropout)
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {self.max_steps!r}")
        if not self.word_dropout >= 0:
            raise ValueError(f"word_dropout must be >= 0, got {self.word_dropout!r}")
        if self.max_word_chars < self.char_width:
            raise ValueError(f"max_word_chars must be >= char_width ({self.char_width}), got {self.max_word_chars!r}")


class CharCNN(Module):
    """Max-pooled 1-D convolution over a word's characters (torch.nn.Conv1d names and shapes):

        C   = E_char[chars]                                   (U, L, E)   U words, L characters
        a_j = W * C[j : j + k] + b                            (U, L-k+1, F) window j, F filters
        y   = tanh(max_j a_j)                                 (U, F)      over the word's own windows

    chars hold <w> word </w> padded with 0; a word of n characters (markers included) has
    n - k + 1 windows, so padding never wins the max.
    """

    def __init__(self, num_chars: int, char_dim: int, filters: int, width: int, *, dtype=np.float32,
                 seed: int | None = None):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.width = checks.positive_int("width", width)
        self.filters = checks.positive_int("filters", filters)
        self.embed = Embedding(num_chars, char_dim, dtype=dtype, seed=rng.integers(2**31))
        k = 1.0 / np.sqrt(char_dim * width)  # PyTorch's Conv1d default bound
        self.add_param("weight", rng.uniform(-k, k, (filters, char_dim, width)).astype(dtype))  # (F, E, k)
        self.add_param("bias", rng.uniform(-k, k, filters).astype(dtype))
        self._cache = None

    def forward(self, chars, n_chars):
        """chars (U, L) ids, 0-padded; n_chars (U,) characters per word (markers included, >= width)."""
        chars = np.asarray(chars)
        U, L = chars.shape
        k, F = self.width, self.filters
        if L < k or (n_chars < k).any():
            raise ValueError(f"every word needs at least width={k} characters with its markers, got {n_chars.min()}")
        C = self.embed(chars)                                               # (U, L, E)
        J = L - k + 1
        X = np.concatenate([C[:, j:j + J] for j in range(k)], axis=2)       # (U, J, k*E) windows
        W = self.params["weight"].transpose(0, 2, 1).reshape(F, -1)         # (F, k*E) matching X
        a = X @ W.T + self.params["bias"]                                   # (U, J, F)
        valid = np.arange(J)[None, :] < (n_chars - k + 1)[:, None]          # (U, J) the word's own windows
        a = np.where(valid[:, :, None], a, -np.inf)
        arg = a.argmax(axis=1)                                              # (U, F) the winning window
        y = np.tanh(np.take_along_axis(a, arg[:, None, :], axis=1)[:, 0])   # (U, F)
        self._cache = (X, W, arg, y, C.shape)
        return y

    __call__ = forward

    def backward(self, dy):
        """dy (U, F). Accumulates the filter, bias and character-embedding gradients; no input gradient."""
        if self._cache is None:
            raise ValueError("backward() called before forward()")
        X, W, arg, y, (U, L, E) = self._cache
        self._cache = None
        k, F = self.width, self.filters
        J = L - k + 1
        dmax = dy * (1.0 - y * y)                                           # through tanh
        da = np.zeros((U, J, F), dy.dtype)
        np.put_along_axis(da, arg[:, None, :], dmax[:, None, :], axis=1)    # only the winning window
        self.grads["bias"] += dmax.sum(0)
        dW = da.reshape(-1, F).T @ X.reshape(-1, k * E)                     # (F, k*E)
        self.grads["weight"] += dW.reshape(F, k, E).transpose(0, 2, 1)
        dX = da @ W                                                         # (U, J, k*E)
        dC = np.zeros((U, L, E), dy.dtype)
        for j in range(k):                                                  # each window slot back to its characters
            dC[:, j:j + J] += dX[:, :, j * E:(j + 1) * E]
        self.embed.backward(dC)
        return None


class Tagger(Module):
    """Word embedding + character CNN -> dropout -> BiLSTM -> dropout -> Linear, one tag per word."""

    def __init__(self, num_words: int, num_chars: int, num_tags: int, *, word_dim: int = 100, char_dim: int = 32,
                 char_filters: int = 100, char_width: int = 3, hidden: int = 128, layers: int = 2,
                 dropout: float = 0.33, seed: int = 0, dtype=np.float32):
        super().__init__()
        self.args = dict(num_words=num_words, num_chars=num_chars, num_tags=num_tags, word_dim=word_dim,
                         char_dim=char_dim, char_filters=char_filters, char_width=char_width, hidden=hidden,
                         layers=layers, dropout=dropout, seed=seed, dtype=np.dtype(dtype).name)
        rng = np.random.default_rng(seed)
        s = lambda: int(rng.integers(2**31))  # noqa: E731  one seed per part
        self.word = Embedding(num_words, word_dim, dtype=dtype, seed=s())
        self.word.params["weight"] *= 0.1          # N(0, 0.01): the char features start on an equal footing
        self.chars = CharCNN(num_chars, char_dim, char_filters, char_width, dtype=dtype, seed=s())
        self.drop_in = Dropout(dropout, seed=s())
        self.rnn = LSTM(word_dim + char_filters, hidden, layers, bidirectional=True, dropout=dropout,
                        dtype=dtype, seed=s())
        self.drop_out = Dropout(dropout, seed=s())
        self.head = Linear(2 * hidden, num_tags, dtype=dtype, seed=s())
        self.dtype = np.dtype(dtype)
        self._cache = None

    def config(self) -> dict:
        return dict(self.args)

    def logits(self, batch):
        """batch: dict of word_ids (T, B), chars (U, L), n_chars (U,), slots (T, B) (each word's row of
        chars), lengths (B,). Returns logits (T, B, n_tags)."""
        T, B = batch["word_ids"].shape
        ew = self.word(batch["word_ids"])                                   # (T, B, Dw)
        ec = self.chars(batch["chars"], batch["n_chars"])                   # (U, F)
        e = np.concatenate([ew, ec[batch["slots"]]], axis=2)                # (T, B, Dw + F)
        out, _ = self.rnn.forward(self.drop_in(e), lengths=batch["lengths"])  # (T, B, 2H)
        self._cache = (batch["slots"], ew.shape[2], ec.shape)
        return self.head(self.drop_out(out))

    def loss(self, batch):
        logits = self.logits(batch)
        mask = _mask(batch["lengths"], logits.shape[0])
        loss, self._dlogits = softmax_cross_entropy(logits, batch["tags"], mask)
        return loss, int(mask.sum())

    def backward(self):
        slots, Dw, ec_shape = self._cache
        de = self.drop_in.backward(self.rnn.backward(self.drop_out.backward(self.head.backward(self._dlogits)))[0])
        self.word.backward(de[:, :, :Dw])
        dec = np.zeros(ec_shape, de.dtype)
        np.add.at(dec, slots.reshape(-1), de[:, :, Dw:].reshape(-1, ec_shape[1]))  # gather's gradient
        self.chars.backward(dec)
        self._cache = self._dlogits = None


def _mask(lengths, T):
    return (np.arange(T)[:, None] < np.asarray(lengths)[None, :]).astype(np.float32)


# --- vocabularies and batches ---------------------------------------------------------------------
class TaggerVocab:
    """Words (lower-cased), characters and tags <-> ids; word counts drive the word dropout."""

    def __init__(self, words, chars, tags, counts=None):
        self.words, self.chars, self.tags = list(words), list(chars), list(tags)
        self.word_index = {w: i for i, w in enumerate(self.words)}
        self.char_index = {c: i for i, c in enumerate(self.chars)}
        self.tag_index = {t: i for i, t in enumerate(self.tags)}
        self.counts = np.zeros(len(self.words)) if counts is None else np.asarray(counts, float)

    @classmethod
    def build(cls, sentences, tagset=UPOS_TAGS):
        wc = Counter(w.lower() for words, _ in sentences for w in words)
        cc = Counter(c for words, _ in sentences for w in words for c in w)
        words = [PAD, UNK] + sorted(wc, key=lambda w: (-wc[w], w))
        chars = [PAD, UNK, BOW, EOW] + sorted(cc, key=lambda c: (-cc[c], c))
        return cls(words, chars, tagset, [0, 0] + [wc[w] for w in words[2:]])

    def to_json(self) -> dict:
        return {"kind": "tagger", "words": self.words, "chars": self.chars, "tags": self.tags}

    @classmethod
    def from_json(cls, d):
        if not isinstance(d, dict) or d.get("kind") != "tagger" or not all(
                isinstance(d.get(k), list) for k in ("words", "chars", "tags")):
            raise ValueError("vocab.json is not a tagger vocabulary: expected {\"kind\": \"tagger\", \"words\", \"chars\", \"tags\"}")
        return cls(d["words"], d["chars"], d["tags"])

    def word_id(self, w: str) -> int:
        return self.word_index.get(w.lower(), 1)

    def char_ids(self, w: str, max_chars: int) -> list[int]:
        if len(w) > max_chars:                      # keep the prefix and the suffix, which carry the tag
            w = w[:max_chars // 2] + w[len(w) - (max_chars - max_chars // 2):]
        return [2] + [self.char_index.get(c, 1) for c in w] + [3]


def make_batch(vocab: TaggerVocab, sentences, max_chars: int, width: int, rng=None, alpha: float = 0.0,
               tags: bool = True) -> dict:
    """Arrays for a list of sentences (each (words, tags), or a list of words when tags=False).

    rng and alpha > 0 apply word dropout: word id -> UNK with probability alpha / (alpha + count).
    Distinct words share one row of `chars`, so each spelling goes through the CNN once per batch.
    """
    words = [s[0] if tags else s for s in sentences]
    B, T = len(words), max(len(w) for w in words)
    lengths = np.array([len(w) for w in words], np.int64)
    word_ids = np.zeros((T, B), np.int64)
    slots = np.zeros((T, B), np.int64)
    y = np.zeros((T, B), np.int64)
    rows, spelled = {}, []
    for b, ws in enumerate(words):
        for t, w in enumerate(ws):
            word_ids[t, b] = vocab.word_id(w)
            if w not in rows:
                rows[w] = len(spelled)
                spelled.append(vocab.char_ids(w, max_chars))
            slots[t, b] = rows[w]
            if tags:
                tag = sentences[b][1][t]
                if tag not in vocab.tag_index:
                    raise ValueError(f"unknown tag {tag!r} (the model knows {', '.join(vocab.tags)})")
                y[t, b] = vocab.tag_index[tag]
    if rng is not None and alpha > 0:
        c = vocab.counts[word_ids]
        drop = rng.random(word_ids.shape) < alpha / (alpha + c)
        word_ids = np.where(drop & (word_ids > 0), 1, word_ids)
    n_chars = np.array([max(len(s), width) for s in spelled], np.int64)
    chars = np.zeros((len(spelled), max(n_chars.max(), width)), np.int64)
    for i, s in enumerate(spelled):
        chars[i, :len(s)] = s
    return dict(word_ids=word_ids, chars=chars, n_chars=n_chars, slots=slots, lengths=lengths, tags=y)


def bucketed_batches(sentences, batch: int, rng) -> list[list]:
    """Shuffle, sort by length within chunks of 20 batches (little padding), shuffle the batches."""
    order = rng.permutation(len(sentences))
    chunk = 20 * batch
    batches = []
    for start in range(0, len(order), chunk):
        idx = sorted(order[start:start + chunk], key=lambda i: len(sentences[i][0]))
        batches += [idx[i:i + batch] for i in range(0, len(idx), batch)]
    return [[sentences[i] for i in batches[j]] for j in rng.permutation(len(batches))]


def evaluate(model: Tagger, vocab: TaggerVocab, sentences, max_chars: int, batch: int = 128) -> dict:
    """Mean cross-entropy and tag accuracy over every word of `sentences`."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i][0]))
    total_loss, correct, n = 0.0, 0, 0
    for start in range(0, len(order), batch):
        b = make_batch(vocab, [sentences[i] for i in order[start:start + batch]], max_chars, model.chars.width)
        logits = model.logits(b)
        mask = _mask(b["lengths"], logits.shape[0])
        loss, _ = softmax_cross_entropy(logits, b["tags"], mask)
        k = int(mask.sum())
        total_loss += loss * k
        correct += int(((logits.argmax(-1) == b["tags"]) * mask).sum())
        n += k
    model._cache = None
    return {"loss": total_loss / n, "accuracy": correct / n}


# --- training and use -----------------------------------------------------------------------------
def default_path(split: str):
    from ..paths import data_path
    return data_path("ud-english-ewt", f"en_ewt-ud-{split}.conllu")


def train_tagger(config: TaggerConfig, log=print):
    """Train on config.train, validate on config.dev; returns (TrainResult, dev metrics of the best
    checkpoint, seconds)."""
    from .. import optim
    from ..train import TrainConfig, Trainer

    t0 = time.perf_counter()
    train = read_conllu(config.train or default_path("train"))
    dev = read_conllu(config.dev or default_path("dev"))
    vocab = TaggerVocab.build(train)
    log(f"train {len(train)} sentences, {sum(len(w) for w, _ in train)} words; dev {len(dev)} sentences; "
        f"vocabulary {len(vocab.words)} words, {len(vocab.chars)} characters")
    model = Tagger(len(vocab.words), len(vocab.chars), len(vocab.tags), word_dim=config.word_dim,
                   char_dim=config.char_dim, char_filters=config.char_filters, char_width=config.char_width,
                   hidden=config.hidden, layers=config.layers, dropout=config.dropout, seed=config.seed)
    opt = optim.Adam(model, lr=config.lr, betas=(0.9, 0.9))

    def batches(epoch):
        rng = np.random.default_rng((config.seed, epoch))
        for sents in bucketed_batches(train, config.batch, rng):
            yield make_batch(vocab, sents, config.max_word_chars, config.char_width, rng, config.word_dropout)

    tc = TrainConfig(out_dir=config.out_dir, max_steps=config.max_steps, seconds=config.seconds,
                     clip_norm=config.clip_norm, eval_every=config.eval_every, log_every=50,
                     progress=config.progress)
    trainer = Trainer(model, opt, batches, config=tc,
                      evaluate=lambda m: evaluate(m, vocab, dev, config.max_word_chars),
                      schedule=optim.Cosine(config.lr, T_max=config.max_steps, eta_min=config.lr / 20),
                      meta={"task": "tagger", "tagger": asdict(config)}, vocab=vocab.to_json(),
                      log=log if not config.progress else None)
    result = trainer.fit()
    if config.out_dir:                              # the kept (best) checkpoint, not the last weights
        dev_metrics = TaggerRunner.load(config.out_dir).accuracy(dev)
    else:
        dev_metrics = result.val
    return result, dev_metrics, time.perf_counter() - t0


class TaggerRunner:
    """A trained tagger: model + vocabulary + settings, loaded from a run folder."""

    def __init__(self, model: Tagger, vocab: TaggerVocab, config: TaggerConfig):
        self.model, self.vocab, self.config = model.eval(), vocab, config

    @classmethod
    def load(cls, path):
        from .. import checkpoint as ckpt_io

        ck = ckpt_io.load_task(path, "tagger", needs_vocab=True)
        vocab = TaggerVocab.from_json(ck.vocab)
        known = {f.name for f in fields(TaggerConfig)}
        config = TaggerConfig(**{k: v for k, v in ck.config["tagger"].items() if k in known})
        model = Tagger(**ck.config["model"])
        model.load_state_dict(ck.weights)
        return cls(model, vocab, config)

    def tag(self, words: list[str]) -> list[str]:
        """One UPOS tag per word."""
        if not words:
            raise ValueError("nothing to tag: got no words")
        return self.tag_many([words])[0]

    def tag_many(self, sentences: list[list[str]]) -> list[list[str]]:
        b = make_batch(self.vocab, sentences, self.config.max_word_chars, self.model.chars.width, tags=False)
        pred = self.model.logits(b).argmax(-1)
        self.model._cache = None
        return [[self.vocab.tags[pred[t, i]] for t in range(len(s))] for i, s in enumerate(sentences)]

    def accuracy(self, sentences) -> dict:
        return evaluate(self.model, self.vocab, sentences, self.config.max_word_chars)


def load_tagger(path) -> TaggerRunner:
    return TaggerRunner.load(path)
