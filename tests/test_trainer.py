"""The trainer: exact resume (bit for bit), NaN guard, early stopping, atomic checkpoints, curves."""
import json

import numpy as np
import pytest

from rnnkit import checkpoint
from rnnkit.models import LanguageModel, ManyToOne, ModelConfig, evaluate_lm, lm_batches
from rnnkit.module import Module
from rnnkit.optim import SGD, Adam, Cosine
from rnnkit.train import Trainer, TrainConfig, TrainingDiverged

quiet = dict(log=lambda msg: None)


def lm_setup(out, max_steps, **tc):
    ids = np.random.default_rng(0).integers(0, 7, 700)
    model = LanguageModel(ModelConfig(input_size=7, output_size=7, vocab_input=True, embed=4, hidden=6, layers=2,
                                      dropout=0.2, seed=3))
    config = TrainConfig(out_dir=str(out), max_steps=max_steps, eval_every=4, progress=False, **tc)
    return Trainer(model, Adam(model, 1e-2), lm_batches(ids[:600], batch=4, unroll=10, seed=1),
                   evaluate=lambda m: evaluate_lm(m, ids[600:], 2, 10), config=config,
                   schedule=Cosine(1e-2, T_max=30, warmup=3), meta={"task": "test"}, **quiet)


def test_resume_is_bit_exact(tmp_path):
    """Stopped at step 11 (mid-epoch, dropout RNGs and carried state in flight), resumed to 30 (three
    epochs of 13 batches): the same weights, optimizer moments and history as a run never stopped."""
    whole = lm_setup(tmp_path / "whole", 30)
    r1 = whole.fit()
    part = lm_setup(tmp_path / "part", 11)
    assert part.fit().steps == 11
    resumed = lm_setup(tmp_path / "part", 30)
    r2 = resumed.fit()
    assert r1.steps == r2.steps == 30 and resumed.epoch == whole.epoch == 2
    for (name, p, _), (_, q, _) in zip(whole.model.named_parameters(), resumed.model.named_parameters()):
        assert np.array_equal(p, q), f"{name} differs after resume"
    for key in ("m", "v"):
        for name, a in getattr(whole.optimizer, key).items():
            assert np.array_equal(a, getattr(resumed.optimizer, key)[name]), f"optimizer {key}.{name}"
    assert np.array_equal(whole.model.state[0], resumed.model.state[0]), "carried hidden state"
    assert r1.val == r2.val and r1.best_val_loss == r2.best_val_loss


def test_checkpoint_contents(tmp_path):
    r = lm_setup(tmp_path, 8, keep=1).fit()
    folder = tmp_path / "ckpt-0000008"
    assert r.checkpoint == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "optimizer.safetensors",
                                                        "trainer.json"]
    assert json.loads((tmp_path / "latest.json").read_text())["checkpoint"] == "ckpt-0000008"
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".tmp-*")), "no temporary folder left behind"
    ck = checkpoint.load(tmp_path)
    assert ck.config["task"] == "test" and ck.config["model_class"] == "LanguageModel"
    assert ck.trainer["step"] == 8 and ck.optimizer["type"] == "Adam" and ck.optimizer["t"] == 8
    assert set(ck.extra) == {"h", "c"} and "drop_in.rng" in ck.trainer["rng"]
    kept = sorted(p.name for p in tmp_path.glob("ckpt-*"))
    best = json.loads((tmp_path / "best.json").read_text())["checkpoint"]
    assert set(kept) == {"ckpt-0000008", best}, "older checkpoints pruned, the best one kept"


class Toy(Module):
    """loss = mean((w x - y)^2) on a fixed batch; the loss turns NaN from step `nan_at` on."""

    def __init__(self, nan_at=None):
        super().__init__()
        self.add_param("w", np.ones(3))
        self.nan_at, self.calls = nan_at, 0

    def loss(self, batch):
        self.calls += 1
        x, y = batch
        self._d = (self.params["w"] * x - y, x)
        with np.errstate(over="ignore", invalid="ignore"):
            value = float((self._d[0] ** 2).mean())
        return (float("nan") if self.nan_at and self.calls >= self.nan_at else value), x.size

    def backward(self):
        diff, x = self._d
        self.grads["w"] += 2 * diff * x / diff.size


def toy_batches(epoch):
    rng = np.random.default_rng(epoch)
    for _ in range(5):
        yield rng.standard_normal(3), np.array([1.0, 2.0, 3.0])


def test_nan_guard_keeps_the_last_good_checkpoint(tmp_path):
    model = Toy(nan_at=8)
    trainer = Trainer(model, SGD(model, 0.1), toy_batches, config=TrainConfig(
        out_dir=str(tmp_path), max_steps=50, checkpoint_every=5, progress=False), **quiet)
    with pytest.raises(TrainingDiverged, match=r"training stopped at step 8: the training loss is nan; "
                                               r"the last good checkpoint is '.*ckpt-0000005'"):
        trainer.fit()
    assert json.loads((tmp_path / "latest.json").read_text())["checkpoint"] == "ckpt-0000005"
    ck = checkpoint.load(tmp_path)
    assert np.isfinite(ck.weights["w"]).all() and ck.trainer["step"] == 5


def test_nan_guard_on_gradient_norm(tmp_path):
    model = Toy()
    trainer = Trainer(model, SGD(model, 1e200), toy_batches,
                      config=TrainConfig(max_steps=50, clip_norm=1e300, progress=False), **quiet)
    with pytest.raises(TrainingDiverged, match="no checkpoint had been written yet"):
        trainer.fit()


def test_early_stopping_and_best(tmp_path):
    model = Toy()
    losses = iter([3.0, 2.0, 2.5, 2.4, 2.6, 1.0])
    trainer = Trainer(model, SGD(model, 0.01), toy_batches, evaluate=lambda m: {"loss": next(losses), "acc": 0.5},
                      config=TrainConfig(out_dir=str(tmp_path), max_steps=100, eval_every=2, patience=3,
                                         progress=False), **quiet)
    r = trainer.fit()
    assert r.stopped == "early_stopping" and r.steps == 10 and r.best_val_loss == 2.0
    assert json.loads((tmp_path / "best.json").read_text())["checkpoint"] == "ckpt-0000004"
    assert (tmp_path / "ckpt-0000004").is_dir()
    assert r.history["val"][-1][2] == {"loss": 2.6, "acc": 0.5}


@pytest.mark.parametrize("monitor, best_step", [("loss", 4), ("error", 6)])
def test_monitor_picks_the_best_checkpoint(tmp_path, monitor, best_step):
    model = Toy()
    metrics = iter([{"loss": 3.0, "error": 0.5}, {"loss": 2.0, "error": 0.4}, {"loss": 2.5, "error": 0.3}])
    trainer = Trainer(model, SGD(model, 0.01), toy_batches, evaluate=lambda m: next(metrics),
                      config=TrainConfig(out_dir=str(tmp_path), max_steps=6, eval_every=2, monitor=monitor,
                                         progress=False), **quiet)
    trainer.fit()
    assert json.loads((tmp_path / "best.json").read_text())["checkpoint"] == f"ckpt-{best_step:07d}"


def test_unknown_monitor_is_an_error(tmp_path):
    model = Toy()
    trainer = Trainer(model, SGD(model, 0.01), toy_batches, evaluate=lambda m: {"loss": 1.0},
                      config=TrainConfig(max_steps=2, eval_every=2, monitor="accuracy", progress=False), **quiet)
    with pytest.raises(ValueError, match="monitor 'accuracy' is not among the validation metrics"):
        trainer.fit()


def test_stops_on_epochs_and_seconds():
    model = Toy()
    r = Trainer(model, SGD(model, 0.01), toy_batches, config=TrainConfig(max_steps=100, max_epochs=2, progress=False),
                **quiet).fit()
    assert r.stopped == "max_epochs" and r.steps == 10 and r.epochs == 2
    r = Trainer(model, SGD(model, 0.01), toy_batches, config=TrainConfig(max_steps=10**9, seconds=0.2,
                                                                         progress=False), **quiet).fit()
    assert r.stopped == "seconds" and 0.2 <= r.seconds < 2


def test_generic_model_and_empty_data(tmp_path):
    """The trainer is generic: a sequence classifier trains with the same loop."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 32, 2))
    y = (x[:, :, 0].sum(0) > 0).astype(int)                       # sign of a sum: learnable
    model = ManyToOne(ModelConfig(input_size=2, output_size=2, hidden=8, seed=0))
    r = Trainer(model, Adam(model, 0.05), lambda epoch: [(x, y)], evaluate=lambda m: m.loss((x, y))[0],
                config=TrainConfig(max_steps=60, eval_every=30, progress=False), **quiet).fit()
    assert r.val["loss"] < 0.3
    with pytest.raises(ValueError, match=r"batches\(0\) yielded no batch"):
        Trainer(model, Adam(model), lambda epoch: [], config=TrainConfig(progress=False), **quiet).fit()


def test_crash_during_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    model = Toy()
    trainer = Trainer(model, SGD(model, 0.1), toy_batches,
                      config=TrainConfig(out_dir=str(tmp_path), max_steps=3, progress=False), **quiet)
    trainer.fit()
    before = (tmp_path / "ckpt-0000003" / "model.safetensors").read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "_write_json", crash)        # dies after writing the weights
    trainer.config.max_steps = 6
    with pytest.raises(OSError, match="disk full"):
        trainer.fit()
    assert json.loads((tmp_path / "latest.json").read_text())["checkpoint"] == "ckpt-0000003"
    assert (tmp_path / "ckpt-0000003" / "model.safetensors").read_bytes() == before
    assert not list(tmp_path.glob(".tmp-*")) and not (tmp_path / "ckpt-0000006").exists()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint.load(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        checkpoint.load(tmp_path)
    model = Toy()
    Trainer(model, SGD(model, 0.1), toy_batches,
            config=TrainConfig(out_dir=str(tmp_path), max_steps=2, progress=False), **quiet).fit()
    (tmp_path / "ckpt-0000002" / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="model.safetensors' is corrupt"):
        checkpoint.load(tmp_path)
    (tmp_path / "latest.json").write_text("{not json")
    with pytest.raises(ValueError, match="checkpoint pointer .* is corrupt"):
        checkpoint.load(tmp_path)
