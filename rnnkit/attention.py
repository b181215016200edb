"""Attention over an encoder's outputs: additive (Bahdanau et al. 2015), dot and general (Luong et al. 2015).

For a query q (B, Q) (the decoder state) and encoder outputs h_j (S, B, K) (the values):

    additive   e_j = v . tanh(W_q q + W_k h_j + b)        W_q (A, Q), W_k (A, K), b (A,), v (A,)
    dot        e_j = q . h_j                               (Q == K)
    general    e_j = q . (W_a h_j)                         W_a (Q, K)

    alpha = softmax_j(e)        over each sentence's own positions (mask 0 gives alpha_j = 0)
    c     = sum_j alpha_j h_j   (B, K)

The part of the score that depends on h_j only, the keys k_j (W_k h_j + b for additive, W_a h_j
for general, h_j for dot), is computed once per sentence by `prepare` and reused at every
decoder step:

    keys, kcache = attn.prepare(h)                       # once per batch of sentences
    c, alpha, cache = attn.step(q, keys, h, mask)        # each decoder step
    dq, dkeys, dh = attn.step_backward(dc, cache)        # each step, in reverse; adds to grads
    dh_more = attn.prepare_backward(dkeys_sum, kcache)   # once, with the steps' dkeys summed

Caches are explicit: backward needs nothing but what forward returned.
"""
from __future__ import annotations

import numpy as np

from . import checks
from .module import Module

SCORES = ("additive", "dot", "general")


def masked_softmax(e, mask):
    """softmax over axis 0 of e (S, B) where mask (S, B) is 1; 0 elsewhere."""
    e = np.where(mask, e, -np.inf)
    e = e - e.max(axis=0, keepdims=True)
    a = np.exp(e)
    return a / a.sum(axis=0, keepdims=True)


def softmax_backward(dalpha, alpha):
    """de_j = alpha_j (dalpha_j - sum_k alpha_k dalpha_k), over axis 0."""
    return alpha * (dalpha - (alpha * dalpha).sum(axis=0, keepdims=True))


class Attention(Module):
    """Shared time-step logic; subclasses define the keys and the score e_j(q, k_j)."""

    kind = ""

    def __init__(self, query_size: int, key_size: int, *, dtype=np.float32):
        super().__init__()
        self.query_size = checks.positive_int("query_size", query_size)
        self.key_size = checks.positive_int("key_size", key_size)
        self.dtype = checks.float_dtype("dtype", dtype)

    def config(self) -> dict:
        return dict(kind=self.kind, query_size=self.query_size, key_size=self.key_size, dtype=self.dtype.name)

    # --- keys: once per sentence ---------------------------------------------------------------------
    def prepare(self, h):
        """h (S, B, K) -> (keys, cache)."""
        return h, None

    def prepare_backward(self, dkeys, cache):
        """dkeys (shaped like keys) -> dh (S, B, K), adding parameter gradients."""
        return dkeys

    # --- scores -------------------------------------------------------------------------------------
    def score(self, q, keys):
        """q (B, Q), keys -> (e (S, B), cache)."""
        raise NotImplementedError

    def score_backward(self, de, cache):
        """de (S, B) -> (dq (B, Q), dkeys)."""
        raise NotImplementedError

    # --- one decoder step ---------------------------------------------------------------------------
    def step(self, q, keys, h, mask):
        """q (B, Q), keys (from prepare), h (S, B, K), mask (S, B) bool -> (c (B, K), alpha (S, B), cache)."""
        if q.ndim != 2 or q.shape[1] != self.query_size:
            raise ValueError(f"query must have shape (B, {self.query_size}), got shape {q.shape}")
        e, scache = self.score(q, keys)                     # (S, B)
        alpha = masked_softmax(e, mask)                     # (S, B)
        c = np.einsum("sb,sbk->bk", alpha, h)               # (B, K)
        return c, alpha, (alpha, h, scache)

    def step_backward(self, dc, cache):
        """dc (B, K) -> (dq (B, Q), dkeys, dh (S, B, K)); the step's parameter gradients are added to grads."""
        alpha, h, scache = cache
        dh = alpha[:, :, None] * dc[None]                    # into h, through c = sum alpha h
        dalpha = np.einsum("bk,sbk->sb", dc, h)              # into alpha
        de = softmax_backward(dalpha, alpha)                 # through the softmax (masked: alpha = 0)
        dq, dkeys = self.score_backward(de, scache)
        return dq, dkeys, dh


class AdditiveAttention(Attention):
    """e_j = v . tanh(W_q q + W_k h_j + b) (Bahdanau et al. 2015); attention size A."""

    kind = "additive"

    def __init__(self, query_size: int, key_size: int, attn_size: int, *, dtype=np.float32,
                 seed: int | None = None):
        super().__init__(query_size, key_size, dtype=dtype)
        self.attn_size = checks.positive_int("attn_size", attn_size)
        rng = np.random.default_rng(seed)
        A = self.attn_size
        kq, kk = 1.0 / np.sqrt(query_size), 1.0 / np.sqrt(key_size)   # PyTorch's Linear bounds
        self.add_param("W_q", rng.uniform(-kq, kq, (A, query_size)).astype(self.dtype))
        self.add_param("W_k", rng.uniform(-kk, kk, (A, key_size)).astype(self.dtype))
        self.add_param("b", rng.uniform(-kk, kk, A).astype(self.dtype))
        self.add_param("v", rng.uniform(-1 / np.sqrt(A), 1 / np.sqrt(A), A).astype(self.dtype))

    def config(self) -> dict:
        return dict(super().config(), attn_size=self.attn_size)

    def prepare(self, h):
        S, B, K = h.shape
        keys = (h.reshape(S * B, K) @ self.params["W_k"].T + self.params["b"]).reshape(S, B, -1)   # (S, B, A)
        return keys, h

    def prepare_backward(self, dkeys, h):
        S, B, K = h.shape
        dk2 = dkeys.reshape(S * B, -1)
        self.grads["W_k"] += dk2.T @ h.reshape(S * B, K)
        self.grads["b"] += dk2.sum(0)
        return (dk2 @ self.params["W_k"]).reshape(S, B, K)

    def score(self, q, keys):
        qp = q @ self.params["W_q"].T                        # (B, A)
        u = np.tanh(keys + qp[None])                         # (S, B, A)
        return u @ self.params["v"], (q, u)                  # e (S, B)

    def score_backward(self, de, cache):
        q, u = cache
        self.grads["v"] += np.einsum("sb,sba->a", de, u)
        dpre = de[:, :, None] * self.params["v"] * (1 - u * u)   # through v . and tanh
        dqp = dpre.sum(0)                                    # (B, A): the query is shared by every j
        self.grads["W_q"] += dqp.T @ q
        return dqp @ self.params["W_q"], dpre                # dq, dkeys


class DotAttention(Attention):
    """e_j = q . h_j (Luong et al. 2015); needs query_size == key_size; no parameters."""

    kind = "dot"

    def __init__(self, query_size: int, key_size: int, *, dtype=np.float32):
        super().__init__(query_size, key_size, dtype=dtype)
        if query_size != key_size:
            raise ValueError(f"dot attention needs query_size == key_size, got query_size={query_size} "
                             f"and key_size={key_size} (use 'general' for different sizes)")

    def score(self, q, keys):
        return np.einsum("bq,sbq->sb", q, keys), (q, keys)

    def score_backward(self, de, cache):
        q, keys = cache
        return np.einsum("sb,sbq->bq", de, keys), de[:, :, None] * q[None]


class GeneralAttention(DotAttention):
    """e_j = q . (W_a h_j) (Luong et al. 2015): dot attention on keys W_a h_j."""

    kind = "general"

    def __init__(self, query_size: int, key_size: int, *, dtype=np.float32, seed: int | None = None):
        Attention.__init__(self, query_size, key_size, dtype=dtype)
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(key_size)
        self.add_param("W_a", rng.uniform(-k, k, (query_size, key_size)).astype(self.dtype))

    def prepare(self, h):
        S, B, K = h.shape
        return (h.reshape(S * B, K) @ self.params["W_a"].T).reshape(S, B, -1), h     # (S, B, Q)

    def prepare_backward(self, dkeys, h):
        S, B, K = h.shape
        dk2 = dkeys.reshape(S * B, -1)
        self.grads["W_a"] += dk2.T @ h.reshape(S * B, K)
        return (dk2 @ self.params["W_a"]).reshape(S, B, K)


def make_attention(kind: str, query_size: int, key_size: int, attn_size: int, *, dtype=np.float32,
                   seed: int | None = None) -> Attention:
    """The attention named `kind` ('additive', 'dot' or 'general')."""
    checks.one_of("attention", kind, set(SCORES))
    if kind == "additive":
        return AdditiveAttention(query_size, key_size, attn_size, dtype=dtype, seed=seed)
    if kind == "dot":
        return DotAttention(query_size, key_size, dtype=dtype)
    return GeneralAttention(query_size, key_size, dtype=dtype, seed=seed)
