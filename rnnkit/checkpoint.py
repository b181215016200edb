"""Checkpoints: safetensors for arrays, JSON for everything else, written so a crash never corrupts one.

A run folder holds any number of checkpoint folders and two pointer files:

    run_dir/
      latest.json               {"checkpoint": "ckpt-0000500", "step": 500}: the newest checkpoint
      best.json                 the same for the best validation loss so far (when there is one)
      curves.png                training curves (written by the trainer)
      ckpt-0000500/
        model.safetensors       weights, under the model's state_dict names
        config.json             {"model_class", "model": model.config(), ...what the caller adds}
        vocab.json              the vocabulary, when the caller gives one
        trainer.json            step, epoch, batch index, history, optimizer type/scalars, RNG states
        optimizer.safetensors   optimizer slots ("m.rnn.weight_ih_l0") and model extra state ("extra.h")

A checkpoint folder is written under a temporary name, each file flushed to disk, then renamed
into place; only then is the pointer file replaced (atomic_write). A crash at any moment leaves
the previous checkpoint whole and pointed to. Nothing is ever unpickled: arrays come from
safetensors, the rest from JSON.

    save(run_dir, step, model=..., config=..., vocab=..., trainer=..., optimizer=..., extra=...)
    ckpt = load(path)            # path: a run folder (follows latest.json) or a checkpoint folder
    ckpt.weights, ckpt.config, ckpt.vocab, ckpt.trainer, ckpt.optimizer, ckpt.extra
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .module import atomic_write

MODEL, CONFIG, VOCAB, TRAINER, OPTIMIZER = ("model.safetensors", "config.json", "vocab.json", "trainer.json",
                                            "optimizer.safetensors")


@dataclass
class Checkpoint:
    path: Path                                      # the checkpoint folder
    weights: dict                                   # name -> array (model.load_state_dict(weights))
    config: dict                                    # config.json
    vocab: dict | None = None                       # vocab.json, if written
    trainer: dict | None = None                     # trainer.json, if written
    optimizer: dict | None = None                   # optimizer state_dict (arrays and scalars), if written
    extra: dict = field(default_factory=dict)       # the model's extra state (e.g. a carried hidden state)


def _write_json(path: Path, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, allow_nan=True)
        f.flush()
        os.fsync(f.fileno())


def _write_tensors(path: Path, arrays: dict, metadata: dict | None = None) -> None:
    from safetensors.numpy import save

    data = save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=metadata)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save(run_dir, step: int, *, model, config: dict | None = None, vocab: dict | None = None,
         trainer: dict | None = None, optimizer=None, extra: dict | None = None,
         best: bool = False, keep: int = 1) -> Path:
    """Write checkpoint `ckpt-<step>` in run_dir and point latest.json (and best.json if best) at it.

    Older checkpoints beyond the newest `keep` are deleted, except the one best.json names.
    Returns the checkpoint folder.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    name = f"ckpt-{int(step):07d}"
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=".tmp-" + name))
    try:
        _write_tensors(tmp / MODEL, model.state_dict(), {"rnnkit_class": type(model).__name__})
        _write_json(tmp / CONFIG, {"model_class": type(model).__name__, "model": model.config(),
                                   **(config or {})})
        if vocab is not None:
            _write_json(tmp / VOCAB, vocab)
        arrays = {}
        if optimizer is not None:
            state = optimizer.state_dict()
            arrays.update({"opt." + k: v for k, v in state["arrays"].items()})
            trainer = dict(trainer or {}, optimizer={k: v for k, v in state.items() if k != "arrays"})
        arrays.update({"extra." + k: v for k, v in (extra or {}).items()})
        if trainer is not None or arrays:
            _write_tensors(tmp / OPTIMIZER, arrays)
        _write_json(tmp / TRAINER, dict(trainer or {}, step=int(step)))
        final = run_dir / name
        if final.exists():                              # same step saved twice: replace the old one
            shutil.rmtree(final)
        os.chmod(tmp, 0o755)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = json.dumps({"checkpoint": name, "step": int(step)}).encode()
    atomic_write(str(run_dir / "latest.json"), pointer)
    if best:
        atomic_write(str(run_dir / "best.json"), pointer)
    _prune(run_dir, keep)
    return final


def _pointed(run_dir: Path, which: str) -> str | None:
    try:
        return json.loads((run_dir / f"{which}.json").read_text())["checkpoint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _prune(run_dir: Path, keep: int) -> None:
    protected = {_pointed(run_dir, "latest"), _pointed(run_dir, "best")}
    ckpts = sorted(p for p in run_dir.glob("ckpt-*") if p.is_dir())
    for old in ckpts[:-keep] if keep > 0 else ckpts:
        if old.name not in protected:
            shutil.rmtree(old, ignore_errors=True)


def resolve(path, which: str = "latest") -> Path:
    """The checkpoint folder that `path` names: itself if it holds model.safetensors, else the one
    that path/<which>.json points to ("best" falls back to "latest" in a run that never validated).
    Raises FileNotFoundError or ValueError naming the path."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint path {str(path)!r} does not exist")
    if not path.is_dir():
        raise ValueError(f"checkpoint path {str(path)!r} is not a folder")
    if (path / MODEL).exists():
        return path
    pointer = path / f"{which}.json"
    if which == "best" and not pointer.exists():
        which, pointer = "latest", path / "latest.json"
    if not pointer.exists():
        raise FileNotFoundError(f"{str(path)!r} holds no checkpoint (no {MODEL} and no {which}.json)")
    name = _pointed(path, which)
    if name is None:
        raise ValueError(f"checkpoint pointer {str(pointer)!r} is corrupt")
    return path / name


def has_checkpoint(run_dir) -> bool:
    return (Path(run_dir) / "latest.json").exists()


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"checkpoint file {str(path)!r} is corrupt: {e}") from None


def _read_tensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, ValueError) as e:
        raise ValueError(f"checkpoint file {str(path)!r} is corrupt: {e}") from None


def load(path, which: str = "latest") -> Checkpoint:
    """Read a checkpoint (see `resolve` for `path`). Missing or unreadable files raise one clear error."""
    folder = resolve(path, which)
    for required in (MODEL, CONFIG):
        if not (folder / required).exists():
            raise FileNotFoundError(f"checkpoint {str(folder)!r} is incomplete: {required} is missing")
    ckpt = Checkpoint(folder, _read_tensors(folder / MODEL), _read_json(folder / CONFIG))
    if (folder / VOCAB).exists():
        ckpt.vocab = _read_json(folder / VOCAB)
    if (folder / TRAINER).exists():
        ckpt.trainer = _read_json(folder / TRAINER)
    if (folder / OPTIMIZER).exists():
        arrays = _read_tensors(folder / OPTIMIZER)
        ckpt.extra = {k[len("extra."):]: v for k, v in arrays.items() if k.startswith("extra.")}
        opt = (ckpt.trainer or {}).get("optimizer")
        if opt is not None:
            ckpt.optimizer = dict(opt, arrays={k[len("opt."):]: v for k, v in arrays.items()
                                               if k.startswith("opt.")})
    return ckpt


def load_task(path, tasks, which: str = "best", needs_vocab: bool = False) -> Checkpoint:
    """A checkpoint that `rnnkit train <task>` wrote for one of `tasks`; any other raises ValueError."""
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    ck = load(path, which)
    task = ck.config.get("task")
    if task not in tasks:
        raise ValueError(f"checkpoint {str(ck.path)!r} is not a {' or '.join(tasks)} model (task {task!r}); "
                         f"train one with `rnnkit train {tasks[0]}`")
    if needs_vocab and ck.vocab is None:
        raise ValueError(f"checkpoint {str(ck.path)!r} has no vocab.json")
    return ck
