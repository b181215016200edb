"""Models of the four input/output shapes, and the language model; each is trainable by rnnkit.train.

    OneToOne     x (B, I) or ids (B,)          -> y (B, ...)           one recurrent step
    OneToMany    seed (B, I) or ids (B,)       -> tokens (T, B)        the seed is the first input, then
                                                                        each step reads the previous token
    ManyToOne    x (T, B, I) or ids (T, B)     -> y (B, ...)           the last state of each sequence
    ManyToMany   x (T, B, I) or ids (T, B)     -> y (T, B, ...)        one output per step
    LanguageModel(ManyToMany)                                          stateful next-token prediction

Every model is   input -> [Embedding] -> Dropout -> RNN/LSTM/GRU -> Dropout -> Linear head -> loss
and exposes `loss(batch) -> (mean loss, n_items)` and `backward()` (the trainer's contract). The
head's loss is set by `output`: "classes" (softmax cross-entropy, integer targets), "real" (mean
squared error) or "binary" (sigmoid binary cross-entropy). Batches are tuples:
(x, y) or (x, y, lengths) with lengths (B,) for padded sequences (masked out of the loss).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import checks
from .layers import Dropout, Embedding, Linear
from .losses import mean_squared_error, sigmoid_binary_cross_entropy, softmax_cross_entropy
from .module import Module
from .recurrent import GRU, LSTM, RNN

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
OUTPUTS = ("classes", "real", "binary")


@dataclass
class ModelConfig:
    input_size: int                   # features per step, or the input vocabulary size when vocab_input
    output_size: int                  # classes (output="classes") or output features
    vocab_input: bool = False         # inputs are token ids looked up in an Embedding
    embed: int | None = None          # embedding size (vocab_input); None: the hidden size
    hidden: int = 128                 # recurrent units per layer
    layers: int = 1                   # stacked recurrent layers
    cell: str = "lstm"                # "rnn", "lstm" or "gru"
    bidirectional: bool = False       # run a second recurrence backwards in time (not for generation)
    dropout: float = 0.0              # dropout on the input, between layers and before the head
    variational: bool = False         # reuse one dropout mask across time steps (Gal & Ghahramani)
    output: str = "classes"           # "classes", "real" or "binary": the loss on the head
    init_scale: float | None = None   # re-initialise every weight U(-s, s) (Zaremba: 0.1); None: defaults
    init_hh: str = "uniform"          # recurrent weight init: "uniform", "orthogonal", "identity"
    forget_bias: float | None = None  # LSTM forget-gate bias; None: PyTorch's default init
    seed: int = 0                     # seeds every weight and dropout mask
    dtype: str = "float32"            # "float32" or "float64"

    def __post_init__(self):
        checks.positive_int("input_size", self.input_size)
        checks.positive_int("output_size", self.output_size)
        checks.positive_int("hidden", self.hidden)
        checks.positive_int("layers", self.layers)
        if self.embed is not None:
            checks.positive_int("embed", self.embed)
        checks.one_of("cell", self.cell, set(CELLS))
        checks.one_of("output", self.output, set(OUTPUTS))
        checks.probability("dropout", self.dropout)
        if self.init_scale is not None and not self.init_scale > 0:
            raise ValueError(f"init_scale must be positive or None, got {self.init_scale!r}")


def config_from_dict(cls, values: dict):
    """Build a config dataclass from a dict, refusing keys the dataclass does not have."""
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; known keys are {sorted(known)}")
    return cls(**values)


class SequenceModel(Module):
    """The shared body: encoder (Embedding or features), dropout, recurrent core, dropout, head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c = self.cfg = config
        dt = checks.float_dtype("dtype", c.dtype)
        self.dtype = dt
        rng = np.random.default_rng(c.seed)
        seeds = [int(s) for s in rng.integers(0, 2**31, 6)]
        in_size = c.input_size
        if c.vocab_input:
            in_size = c.embed or c.hidden
            self.embedding = Embedding(c.input_size, in_size, dtype=dt, seed=seeds[0])
        self.drop_in = Dropout(c.dropout, variational=c.variational, seed=seeds[1])
        kw = dict(dropout=c.dropout if c.layers > 1 else 0.0, bidirectional=c.bidirectional, dtype=dt,
                  seed=seeds[2], init_hh=c.init_hh)
        if c.forget_bias is not None:
            kw["forget_bias"] = c.forget_bias
        self.rnn = CELLS[c.cell](in_size, c.hidden, c.layers, **kw)
        self.drop_out = Dropout(c.dropout, variational=c.variational, seed=seeds[3])
        D = 2 if c.bidirectional else 1
        self.head = Linear(D * c.hidden, c.output_size, dtype=dt, seed=seeds[4])
        if c.init_scale is not None:
            init_rng = np.random.default_rng(seeds[5])
            for _, p, _ in self.named_parameters():
                p[...] = init_rng.uniform(-c.init_scale, c.init_scale, p.shape)
        self._loss_grad = None

    def config(self) -> dict:
        return asdict(self.cfg)

    @classmethod
    def from_config(cls, values: dict):
        return cls(config_from_dict(ModelConfig, values))

    # --- pieces shared by the shapes ------------------------------------------------------------
    def encode(self, x):
        """ids (T, B) -> embeddings (T, B, E), or features (T, B, I) as they are; then input dropout."""
        if self.cfg.vocab_input:
            x = self.embedding.forward(x)
        else:
            x = checks.floating_array("x", x, self.dtype, 3, self.cfg.input_size)
        return self.drop_in.forward(x)

    def encode_backward(self, dx):
        dx = self.drop_in.backward(dx)
        if self.cfg.vocab_input:
            self.embedding.backward(dx)

    def head_loss(self, out, y, mask):
        """Head and loss; keeps d loss / d head-input for backward. out (..., D*H)."""
        logits = self.head.forward(self.drop_out.forward(out))
        c = self.cfg
        if c.output == "classes":
            loss, dlogits = softmax_cross_entropy(logits, np.asarray(y), mask)
        elif c.output == "real":
            loss, dlogits = mean_squared_error(logits, y, mask)
        else:
            loss, dlogits = sigmoid_binary_cross_entropy(logits, y, mask)
        self._loss_grad = dlogits
        return loss, logits

    def head_backward(self):
        if self._loss_grad is None:
            raise ValueError("backward() called before loss()")
        dlogits, self._loss_grad = self._loss_grad, None
        return self.drop_out.backward(self.head.backward(dlogits))

    def _state_grad(self, dh_n):
        return (dh_n, None) if self.cfg.cell == "lstm" else dh_n


def _unpack(batch):
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise TypeError(f"a batch must be a tuple (x, y) or (x, y, lengths), got {type(batch).__name__}")
    return (batch[0], batch[1], batch[2] if len(batch) == 3 else None)


def _time_mask(lengths, T):
    if lengths is None:
        return None
    return (np.arange(T)[:, None] < np.asarray(lengths)[None, :]).astype(np.float32)   # (T, B)


class ManyToMany(SequenceModel):
    """A label per step: (x (T, B[, I]), y (T, B[, O]) [, lengths (B,)])."""

    def forward(self, x, state=None, lengths=None):
        """Logits (T, B, O) and the final state; no loss."""
        out, state = self.rnn.forward(self.encode(x), state, lengths)
        return self.head.forward(self.drop_out.forward(out)), state

    def loss(self, batch):
        x, y, lengths = _unpack(batch)
        out, _ = self.rnn.forward(self.encode(x), None, lengths)
        mask = _time_mask(lengths, out.shape[0])
        loss, _ = self.head_loss(out, y, mask)
        n = int(mask.sum()) if mask is not None else out.shape[0] * out.shape[1]
        return loss, n

    def backward(self):
        dx, _ = self.rnn.backward(self.head_backward())
        self.encode_backward(dx)


class ManyToOne(SequenceModel):
    """A sequence to a label: (x (T, B[, I]), y (B[, O]) [, lengths (B,)]); reads the last state of
    each sequence (both directions' final states when bidirectional)."""

    def _summary(self, h_n):
        D = 2 if self.cfg.bidirectional else 1
        top = h_n[-D:]                                   # (D, B, H): last layer, each direction
        return np.concatenate(list(top), axis=-1)        # (B, D*H)

    def forward(self, x, lengths=None):
        _, state = self.rnn.forward(self.encode(x), None, lengths)
        h_n = state[0] if isinstance(state, tuple) else state
        return self.head.forward(self.drop_out.forward(self._summary(h_n)))

    def loss(self, batch):
        x, y, lengths = _unpack(batch)
        out, state = self.rnn.forward(self.encode(x), None, lengths)
        h_n = state[0] if isinstance(state, tuple) else state
        self._shapes = (out.shape, h_n.shape)
        loss, _ = self.head_loss(self._summary(h_n), y, None)
        return loss, h_n.shape[1]

    def backward(self):
        dsummary = self.head_backward()                  # (B, D*H)
        out_shape, hn_shape = self._shapes
        D, H = (2 if self.cfg.bidirectional else 1), self.cfg.hidden
        dh_n = np.zeros(hn_shape, self.dtype)
        for d in range(D):                               # back into the top layer's final states
            dh_n[hn_shape[0] - D + d] = dsummary[:, d * H:(d + 1) * H]
        dx, _ = self.rnn.backward(np.zeros(out_shape, self.dtype), self._state_grad(dh_n))
        self.encode_backward(dx)


class OneToOne(SequenceModel):
    """One input to one output through a single recurrent step: (x (B[, I]), y (B[, O]))."""

    def forward(self, x):
        out, _ = self.rnn.forward(self.encode(np.asarray(x)[None]))
        return self.head.forward(self.drop_out.forward(out[0]))

    def loss(self, batch):
        x, y, _ = _unpack(batch)
        out, _ = self.rnn.forward(self.encode(np.asarray(x)[None]))
        loss, _ = self.head_loss(out[0], y, None)
        return loss, out.shape[1]

    def backward(self):
        dx, _ = self.rnn.backward(self.head_backward()[None])
        self.encode_backward(dx)


class OneToMany(SequenceModel):
    """Generation from a seed input: step 0 reads the seed (features (B, S), or an id (B,) looked
    up in a seed Embedding), step t > 0 reads the embedding of token t-1 (teacher forcing in
    training, the sampled token in generation). Batch: (seed, tokens (T, B)[, lengths]).

    config.input_size is the output vocabulary (the tokens read back); seed_size the seed's
    features (seed_vocab=False) or seed vocabulary (seed_vocab=True).
    """

    def __init__(self, config: ModelConfig, seed_size: int, seed_vocab: bool = False):
        if not config.vocab_input or config.output != "classes":
            raise ValueError(f"OneToMany generates tokens: it needs vocab_input=True and output='classes', "
                             f"got vocab_input={config.vocab_input}, output={config.output!r}")
        super().__init__(config)
        self.seed_size, self.seed_vocab = checks.positive_int("seed_size", seed_size), bool(seed_vocab)
        E = config.embed or config.hidden
        s = config.seed + 7
        self.seed_in = Embedding(seed_size, E, dtype=self.dtype, seed=s) if seed_vocab else \
            Linear(seed_size, E, dtype=self.dtype, seed=s)

    def config(self) -> dict:
        return dict(super().config(), seed_size=self.seed_size, seed_vocab=self.seed_vocab)

    @classmethod
    def from_config(cls, values: dict):
        values = dict(values)
        seed_size, seed_vocab = values.pop("seed_size"), values.pop("seed_vocab")
        return cls(config_from_dict(ModelConfig, values), seed_size, seed_vocab)

    def _inputs(self, seed, tokens):
        first = self.seed_in.forward(seed)[None]                     # (1, B, E)
        if len(tokens):
            rest = self.embedding.forward(np.asarray(tokens))        # (T-1, B, E)
            first = np.concatenate([first, rest], axis=0)
        return self.drop_in.forward(first)

    def loss(self, batch):
        seed, y, lengths = _unpack(batch)
        y = np.asarray(y)
        out, _ = self.rnn.forward(self._inputs(seed, y[:-1]), None, lengths)
        mask = _time_mask(lengths, out.shape[0])
        loss, _ = self.head_loss(out, y, mask)
        return loss, int(mask.sum()) if mask is not None else y.size

    def backward(self):
        dx, _ = self.rnn.backward(self.head_backward())
        dx = self.drop_in.backward(dx)
        self.seed_in.backward(dx[0])
        if dx.shape[0] > 1:
            self.embedding.backward(dx[1:])

    def generate(self, seed, length: int, temperature: float = 1.0, top_k: int | None = None, rng=None):
        """Tokens (length, B) sampled from the model given the seed (eval mode is the caller's)."""
        from .generate import sample_logits

        rng = rng if rng is not None else np.random.default_rng()
        out, state = self.rnn.forward(self.seed_in.forward(seed)[None])
        tokens = []
        for _ in range(checks.positive_int("length", length)):
            logits = self.head.forward(out[-1])                      # (B, V)
            ids = sample_logits(logits, temperature, top_k, rng)
            tokens.append(ids)
            out, state = self.rnn.forward(self.embedding.forward(ids[None]), state)
        return np.stack(tokens)


class LanguageModel(ManyToMany):
    """Next-token prediction over token ids; batch (x (T, B), y (T, B)) with y = x shifted by one.

    With stateful=True (truncated BPTT) the final state of each batch is the initial state of the
    next: a constant there (its gradient is dropped), reset by reset_state() at each epoch.
    """

    def __init__(self, config: ModelConfig, stateful: bool = True):
        if not config.vocab_input or config.output != "classes" or config.input_size != config.output_size:
            raise ValueError("LanguageModel needs vocab_input=True, output='classes' and input_size == "
                             f"output_size, got {config.vocab_input}, {config.output!r}, "
                             f"{config.input_size} and {config.output_size}")
        if config.bidirectional:
            raise ValueError("LanguageModel cannot be bidirectional: it predicts the next token")
        super().__init__(config)
        self.stateful = bool(stateful)
        self.state = None

    def config(self) -> dict:
        return dict(super().config(), stateful=self.stateful)

    @classmethod
    def from_config(cls, values: dict):
        values = dict(values)
        stateful = values.pop("stateful", True)
        return cls(config_from_dict(ModelConfig, values), stateful)

    def reset_state(self):
        self.state = None

    def extra_state(self) -> dict:
        if self.state is None:
            return {}
        if isinstance(self.state, tuple):
            return {"h": self.state[0], "c": self.state[1]}
        return {"h": self.state}

    def load_extra_state(self, d: dict):
        if not d:
            self.state = None
        elif "c" in d:
            self.state = (np.array(d["h"]), np.array(d["c"]))
        else:
            self.state = np.array(d["h"])

    def loss(self, batch):
        x, y, _ = _unpack(batch)
        x = np.asarray(x)
        state = self.state if self.stateful else None
        if state is not None and (state[0] if isinstance(state, tuple) else state).shape[1] != x.shape[1]:
            state = None                                 # the batch size changed: start afresh
        out, state = self.rnn.forward(self.encode(x), state)
        if self.stateful:
            self.state = state
        loss, _ = self.head_loss(out, y, None)
        return loss, x.size

    def step(self, ids, state=None):
        """Logits (T, B, V) for ids (T, B) from `state`, and the new state: for sampling and evaluation."""
        out, state = self.rnn.forward(self.encode(np.asarray(ids)), state)
        return self.head.forward(self.drop_out.forward(out)), state


MODELS = {cls.__name__: cls for cls in (OneToOne, OneToMany, ManyToOne, ManyToMany, LanguageModel)}


def model_from_config(class_name: str, values: dict):
    """Rebuild a model saved in a checkpoint (config.json's model_class and model)."""
    if class_name not in MODELS:
        raise ValueError(f"unknown model class {class_name!r}; known: {sorted(MODELS)}")
    return MODELS[class_name].from_config(values)


def evaluate_lm(model: LanguageModel, ids: np.ndarray, batch: int = 16, unroll: int = 128) -> dict:
    """Mean next-token loss (nats) over a whole id sequence, read as `batch` contiguous streams
    carrying state across windows of `unroll` steps (eval mode is the caller's). Leaves the
    model's carried training state as it was. Returns {"loss", "tokens"}."""
    x_all, y_all = lm_streams(ids, batch)
    saved, total, count, state = model.state, 0.0, 0, None
    try:
        for t in range(0, x_all.shape[0], unroll):
            x, y = x_all[t:t + unroll], y_all[t:t + unroll]
            logits, state = model.step(x, state)
            loss, _ = softmax_cross_entropy(logits, y)
            total += loss * y.size
            count += y.size
    finally:
        model.state = saved
    return {"loss": total / max(count, 1), "tokens": count}


def lm_streams(ids: np.ndarray, batch: int, offset: int = 0):
    """Cut ids[offset:] into `batch` contiguous streams: inputs and next-token targets, each (N, B)."""
    ids = np.asarray(ids)
    n = (len(ids) - offset - 1) // batch
    if n < 1:
        raise ValueError(f"a text of {len(ids)} tokens is too short for {batch} streams")
    x = ids[offset:offset + n * batch].reshape(batch, n).T
    y = ids[offset + 1:offset + 1 + n * batch].reshape(batch, n).T
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def lm_batches(ids: np.ndarray, batch: int, unroll: int, seed: int = 0, shift: bool = True):
    """batches(epoch) for LanguageModel training with truncated BPTT: `batch` contiguous streams
    cut into windows of `unroll` steps. With shift, each epoch starts at a different offset in
    [0, unroll) drawn from (seed, epoch), so windows do not always break at the same places."""
    checks.positive_int("batch", batch)
    checks.positive_int("unroll", unroll)
    if (len(ids) - 1) // batch < unroll + (unroll if shift else 0):
        raise ValueError(f"a text of {len(ids)} tokens is too short for batch {batch} and unroll {unroll}")

    def batches(epoch: int):
        offset = int(np.random.default_rng((seed, epoch)).integers(0, unroll)) if shift else 0
        x, y = lm_streams(ids, batch, offset)
        for t in range(0, x.shape[0] - unroll + 1, unroll):   # full windows only
            yield x[t:t + unroll], y[t:t + unroll]

    return batches
