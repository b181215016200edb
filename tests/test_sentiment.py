"""Sentiment: finite differences for the pooling and the whole model, tokenization, one-line errors
on bad files, order sensitivity, and train (with cross-validation) -> classify on the CLI."""
import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.gradcheck import numerical_grad, relative_error
from rnnkit.tasks.sentiment import (SentimentModel, load_classifier, negation_sentences, polar_words, pool_backward,
                                    pool_forward, tokenize)

POS = ["a good film , not bad at all", "good acting and a great story", "the best movie of the year",
       "warm , funny and good", "a delight , not boring", "great fun"] * 3
NEG = ["a bad film , not good at all", "bad acting and a dull story", "the worst movie of the year",
       "cold , boring and bad", "a mess , not funny", "dull and bad"] * 3


@pytest.fixture
def polarity_files(tmp_path):
    pos, neg = tmp_path / "tiny.pos", tmp_path / "tiny.neg"
    pos.write_text("\n".join(POS) + "\n", encoding="latin-1")
    neg.write_text("\n".join(NEG) + "\n", encoding="latin-1")
    return pos, neg


def test_pooling_gradients():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((5, 3, 4))
    lengths = np.array([5, 2, 1])
    w = rng.standard_normal((3, 8))
    s, cache = pool_forward(h, lengths)
    np.testing.assert_allclose(s[1, 4:], h[:2, 1].mean(0), err_msg="mean must cover the sequence's own steps")
    np.testing.assert_allclose(s[2, :4], h[0, 2], err_msg="max over one step is that step")
    dh = pool_backward(w, cache)
    num = numerical_grad(lambda: float((pool_forward(h, lengths)[0] * w).sum()), h)
    assert relative_error(dh, num) < 1e-7, f"dh: relative error {relative_error(dh, num):.2e}"
    assert not dh[2:, 1].any() and not dh[1:, 2].any(), "padding must get no gradient"


def test_model_gradients():
    model = SentimentModel(10, embed=3, hidden=2, dropout=0.0, dtype=np.float64, seed=1)
    batch = (np.array([[2, 5, 7], [3, 6, 0], [4, 0, 0], [9, 0, 0]]), np.array([4, 2, 1]), np.array([1, 0, 1]))
    model.zero_grad()
    model.loss(batch)
    model.backward()
    for name, p, g in model.named_parameters():
        num = numerical_grad(lambda: model.loss(batch)[0], p)
        assert relative_error(g, num) < 1e-6, f"{name}: relative error {relative_error(g, num):.2e}"


def test_tokenize():
    assert tokenize("The food was good, not bad at all!") == ["the", "food", "was", "good", ",", "not", "bad",
                                                             "at", "all", "!"]
    assert tokenize("it isn't the film's fault ...") == ["it", "is", "n't", "the", "film", "'s", "fault", "..."]


def test_train_with_folds_then_classify(polarity_files, tmp_path, capsys):
    pos, neg = polarity_files
    out = tmp_path / "run"
    assert main(["train", "sentiment", "--pos", str(pos), "--neg", str(neg), "--out", str(out), "--folds", "2",
                 "--max-steps", "3", "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "fold 1/2" in printed and "fold 2/2" in printed and "2-fold cross-validation accuracy" in printed
    assert main(["classify", str(out), "the food was good, not bad at all"]) == 0
    label, p = capsys.readouterr().out.split()
    assert label in ("positive", "negative") and 0.5 <= float(p) <= 1.0


def test_an_ensemble_averages_its_members(polarity_files, tmp_path, capsys):
    pos, neg = polarity_files
    out = tmp_path / "run"
    assert main(["train", "sentiment", "--pos", str(pos), "--neg", str(neg), "--out", str(out), "--members", "2",
                 "--max-steps", "4", "--epochs", "1"]) == 0
    assert sorted(d.name for d in out.glob("member-*")) == ["member-0", "member-1"]
    both = load_classifier(out)
    texts = ["good, not bad", "a dull story", "great fun"]
    alone = [load_classifier(out / f"member-{k}").proba(texts) for k in range(2)]
    assert not np.allclose(alone[0], alone[1]), "the members must differ (their own seeds)"
    np.testing.assert_allclose(both.proba(texts), (alone[0] + alone[1]) / 2, rtol=1e-12)
    assert main(["classify", str(out), "great fun"]) == 0


def test_word_order_matters(polarity_files, tmp_path):
    pos, neg = polarity_files
    out = tmp_path / "run"
    assert main(["train", "sentiment", "--pos", str(pos), "--neg", str(neg), "--out", str(out),
                 "--max-steps", "20"]) == 0
    p = load_classifier(out).proba(["good, not bad", "bad, not good"])
    assert abs(p[0] - p[1]) > 1e-4, f"same words in another order gave the same output: {p}"


def test_polar_words_rank_by_log_count_ratio():
    sentences = ([["a", "great", "film"]] * 12 + [["a", "fine", "film"]] * 8 + [["rare", "gem"]] * 3
                 + [["the", "plot"]] * 6 + [["an", "awful", "film"]] * 12 + [["a", "fine", "mess"]] * 2
                 + [["mess"]] * 12 + [["the", "plot"]] * 6)
    labels = [1] * 29 + [0] * 32
    positive, negative, neutral = polar_words(sentences, labels, k=5, min_count=10)
    # great: 12 pos / 0 neg; a: 20 / 2; fine: 8 / 2; film: 20 / 12; gem, rare: too rare
    # mess: 0 / 14; an, awful: 0 / 12 (ties in alphabetical order); plot, the: 6 / 6
    assert positive == ["great", "a", "fine", "film"]
    assert negative == ["mess", "an", "awful"]
    assert neutral == ["plot", "the"]


def test_negation_sentences_follow_the_scope_of_not():
    positive, negative, neutral = ["great", "gem"], ["awful", "mess"], ["plot", "acting"]
    sentences, labels = negation_sentences(positive, negative, neutral, 500, np.random.default_rng(0))
    sign = {**{w: 1 for w in positive}, **{w: 0 for w in negative}}
    forms = set()
    for s, y in zip(sentences, labels):
        negated = [s[i + 1] for i, w in enumerate(s) if w == "not"]
        assert len(negated) == 1 and negated[0] in sign, s
        free = [w for w in s if w in sign and w not in negated]
        if free:                                      # "a , not b": the un-negated word decides
            assert len(free) == 1 and sign[free[0]] != sign[negated[0]], s
            assert y == sign[free[0]], (s, y)
        else:                                         # "not a", "m , not a": the opposite
            assert y == 1 - sign[negated[0]], (s, y)
        forms.add(tuple("W" if w in sign else "N" if w in neutral else w for w in s))
    assert forms == {("W", ",", "not", "W"), ("W", "and", "not", "W"), ("not", "W", ",", "W"), ("not", "W"),
                     ("N", ",", "not", "W")}
    assert 200 < labels.sum() < 300


@pytest.mark.parametrize("content, message", [
    (b"", "holds no sentences"),
    (b"  \n\n", "holds no sentences"),
    (b"\xff\xfeg\x00o\x00o\x00d\x00", "is not text"),
])
def test_bad_file_is_one_line(tmp_path, capsys, polarity_files, content, message):
    bad = tmp_path / "bad.pos"
    bad.write_bytes(content)
    code = main(["train", "sentiment", "--pos", str(bad), "--neg", str(polarity_files[1]), "--out",
                 str(tmp_path / "r"), "--max-steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_wrong_encoding_missing_file_and_wrong_folder(tmp_path, capsys, polarity_files):
    pos, neg = polarity_files
    bad = tmp_path / "latin.pos"
    bad.write_bytes("très bon\n".encode("latin-1"))
    assert main(["train", "sentiment", "--pos", str(bad), "--neg", str(neg), "--encoding", "utf-8",
                 "--out", str(tmp_path / "r")]) == 2
    assert "could not be decoded as utf-8" in capsys.readouterr().err
    assert main(["train", "sentiment", "--pos", str(tmp_path / "none.pos"), "--neg", str(neg),
                 "--out", str(tmp_path / "r")]) == 2
    assert "none.pos' not found" in capsys.readouterr().err
    assert main(["train", "sentiment", "--pos", str(pos), "--neg", str(neg), "--folds", "0",
                 "--out", str(tmp_path / "r")]) == 2
    assert "folds must be a positive integer, got 0" in capsys.readouterr().err
    assert main(["classify", str(tmp_path), "good"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no checkpoint" in err
