"""Decoding a trained encoder-decoder: greedy and batched beam search with length normalisation.

Works with any model exposing the decoding interface of rnnkit.seq2seq.Seq2Seq:

    memory = model.encode(src (S, B), src_len (B,))          # a dict; memory["s0"] the first state
    logp, s, alpha = model.step(y_prev (N,), s (N, H), memory)
    model.select(memory, index)                               # rows `index` of the memory

A hypothesis y_1..y_n (y_n = EOS unless cut at max_len) scores

    score = log p(y_1..y_n | x) / n ** alpha       (alpha = 0: the plain sum; 1: the mean per token)

Greedy takes the argmax at each step. Beam search keeps the K best prefixes per sentence (all
sentences of a batch at once, B*K decoder rows), ranks the 2K best extensions, moves those
ending in EOS among the first K to the finished list (their score length-normalised) and the
best K others to the next step; a sentence is done when K hypotheses have finished (alive
ones are finished at max_len). The best finished hypothesis by normalised score is returned.
With K = 1 this is exactly greedy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import checks


@dataclass
class Hypothesis:
    tokens: list                      # output ids y_1..y_n, EOS removed
    logprob: float                    # log p(y_1..y_n | x), EOS included when generated
    score: float                      # logprob / n ** alpha, n = tokens generated (EOS included)
    attention: np.ndarray | None      # (n, S) attention weights over the sentence's own source, or None


def normalise(logprob, length, alpha: float):
    """The length-normalised score: logprob / length ** alpha."""
    return logprob / np.power(np.maximum(length, 1), alpha)


def _max_len(src_len, max_len):
    if max_len is None:
        return int(1.5 * int(np.max(src_len)) + 5)
    return checks.positive_int("max_len", max_len)


def greedy(model, src, src_len, *, bos: int, eos: int, max_len: int | None = None,
           alpha: float = 1.0) -> list[Hypothesis]:
    """The argmax path for each sentence of the batch: src (S, B) ids, src_len (B,)."""
    src_len = np.asarray(src_len)
    L = _max_len(src_len, max_len)
    memory = model.encode(src, src_len)
    B = src_len.shape[0]
    s = memory["s0"]
    y = np.full(B, bos, np.int64)
    done = np.zeros(B, bool)
    logprob = np.zeros(B)
    length = np.zeros(B, np.int64)
    tokens, alphas = [], []
    for _ in range(L):
        logp, s, att = model.step(y, s, memory)
        y = logp.argmax(axis=1)
        live = ~done
        logprob[live] += logp[np.arange(B), y][live]
        length[live] += 1
        tokens.append(np.where(live, y, -1))
        alphas.append(att)
        done |= y == eos
        if done.all():
            break
    tokens = np.array(tokens).T                                              # (B, steps)
    out = []
    for b in range(B):
        seq = [int(t) for t in tokens[b] if t >= 0]
        attn = None
        if alphas[0] is not None:
            attn = np.stack([a[:src_len[b], b] for a in alphas[:len(seq)]])
        if seq and seq[-1] == eos:
            seq = seq[:-1]
        out.append(Hypothesis(seq, float(logprob[b]), float(normalise(logprob[b], length[b], alpha)), attn))
    return out


def beam_search(model, src, src_len, *, bos: int, eos: int, beam: int = 5, max_len: int | None = None,
                alpha: float = 1.0) -> list[Hypothesis]:
    """The best hypothesis of a width-`beam` search for each sentence of the batch."""
    K = checks.positive_int("beam", beam)
    src_len = np.asarray(src_len)
    L = _max_len(src_len, max_len)
    B = src_len.shape[0]
    memory = model.select(model.encode(src, src_len), np.repeat(np.arange(B), K))   # row b*K + k
    s = memory["s0"]
    y = np.full(B * K, bos, np.int64)
    scores = np.full((B, K), -np.inf)
    scores[:, 0] = 0.0                                                       # one live prefix to start
    hist = np.zeros((B, K, 0), np.int64)                                     # tokens so far
    att_hist = None
    finished = [[] for _ in range(B)]                                        # (score, logprob, tokens, attn)
    done = np.zeros(B, bool)
    for t in range(L):
        logp, s, att = model.step(y, s, memory)                              # (B*K, V)
        V = logp.shape[1]
        if att is not None:
            att = att.T.reshape(B, K, 1, -1)                                  # (B, K, 1, S)
            att_hist = att if att_hist is None else np.concatenate([att_hist, att], axis=2)
        cand = (scores[:, :, None] + logp.reshape(B, K, V)).reshape(B, K * V)
        n_c = min(2 * K, K * V)
        top = np.argpartition(-cand, n_c - 1, axis=1)[:, :n_c]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(cand, top, 1), axis=1, kind="stable"), 1)
        parent = np.zeros((B, K), np.int64)
        new_tok = np.full((B, K), eos, np.int64)
        new_scores = np.full((B, K), -np.inf)
        last = t == L - 1
        for b in range(B):
            if done[b]:
                continue
            n_alive = 0
            for rank, idx in enumerate(top[b]):
                value = cand[b, idx]
                if not np.isfinite(value):
                    break
                k, tok = divmod(int(idx), V)
                if tok == eos:
                    if rank < K:                                              # EOS counts among the first K only
                        seq = hist[b, k].tolist()
                        a = None if att_hist is None else att_hist[b, k, :, :src_len[b]]
                        finished[b].append((float(normalise(value, t + 1, alpha)), float(value), seq, a))
                elif n_alive < K:
                    parent[b, n_alive], new_tok[b, n_alive], new_scores[b, n_alive] = k, tok, value
                    n_alive += 1
            if len(finished[b]) >= K:
                done[b] = True
            elif last:                                                        # cut at max_len: finish the live ones
                for j in range(n_alive):
                    seq = hist[b, parent[b, j]].tolist() + [int(new_tok[b, j])]
                    a = None if att_hist is None else att_hist[b, parent[b, j], :, :src_len[b]]
                    finished[b].append((float(normalise(new_scores[b, j], t + 1, alpha)), float(new_scores[b, j]),
                                        seq, a))
                done[b] = True
        rows = (np.arange(B)[:, None] * K + parent).reshape(-1)               # reorder the beams
        s = s[rows]
        hist = np.concatenate([hist[np.arange(B)[:, None], parent], new_tok[:, :, None]], axis=2)
        if att_hist is not None:
            att_hist = att_hist[np.arange(B)[:, None], parent]
        scores = new_scores
        y = new_tok.reshape(-1)
        if done.all():
            break
    out = []
    for b in range(B):
        score, lp, seq, a = max(finished[b], key=lambda f: f[0])
        out.append(Hypothesis(list(seq), lp, score, a))
    return out
