"""Encoder-decoder with optional attention, trained with teacher forcing, backward written by hand.

Source x_1..x_S, target y_1..y_T (y_0 = BOS, y_T = EOS). With E the embedding size, H_e the
encoder's units per direction (K = 2 H_e), H_d the decoder's units:

    h_j      = BiGRU(dropout(E_src[x]))_j                          (S, B, K)   encoder (or BiLSTM)
    z        = [h_fwd_last ; h_bwd_last]                           (B, K)      each sentence's own last steps
    s_0      = tanh(W_init z + b_init)                             (B, H_d)
    each target step t = 1..T:
      c_t    = attention(s_{t-1}, h)          (additive, dot, general)      (B, K)
             = z                              (attention 'none': the single-vector bottleneck)
      s_t    = GRUCell([e_t ; c_t], s_{t-1}),  e_t = dropout(E_tgt[y_{t-1}])
      o_t    = tanh(W_o [s_t ; c_t ; e_t] + b_o)                   (B, P)      deep output
      p(y_t) = softmax(W_V dropout(o_t) + b_V)                     (B, V)

The context enters the decoder's input (Bahdanau et al. 2015), so step t depends on step t-1's
attention: the decoder is a loop over a GRUCell with step / step_backward. The deep output is
batched over all steps after the loop (teacher forcing makes every s_t, c_t known by then).

    model = Seq2Seq(src_vocab, tgt_vocab, attention="additive")
    loss, n_tokens = model.loss((src, src_len, tgt_in, tgt_out, tgt_mask))   # mean over real tokens
    model.backward()                                                          # grads of that mean
    memory = model.encode(src, src_len); logp, s, alpha = model.step(y_prev, s, memory)   # decoding
"""
from __future__ import annotations

import numpy as np

from . import checks
from .attention import SCORES, make_attention
from .cells import GRUCell
from .grad_mode import no_grad
from .layers import Dropout, Embedding, Linear
from .losses import log_softmax, softmax_cross_entropy
from .module import Module
from .recurrent import GRU, LSTM

ATTENTIONS = SCORES + ("none",)


class Seq2Seq(Module):
    """Bidirectional-RNN encoder, GRU decoder, attention 'additive' | 'dot' | 'general' | 'none'."""

    def __init__(self, src_vocab: int, tgt_vocab: int, *, embed: int = 256, enc_hidden: int = 256,
                 dec_hidden: int = 512, attention: str = "additive", attn_size: int = 256, out_size: int = 256,
                 encoder: str = "gru", dropout: float = 0.3, seed: int = 0, dtype=np.float32):
        super().__init__()
        checks.one_of("attention", attention, set(ATTENTIONS))
        checks.one_of("encoder", encoder, {"gru", "lstm"})
        for name, value in (("src_vocab", src_vocab), ("tgt_vocab", tgt_vocab), ("embed", embed),
                            ("enc_hidden", enc_hidden), ("dec_hidden", dec_hidden), ("attn_size", attn_size),
                            ("out_size", out_size)):
            checks.positive_int(name, value)
        checks.probability("dropout", dropout)
        self.dtype = checks.float_dtype("dtype", dtype)
        self.args = dict(src_vocab=src_vocab, tgt_vocab=tgt_vocab, embed=embed, enc_hidden=enc_hidden,
                         dec_hidden=dec_hidden, attention=attention, attn_size=attn_size, out_size=out_size,
                         encoder=encoder, dropout=dropout, seed=seed, dtype=self.dtype.name)
        self.E, self.He, self.Hd, self.K = embed, enc_hidden, dec_hidden, 2 * enc_hidden
        self.attention = attention
        rng = np.random.default_rng(seed)
        s = lambda: int(rng.integers(2**31))  # noqa: E731  one seed per part
        self.src_embed = Embedding(src_vocab, embed, dtype=dtype, seed=s())
        self.tgt_embed = Embedding(tgt_vocab, embed, dtype=dtype, seed=s())
        for emb in (self.src_embed, self.tgt_embed):
            emb.params["weight"] *= 0.1
        self.drop_src = Dropout(dropout, seed=s())
        self.drop_tgt = Dropout(dropout, seed=s())
        self.drop_out = Dropout(dropout, seed=s())
        rnn = GRU if encoder == "gru" else LSTM
        self.encoder = rnn(embed, enc_hidden, bidirectional=True, dtype=dtype, seed=s())
        self.init = Linear(self.K, dec_hidden, dtype=dtype, seed=s())
        if attention != "none":
            self.attn = make_attention(attention, dec_hidden, self.K, attn_size, dtype=dtype, seed=s())
        self.cell = GRUCell(embed + self.K, dec_hidden, dtype=dtype, seed=s())
        self.pre = Linear(dec_hidden + self.K + embed, out_size, dtype=dtype, seed=s())
        self.out = Linear(out_size, tgt_vocab, dtype=dtype, seed=s())
        self._cache = None

    def config(self) -> dict:
        return dict(self.args)

    # --- encoder ------------------------------------------------------------------------------------
    def _encode(self, src, src_len):
        """src (S, B) ids, src_len (B,) -> memory dict and the encoder-side cache."""
        src = np.asarray(src)
        src_len = np.asarray(src_len)
        if src.ndim != 2 or src_len.shape != (src.shape[1],):
            raise ValueError(f"src must be (S, B) and src_len (B,), got shapes {src.shape} and {src_len.shape}")
        es = self.drop_src(self.src_embed(src))                                  # (S, B, E)
        h, h_n = self.encoder.forward(es, lengths=src_len)                       # (S, B, K), (2, B, H_e)
        if isinstance(h_n, tuple):                                               # LSTM: (h_n, c_n)
            h_n = h_n[0]
        z = np.concatenate([h_n[0], h_n[1]], axis=1)                             # (B, K)
        s0 = np.tanh(self.init(z))                                               # (B, H_d)
        mask = np.arange(src.shape[0])[:, None] < src_len[None, :]               # (S, B)
        keys, kcache = self.attn.prepare(h) if self.attention != "none" else (None, None)
        return dict(h=h, keys=keys, mask=mask, z=z, s0=s0), kcache

    def encode(self, src, src_len) -> dict:
        """The memory the decoder reads (eval mode, no caches kept): h, keys, mask, z, s0."""
        with no_grad():
            return self._encode(src, src_len)[0]

    @staticmethod
    def select(memory: dict, index) -> dict:
        """The memory of sentences `index` (batch positions, repeats allowed), for beam search."""
        out = {}
        for k, v in memory.items():
            if v is None:
                out[k] = None
            elif k in ("h", "keys", "mask"):
                out[k] = v[:, index]
            else:
                out[k] = v[index]
        return out

    def _context(self, s_prev, memory):
        """c_t for query s_{t-1}: (c (B, K), alpha (S, B) or None, cache or None)."""
        if self.attention == "none":
            return memory["z"], None, None
        return self.attn.step(s_prev, memory["keys"], memory["h"], memory["mask"])

    # --- one decoder step, for decoding --------------------------------------------------------------
    def step(self, y_prev, s_prev, memory):
        """y_prev (N,) ids, s_prev (N, H_d) -> (log p (N, V), s (N, H_d), alpha (S, N) or None)."""
        e = self.tgt_embed.params["weight"][np.asarray(y_prev)]                 # (N, E) (no dropout: eval)
        c, alpha, _ = self._context(s_prev, memory)
        s, _ = self.cell.step(np.concatenate([e, c], axis=1), s_prev)
        o = np.tanh(np.concatenate([s, c, e], axis=1) @ self.pre.params["weight"].T + self.pre.params["bias"])
        logits = o @ self.out.params["weight"].T + self.out.params["bias"]
        return log_softmax(logits), s, alpha

    # --- teacher forcing ----------------------------------------------------------------------------
    def forward(self, src, src_len, tgt_in):
        """Logits (T, B, V) for next-token prediction given tgt_in (T, B) = [BOS, y_1, ..., y_{T-1}]."""
        memory, kcache = self._encode(src, src_len)
        et = self.drop_tgt(self.tgt_embed(np.asarray(tgt_in)))                   # (T, B, E)
        T, B = et.shape[:2]
        s = memory["s0"]
        S_all = np.empty((T, B, self.Hd), self.dtype)
        C_all = np.empty((T, B, self.K), self.dtype)
        steps = []
        for t in range(T):
            c, alpha, acache = self._context(s, memory)                          # attention on s_{t-1}
            s, ccache = self.cell.step(np.concatenate([et[t], c], axis=1), s)    # s_t
            S_all[t], C_all[t] = s, c
            steps.append((acache, ccache))
        o = np.tanh(self.pre(np.concatenate([S_all, C_all, et], axis=2)))         # (T, B, P) deep output
        logits = self.out(self.drop_out(o))                                      # (T, B, V)
        self._cache = dict(memory=memory, kcache=kcache, steps=steps, o=o)
        return logits

    def loss(self, batch):
        """batch = (src, src_len, tgt_in, tgt_out, tgt_mask) -> (mean cross-entropy per real token, tokens)."""
        src, src_len, tgt_in, tgt_out, tgt_mask = batch
        logits = self.forward(src, src_len, tgt_in)
        loss, self._dlogits = softmax_cross_entropy(logits, tgt_out, tgt_mask)
        return loss, int(np.asarray(tgt_mask).sum())

    def backward(self):
        """Gradients of the last loss() into grads: backward walks forward in reverse."""
        if self._cache is None:
            raise ValueError("backward() called before loss(): there is no forward pass to back-propagate")
        cache, self._cache = self._cache, None
        memory, steps, o = cache["memory"], cache["steps"], cache["o"]
        E, K, Hd = self.E, self.K, self.Hd
        do = self.drop_out.backward(self.out.backward(self._dlogits))           # into o
        self._dlogits = None
        dfeat = self.pre.backward(do * (1 - o * o))                               # through tanh and W_o
        dS, dC, det = dfeat[..., :Hd], dfeat[..., Hd:Hd + K], np.array(dfeat[..., Hd + K:])
        h = memory["h"]
        dh = np.zeros_like(h)
        dkeys = None if memory["keys"] is None else np.zeros_like(memory["keys"])
        dz = np.zeros_like(memory["z"])
        ds = np.zeros_like(memory["s0"])
        for t in range(len(steps) - 1, -1, -1):
            acache, ccache = steps[t]
            ds = ds + dS[t]                                                       # s_t feeds the output and step t+1
            dx, ds = self.cell.step_backward(ds, ccache)                           # into [e_t ; c_t] and s_{t-1}
            det[t] += dx[:, :E]
            dc = dC[t] + dx[:, E:]
            if acache is None:
                dz += dc                                                          # no attention: c_t = z
            else:
                dq, dk, dh_t = self.attn.step_backward(dc, acache)               # into s_{t-1}, keys, h
                ds = ds + dq
                dkeys += dk
                dh += dh_t
        s0 = memory["s0"]
        dz += self.init.backward(ds * (1 - s0 * s0))                              # through s_0 = tanh(W_init z + b)
        if dkeys is not None:
            dh += self.attn.prepare_backward(dkeys, cache["kcache"])             # keys from h
        dh_n = np.stack([dz[:, :self.He], dz[:, self.He:]])                       # (2, B, H_e) fwd, bwd
        grad_state = (dh_n, None) if isinstance(self.encoder, LSTM) else dh_n
        des, _ = self.encoder.backward(dh, grad_state)
        self.src_embed.backward(self.drop_src.backward(des))
        self.tgt_embed.backward(self.drop_tgt.backward(det))
