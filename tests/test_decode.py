"""Greedy and batched beam search: beam 1 is greedy; a beam wide enough to keep every prefix finds
the best sequence by brute force (so never worse than greedy); a batch decodes as its sentences
one by one; length normalisation."""
import itertools

import numpy as np
import pytest

from rnnkit.decode import beam_search, greedy, normalise
from rnnkit.seq2seq import Seq2Seq

BOS, EOS, VT, L = 0, 1, 4, 4
SRC = np.array([[3, 1, 5, 2, 4, 6], [2, 6, 1, 0, 5, 3], [4, 0, 2, 0, 1, 5], [5, 0, 0, 0, 6, 2], [1, 0, 0, 0, 0, 4]])
SRC_LEN = np.array([5, 2, 3, 1, 4, 5])


def tiny(attention, sharpness=4.0, seed=3):
    m = Seq2Seq(7, VT, embed=3, enc_hidden=2, dec_hidden=4, attn_size=3, out_size=5, attention=attention,
                dtype=np.float64, seed=seed).eval()
    for p in m.out.params.values():
        p *= sharpness                                # peakier distributions: greedy and beam part ways
    return m


def brute_force(m, b, alpha):
    """The best normalised score over every sequence of at most L tokens (ending in EOS or cut at L)."""
    memory = m.encode(SRC[:, b:b + 1], SRC_LEN[b:b + 1])
    best = -np.inf
    for n in range(1, L + 1):
        for seq in itertools.product(range(VT), repeat=n):
            if EOS in seq[:-1] or (n < L and seq[-1] != EOS):
                continue
            s, y, lp = memory["s0"], BOS, 0.0
            for tok in seq:
                logp, s, _ = m.step(np.array([y]), s, memory)
                lp, y = lp + logp[0, tok], tok
            best = max(best, float(normalise(lp, n, alpha)))
    return best


@pytest.mark.parametrize("attention", ["additive", "general", "none"])
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_beam_one_is_greedy(attention, alpha):
    m = tiny(attention)
    g = greedy(m, SRC, SRC_LEN, bos=BOS, eos=EOS, max_len=6, alpha=alpha)
    b = beam_search(m, SRC, SRC_LEN, bos=BOS, eos=EOS, beam=1, max_len=6, alpha=alpha)
    for i, (x, y) in enumerate(zip(g, b)):
        assert x.tokens == y.tokens, f"sentence {i}: greedy {x.tokens} vs beam 1 {y.tokens}"
        assert x.score == pytest.approx(y.score, abs=1e-12), f"sentence {i}"
        if attention != "none":
            np.testing.assert_allclose(x.attention, y.attention, err_msg=f"sentence {i} attention")


@pytest.mark.parametrize("attention", ["additive", "dot", "none"])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_finds_the_best_sequence(attention, alpha):
    m = tiny(attention, sharpness=2.0)
    wide = beam_search(m, SRC, SRC_LEN, bos=BOS, eos=EOS, beam=VT ** L, max_len=L, alpha=alpha)
    g = greedy(m, SRC, SRC_LEN, bos=BOS, eos=EOS, max_len=L, alpha=alpha)
    for b in range(len(SRC_LEN)):
        assert wide[b].score == pytest.approx(brute_force(m, b, alpha), abs=1e-10), f"sentence {b}"
        assert wide[b].score >= g[b].score - 1e-12, f"sentence {b}: beam {wide[b].score} < greedy {g[b].score}"


def test_beam_beats_greedy_somewhere():
    """On a tiny model, beam 3 is never worse than greedy here and strictly better on some sentence."""
    better = 0
    for seed in range(4):
        m = tiny("additive", sharpness=1.5, seed=seed)
        g = greedy(m, SRC, SRC_LEN, bos=BOS, eos=EOS, max_len=8, alpha=0.0)
        b = beam_search(m, SRC, SRC_LEN, bos=BOS, eos=EOS, beam=3, max_len=8, alpha=0.0)
        for x, y in zip(g, b):
            assert y.score >= x.score - 1e-12
            better += y.score > x.score + 1e-9
    assert better > 0


@pytest.mark.parametrize("beam", [1, 3])
def test_batch_equals_one_by_one(beam):
    m = tiny("additive")
    batch = beam_search(m, SRC, SRC_LEN, bos=BOS, eos=EOS, beam=beam, max_len=6, alpha=0.7)
    for b in range(len(SRC_LEN)):
        n = SRC_LEN[b]
        alone = beam_search(m, SRC[:n, b:b + 1], SRC_LEN[b:b + 1], bos=BOS, eos=EOS, beam=beam, max_len=6,
                            alpha=0.7)[0]
        assert alone.tokens == batch[b].tokens, f"sentence {b}"
        assert alone.score == pytest.approx(batch[b].score, abs=1e-10)
        assert batch[b].attention.shape == (len(alone.tokens) + (len(alone.tokens) < 6), n)
        np.testing.assert_allclose(batch[b].attention.sum(1), 1.0, err_msg="each row of attention sums to 1")


def test_hypothesis_scores_are_log_probabilities():
    m = tiny("additive")
    h = greedy(m, SRC, SRC_LEN, bos=BOS, eos=EOS, max_len=6, alpha=0.0)[0]
    memory = m.encode(SRC[:, :1], SRC_LEN[:1])
    s, y, lp = memory["s0"], BOS, 0.0
    seq = h.tokens + ([EOS] if len(h.tokens) < 6 else [])
    for tok in seq:
        logp, s, _ = m.step(np.array([y]), s, memory)
        lp, y = lp + logp[0, tok], tok
    assert h.logprob == pytest.approx(lp, abs=1e-12)
    assert normalise(-6.0, 4, 0.5) == pytest.approx(-3.0)
    assert normalise(-6.0, 4, 0.0) == pytest.approx(-6.0)


def test_errors_name_the_value():
    m = tiny("none")
    with pytest.raises(ValueError, match="beam must be a positive integer, got 0"):
        beam_search(m, SRC, SRC_LEN, bos=BOS, eos=EOS, beam=0)
    with pytest.raises(ValueError, match="max_len must be a positive integer, got -1"):
        greedy(m, SRC, SRC_LEN, bos=BOS, eos=EOS, max_len=-1)
