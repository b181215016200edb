"""OpenBLAS's thread-local thread count, for the OpenBLAS that NumPy ships and the one that Numba's
np.dot calls (SciPy's): setting it to 1 in a thread makes that thread's products run in it alone."""
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
