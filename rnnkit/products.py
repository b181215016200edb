"""The large products of a layer (input projection, weight gradients, input gradient) cut into
row blocks, one per thread, each block on one thread of NumPy's BLAS.

When the recurrence runs its parts on several threads (rnnkit.kernels.parts), these products run
on the same number of threads of rnnkit's own instead of NumPy's BLAS thread pool. That pool keeps
its threads spinning for a while after each product, and a spinning thread on the core a part of
the recurrence needs stalls every step. NumPy's BLAS is set to one thread for the time of the
product and back after: OpenBLAS's "thread-local" setting is process-wide in the builds NumPy
ships (a thread that sets it changes it for all). With one part, or without OpenBLAS, products
are plain NumPy.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .blas import thread_setter

_set_threads = thread_setter("numpy")
_pool = None


def matmul(a, b, parts=1, out=None):
    """a @ b for 2-D a and b, into out if given; with parts > 1, a's rows in that many blocks on
    as many threads."""
    if parts == 1 or _set_threads is None or a.shape[0] < 2 * parts:
        return np.matmul(a, b, out=out)
    global _pool
    if _pool is None or _pool._max_workers < parts - 1:
        _pool = ThreadPoolExecutor(parts - 1, "rnnkit-products")
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    edges = [a.shape[0] * k // parts for k in range(parts + 1)]
    previous = _set_threads(1)
    try:
        others = [_pool.submit(np.matmul, a[r0:r1], b, out=out[r0:r1]) for r0, r1 in zip(edges[1:-1], edges[2:])]
        np.matmul(a[:edges[1]], b, out=out[:edges[1]])
        for f in others:
            f.result()
    finally:
        _set_threads(previous)
    return out


def add_matmul(c, a, b, parts=1):
    """c += a @ b; straight into c, with no temporary, when c is all zero (as after zero_grad)."""
    if c.any():
        c += matmul(a, b, parts)
    else:
        matmul(a, b, parts, c)
