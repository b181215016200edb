"""POS tagger: CoNLL-U reading, finite differences for the character CNN and the whole tagger,
PyTorch parity of the character CNN, one-line errors on bad files, and train -> tag on the CLI."""
import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.gradcheck import numerical_grad, relative_error
from rnnkit.tasks.conllu_data import read_conllu
from rnnkit.tasks.tagger import CharCNN, Tagger, TaggerVocab, load_tagger, make_batch

ROWS = [  # (id, form, upos)
    ("1", "I", "PRON"), ("2", "work", "VERB"), ("3", "at", "ADP"), ("4", "google", "PROPN"), ("5", ".", "PUNCT")]


def conllu_text(rows_list):
    out = []
    for i, rows in enumerate(rows_list):
        out.append(f"# sent_id = s{i}")
        for id_, form, upos in rows:
            out.append("\t".join([id_, form, form.lower(), upos, "_", "_", "0", "root", "_", "_"]))
        out.append("")
    return "\n".join(out) + "\n"


SENTENCES = [ROWS,
             [("1-2", "don't", "_"), ("1", "do", "AUX"), ("2", "n't", "PART"), ("3", "go", "VERB"),
              ("3.1", "went", "VERB"), ("4", "!", "PUNCT")],
             [("1", "She", "PRON"), ("2", "works", "VERB"), ("3", "at", "ADP"), ("4", "IBM", "PROPN"), ("5", ".", "PUNCT")],
             [("1", "We", "PRON"), ("2", "eat", "VERB"), ("3", "the", "DET"), ("4", "big", "ADJ"), ("5", "apples", "NOUN")]]


@pytest.fixture
def conllu_file(tmp_path):
    path = tmp_path / "tiny.conllu"
    path.write_text(conllu_text(SENTENCES))
    return path


def test_reader_skips_multiword_tokens_and_empty_nodes(conllu_file):
    sents = read_conllu(conllu_file)
    assert sents[0] == (["I", "work", "at", "google", "."], ["PRON", "VERB", "ADP", "PROPN", "PUNCT"])
    assert sents[1] == (["do", "n't", "go", "!"], ["AUX", "PART", "VERB", "PUNCT"])
    assert len(sents) == 4


def _check_grads(model, f, tol=1e-6):
    for name, p, g in model.named_parameters():
        num = numerical_grad(f, p)
        assert relative_error(g, num) < tol, f"{name}: relative error {relative_error(g, num):.2e}"


def test_char_cnn_gradients():
    rng = np.random.default_rng(0)
    cnn = CharCNN(7, 3, 4, 3, dtype=np.float64, seed=1)
    chars = np.array([[2, 4, 5, 6, 3, 0], [2, 4, 3, 0, 0, 0], [2, 6, 5, 5, 4, 3]])
    n_chars = np.array([5, 3, 6])
    w = rng.standard_normal((3, 4))
    f = lambda: float((cnn(chars, n_chars) * w).sum())  # noqa: E731
    f()
    cnn.backward(w)
    _check_grads(cnn, f)


def test_char_cnn_ignores_padding_and_matches_torch():
    import torch

    cnn = CharCNN(9, 5, 6, 3, dtype=np.float64, seed=2)
    word = [2, 4, 5, 8, 3]
    short = cnn(np.array([word]), np.array([5]))
    padded = cnn(np.array([word + [0, 0, 0], word + [7, 7, 7]]), np.array([5, 5]))
    np.testing.assert_allclose(padded[0], short[0], err_msg="padding changed a word's vector")
    np.testing.assert_allclose(padded[1], short[0], err_msg="characters past the word's end were read")
    emb = torch.from_numpy(cnn.embed.params["weight"])[torch.tensor(word)].T[None]   # (1, E, L)
    conv = torch.nn.functional.conv1d(emb, torch.from_numpy(cnn.params["weight"]), torch.from_numpy(cnn.params["bias"]))
    np.testing.assert_allclose(short[0], torch.tanh(conv.max(dim=2).values)[0].numpy(), rtol=1e-10,
                               err_msg="CharCNN differs from torch conv1d + max + tanh")


def test_tagger_gradients(conllu_file):
    sents = read_conllu(conllu_file)
    vocab = TaggerVocab.build(sents)
    model = Tagger(len(vocab.words), len(vocab.chars), len(vocab.tags), word_dim=3, char_dim=2, char_filters=3,
                   hidden=2, layers=2, dropout=0.0, dtype=np.float64, seed=3)
    batch = make_batch(vocab, sents[:3], 6, 3)     # ragged lengths, a repeated word ("at", ".")
    model.zero_grad()
    model.loss(batch)
    model.backward()
    _check_grads(model, lambda: model.loss(batch)[0])


def test_word_dropout_replaces_rare_words_only():
    sents = [(["a", "a", "a", "rare"], ["DET"] * 4)] * 50
    vocab = TaggerVocab.build(sents)
    b = make_batch(vocab, sents, 10, 3, np.random.default_rng(0), alpha=0.25)
    ids = b["word_ids"]
    assert (ids[:3] == vocab.word_id("a")).mean() > 0.99          # count 150: almost never dropped
    assert (ids[3] == 1).mean() < 0.05                            # count 50: rarely
    assert b["chars"].shape[0] == 2                               # one character row per distinct word


def test_train_then_tag_on_the_command_line(conllu_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "tagger", "--train", str(conllu_file), "--dev", str(conllu_file), "--out", str(out),
                 "--max-steps", "4", "--eval-every", "2", "--batch", "2"]) == 0
    capsys.readouterr()
    assert main(["tag", str(out), "I work at google ."]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split("\t")[0] for ln in lines] == ["I", "work", "at", "google", "."]
    assert all(ln.split("\t")[1] in load_tagger(out).vocab.tags for ln in lines)


@pytest.mark.parametrize("content, message", [
    ("", "holds no sentences"),
    ("1\tI\tI\tPRON\n\n", "expected 10 tab-separated columns, got 4"),
    ("1\tI\tI\tPRONOUN\t_\t_\t0\troot\t_\t_\n\n", "unknown UPOS tag 'PRONOUN'"),
    ("x\tI\tI\tPRON\t_\t_\t0\troot\t_\t_\n\n", "the ID column must be an integer, got 'x'"),
    ("I PRON\nwork VERB\n\n", "expected 10 tab-separated columns, got 1"),
])
def test_bad_conllu_is_one_line(tmp_path, capsys, content, message, conllu_file):
    bad = tmp_path / "bad.conllu"
    bad.write_text(content)
    code = main(["train", "tagger", "--train", str(bad), "--dev", str(conllu_file), "--out", str(tmp_path / "r"),
                 "--max-steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_missing_file_and_wrong_model_folder(tmp_path, capsys):
    assert main(["train", "tagger", "--train", str(tmp_path / "nope.conllu"), "--out", str(tmp_path / "r")]) == 2
    assert "nope.conllu' not found" in capsys.readouterr().err
    assert main(["tag", str(tmp_path), "hello"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no checkpoint" in err
