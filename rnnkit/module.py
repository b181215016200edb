"""Module: named parameters, their gradients, state dicts and safetensors files.

A module owns `params` (name -> array) and `grads` (same names, same shapes). Child modules
assigned as attributes are found by name, so a model's `state_dict()` uses dotted names
(`rnn.weight_ih_l0`), as `torch.nn.Module` does.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np


class Module:
    def __init__(self):
        object.__setattr__(self, "params", {})
        object.__setattr__(self, "grads", {})
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if isinstance(value, Module):
            self._children[name] = value
        object.__setattr__(self, name, value)

    def add_param(self, name: str, value: np.ndarray) -> None:
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)

    # --- traversal ------------------------------------------------------------------------------
    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, child in self._children.items():
            yield from child.named_modules(f"{prefix}{name}.")

    def named_parameters(self):
        """(dotted name, parameter, gradient) for every parameter of this module and its children."""
        for prefix, module in self.named_modules():
            for name, p in module.params.items():
                yield prefix + name, p, module.grads[name]

    def zero_grad(self) -> None:
        for _, _, g in self.named_parameters():
            g[...] = 0

    def train(self, mode: bool = True):
        for _, module in self.named_modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def num_parameters(self) -> int:
        return sum(p.size for _, p, _ in self.named_parameters())

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter under PyTorch's names."""
        return {name: p.copy() for name, p, _ in self.named_parameters()}

    def load_state_dict(self, state: dict) -> None:
        """Load arrays by name. Unknown or missing keys and wrong shapes raise; nothing is broadcast."""
        own = {name: p for name, p, _ in self.named_parameters()}
        unknown = sorted(set(state) - set(own))
        missing = sorted(set(own) - set(state))
        if unknown or missing:
            raise ValueError(f"load_state_dict: unknown keys {unknown}, missing keys {missing}")
        for name, value in state.items():
            value = np.asarray(value)
            if value.shape != own[name].shape:
                raise ValueError(
                    f"load_state_dict: {name} must have shape {own[name].shape}, got shape {value.shape}")
            if value.dtype.kind != "f":
                raise TypeError(f"load_state_dict: {name} must be floating, got dtype {value.dtype}")
        for name, value in state.items():
            own[name][...] = value

    def config(self) -> dict:
        """The constructor arguments, for the metadata of saved files."""
        return {}

    def save(self, path: str) -> None:
        """Write the parameters to a safetensors file, atomically."""
        from safetensors.numpy import save

        meta = {"rnnkit_class": type(self).__name__, "rnnkit_config": json.dumps(self.config())}
        atomic_write(path, save(self.state_dict(), metadata=meta))

    def load(self, path: str) -> None:
        """Read parameters written by `save` (or any safetensors file with the same names)."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            state = load_file(path)
        except (SafetensorError, OSError) as e:
            raise ValueError(f"path {path!r} is not a readable safetensors file: {e}") from None
        self.load_state_dict(state)


def atomic_write(path: str, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: a crash leaves the old file whole."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
