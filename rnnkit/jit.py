"""Numba, where it is installed and not switched off (RNNKIT_NUMBA=0): `numba`, else None; and
`Twins`, one function compiled twice, serial and parallel, for rnnkit's kernels and packing.

Numba's threads come from OpenMP (libgomp), whose idle threads spin for a while before they
sleep. After a threaded recurrence they would spin on through the layer's next large product and
take a core from it; unless GOMP_SPINCOUNT says otherwise, they spin 10,000 rounds, enough to
bridge the steps of one sequence.
"""
from __future__ import annotations

import os
import types

os.environ.setdefault("GOMP_SPINCOUNT", "10000")

try:
    if os.environ.get("RNNKIT_NUMBA", "1") == "0":
        raise ImportError("disabled by RNNKIT_NUMBA=0")
    import numba
except ImportError:
    numba = None

ENABLED = numba is not None

FAST = dict(fastmath=True, error_model="numpy", nogil=True)
OPTIONS = dict(cache=True, **FAST)
ONLY_PRANGE = dict(prange=True, comprehension=False, reduction=False, inplace_binop=False, setitem=False,
                   numpy=False, stencil=False, fusion=False)      # slice copies stay plain loops
prange = numba.prange if ENABLED else range


class Twins:
    """f compiled twice: f[P] is the serial build for P = 1 (prange runs as a plain loop; a parallel
    build there ran rnnkit's backward kernels 25x slower) and the parallel build for P > 1. Without
    Numba both are `fallback`, or f itself, run by Python."""

    def __init__(self, f, fallback=None):
        self.__doc__ = f.__doc__
        if not ENABLED:
            self.serial = self.parallel = fallback or f
            return
        twin = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_parallel", f.__defaults__)
        twin.__qualname__ = f.__qualname__ + "_parallel"               # its own on-disk cache
        self.serial = numba.njit(**OPTIONS)(f)
        self.parallel = numba.njit(parallel=ONLY_PRANGE, **OPTIONS)(twin)

    def __getitem__(self, P):
        return self.serial if P == 1 else self.parallel
