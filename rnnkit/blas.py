"""OpenBLAS's thread count, for the OpenBLAS that NumPy (or SciPy) ships, through
openblas_set_num_threads_local: despite its name, process-wide in those builds."""
from __future__ import annotations

import ctypes
import glob
import importlib.util
import os


def thread_setter(package: str):
    """openblas_set_num_threads_local(n) -> previous n, from the OpenBLAS in <package>.libs; None
    where the package or that OpenBLAS is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], os.pardir, package + ".libs")
    for path in glob.glob(os.path.join(folder, "libscipy_openblas*.so*")):
        try:
            setter = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        setter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
        return setter
    return None
