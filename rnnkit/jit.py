"""Numba, where it is installed and not switched off (RNNKIT_NUMBA=0): `numba`, else None; and
`Twins`, one function compiled twice, serial and parallel, for rnnkit's kernels and packing.

Numba's threads come from OpenMP (libgomp), whose idle threads spin for a while before they
sleep. After a threaded recurrence they would spin on through the layer's next large product and
take a core from it; unless GOMP_SPINCOUNT says otherwise, they spin 10,000 rounds, enough to
bridge the steps of one sequence.

Numba's on-disk cache keys a compiled function on its own file alone, yet a kernel carries the
machine code of every function it calls: edit rnnkit/gemm.py and the kernels of kernels.py, whose
file did not change, would load with the old tiles. So for rnnkit's own files the cache's stamp
also holds a hash of SOURCES, the files that compiled code draws from (`_StampedLocator`).

LLVM tunes many of Intel's AVX-512 cores to prefer 256-bit vectors (its "prefer-256-bit"), and
then builds rnnkit.gemm's tiles, whose sums are sized for 32 512-bit registers, of twice as many
256-bit ones, more than the registers hold, so some live on the stack. Unless NUMBA_CPU_NAME or
NUMBA_CPU_FEATURES says otherwise, rnnkit has Numba compile for the host's own features less
that preference (`wide_vectors`), for every function it compiles after rnnkit is imported (one
core, a step's product of 32 rows against W (128, 512): 76.5 GFLOP/s with 256-bit vectors,
123.0 with 512, on a Xeon whose LLVM name is rocketlake; `python bench/gemm.py`). It changes
nothing where the host has no AVX-512 or LLVM prefers 512 bits already (AMD's Zen 4).
"""
from __future__ import annotations

import functools
import hashlib
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
if ENABLED:                                  # timing only: every vectorized loop two vectors a pass
    import llvmlite.binding as _llvm
    _llvm.set_option("", "-force-vector-interleave=2")

FAST = dict(fastmath=True, error_model="numpy", nogil=True)
OPTIONS = dict(cache=True, **FAST)
ONLY_PRANGE = dict(prange=True, comprehension=False, reduction=False, inplace_binop=False, setitem=False,
                   numpy=False, stencil=False, fusion=False)      # slice copies stay plain loops
prange = numba.prange if ENABLED else range
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ("jit.py", "atomics.py", "prefetch.py", "transpose.py", "gemm.py", "kernels.py")   # what compiled code draws from


def sources_hash(folder=HERE, names=SOURCES):
    """SHA-256 of the named files' contents, in order."""
    digest = hashlib.sha256()
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


_rnnkit_hash = functools.cache(sources_hash)          # rnnkit's own SOURCES, read once per process


class _StampedLocator:
    """For a function in one of rnnkit's files, the cache locator Numba would choose, with its stamp
    (of the function's own file) paired with sources_hash(): an edit of any of SOURCES makes every
    cached kernel stale. Functions elsewhere are left to Numba's own locators."""

    def __init__(self, locator):
        self._locator = locator

    def __getattr__(self, name):
        return getattr(self._locator, name)

    def get_source_stamp(self):
        return self._locator.get_source_stamp(), _rnnkit_hash()

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != HERE:
            return None
        for other in _impl._locator_classes:
            found = None if other is cls else other.from_function(py_func, py_file)
            if found is not None:
                return cls(found)
        return None


def wide_vectors(config):
    """Numba's config set to compile for the host's features without LLVM's preference for 256-bit
    vectors, unless the user chose a CPU or its features; it counts from the first compilation on."""
    if config.CPU_NAME is None and config.CPU_FEATURES is None:
        from numba.core.codegen import get_host_cpu_features
        config.CPU_FEATURES = get_host_cpu_features() + ",-prefer-256-bit"


if ENABLED:
    wide_vectors(numba.core.config)
    from numba.core import caching
    _impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)   # older Numba's name
    if isinstance(getattr(_impl, "_locator_classes", None), list):       # Numba's own list, first-come
        _impl._locator_classes.insert(0, _StampedLocator)


if ENABLED:
    from numba.core.compiler import CompilerBase, DefaultPassBuilder
    from numba.core.untyped_passes import ReconstructSSA

    class WithoutSSA(CompilerBase):
        """Numba's pipeline less its reconstruction of SSA form, for rnnkit.gemm's tiles: each of
        their variables keeps one type, so typing needs no versions of it, and LLVM builds the same
        machine code without them (instruction for instruction, names aside, in each of the nine
        compared: float32 tiles of 1, 5 and 8 rows, 8 prefetching, 1 x WIDE panels and 3 x 2;
        float64 tiles of 1 row, 8 prefetching and 1 x WIDE).
        Their straight-line code of hundreds of sums made the pass the slowest step of a tile's
        compilation: in one process, tile_8 took 14.6 s with it and 8.8 s without, 8 x 1
        prefetching 14.6-16.7 s and 8.2-10.4 s (throwaway timings). From nothing, rnnkit.gemm's
        compilation for float32 took 185.1 s with it, 127.8 s without."""

        def define_pipelines(self):
            pipeline = DefaultPassBuilder.define_nopython_pipeline(self.state)
            pipeline.passes = [(kind, about) for kind, about in pipeline.passes if kind is not ReconstructSSA]
            pipeline.finalize()
            return [pipeline]
else:
    WithoutSSA = None


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
