"""Polyphonic music: next-step prediction of an 88-key piano roll, sampling to MIDI and a picture.

    data = load_chorales(path)                  # {"train": [roll (T, 88) float32, ...], "valid": [...], "test": [...]}
    result = train_music(MusicConfig(cell="gru", out="runs/jsb-gru"))   # Chung et al. (2014) sizes and set-up
    model, config = load_music("runs/jsb-gru")
    nll = evaluate_nll(model, data["test"])     # nats per time step (summed over the 88 keys)
    roll = sample_roll(model, steps=64, seed=0) # (64, 88) of 0/1
    write_midi(roll, "chorale.mid"); plot_roll(roll, "chorale.png")

The model (Boulanger-Lewandowski et al. 2012; Chung et al. 2014) reads the previous frame and
predicts each of the 88 keys of the next with its own sigmoid:

    h_t = cell(x_{t-1}, h_{t-1}),  x_{-1} = 0 (a silent frame, so the first frame is predicted too)
    y_t = W_hy h_t + b_y,          p(x_t | x_<t) = prod_k s(y_tk)^x_tk (1 - s(y_tk))^(1 - x_tk)
    NLL per step = sum_k BCE(y_tk, x_tk), averaged over every time step of the set.

Weight noise (Graves 2011; used by Chung et al.): each training batch runs with W + N(0, sigma^2)
noise on every weight, and its gradient is applied to the noise-free weights.
"""
from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import checks, optim
from .. import checkpoint as ckpt_io
from ..models import ManyToMany, ModelConfig
from ..module import atomic_write
from ..plots import pyplot, save_png
from ..paths import data_path
from ..train import Trainer, TrainConfig

LOW, HIGH = 21, 108                 # MIDI notes of a piano's lowest and highest key (A0, C8)
KEYS = HIGH - LOW + 1               # 88
HIDDEN = {"rnn": 100, "lstm": 36, "gru": 46}   # Chung et al. (2014): about 20k parameters each
DEFAULT_DATA = ("jsb-chorales", "jsb-chorales-quarter.json")


# --- data -------------------------------------------------------------------------------------------
def load_chorales(path) -> dict[str, list[np.ndarray]]:
    """Read a JSON object {"train": [...], "valid": [...], "test": [...]} where each piece is a list of
    time steps and each step the list of sounding MIDI notes in [21, 108] (Boulanger-Lewandowski's
    format). "test" may be absent. Returns piano rolls (T, 88) of 0/1 float32 per split.
    Every error names the file and the first bad place."""
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"music file {str(path)!r} is not a JSON text file") from None
    if not text.strip():
        raise ValueError(f"music file {str(path)!r} is empty")
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise ValueError(f"music file {str(path)!r} is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"music file {str(path)!r} must hold a JSON object with 'train' and 'valid' keys, "
                         f"got a {type(obj).__name__}")
    missing = [k for k in ("train", "valid") if k not in obj]
    if missing:
        raise ValueError(f"music file {str(path)!r} has no {' or '.join(repr(k) for k in missing)} key "
                         f"(keys found: {sorted(obj)})")
    return {split: _rolls(path, split, obj[split]) for split in ("train", "valid", "test") if split in obj}


def _rolls(path: Path, split: str, pieces) -> list[np.ndarray]:
    where = f"music file {str(path)!r}, {split!r}"
    if not isinstance(pieces, list) or not pieces:
        raise ValueError(f"{where} must be a non-empty list of pieces, got {_describe(pieces)}")
    rolls = []
    for i, piece in enumerate(pieces):
        if not isinstance(piece, list) or not piece:
            raise ValueError(f"{where} piece {i} must be a non-empty list of time steps, got {_describe(piece)}")
        roll = np.zeros((len(piece), KEYS), np.float32)
        for t, notes in enumerate(piece):
            if not isinstance(notes, list) or not all(isinstance(n, int) and not isinstance(n, bool)
                                                      and LOW <= n <= HIGH for n in notes):
                raise ValueError(f"{where} piece {i} step {t} must be a list of MIDI notes (integers in "
                                 f"[{LOW}, {HIGH}]), got {notes!r:.60}")
            roll[t, [n - LOW for n in notes]] = 1.0
        rolls.append(roll)
    return rolls


def _describe(value) -> str:
    return "an empty list" if value == [] else f"a {type(value).__name__}"


def piano_roll_batch(rolls: list[np.ndarray]):
    """Pad pieces into one batch: inputs x (T, B, 88) = [silence, frames 0..T-2], targets y (T, B, 88)
    = frames 0..T-1, lengths (B,)."""
    lengths = np.array([len(r) for r in rolls], np.int64)
    T, B = int(lengths.max()), len(rolls)
    y = np.zeros((T, B, KEYS), np.float32)
    for b, r in enumerate(rolls):
        y[:len(r), b] = r
    x = np.zeros_like(y)
    x[1:] = y[:-1]
    return x, y, lengths


def music_batches(rolls: list[np.ndarray], batch: int, seed: int = 0):
    """batches(epoch) for the trainer: the pieces shuffled by (seed, epoch), `batch` at a time."""
    checks.positive_int("batch", batch)

    def batches(epoch: int):
        order = np.random.default_rng((seed, epoch)).permutation(len(rolls))
        for i in range(0, len(order), batch):
            yield piano_roll_batch([rolls[j] for j in order[i:i + batch]])

    return batches


# --- model ------------------------------------------------------------------------------------------
class PianoRollModel(ManyToMany):
    """ManyToMany with sigmoid outputs whose loss is the NLL per time step (the sum over the 88 keys,
    not their mean), and optional weight noise in training."""

    def __init__(self, config: ModelConfig, weight_noise: float = 0.0):
        if config.output != "binary" or config.bidirectional:
            raise ValueError(f"PianoRollModel needs output='binary' and a unidirectional cell, got "
                             f"output={config.output!r}, bidirectional={config.bidirectional}")
        super().__init__(config)
        if isinstance(weight_noise, bool) or not isinstance(weight_noise, (int, float)) or not weight_noise >= 0:
            raise ValueError(f"weight_noise must be a number >= 0, got {weight_noise!r}")
        self.weight_noise = float(weight_noise)
        self.noise_rng = np.random.default_rng(config.seed + 1)
        self._clean = None

    def loss(self, batch):
        """(NLL per time step, time steps) for a batch (x, y, lengths) from piano_roll_batch."""
        if self.training and self.weight_noise > 0:
            self._clean = []
            for _, p, _ in self.named_parameters():
                self._clean.append(p.copy())
                p += self.noise_rng.normal(0.0, self.weight_noise, p.shape).astype(p.dtype)
        try:
            loss, steps = super().loss(batch)        # mean over (step, key) pairs
        except BaseException:
            self._restore()
            raise
        self._loss_grad *= self._loss_grad.dtype.type(self.cfg.output_size)   # sum over keys, mean over steps
        return loss * self.cfg.output_size, steps

    def backward(self):
        try:
            super().backward()
        finally:
            self._restore()

    def _restore(self):
        if self._clean is not None:
            for (_, p, _), clean in zip(self.named_parameters(), self._clean):
                p[...] = clean
            self._clean = None


def music_model(cell: str, hidden: int | None = None, seed: int = 0, weight_noise: float = 0.0,
                dtype: str = "float32") -> PianoRollModel:
    checks.one_of("cell", cell, set(HIDDEN))
    hidden = HIDDEN[cell] if hidden is None else hidden
    cfg = ModelConfig(input_size=KEYS, output_size=KEYS, hidden=hidden, cell=cell, output="binary",
                      seed=seed, dtype=dtype)
    return PianoRollModel(cfg, weight_noise)


def evaluate_nll(model: PianoRollModel, rolls: list[np.ndarray], batch: int = 64) -> float:
    """Mean over every time step of the pieces of -log p(x_t | x_<t), in nats (eval mode is the caller's)."""
    total, steps = 0.0, 0
    for i in range(0, len(rolls), batch):
        x, y, lengths = piano_roll_batch(rolls[i:i + batch])
        logits, _ = model.forward(x, None, lengths)                               # (T, B, 88)
        z = logits.astype(np.float64)
        bce = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))             # per key
        mask = np.arange(y.shape[0])[:, None] < lengths[None, :]                  # (T, B)
        total += float((bce.sum(-1) * mask).sum())
        steps += int(lengths.sum())
    return total / max(steps, 1)


# --- training ---------------------------------------------------------------------------------------
@dataclass
class MusicConfig:
    out: str = "runs/music"           # run folder: checkpoints, curves.png
    data: str | None = None           # JSON piano rolls (train/valid[/test]); None: $RNNKIT_DATA's JSB Chorales
    cell: str = "gru"                 # "rnn" (tanh), "lstm" or "gru"
    hidden: int | None = None         # units; None: Chung et al.'s ~20k-parameter sizes (rnn 100, lstm 36, gru 46)
    batch: int = 8                    # pieces per batch
    lr: float = 2e-3                  # RMSprop learning rate
    alpha: float = 0.9                # RMSprop decay of the squared-gradient average
    clip: float | None = 10.0         # clip gradients to this global norm; None: no clipping
    weight_noise: float = 0.0         # std of Gaussian noise added to the weights in each training batch
    max_steps: int = 2000             # stop after this many optimizer steps
    seconds: float | None = None      # wall-clock budget, evaluation included; None: no limit
    eval_every: int = 100             # steps between validations (the best one is kept)
    patience: int | None = 15         # stop after this many validations without improvement; None: never
    seed: int = 0                     # weights, noise and the order of pieces
    progress: bool = True             # show a progress bar


def _data_file(data: str | None) -> Path:
    return data_path(*DEFAULT_DATA) if data is None else Path(data)


def train_music(cfg: MusicConfig, log=None) -> dict:
    """Train on the train split, keep the checkpoint with the best validation NLL, report the test NLL
    of that checkpoint. Returns {"cell", "hidden", "params", "valid_nll", "test_nll", "steps",
    "seconds", "stopped", "checkpoint"}; test_nll is None when the file has no test split."""
    path = _data_file(cfg.data)
    data = load_chorales(path)
    model = music_model(cfg.cell, cfg.hidden, cfg.seed, cfg.weight_noise)
    opt = optim.RMSprop(model, lr=cfg.lr, alpha=cfg.alpha)
    tc = TrainConfig(out_dir=cfg.out, max_steps=cfg.max_steps, seconds=cfg.seconds, clip_norm=cfg.clip,
                     log_every=20, eval_every=cfg.eval_every, patience=cfg.patience, progress=cfg.progress)
    meta = {"task": "music", "data": str(path), "music": asdict(cfg)}
    trainer = Trainer(model, opt, music_batches(data["train"], cfg.batch, cfg.seed),
                      evaluate=lambda m: evaluate_nll(m, data["valid"]), config=tc, meta=meta, log=log)
    result = trainer.fit()
    best = ckpt_io.load(cfg.out, "best")
    model.load_state_dict(best.weights)
    model.eval()
    return {"cell": cfg.cell, "hidden": model.cfg.hidden, "params": model.num_parameters(),
            "valid_nll": evaluate_nll(model, data["valid"]),
            "test_nll": evaluate_nll(model, data["test"]) if "test" in data else None,
            "steps": result.steps, "seconds": result.seconds, "stopped": result.stopped,
            "checkpoint": str(best.path)}


def load_music(path, which: str = "best"):
    """(model in eval mode, config.json) from a run folder or checkpoint folder of `rnnkit train music`."""
    ck = ckpt_io.load_task(path, "music", which)
    model = PianoRollModel.from_config(ck.config["model"])
    model.load_state_dict(ck.weights)
    return model.eval(), ck.config


# --- sampling, MIDI, picture ------------------------------------------------------------------------
def sample_roll(model: PianoRollModel, steps: int, seed: int | None = None) -> np.ndarray:
    """A new piece of `steps` frames: each key of each frame drawn from its Bernoulli, fed back in."""
    checks.positive_int("steps", steps)
    rng = np.random.default_rng(seed)
    x, state, frames = np.zeros((1, 1, KEYS), model.dtype), None, []
    for _ in range(steps):
        logits, state = model.forward(x, state)                    # (1, 1, 88)
        p = 0.5 * (1.0 + np.tanh(0.5 * logits[0, 0].astype(np.float64)))
        frame = (rng.random(KEYS) < p).astype(model.dtype)
        frames.append(frame)
        x = frame[None, None]
    return np.stack(frames)


def write_midi(roll: np.ndarray, path, bpm: float = 90.0, velocity: int = 80) -> None:
    """One quarter note per frame; a key sounding in consecutive frames is held, not struck again."""
    import mido

    if not bpm > 0:
        raise ValueError(f"bpm must be positive, got {bpm!r}")
    tpb = 480
    mid = mido.MidiFile(type=0, ticks_per_beat=tpb)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    track.append(mido.Message("program_change", program=19, time=0))    # church organ
    on = np.zeros(KEYS, bool)
    wait = 0                                                             # ticks since the last event
    for frame in list(np.asarray(roll) > 0.5) + [np.zeros(KEYS, bool)]:
        for k in np.flatnonzero(on & ~frame):
            track.append(mido.Message("note_off", note=int(k) + LOW, velocity=0, time=wait))
            wait = 0
        for k in np.flatnonzero(frame & ~on):
            track.append(mido.Message("note_on", note=int(k) + LOW, velocity=velocity, time=wait))
            wait = 0
        on = frame
        wait += tpb
    buf = io.BytesIO()
    mid.save(file=buf)
    atomic_write(str(path), buf.getvalue())


def read_midi_roll(path) -> np.ndarray:
    """The piano roll (T, 88) of a file written by write_midi (one frame per beat)."""
    import mido

    mid = mido.MidiFile(str(path))
    tpb, tick, sounding, frames = mid.ticks_per_beat, 0, set(), {}
    for msg in mido.merge_tracks(mid.tracks):
        if msg.time:
            for t in range(tick // tpb, (tick + msg.time) // tpb):
                frames[t] = set(sounding)
        tick += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            sounding.add(msg.note)
        elif msg.type in ("note_off", "note_on"):
            sounding.discard(msg.note)
    roll = np.zeros((max(frames, default=-1) + 1, KEYS), np.float32)
    for t, notes in frames.items():
        roll[t, [n - LOW for n in notes]] = 1.0
    return roll


def plot_roll(roll: np.ndarray, path, title: str = "sampled piano roll") -> None:
    plt = pyplot()

    roll = np.asarray(roll)
    fig, ax = plt.subplots(figsize=(max(6.0, roll.shape[0] / 10), 4))
    ax.imshow(roll.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
              extent=(-0.5, roll.shape[0] - 0.5, LOW - 0.5, HIGH + 0.5))
    used = np.flatnonzero(roll.any(0))
    if used.size:
        ax.set_ylim(LOW + used.min() - 3.5, LOW + used.max() + 3.5)
    ax.set_xlabel("time step (quarter note)")
    ax.set_ylabel("MIDI note")
    ax.set_title(title)
    ax.grid(alpha=0.2)
    fig.tight_layout()
    save_png(fig, str(path), dpi=90)
