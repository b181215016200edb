"""The large products of a layer (input projection, weight gradients, input gradient) cut into
row blocks, one per thread, each block on one thread of NumPy's BLAS.

When the recurrence runs its parts on several threads (rnnkit.kernels.parts), these products run
on the same number of threads of rnnkit's own instead of NumPy's BLAS thread pool. That pool keeps
its threads spinning for a while after each product, and a spinning thread on the core a part of
the recurrence needs stalls every step. With one part, or without
OpenBLAS's thread-local setting, products are plain NumPy.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .blas import thread_setter

_set_threads = thread_setter("numpy")
_pool = None


def _one_thread_here():
    _set_threads(1)


def _block(a, b, out, r0, r1):
    previous = _set_threads(1)
    try:
        np.matmul(a[r0:r1], b, out=out[r0:r1])
    finally:
        _set_threads(previous)


def matmul(a, b, parts=1):
    """a @ b for 2-D a and b; with parts > 1, a's rows in that many blocks on as many threads."""
    if parts == 1 or _set_threads is None or a.shape[0] < 2 * parts:
        return a @ b
    global _pool
    if _pool is None or _pool._max_workers < parts - 1:
        _pool = ThreadPoolExecutor(parts - 1, "rnnkit-products", initializer=_one_thread_here)
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    edges = [a.shape[0] * k // parts for k in range(parts + 1)]
    others = [_pool.submit(np.matmul, a[r0:r1], b, out=out[r0:r1]) for r0, r1 in zip(edges[1:-1], edges[2:])]
    _block(a, b, out, edges[0], edges[1])
    for f in others:
        f.result()
    return out
