"""The adding problem: its data, its model's gradients (torch), a short run that learns, the CLI."""
import numpy as np
import pytest
import torch

from rnnkit.adding import AddingConfig, AddingModel, adding_batch, gradient_flow, load_model, train
from rnnkit.cli import main
from rnnkit.gradcheck import relative_error

from conftest import torch_twin


def test_batch_has_two_markers_one_per_half_and_the_sum_as_target():
    T, B = 9, 500
    x, y = adding_batch(T, B, np.random.default_rng(0))
    assert x.shape == (T, B, 2) and y.shape == (B,) and x.dtype == y.dtype == np.float32
    values, marker = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(np.unique(marker)) == {0.0, 1.0}
    assert (marker[:T // 2].sum(0) == 1).all() and (marker[T // 2:].sum(0) == 1).all()
    np.testing.assert_allclose(y, (values * marker).sum(0), rtol=1e-6)
    # both halves are used in full: every first-half and second-half position is drawn somewhere
    assert set(np.argmax(marker[:T // 2], 0)) == set(range(T // 2))
    assert set(np.argmax(marker[T // 2:], 0)) == set(range(T - T // 2))


def test_predicting_one_scores_one_sixth():
    _, y = adding_batch(50, 40000, np.random.default_rng(1), np.float64)
    assert np.mean((1 - y) ** 2) == pytest.approx(1 / 6, abs=0.005)   # Var(u1 + u2) = 2/12


@pytest.mark.parametrize("cell", ["rnn", "irnn", "lstm", "gru"])
def test_model_gradients_match_torch(cell):
    rng = np.random.default_rng(0)
    model = AddingModel(cell, 5, forget_bias=1.0 if cell == "lstm" else None, seed=3, dtype=np.float64)
    x, y = adding_batch(7, 4, rng, np.float64)
    loss, _ = model.loss((x, y))
    model.zero_grad()
    model.backward()

    rnn = torch_twin(model.rnn)
    head = torch.nn.Linear(5, 1, dtype=torch.float64)
    head.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.head.state_dict().items()})
    out, _ = rnn(torch.from_numpy(x))
    tloss = ((head(out[-1])[:, 0] - torch.from_numpy(y)) ** 2).mean()
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    expected = {"rnn." + k: p.grad for k, p in rnn.named_parameters()}
    expected.update({"head." + k: p.grad for k, p in head.named_parameters()})
    got = {name: g for name, _, g in model.named_parameters()}
    assert set(got) == set(expected)
    for name, g in got.items():
        err = relative_error(g, expected[name].numpy())
        assert err < 1e-10, f"{name}: relative error {err:.2e} against torch"


def test_irnn_starts_at_the_identity():
    model = AddingModel("irnn", 6)
    np.testing.assert_array_equal(model.rnn.params["weight_hh_l0"], np.eye(6))
    assert model.rnn.nonlinearity == "relu" and not model.rnn.params["bias_hh_l0"].any()


def test_chrono_init_sets_forget_and_input_biases():
    H, T = 8, 100
    model = AddingModel("lstm", H, chrono=T, seed=0)
    b_ih, b_hh = model.rnn.params["bias_ih_l0"], model.rnn.params["bias_hh_l0"]
    b_f = b_ih[H:2 * H]
    assert ((b_f >= 0) & (b_f <= np.log(T - 1))).all() and b_f.std() > 0.3   # spread over time scales
    np.testing.assert_array_equal(b_ih[:H], -b_f)                              # input gate mostly shut
    assert not b_hh[:2 * H].any()
    with pytest.raises(ValueError, match="chrono applies to the lstm cell"):
        AddingModel("gru", H, chrono=T)


def test_short_sequences_are_learned_and_training_stops_at_the_target():
    lines = []
    cfg = AddingConfig(length=12, cell="lstm", hidden=16, lr=1e-2, batch=32, max_steps=1500, eval_every=50,
                       test_size=300, target=0.01, seconds=None, seed=0)
    r = train(cfg, log=lines.append)
    assert r.solved_step is not None and r.test_mse < 0.01, r.history[-5:]
    assert r.steps == r.solved_step < cfg.max_steps                 # stopped once solved
    assert r.baseline_mse == pytest.approx(1 / 6, abs=0.05)             # 300 test sequences: about 4 sigma
    assert lines[0].startswith("adding problem T=12: lstm H=16, adam lr=0.01")


def test_cli_trains_saves_and_diagnose_reads_the_model(tmp_path, capsys):
    path = str(tmp_path / "gru.safetensors")
    assert main(["train", "adding", "--length", "8", "--cell", "gru", "--hidden", "6", "--max-steps", "20",
                 "--batch", "8", "--save", path]) == 0
    out = capsys.readouterr().out
    assert "gru: test MSE" in out and f"saved {path}" in out
    model = load_model(path)
    assert (model.cell, model.hidden) == ("gru", 6)
    flow = gradient_flow(model, length=8, batch=2)
    assert flow.grad_norms.shape == (8,)
    png = str(tmp_path / "flow.png")
    assert main(["diagnose", "--cells", "", "--model", path, "--length", "8", "--batch", "2", "--out", png]) == 0
    assert "gru (gru.safetensors)" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--length", "1"], "length must be at least 2, got 1"),
    (["--max-steps", "0"], "max_steps must be a positive integer, got 0"),
    (["--lr", "-1"], "lr must be a positive number, got -1.0"),
    (["--cell", "lstm", "--hidden", "0"], "hidden must be a positive integer, got 0"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(["train", "adding"] + argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_load_model_refuses_other_files(tmp_path):
    from rnnkit import GRU

    path = str(tmp_path / "gru.safetensors")
    GRU(2, 3).save(path)
    with pytest.raises(ValueError, match="does not hold an adding-problem model"):
        load_model(path)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model(str(tmp_path / "missing.safetensors"))
