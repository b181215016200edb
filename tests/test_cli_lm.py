"""`rnnkit train charlm|wordlm`, `rnnkit sample`, `rnnkit eval`: runs end to end and one-line errors."""
import json

import pytest

from rnnkit.cli import main

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 12
SMALL = ["--hidden", "16", "--layers", "1", "--embed", "8", "--batch", "4", "--unroll", "16", "--eval-batch", "2",
         "--no-progress"]


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as e:                      # argparse: --help and usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *fragments):
    assert code != 0
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    for f in fragments:
        assert f in err, f"{f!r} not in {err!r}"


@pytest.fixture(scope="module")
def charlm_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("charlm")
    (tmp / "input.txt").write_text(TEXT)
    code = main(["train", "charlm", "--text", str(tmp / "input.txt"), "--out", str(tmp / "run"), *SMALL,
                 "--max-steps", "12", "--eval-every", "6"])
    assert code == 0
    return tmp


def test_train_sample_eval_charlm(charlm_run, capsys):
    run_dir = charlm_run / "run"
    assert (run_dir / "curves.png").exists() and (run_dir / "latest.json").exists()
    assert json.loads((run_dir / "latest.json").read_text())["step"] == 12
    code, out, _ = run(capsys, "sample", str(run_dir), "--prime", "First", "--length", "40", "--temperature", "0.8",
                       "--seed", "1")
    assert code == 0 and out.startswith("First") and len(out) == len("First") + 40 + 1
    assert run(capsys, "sample", str(run_dir), "--prime", "First", "--length", "40", "--temperature", "0.8",
               "--seed", "1")[1] == out, "the same seed gives the same text"
    code, out, _ = run(capsys, "sample", str(run_dir), "--prime", "All", "--length", "5", "--top-k", "3",
                       "--which", "best")
    assert code == 0 and out.startswith("All")
    code, out, _ = run(capsys, "eval", str(run_dir), "--text", str(charlm_run / "input.txt"))
    assert code == 0 and "nats/char" in out and "bits/char" in out


def test_resume_continues_a_run(charlm_run, capsys):
    code, out, _ = run(capsys, "train", "charlm", "--text", str(charlm_run / "input.txt"), "--out",
                       str(charlm_run / "run"), *SMALL, "--max-steps", "15", "--eval-every", "6")
    assert code == 0 and "trained 15 steps" in out


def test_train_wordlm(tmp_path, capsys):
    words = "the cat sat on the mat\nthe dog ate the <unk>\na cat and a dog\n" * 40
    for name in ("train", "valid", "test"):
        (tmp_path / f"{name}.txt").write_text(words)
    code, out, err = run(capsys, "train", "wordlm", "--train", str(tmp_path / "train.txt"), "--valid",
                         str(tmp_path / "valid.txt"), "--test", str(tmp_path / "test.txt"), "--out",
                         str(tmp_path / "run"), *SMALL, "--max-epochs", "2", "--lr", "0.5")
    assert code == 0, err
    assert "test perplexity" in out
    (tmp_path / "other.txt").write_text("the cat ate a zebra\n")      # unknown words read as <unk>
    code, out, _ = run(capsys, "eval", str(tmp_path / "run"), "--text", str(tmp_path / "other.txt"))
    assert code == 0 and "perplexity" in out
    code, out, _ = run(capsys, "sample", str(tmp_path / "run"), "--prime", "the cat", "--length", "5", "--seed", "0")
    assert code == 0 and out.startswith("the cat ")


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["train", "charlm", "--help"],
                                  ["train", "wordlm", "--help"], ["sample", "--help"], ["eval", "--help"]])
def test_every_verb_has_help(argv, capsys):
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "usage:" in out


def test_help_shows_the_config_comments(capsys):
    _, out, _ = run(capsys, "train", "charlm", "--help")
    assert "truncated-BPTT length" in out and "--max-steps" in out


def test_user_mistakes_are_one_line(tmp_path, charlm_run, capsys):
    text = str(charlm_run / "input.txt")
    out = str(tmp_path / "o")
    code, _, err = run(capsys, "train", "charlm", "--text", str(tmp_path / "missing.txt"), "--out", out)
    one_line_error(code, err, "missing.txt", "not found")
    (tmp_path / "empty.txt").write_text("")
    code, _, err = run(capsys, "train", "charlm", "--text", str(tmp_path / "empty.txt"), "--out", out)
    one_line_error(code, err, "empty.txt", "too short")
    (tmp_path / "short.txt").write_text("hello world")
    code, _, err = run(capsys, "train", "charlm", "--text", str(tmp_path / "short.txt"), "--out", out)
    one_line_error(code, err, "too short", "need at least")
    code, _, err = run(capsys, "train", "charlm", "--text", text, "--out", out, "--hiden", "3")
    one_line_error(code, err, "unrecognized arguments: --hiden")
    code, _, err = run(capsys, "train", "charlm", "--text", text, "--out", out, "--hidden", "many")
    one_line_error(code, err, "--hidden", "'many'")
    code, _, err = run(capsys, "train", "charlm", "--text", text, "--out", out, "--cell", "lstn", *SMALL)
    one_line_error(code, err, "cell must be one of", "'lstn'")
    code, _, err = run(capsys, "sample", str(tmp_path / "nowhere"))
    one_line_error(code, err, "nowhere", "does not exist")
    code, _, err = run(capsys, "eval", str(tmp_path), "--text", text)
    one_line_error(code, err, "holds no checkpoint")
    code, _, err = run(capsys, "sample", str(charlm_run / "run"), "--prime", "Zebra{")
    one_line_error(code, err, "prime string", "'Z'", "'{'")
    code, _, err = run(capsys, "train", "wordlm", "--train", text, "--out", out)
    one_line_error(code, err, "--valid")


def test_corrupt_checkpoint_is_one_line(charlm_run, tmp_path, capsys):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(charlm_run / "run", bad)
    name = json.loads((bad / "latest.json").read_text())["checkpoint"]
    (bad / name / "model.safetensors").write_bytes(b"not a safetensors file")
    code, _, err = run(capsys, "sample", str(bad))
    one_line_error(code, err, "corrupt")
    (bad / name / "config.json").write_text("{")
    code, _, err = run(capsys, "eval", str(bad), "--text", str(charlm_run / "input.txt"))
    one_line_error(code, err, "corrupt")


@pytest.mark.parametrize("option", ["--repeats", "--rounds"])
def test_bench_speed_rejects_a_non_positive_count(capsys, option):
    code, _, err = run(capsys, "bench", "speed", option, "0")
    assert code != 0
    assert err.strip() == f"rnnkit: error: {option} must be a positive integer, got 0"
