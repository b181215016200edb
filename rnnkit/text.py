"""Vocabularies and corpus readers for language models: characters or whitespace-separated words.

    vocab = CharVocab.build(text)          ids = vocab.encode(text)      text = vocab.decode(ids)
    vocab = WordVocab.build(tokens)        tokens = read_words(path)     (one "<eos>" per line)
    vocab.to_json() / vocab_from_json(d)   what a checkpoint stores in vocab.json
"""
from __future__ import annotations

import numpy as np

from .paths import read_user_text


def read_text(path, min_chars: int = 2) -> str:
    """The whole file as UTF-8 text; a missing, unreadable, empty or too-short file raises one clear error."""
    text = read_user_text(path, "text file")
    if len(text) < min_chars:
        raise ValueError(f"text file {str(path)!r} is too short: {len(text)} characters, need at least {min_chars}")
    return text


def split_train_valid(text, fraction: float = 0.9):
    """The first `fraction` for training, the rest for validation (nanoGPT's split)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
    n = int(len(text) * fraction)
    return text[:n], text[n:]


def read_words(path, eos: str = "<eos>") -> list[str]:
    """Whitespace-separated tokens of a file, with `eos` after every line (Mikolov's PTB convention)."""
    text = read_text(path, min_chars=1)
    tokens = []
    for line in text.splitlines():
        words = line.split()
        if words:
            tokens.extend(words)
            tokens.append(eos)
    if not tokens:
        raise ValueError(f"text file {str(path)!r} holds no words")
    return tokens


class CharVocab:
    """Characters <-> ids, ids in sorted character order (as char-rnn and nanoGPT)."""

    kind = "char"

    def __init__(self, symbols):
        self.symbols = list(symbols)
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("vocabulary symbols must be distinct")
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def build(cls, text):
        return cls(sorted(set(text)))

    def __len__(self):
        return len(self.symbols)

    def split(self, text) -> list:
        return list(text)

    def join(self, symbols) -> str:
        return "".join(symbols)

    def encode(self, text, what: str = "text") -> np.ndarray:
        """ids (int64) of every symbol; symbols outside the vocabulary raise ValueError naming them."""
        symbols = self.split(text)
        missing = sorted({s for s in symbols if s not in self.index})
        if missing:
            shown = ", ".join(repr(s) for s in missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise ValueError(f"{what} has {len(missing)} symbol(s) outside the vocabulary: {shown}")
        return np.fromiter((self.index[s] for s in symbols), dtype=np.int64, count=len(symbols))

    def decode(self, ids) -> str:
        return self.join(self.symbols[int(i)] for i in ids)

    def to_json(self) -> dict:
        return {"kind": self.kind, "symbols": self.symbols}


class WordVocab(CharVocab):
    """Words <-> ids, by decreasing frequency then alphabetically; `unk` stands for unseen words
    only when map_unknown is asked for (PTB's text already holds its own <unk>)."""

    kind = "word"

    @classmethod
    def build(cls, tokens):
        counts = {}
        for t in tokens:
            counts[t] = counts.get(t, 0) + 1
        return cls(sorted(counts, key=lambda w: (-counts[w], w)))

    def split(self, text) -> list:
        return text.split() if isinstance(text, str) else list(text)

    def join(self, symbols) -> str:
        return " ".join(symbols).replace(" <eos> ", "\n").replace(" <eos>", "\n")


def vocab_from_json(d) -> CharVocab:
    if not isinstance(d, dict) or d.get("kind") not in ("char", "word") or not isinstance(d.get("symbols"), list):
        raise ValueError("vocab.json is corrupt: expected {\"kind\": \"char\" or \"word\", \"symbols\": [...]}")
    return (CharVocab if d["kind"] == "char" else WordVocab)(d["symbols"])
