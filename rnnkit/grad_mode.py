"""`with rnnkit.no_grad():` inference, like torch.no_grad: forward keeps no cache, backward refuses."""
from __future__ import annotations

import contextlib
import threading

_local = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_local, "enabled", True)


@contextlib.contextmanager
def no_grad():
    previous = is_grad_enabled()
    _local.enabled = False
    try:
        yield
    finally:
        _local.enabled = previous
