"""Numba, where it is installed and not switched off (RNNKIT_NUMBA=0): `numba`, else None.

Numba's threads come from OpenMP (libgomp), whose idle threads spin for a while before they
sleep. After a threaded recurrence they would spin on through the layer's next large product and
take a core from it; unless GOMP_SPINCOUNT says otherwise, they spin 10,000 rounds, enough to
bridge the steps of one sequence.
"""
from __future__ import annotations

import os

os.environ.setdefault("GOMP_SPINCOUNT", "10000")

try:
    if os.environ.get("RNNKIT_NUMBA", "1") == "0":
        raise ImportError("disabled by RNNKIT_NUMBA=0")
    import numba
except ImportError:
    numba = None

ENABLED = numba is not None
