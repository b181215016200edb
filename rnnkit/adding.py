"""The adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015): a long-range memory test.

Each sequence has T steps of two features: a value drawn from U[0, 1] and a marker that is 1 at
exactly two steps, one in the first half and one in the second. The target is the sum of the two
marked values. Predicting the mean, 1, gives MSE = Var(u1 + u2) = 2/12 ≈ 0.167; beating it means
carrying the first marked value across up to T steps, which a tanh RNN cannot learn at T = 200
because its gradient vanishes on the way back, while LSTM, GRU and the IRNN (ReLU, W_hh = I) do.

    x, y = adding_batch(200, 50, np.random.default_rng(0))       # x (T, B, 2), y (B,)
    result = train(AddingConfig(cell="lstm", length=200))         # result.test_mse
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import checks
from .layers import Linear
from .losses import mean_squared_error
from .module import Module
from .optim import OPTIMIZERS
from .recurrent import GRU, LSTM, RNN

CELLS = ("rnn", "irnn", "lstm", "gru")

# What each cell trains with unless the config says otherwise (measured at T = 200, see bench/adding.py)
# The IRNN runs in float64: its ReLU recurrence can blow up for a few steps mid-training, which
# overflows float32 gradients to inf (the trainer then stops) where float64 rides it out.
PRESETS = {
    "rnn": dict(optimizer="adam", hidden=100, lr=1e-3, dtype="float32"),   # tanh, default init: the baseline
    "irnn": dict(optimizer="adam", hidden=100, lr=1e-4, dtype="float64"),  # ReLU, W_hh = I, zero biases (Le et al.)
    "lstm": dict(optimizer="adam", hidden=64, lr=1e-3, dtype="float32"),   # chrono initialisation (see AddingConfig)
    "gru": dict(optimizer="adam", hidden=64, lr=3e-3, dtype="float32"),
}


def adding_batch(T: int, B: int, rng: np.random.Generator, dtype=np.float32):
    """x (T, B, 2): [value U[0,1], marker]; y (B,): the sum of the two marked values."""
    T, B = checks.positive_int("T", T), checks.positive_int("B", B)
    if T < 2:
        raise ValueError(f"T must be at least 2 (one marker in each half), got {T}")
    values = rng.random((T, B))
    cols = np.arange(B)
    first = rng.integers(0, T // 2, B)                 # one marker in the first half
    second = rng.integers(T // 2, T, B)                # and one in the second
    marker = np.zeros((T, B))
    marker[first, cols] = 1.0
    marker[second, cols] = 1.0
    x = np.stack([values, marker], axis=-1).astype(dtype)
    y = (values[first, cols] + values[second, cols]).astype(dtype)
    return x, y


def chrono_init(lstm: LSTM, T_max: int, rng: np.random.Generator) -> None:
    """Chrono initialisation (Tallec & Ollivier 2018): b_f = log U(1, T_max - 1), b_i = -b_f.

    Each unit starts with a forget gate that keeps its cell for a time drawn up to T_max steps and
    an input gate mostly shut, so memories of the right length exist before training finds them.
    """
    H = lstm.hidden_size
    b_f = np.log(rng.uniform(1.0, max(T_max - 1.0, 1.0 + 1e-6), H))
    lstm.params["bias_ih_l0"][H:2 * H] = b_f
    lstm.params["bias_ih_l0"][:H] = -b_f
    lstm.params["bias_hh_l0"][:2 * H] = 0.0


class AddingModel(Module):
    """x (T, B, 2) -> one number per sequence: a recurrent layer, then Linear(H, 1) on its last state."""

    def __init__(self, cell: str = "lstm", hidden: int = 64, *, forget_bias: float | None = None,
                 chrono: int | None = None, seed: int = 0, dtype=np.float32):
        super().__init__()
        self.cell = checks.one_of("cell", cell, set(CELLS))
        self.hidden = checks.positive_int("hidden", hidden)
        if forget_bias is not None and cell != "lstm":
            raise ValueError(f"forget_bias applies to the lstm cell only, got forget_bias={forget_bias!r} for {cell}")
        if chrono is not None and (cell != "lstm" or forget_bias is not None):
            raise ValueError(f"chrono applies to the lstm cell without forget_bias, got chrono={chrono!r}, "
                             f"cell={cell!r}, forget_bias={forget_bias!r}")
        self.forget_bias, self.chrono, self.seed = forget_bias, chrono, seed
        kw = dict(dtype=dtype, seed=seed)
        if cell == "rnn":
            self.rnn = RNN(2, hidden, nonlinearity="tanh", **kw)
        elif cell == "irnn":
            self.rnn = RNN(2, hidden, nonlinearity="relu", init_hh="identity", **kw)
        elif cell == "lstm":
            self.rnn = LSTM(2, hidden, forget_bias=forget_bias, **kw)
        else:
            self.rnn = GRU(2, hidden, **kw)
        if chrono is not None:
            chrono_init(self.rnn, checks.positive_int("chrono", chrono), np.random.default_rng((seed, 4)))
        self.head = Linear(hidden, 1, dtype=dtype, seed=seed + 1)
        self._out_shape = self._dpred = None

    def config(self) -> dict:
        return dict(cell=self.cell, hidden=self.hidden, forget_bias=self.forget_bias, chrono=self.chrono,
                    seed=self.seed, dtype=self.rnn.dtype.name)

    def forward(self, x):
        """Predictions (B,) for x (T, B, 2)."""
        out, _ = self.rnn.forward(x)
        self._out_shape = out.shape
        return self.head.forward(out[-1])[:, 0]

    __call__ = forward

    def loss(self, batch):
        """The trainer's contract: mean squared error on (x, y), and the number of sequences."""
        x, y = batch
        loss, self._dpred = mean_squared_error(self.forward(x), y)
        return loss, len(y)

    def backward(self, dpred=None):
        """Back from d loss / d predictions (B,) (default: those of the last loss()) into the grads."""
        if dpred is None:
            dpred, self._dpred = self._dpred, None
        if dpred is None or self._out_shape is None:
            raise ValueError("backward() called before forward() or loss()")
        dout = np.zeros(self._out_shape, self.rnn.dtype)
        dout[-1] = self.head.backward(np.asarray(dpred, self.rnn.dtype)[:, None])   # only the last step is read
        self.rnn.backward(dout)


def load_model(path: str) -> AddingModel:
    """An AddingModel saved with model.save(path) (its config rides in the file's metadata)."""
    import json

    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"path {path!r} is not a readable safetensors file: {e}") from None
    if meta.get("rnnkit_class") != "AddingModel":
        raise ValueError(f"{path!r} does not hold an adding-problem model (class {meta.get('rnnkit_class')!r})")
    model = AddingModel(**json.loads(meta["rnnkit_config"]))
    model.load(path)
    return model


@dataclass
class AddingConfig:
    length: int = 200                 # T, steps per sequence
    cell: str = "lstm"                # "rnn" (tanh), "irnn" (ReLU, identity init), "lstm" or "gru"
    hidden: int | None = None         # recurrent units; None: the cell's preset (PRESETS)
    optimizer: str | None = None      # "adam", "sgd", "rmsprop" or "adamw"; None: the cell's preset
    lr: float | None = None           # learning rate; None: the cell's preset
    batch: int = 50                   # sequences per optimizer step
    max_steps: int = 4000             # optimizer steps at most
    seconds: float | None = 600.0     # wall-clock budget; None: no limit
    clip: float = 1.0                 # clip gradients to this global L2 norm
    forget_bias: float | None = None  # LSTM forget-gate bias; None: chrono init for T = length (other cells: unused)
    eval_every: int = 100             # steps between test evaluations
    test_size: int = 1000             # fixed test sequences
    target: float = 0.01              # stop once the test MSE falls below this (0: never stop early)
    dtype: str | None = None          # "float32" or "float64" weights and arithmetic; None: the cell's preset
    seed: int = 0                     # weights, training batches and test set

    def __post_init__(self):
        checks.one_of("cell", self.cell, set(CELLS))
        if self.optimizer is not None:
            checks.one_of("optimizer", self.optimizer, set(OPTIMIZERS))
        for name in ("length", "batch", "max_steps", "eval_every", "test_size"):
            checks.positive_int(name, getattr(self, name))
        if self.length < 2:
            raise ValueError(f"length must be at least 2, got {self.length}")
        if self.hidden is not None:
            checks.positive_int("hidden", self.hidden)
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"seconds must be positive or None, got {self.seconds!r}")
        if self.dtype is not None:
            checks.float_dtype("dtype", self.dtype)
        if not self.target >= 0:
            raise ValueError(f"target must be a number >= 0, got {self.target!r}")
        if not self.clip > 0:
            raise ValueError(f"clip must be positive, got {self.clip!r}")

    def resolved(self) -> AddingConfig:
        """This config with the cell's presets filled in."""
        preset = PRESETS[self.cell]
        return AddingConfig(**{**asdict(self), "hidden": self.hidden or preset["hidden"],
                               "optimizer": self.optimizer or preset["optimizer"], "lr": self.lr or preset["lr"],
                               "dtype": self.dtype or preset["dtype"]})


@dataclass
class AddingResult:
    cell: str                     # the cell trained
    hidden: int                   # its units
    optimizer: str                # the optimizer's name
    lr: float                     # its learning rate
    dtype: str                    # float32 or float64
    steps: int                    # optimizer steps taken
    seconds: float                # wall-clock training time, evaluations included
    test_mse: float               # the last test MSE
    best_mse: float               # the lowest test MSE seen
    solved_step: int | None       # the first evaluation with test MSE < target, or None
    baseline_mse: float           # test MSE of always predicting 1
    diverged: str | None = None   # why training stopped early on a non-finite loss or gradient, if it did
    history: list = field(default_factory=list)  # [(step, seconds, test MSE)]


def evaluate(model: AddingModel, x, y) -> float:
    """Test MSE in batches of 500 (eval mode is the caller's)."""
    preds = np.concatenate([model.forward(x[:, i:i + 500]) for i in range(0, x.shape[1], 500)])
    return float(np.mean((preds.astype(np.float64) - y) ** 2))


def build_model(cfg: AddingConfig) -> AddingModel:
    """A fresh model for a config (the cell's presets filled in)."""
    cfg = cfg.resolved()
    lstm = cfg.cell == "lstm"
    return AddingModel(cfg.cell, cfg.hidden, forget_bias=cfg.forget_bias if lstm else None,
                       chrono=cfg.length if lstm and cfg.forget_bias is None else None, seed=cfg.seed,
                       dtype=checks.float_dtype("dtype", cfg.dtype))


def train(cfg: AddingConfig = AddingConfig(), log=print, model: AddingModel | None = None) -> AddingResult:
    """Train `model` (default: build_model(cfg)) on fresh random batches with global-norm clipping,
    through rnnkit.train.Trainer; stops at cfg.target, cfg.max_steps or cfg.seconds."""
    from .train import TrainConfig, Trainer, TrainingDiverged

    cfg = cfg.resolved()
    model = model or build_model(cfg)
    x_test, y_test = adding_batch(cfg.length, cfg.test_size, np.random.default_rng((cfg.seed, 1)))
    baseline = float(np.mean((1.0 - y_test.astype(np.float64)) ** 2))

    def batches(epoch):                               # fresh data, reproducible per epoch
        rng = np.random.default_rng((cfg.seed, 2, epoch))
        for _ in range(1000):
            yield adding_batch(cfg.length, cfg.batch, rng)

    history = []
    trainer = None

    def evaluate_test(m):
        mse = evaluate(m, x_test, y_test)
        history.append((trainer.step, round(trainer.elapsed, 1), mse))
        if cfg.target and mse < cfg.target:
            trainer.config.max_steps = trainer.step   # solved: the trainer stops after this evaluation
        return {"loss": mse}

    tc = TrainConfig(out_dir=None, max_steps=cfg.max_steps, seconds=cfg.seconds, clip_norm=cfg.clip,
                     eval_every=cfg.eval_every, log_every=cfg.eval_every, progress=False, resume=False)
    optimizer = OPTIMIZERS[cfg.optimizer](model, lr=cfg.lr)
    trainer = Trainer(model, optimizer, batches, evaluate=evaluate_test, config=tc, log=log)
    log(f"adding problem T={cfg.length}: {cfg.cell} H={cfg.hidden}, {cfg.optimizer} lr={cfg.lr:g}, batch {cfg.batch}, "
        f"clip {cfg.clip:g}, {cfg.dtype}; predicting 1 scores {baseline:.4f}")
    start, diverged = time.perf_counter(), None
    try:
        trainer.fit()
    except TrainingDiverged as e:                     # report it as a result: a diverged run is a finding
        diverged = str(e)
        log(f"diverged: {e}")
    seconds = time.perf_counter() - start
    mses = [m for _, _, m in history]
    solved = next((s for s, _, m in history if cfg.target and m < cfg.target), None)
    return AddingResult(cell=cfg.cell, hidden=cfg.hidden, optimizer=cfg.optimizer, lr=cfg.lr, dtype=cfg.dtype,
                        steps=trainer.step, seconds=seconds, test_mse=mses[-1] if mses else math.nan,
                        best_mse=min(mses, default=math.nan), solved_step=solved, baseline_mse=baseline,
                        diverged=diverged, history=history)


def gradient_flow(model: AddingModel, length: int = 200, batch: int = 16, seed: int = 0, label: str | None = None):
    """rnnkit.diagnostics.gradient_flow of the model's recurrent layer on one adding batch, with the
    model's own loss (MSE of the head on the last state) in float64."""
    from .diagnostics import gradient_flow as flow

    x, y = adding_batch(length, batch, np.random.default_rng((seed, 3)), np.float64)
    W = model.head.params["weight"].astype(np.float64)              # (1, H)
    b = model.head.params["bias"].astype(np.float64)

    def loss_grad(h):                                                # h (T, B, H)
        pred = h[-1] @ W[0] + b[0]
        loss = float(np.mean((pred - y) ** 2))
        dh = np.zeros_like(h)
        dh[-1] = (2.0 * (pred - y) / len(y))[:, None] * W[0]          # only the last state is read
        return loss, dh

    return flow(model.rnn, x, loss_grad, label=label or model.cell)
