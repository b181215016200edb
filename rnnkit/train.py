"""A generic training loop: progress, validation, checkpoints, exact resume, early stopping, NaN guard.

The model is any rnnkit Module with two methods:

    loss_value, n_items = model.loss(batch)   # forward on one batch; keeps what backward needs;
                                              # loss_value is the MEAN loss over n_items (tokens,
                                              # sequences...), n_items counts them for throughput
    model.backward()                          # accumulate d loss / d params into model.grads

and, optionally:

    model.reset_state()          # called at the start of every epoch (truncated BPTT: forget the
                                 # hidden state carried across batches)
    model.extra_state() -> dict  # arrays that are not parameters but must survive a resume
    model.load_extra_state(d)    # (the carried hidden state); {} when there is none

Everything else is the caller's:

    trainer = Trainer(model, optimizer, batches, evaluate=evaluate, config=TrainConfig(out_dir="runs/x"),
                      schedule=optim.Cosine(2e-3, T_max=5000), meta={"task": "charlm", ...},
                      vocab=vocab.to_json())
    result = trainer.fit()            # resumes from out_dir/latest.json if there is one (config.resume)

- batches(epoch) -> iterable of batches, whatever model.loss accepts. It MUST give the same
  batches each time it is called with the same epoch (derive any shuffling from the epoch
  number, e.g. np.random.default_rng((seed, epoch))): a resumed run calls it again and skips
  the batches already seen, which is what makes resume exact.
- evaluate(model) -> float or dict with a "loss" key; called in eval mode (model.eval()) every
  eval_every steps and at the end; it must leave the model's carried state as it found it.
  The lowest "loss" so far (or the metric named by TrainConfig.monitor) is the best checkpoint
  (best.json); early stopping counts evaluations without improvement.
- schedule(t) -> learning rate for step t (t = steps already taken); the trainer sets
  optimizer.lr before each step. See rnnkit.optim: Constant, StepDecay, Cosine.
- log: a function taking one line of text (validations, early stopping, resume); default print
  (tqdm.write while the progress bar shows).
- meta: JSON-able dict saved in each checkpoint's config.json (what is needed to rebuild the
  model: task name, model config, data paths); vocab: JSON-able, saved as vocab.json.

Public state, readable at any time (e.g. from evaluate): trainer.step (optimizer steps taken),
trainer.epoch, trainer.elapsed (seconds), trainer.history, trainer.best; trainer.config may be
changed while training (setting config.max_steps = trainer.step stops after the current step).

Each step: zero_grad, loss, NaN guard, backward, clip (global norm, then by value), lr, optimizer
step. A non-finite loss or gradient norm stops training with TrainingDiverged (a ValueError)
naming the step and the last good checkpoint, which is left untouched. Checkpoints (see
rnnkit.checkpoint) hold weights, optimizer state, every np.random.Generator attribute of the
model's modules (plus `rngs` given to the Trainer), the extra state, the step/epoch/batch
position and the history, so a run stopped and resumed ends bit-for-bit where one never
stopped would. curves.png (loss against step and wall-clock time) is written beside them.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt_io
from .plots import pyplot, save_png
from .optim import clip_grad_norm, clip_grad_value


@dataclass
class TrainConfig:
    out_dir: str | None = None         # run folder for checkpoints and curves.png; None writes nothing
    max_steps: int = 1000              # stop after this many optimizer steps
    max_epochs: int | None = None      # stop after this many passes over batches(epoch); None: no limit
    seconds: float | None = None       # wall-clock budget (training + evaluation); None: no limit
    clip_norm: float | None = 5.0      # clip gradients to this global L2 norm; None: no clipping
    clip_value: float | None = None    # clamp each gradient element to [-v, v]; None: no clamping
    log_every: int = 50                # steps between progress-bar / log updates of the train loss
    eval_every: int = 500              # steps between validations (0: only at the end)
    eval_at_epoch_end: bool = False    # also validate at the end of every epoch
    checkpoint_every: int = 0          # steps between checkpoints (0: at each validation and at the end)
    patience: int | None = None        # early stopping: evaluations without improvement; None: never
    monitor: str = "loss"              # the validation metric that picks the best checkpoint (lower is better)
    min_delta: float = 0.0             # how much lower the monitored metric must be to count as better
    keep: int = 1                      # checkpoints kept besides the best one
    resume: bool = True                # continue from out_dir/latest.json when it exists
    progress: bool = True              # show a tqdm progress bar (loss, items/s)


class TrainingDiverged(ValueError):
    """The loss or the gradient norm became NaN or infinite."""


@dataclass
class TrainResult:
    steps: int                               # optimizer steps taken in all (across resumes)
    epochs: float                            # epochs completed, fractional
    seconds: float                           # wall-clock seconds in all (across resumes)
    stopped: str                             # "max_steps", "max_epochs", "seconds" or "early_stopping"
    train_loss: float                        # mean train loss over the last log interval
    val: dict | None                         # the last validation metrics
    best_val_loss: float | None              # the lowest monitored metric (config.monitor, "loss" by default)
    checkpoint: str | None                   # the latest checkpoint folder
    history: dict = field(default_factory=dict)  # {"train": [[step, s, loss]], "val": [[step, s, {...}]]}


def generators(model, extra: dict | None = None) -> dict:
    """Every np.random.Generator attribute of the model's modules, by dotted name, plus `extra`."""
    found = {}
    for prefix, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, np.random.Generator):
                found[prefix + attr] = value
    found.update({"trainer." + k: v for k, v in (extra or {}).items()})
    return found


def _metrics(value) -> dict:
    if isinstance(value, dict):
        if "loss" not in value:
            raise ValueError(f"evaluate() must return a float or a dict with a 'loss' key, got keys {sorted(value)}")
        return {k: float(v) for k, v in value.items()}
    return {"loss": float(value)}


class Trainer:
    def __init__(self, model, optimizer, batches, *, evaluate=None, config: TrainConfig | None = None,
                 schedule=None, meta: dict | None = None, vocab=None, rngs: dict | None = None, log=None):
        self.model, self.optimizer, self.batches, self.evaluate = model, optimizer, batches, evaluate
        self.config = config or TrainConfig()
        c = self.config
        if not isinstance(c.max_steps, int) or c.max_steps < 0:
            raise ValueError(f"max_steps must be an integer >= 0, got {c.max_steps!r}")
        if c.seconds is not None and not c.seconds > 0:
            raise ValueError(f"seconds must be positive or None, got {c.seconds!r}")
        self.schedule, self.meta, self.vocab = schedule, dict(meta or {}), vocab
        self.rngs = generators(model, rngs)
        self.log = log
        self.out = Path(c.out_dir) if c.out_dir else None
        # position and history (restored on resume)
        self.step, self.epoch, self.batch_index = 0, 0, 0
        self.elapsed = 0.0
        self.history = {"train": [], "val": []}
        self.best, self.bad_evals = None, 0
        self.last_checkpoint = None

    # --- logging --------------------------------------------------------------------------------
    def _say(self, msg: str) -> None:
        if self.log is not None:
            self.log(msg)
        elif self.config.progress:
            from tqdm import tqdm
            tqdm.write(msg)
        else:
            print(msg, flush=True)

    # --- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict:
        return dict(step=self.step, epoch=self.epoch, batch_index=self.batch_index, elapsed=self.elapsed,
                    history=self.history, best=self.best, bad_evals=self.bad_evals,
                    rng={k: g.bit_generator.state for k, g in self.rngs.items()},
                    train_config=asdict(self.config))

    def save(self, best: bool = False) -> Path | None:
        if self.out is None:
            return None
        extra = self.model.extra_state() if hasattr(self.model, "extra_state") else {}
        path = ckpt_io.save(self.out, self.step, model=self.model, config=self.meta, vocab=self.vocab,
                            trainer=self.state(), optimizer=self.optimizer, extra=extra, best=best,
                            keep=self.config.keep)
        self.last_checkpoint = path
        self.plot()
        return path

    def restore(self, path) -> None:
        """Load weights, optimizer, RNGs, extra state and position from a checkpoint."""
        ck = ckpt_io.load(path)
        if ck.optimizer is None or ck.trainer is None:
            raise ValueError(f"checkpoint {str(ck.path)!r} has no optimizer or trainer state to resume from")
        try:
            self.model.load_state_dict(ck.weights)
            self.optimizer.load_state_dict(ck.optimizer)
        except (ValueError, TypeError) as e:
            raise ValueError(f"cannot resume from {str(ck.path)!r}, which holds another model or optimizer "
                             f"(use a new run folder): {e}") from None
        t = ck.trainer
        self.step, self.epoch, self.batch_index = t["step"], t["epoch"], t["batch_index"]
        self.elapsed, self.history = t["elapsed"], t["history"]
        self.best, self.bad_evals = t["best"], t["bad_evals"]
        for k, g in self.rngs.items():
            if k not in t["rng"]:
                raise ValueError(f"checkpoint {str(ck.path)!r} has no state for random generator {k!r}")
            g.bit_generator.state = t["rng"][k]
        if hasattr(self.model, "load_extra_state"):
            self.model.load_extra_state(ck.extra)
        self.last_checkpoint = ck.path

    def plot(self) -> None:
        """curves.png beside the checkpoints: loss against step and against wall-clock time."""
        if self.out is None or not self.history["train"]:
            return
        plt = pyplot()

        tr = np.array(self.history["train"], dtype=float)
        va = [(s, t, m["loss"]) for s, t, m in self.history["val"]]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, col, label in ((axes[0], 0, "optimizer step"), (axes[1], 1, "wall-clock seconds")):
            ax.plot(tr[:, col], tr[:, 2], label="train")
            if va:
                v = np.array(va, dtype=float)
                ax.plot(v[:, col], v[:, 2], "o-", label="validation")
            ax.set_xlabel(label)
            ax.set_ylabel("loss")
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        save_png(fig, str(self.out / "curves.png"), dpi=80)

    # --- validation -----------------------------------------------------------------------------
    def validate(self) -> tuple[dict, bool]:
        """Run evaluate in eval mode; returns the metrics and whether they are the best so far."""
        self.model.eval()
        try:
            metrics = _metrics(self.evaluate(self.model))
        finally:
            self.model.train()
        self.history["val"].append([self.step, round(self.elapsed, 3), metrics])
        if self.config.monitor not in metrics:
            raise ValueError(f"monitor {self.config.monitor!r} is not among the validation metrics {sorted(metrics)}")
        value = metrics[self.config.monitor]
        improved = math.isfinite(value) and (self.best is None or value < self.best - self.config.min_delta)
        if improved:
            self.best, self.bad_evals = value, 0
        else:
            self.bad_evals += 1
        return metrics, improved

    # --- the loop -------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        c = self.config
        if c.resume and self.out is not None and ckpt_io.has_checkpoint(self.out):
            self.restore(self.out)
            self._say(f"resumed from {self.last_checkpoint} at step {self.step}")
        self.model.train()
        from tqdm import tqdm

        bar = tqdm(total=c.max_steps, initial=self.step, disable=not c.progress, dynamic_ncols=True,
                   unit="step", mininterval=1.0)
        start = time.perf_counter() - self.elapsed
        sum_loss, sum_items, n_steps, t_items = 0.0, 0, 0, time.perf_counter()
        last_train, last_val, stopped = float("nan"), None, None
        try:
            while stopped is None:
                if self.step >= c.max_steps:
                    stopped = "max_steps"
                    break
                if c.max_epochs is not None and self.epoch >= c.max_epochs:
                    stopped = "max_epochs"
                    break
                if self.batch_index == 0 and hasattr(self.model, "reset_state"):
                    self.model.reset_state()
                seen_any = self.batch_index > 0
                for batch in islice(self.batches(self.epoch), self.batch_index, None):
                    seen_any = True
                    loss, n = self._train_step(batch)
                    self.step += 1
                    self.batch_index += 1
                    sum_loss += loss * n
                    sum_items += n
                    n_steps += 1
                    self.elapsed = time.perf_counter() - start
                    if self.step % c.log_every == 0 or self.step == c.max_steps:
                        last_train = sum_loss / max(sum_items, 1)
                        now = time.perf_counter()
                        rate = sum_items / max(now - t_items, 1e-9)
                        self.history["train"].append([self.step, round(self.elapsed, 3), last_train])
                        bar.set_postfix(loss=f"{last_train:.4f}", items_s=f"{rate:,.0f}", lr=f"{self.optimizer.lr:.2e}",
                                        refresh=False)
                        sum_loss, sum_items, n_steps, t_items = 0.0, 0, 0, now
                    bar.update(1)
                    stopped = self._after_step()
                    if stopped is not None:
                        break
                    if self.step >= c.max_steps:
                        break
                    if c.seconds is not None and self.elapsed >= c.seconds:
                        stopped = "seconds"
                        break
                else:
                    if not seen_any:
                        raise ValueError(f"batches({self.epoch}) yielded no batch: the data is too small "
                                         "for the batch size and sequence length")
                    self.epoch += 1
                    self.batch_index = 0
                    if c.eval_at_epoch_end and self.evaluate is not None:
                        stopped = self._evaluate_and_checkpoint()
        finally:
            bar.close()
        if n_steps:
            last_train = sum_loss / max(sum_items, 1)
            self.history["train"].append([self.step, round(self.elapsed, 3), last_train])
        # the end: a last validation (unless one just ran) and a checkpoint
        just_evaluated = self.history["val"] and self.history["val"][-1][0] == self.step
        if self.evaluate is not None and not just_evaluated:
            self._evaluate_and_checkpoint()
        elif self.last_checkpoint is None or Path(self.last_checkpoint).name != f"ckpt-{self.step:07d}":
            self.save()
        if self.history["val"]:
            last_val = self.history["val"][-1][2]
        return TrainResult(steps=self.step, epochs=self.epoch, seconds=self.elapsed, stopped=stopped,
                           train_loss=last_train, val=last_val, best_val_loss=self.best,
                           checkpoint=None if self.last_checkpoint is None else str(self.last_checkpoint),
                           history=self.history)

    def _train_step(self, batch):
        c, model = self.config, self.model
        model.zero_grad()
        loss, n = model.loss(batch)
        if not math.isfinite(loss):
            self._diverged(f"the training loss is {loss}")
        model.backward()
        if c.clip_norm is not None:
            norm = clip_grad_norm(model, c.clip_norm)
            if not math.isfinite(norm):
                self._diverged(f"the gradient norm is {norm}")
        if c.clip_value is not None:
            clip_grad_value(model, c.clip_value)
        if self.schedule is not None:
            self.optimizer.lr = float(self.schedule(self.step))
        self.optimizer.step()
        return float(loss), int(n)

    def _diverged(self, what: str):
        where = (f"the last good checkpoint is {str(self.last_checkpoint)!r}" if self.last_checkpoint
                 else "no checkpoint had been written yet")
        raise TrainingDiverged(f"training stopped at step {self.step + 1}: {what}; {where}")

    def _after_step(self):
        c = self.config
        if self.evaluate is not None and c.eval_every and self.step % c.eval_every == 0:
            return self._evaluate_and_checkpoint()
        if c.checkpoint_every and self.step % c.checkpoint_every == 0:
            self.save()
        return None

    def _evaluate_and_checkpoint(self):
        metrics, improved = self.validate()
        shown = "  ".join(f"{k} {int(v)}" if k != "loss" and float(v).is_integer() else f"{k} {v:.4f}"
                          for k, v in metrics.items())
        self._say(f"step {self.step}  {self.elapsed:7.1f}s  validation {shown}" + ("  (best)" if improved else ""))
        self.save(best=improved)
        if self.config.patience is not None and self.bad_evals >= self.config.patience:
            self._say(f"early stopping: no improvement in {self.bad_evals} evaluations")
            return "early_stopping"
        return None
