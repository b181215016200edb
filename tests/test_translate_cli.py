"""`rnnkit train translate` and `rnnkit translate`: a tiny run end to end (SentencePiece trained on
the fly, checkpoint, translation, attention heatmap), and one-line errors for bad input."""
import gzip

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.tasks.translate import TranslateConfig, load_translator, read_parallel

DE = "null eins zwei drei vier fünf sechs sieben".split()
EN = "zero one two three four five six seven".split()
TINY = ["--src-vocab", "40", "--tgt-vocab", "40", "--embed", "8", "--enc-hidden", "8", "--dec-hidden", "16",
        "--attn-size", "8", "--out-size", "8", "--batch", "16", "--eval-every", "5", "--warmup", "2"]


def write_corpus(folder, n, seed, gz=False):
    rng = np.random.default_rng(seed)
    de, en = [], []
    for _ in range(n):
        idx = rng.integers(0, len(DE), rng.integers(2, 6))
        de.append(" ".join(DE[i] for i in idx) + " .")
        en.append(" ".join(EN[i] for i in idx) + " .")
    paths = []
    for lang, lines in (("de", de), ("en", en)):
        text = ("\n".join(lines) + "\n").encode()
        path = folder / (f"s{seed}.{lang}" + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(text) if gz else text)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("translate")
    src, tgt = write_corpus(folder, 200, 0, gz=True)
    vsrc, vtgt = write_corpus(folder, 20, 1)
    out = folder / "run"
    code = main(["train", "translate", "--src", src, "--tgt", tgt, "--valid-src", vsrc, "--valid-tgt", vtgt,
                 "--out", str(out), "--attention", "general", "--max-steps", "10", *TINY])
    assert code == 0
    return out, folder


def test_train_writes_a_checkpoint_with_its_subwords(run_dir):
    out, _ = run_dir
    assert (out / "best.json").exists() and (out / "src.model").exists() and (out / "tgt.model").exists()
    tr = load_translator(out)
    assert tr.model.attention == "general"
    assert tr.subwords.src.get_piece_size() <= 40


def test_translate_prints_and_draws(run_dir, capsys, tmp_path):
    out, _ = run_dir
    png = tmp_path / "attn.png"
    assert main(["translate", str(out), "eins zwei drei .", "--beam", "2", "--attention-png", str(png)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_empty_sentence_is_one_line_error(run_dir, capsys):
    out, _ = run_dir
    assert main(["translate", str(out), "   "]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "empty" in err and "Traceback" not in err


def test_missing_file_is_one_line_error(tmp_path, capsys):
    code = main(["train", "translate", "--src", str(tmp_path / "nope.de"), "--tgt", str(tmp_path / "nope.en"),
                 "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.de" in err and "not found" in err


def test_mismatched_files_are_one_line_error(tmp_path, capsys):
    src, _ = write_corpus(tmp_path, 10, 0)
    _, tgt = write_corpus(tmp_path, 9, 1)
    code = main(["train", "translate", "--src", src, "--tgt", tgt, "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "10 lines" in err and "has 9" in err


def test_empty_line_in_training_data(tmp_path):
    (tmp_path / "a.de").write_text("eins .\n\nzwei .\n")
    (tmp_path / "a.en").write_text("one .\nnone .\ntwo .\n")
    with pytest.raises(ValueError, match="line 2 of training source file .* is empty"):
        read_parallel(tmp_path / "a.de", tmp_path / "a.en")


def test_bad_options_name_the_value(tmp_path, capsys):
    assert main(["train", "translate", "--out", str(tmp_path), "--attention", "luong"]) == 2
    assert "got 'luong'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="dot attention needs dec_hidden == 2 \\* enc_hidden"):
        TranslateConfig(attention="dot", enc_hidden=100, dec_hidden=300)


def test_not_a_run_folder(tmp_path, capsys):
    assert main(["translate", str(tmp_path), "eins ."]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err
