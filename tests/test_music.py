"""Polyphonic music: data checks, the piano-roll model's gradients, MIDI, and train -> sample by CLI."""
import json

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.gradcheck import numerical_grad, relative_error
from rnnkit.tasks.music import (KEYS, LOW, evaluate_nll, load_chorales, music_model, piano_roll_batch,
                                read_midi_roll, write_midi)


def random_pieces(rng, n, lo=5, hi=12):
    return [[sorted(set(int(v) for v in rng.integers(55, 80, rng.integers(0, 5)))) for _ in range(rng.integers(lo, hi))]
            for _ in range(n)]


@pytest.fixture
def chorales(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"train": random_pieces(rng, 6), "valid": random_pieces(rng, 3),
                                "test": random_pieces(rng, 3)}))
    return path


def test_load_chorales_reads_piano_rolls(chorales):
    data = load_chorales(chorales)
    raw = json.loads(chorales.read_text())
    assert sorted(data) == ["test", "train", "valid"]
    roll = data["train"][0]
    assert roll.shape == (len(raw["train"][0]), KEYS) and roll.dtype == np.float32
    for t, notes in enumerate(raw["train"][0]):
        assert sorted(np.flatnonzero(roll[t]) + LOW) == notes


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"train": [[[60]]]}', "has no 'valid' key"),
    ('{"train": [], "valid": [[[60]]]}', "'train' must be a non-empty list of pieces"),
    ('{"train": [[[60]]], "valid": [[]]}', "'valid' piece 0 must be a non-empty list"),
    ('{"train": [[[60], [200]]], "valid": [[[60]]]}', "piece 0 step 1 must be a list of MIDI notes"),
    ('{"train": [[[60], "C4"]], "valid": [[[60]]]}', "piece 0 step 1 must be a list of MIDI notes"),
])
def test_bad_music_files_fail_in_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_chorales(path)
    assert main(["train", "music", "--data", str(path), "--out", str(tmp_path / "run"), "--max-steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rnnkit: error: music file") and message.split()[0] in err


def test_missing_music_file_is_one_line(tmp_path, capsys):
    assert main(["train", "music", "--data", str(tmp_path / "nope.json"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.json" in err


def test_batch_shifts_inputs_by_one_frame():
    rolls = [np.eye(KEYS, dtype=np.float32)[:4], np.eye(KEYS, dtype=np.float32)[10:12]]
    x, y, lengths = piano_roll_batch(rolls)
    assert x.shape == y.shape == (4, 2, KEYS) and lengths.tolist() == [4, 2]
    assert not x[0].any()                                   # a silent frame before the first
    np.testing.assert_array_equal(x[1:, 0], rolls[0][:-1])
    np.testing.assert_array_equal(y[:2, 1], rolls[1])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_piano_roll_model_gradients_by_finite_differences(cell):
    """The loss is the NLL per time step (summed over keys), padding masked out; every parameter."""
    rng = np.random.default_rng(1)
    model = music_model(cell, hidden=3, seed=2, dtype="float64")
    rolls = [(rng.random((T, KEYS)) < 0.1).astype(np.float32) for T in (4, 2)]
    batch = piano_roll_batch(rolls)
    model.zero_grad()
    model.loss(batch)
    model.backward()
    for name, p, g in model.named_parameters():
        idx = rng.choice(p.size, min(p.size, 12), replace=False)  # a sample of each parameter's entries
        flat = p.reshape(-1)
        num = np.zeros(len(idx))
        for k, i in enumerate(idx):
            view = flat[i:i + 1]
            num[k] = numerical_grad(lambda: model.loss(batch)[0], view)[0]
        assert relative_error(g.reshape(-1)[idx], num) < 1e-6, f"{cell} {name}"


def test_loss_is_the_nll_per_step_that_evaluation_reports():
    rng = np.random.default_rng(3)
    model = music_model("gru", hidden=5, seed=0, dtype="float64").eval()
    rolls = [(rng.random((T, KEYS)) < 0.1).astype(np.float32) for T in (6, 3, 5)]
    loss, steps = model.loss(piano_roll_batch(rolls))
    assert steps == 14
    assert abs(loss - evaluate_nll(model, rolls, batch=2)) < 1e-9
    assert 0.5 * KEYS < loss < 0.9 * KEYS                   # near log 2 per key before training


def test_weight_noise_gradient_is_taken_at_the_noisy_weights_and_applied_to_the_clean_ones():
    rng = np.random.default_rng(5)
    rolls = [(rng.random((T, KEYS)) < 0.1).astype(np.float32) for T in (5, 3)]
    noisy = music_model("lstm", hidden=4, seed=0, weight_noise=0.1, dtype="float64")
    clean = noisy.state_dict()
    draws = np.random.Generator(np.random.PCG64())
    draws.bit_generator.state = noisy.noise_rng.bit_generator.state   # the same noise, drawn again
    twin = music_model("lstm", hidden=4, seed=0, dtype="float64")
    for name, p, _ in twin.named_parameters():
        p += draws.normal(0.0, 0.1, p.shape)
    noisy.zero_grad()
    loss, _ = noisy.loss(piano_roll_batch(rolls))
    noisy.backward()
    twin.zero_grad()
    assert twin.loss(piano_roll_batch(rolls))[0] == pytest.approx(loss, rel=1e-12)
    twin.backward()
    grads = {name: g for name, _, g in twin.named_parameters()}
    for name, p, g in noisy.named_parameters():
        np.testing.assert_array_equal(p, clean[name], err_msg=name)      # the clean weights are back
        np.testing.assert_allclose(g, grads[name], rtol=1e-10, atol=1e-12, err_msg=name)
    assert noisy.eval().loss(piano_roll_batch(rolls))[0] != loss        # no noise in eval mode


def test_midi_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    roll = (rng.random((16, KEYS)) < 0.05).astype(np.float32)
    roll[-1, 40] = 1.0                                      # sounding at the end
    write_midi(roll, tmp_path / "a.mid")
    np.testing.assert_array_equal(read_midi_roll(tmp_path / "a.mid"), roll)


def test_train_then_sample_by_command_line(chorales, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "music", "--data", str(chorales), "--cell", "lstm", "--hidden", "8", "--out", str(run),
                 "--max-steps", "4", "--eval-every", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "lstm (8 units" in out and "test NLL" in out
    mid = tmp_path / "new.mid"
    assert main(["sample-music", str(run), "--steps", "12", "--out", str(mid), "--seed", "1"]) == 0
    assert (tmp_path / "new.png").stat().st_size > 1000
    roll = read_midi_roll(mid)
    assert roll.shape[0] <= 12 and roll.shape[1] == KEYS
    first = mid.read_bytes()
    assert main(["sample-music", str(run), "--steps", "12", "--out", str(mid), "--seed", "1"]) == 0
    assert mid.read_bytes() == first                        # the same seed, the same piece


def test_sample_music_bad_arguments_are_one_line(tmp_path, capsys):
    assert main(["sample-music", str(tmp_path / "none"), "--out", str(tmp_path / "x.mid")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["sample-music", str(tmp_path), "--steps", "0", "--out", str(tmp_path / "x.mid")]) == 2
    assert capsys.readouterr().err == "rnnkit: error: --steps must be a positive integer, got 0\n"
