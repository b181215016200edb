"""Numba, where it is installed and not switched off (RNNKIT_NUMBA=0): `numba`, else None."""
from __future__ import annotations

import os

try:
    if os.environ.get("RNNKIT_NUMBA", "1") == "0":
        raise ImportError("disabled by RNNKIT_NUMBA=0")
    import numba
except ImportError:
    numba = None

ENABLED = numba is not None
