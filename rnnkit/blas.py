"""The OpenBLAS that NumPy (or SciPy) ships: its thread count, and how long its idle threads spin.

`thread_setter` gives openblas_set_num_threads_local: despite its name, process-wide in those
builds. `sleep_when_idle` stops OpenBLAS's threads from spinning after each product: by default
an idle one spins for about 0.1 s (2^28 cycles) before it sleeps, and a spinning thread holds a
core that a threaded recurrence (rnnkit.kernels) needs at every step: after a product of NumPy's
on all cores, such as a model's output layer, the recurrence ran at about half its speed.
"""
from __future__ import annotations

import ctypes
import functools
import glob
import importlib.util
import os

SLEEP_TIMEOUT = "4"     # OPENBLAS_THREAD_TIMEOUT: 2^4 cycles, OpenBLAS's least, so the threads sleep at once
WIDE_CORES = {"SkylakeX", "Cooperlake", "SapphireRapids"}    # OpenBLAS's cores whose kernels take 512-bit vectors


@functools.lru_cache(maxsize=None)
def _library(package: str):
    """The OpenBLAS in <package>.libs as a ctypes library, looked up once; None where the package or
    it is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], os.pardir, package + ".libs")
    for path in glob.glob(os.path.join(folder, "libscipy_openblas*.so*")):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def thread_setter(package: str):
    """openblas_set_num_threads_local(n) -> previous n, from the OpenBLAS in <package>.libs; None
    where the package or that OpenBLAS is missing."""
    setter = getattr(_library(package), "openblas_set_num_threads_local", None)
    if setter is not None:
        setter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
    return setter


def core_name(package: str) -> str | None:
    """The name of the core whose kernels the OpenBLAS in <package>.libs runs ("Haswell",
    "SkylakeX", ...), which it picks from the CPU when it loads; None where the package or that
    OpenBLAS is missing."""
    lib = _library(package)
    for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
        get = getattr(lib, symbol, None)
        if get is not None:
            get.restype = ctypes.c_char_p
            return get().decode()
    return None


def sleep_when_idle(package: str) -> bool:
    """Have the OpenBLAS in <package>.libs put its idle threads to sleep at once, unless
    OPENBLAS_THREAD_TIMEOUT already says how long they spin. OpenBLAS reads the timeout when it
    starts its threads, which NumPy's import has done: so have OpenBLAS read its environment again
    with the timeout set, and shut its threads down (as it does before a fork); its next threaded
    product starts them again, with the new timeout. Returns whether it did."""
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        return False
    lib = _library(package)
    read_env = getattr(lib, "openblas_read_env", None)
    shutdown = getattr(lib, "blas_thread_shutdown_", None)
    if read_env is None or shutdown is None:
        return False
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = SLEEP_TIMEOUT
    try:
        read_env()
    finally:
        del os.environ["OPENBLAS_THREAD_TIMEOUT"]       # this process's OpenBLAS only, not its children's
    shutdown()
    return True
