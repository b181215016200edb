"""The demo: a small character-level LSTM learns the Zen of Python (shipped with Python) in about a minute.

It prints the loss as it trains and a sample before and after training, so a person can judge it.
"""
from __future__ import annotations

import codecs
import contextlib
import io
import time
from dataclasses import dataclass

import numpy as np

from .layers import Linear
from .losses import softmax_cross_entropy
from .module import Module
from .optim import Adam
from .recurrent import LSTM


@dataclass
class DemoConfig:
    hidden: int = 128        # LSTM units
    unroll: int = 48         # characters per training window
    batch: int = 32          # windows per step
    lr: float = 5e-3         # Adam learning rate
    steps: int = 600         # optimizer steps (stops earlier at `seconds`)
    seconds: float = 100.0   # wall-clock budget for training
    seed: int = 0


def zen_text() -> str:
    with contextlib.redirect_stdout(io.StringIO()):  # `import this` prints the Zen
        import this
    return codecs.decode(this.s, "rot13")


class CharLSTM(Module):
    def __init__(self, vocab: int, hidden: int, seed: int):
        super().__init__()
        self.vocab = vocab
        self.rnn = LSTM(vocab, hidden, seed=seed)
        self.head = Linear(hidden, vocab, seed=seed + 1)

    def forward(self, ids, state=None):
        x = np.eye(self.vocab, dtype=np.float32)[ids]               # (T, B, V) one-hot
        h, state = self.rnn.forward(x, state)
        return self.head.forward(h), state

    def backward(self, dlogits):
        self.rnn.backward(self.head.backward(dlogits))


def sample(model: CharLSTM, chars: str, prime: str, length: int, rng) -> str:
    index = {c: i for i, c in enumerate(chars)}
    logits, state = model.forward(np.array([[index[c]] for c in prime]))
    out = []
    for _ in range(length):
        p = np.exp(logits[-1, 0] - logits[-1, 0].max())
        i = rng.choice(len(chars), p=p / p.sum())
        out.append(chars[i])
        logits, state = model.forward(np.array([[i]]), state)
    return prime + "".join(out)


def run(cfg: DemoConfig = DemoConfig(), log=print) -> float:
    text = zen_text()
    chars = sorted(set(text))
    data = np.array([chars.index(c) for c in text])
    rng = np.random.default_rng(cfg.seed)
    model = CharLSTM(len(chars), cfg.hidden, cfg.seed)
    opt = Adam(model, lr=cfg.lr)
    log(f"Zen of Python: {len(text)} characters, {len(chars)} distinct; LSTM({cfg.hidden}), "
        f"{model.num_parameters():,} parameters")
    log("before training: " + repr(sample(model, chars, "Beautiful", 60, np.random.default_rng(1))))
    start, loss = time.perf_counter(), float("nan")
    for step in range(1, cfg.steps + 1):
        starts = rng.integers(0, len(data) - cfg.unroll - 1, cfg.batch)
        window = np.stack([data[s:s + cfg.unroll + 1] for s in starts], axis=1)   # (T+1, B)
        logits, _ = model.forward(window[:-1])
        loss, dlogits = softmax_cross_entropy(logits, window[1:])
        model.zero_grad()
        model.backward(dlogits)
        opt.step()
        elapsed = time.perf_counter() - start
        if step % 50 == 0 or step == 1:
            log(f"step {step:4d}  loss {loss:.3f} nats/char  {elapsed:5.1f}s")
        if elapsed > cfg.seconds:
            break
    log(f"uniform guessing would score {np.log(len(chars)):.3f} nats/char; final loss {loss:.3f}")
    log("after training:\n" + sample(model, chars, "Beautiful", 300, np.random.default_rng(1)))
    return loss
