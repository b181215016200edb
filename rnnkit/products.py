"""The large products of a layer: the input projection of all steps, the weight gradients and the
gradient of the input.

With Numba and two parts or more, W is packed and the product runs through rnnkit.gemm
(`product`), on the threads of the recurrence, so no other thread pool wakes, in blocks of rows,
one thread each: for the projection and the input gradient, which multiply many rows by a weight
matrix, where that runs faster than NumPy's BLAS (`python bench/gemm.py --layer`); and for any
product too small to split (below SPLIT_WORK multiply-adds) with two blocks of rows or more, such as
a small layer's weight gradients (a product over all steps, A.T @ B). Larger weight gradients stay
with `matmul`: row blocks, one per thread, each block on one thread of NumPy's BLAS; below
SPLIT_WORK, on the calling thread alone, as waking a pool thread for a block cost more than it saved.

When the recurrence runs its parts on several threads (rnnkit.kernels.parts), these products run
on the same number of threads of rnnkit's own instead of NumPy's BLAS thread pool. That pool keeps
its threads spinning for a while after each product, and a spinning thread on the core a part of
the recurrence needs stalls every step. NumPy's BLAS is set to one thread for the time of the
product and back after: OpenBLAS's "thread-local" setting is process-wide in the builds NumPy
ships (a thread that sets it changes it for all). With one part, or without OpenBLAS, products
are plain NumPy. For the products outside the layer (a model's output layer, a user's own), the
import has OpenBLAS's threads sleep as soon as they are idle (rnnkit.blas.sleep_when_idle).
`together` hands calls to these threads: matmul's row blocks, and a bidirectional layer's two
directions (rnnkit.recurrent).
"""
from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from . import gemm as packed
from . import kernels, workspace
from .blas import WIDE_CORES, core_name, sleep_when_idle, thread_setter
from .workspace import FRESH

_set_threads = thread_setter("numpy")
if kernels.ENABLED:
    sleep_when_idle("numpy")
FEW_ROWS = 32            # rows of a, at most, for a product turned round (turned_round)
TURNED_VALUES = 1 << 17  # values of W, at least, for a product turned round
SPLIT_WORK = 1 << 25     # multiply-adds below which handing a block to another thread costs more than it saves
PACK_VALUES = 1 << 18    # values of W, at most, for a large product to pack it (1 MB in float32; see packs)
PACK_VALUES_ON = {"emeraldrapids": 1 << 16}     # by LLVM's name of the CPU: its own PACK_VALUES
NARROW_BLAS = False      # whether NumPy's OpenBLAS runs narrower vectors than rnnkit.gemm's tiles (see packs)
_pool = None
if kernels.ENABLED:
    PACK_VALUES = PACK_VALUES_ON.get(packed.target_name(), PACK_VALUES)
    NARROW_BLAS = packed.AVX512 and core_name("numpy") not in (None, *WIDE_CORES)


def turned_round(a, b):
    """Whether a @ b runs faster as (b.T @ a.T).T: a has a few rows (2 to FEW_ROWS) and b = W.T is a
    transposed view of a C-contiguous W. NumPy's BLAS packs W for each product of a few rows by
    W.T; turned round it does not. A throwaway timing (one process, medians of 300 products, us),
    a @ W.T against (W @ a.T).T copied out: (M, K, N) = (2, 256, 768) 96.3 / 50.6, (8, 256, 768)
    64.9 / 36.6, (32, 256, 768) 113.4 / 96.7, (2, 512, 2048) 346.1 / 218.1, (8, 512, 2048) 372.5 /
    262.7, (32, 512, 2048) 603.7 / 486.9; at 64 rows slower (155.7 / 192.8, 719.6 / 812.3), at
    one row the same (a matrix-vector product either way). In the layers' short calls (T <= 4, B = 2
    to 32, another throwaway timing, the two in turns, medians of 5 rounds), time as it was over
    turned round: where W has TURNED_VALUES values or more (H = 256 for the LSTM and GRU, 512 for the
    RNN) 0.94-1.63 in inference and 0.99-1.23 in training; with fewer (H = 128, and the RNN's 256)
    0.82-1.18, so those stay as they were. The GRU and RNN cells' step at B = 5 to 32: 1.20-1.40."""
    return (1 < a.shape[0] <= FEW_ROWS and b.size >= TURNED_VALUES and b.flags.f_contiguous
            and not b.flags.c_contiguous)


def matmul(a, b, parts=1, out=None):
    """a @ b for 2-D a and b, into out if given; with parts > 1, a's rows in that many blocks on
    as many threads, or, below SPLIT_WORK multiply-adds, on this thread alone; turned round where
    that runs faster (turned_round)."""
    if turned_round(a, b):
        turned = (b.T @ a.T).T
        if out is None:
            return turned
        out[...] = turned
        return out
    if parts == 1 or _set_threads is None or a.shape[0] < 2 * parts:
        return np.matmul(a, b, out=out)
    if out is None:
        out = workspace.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    if a.shape[0] * a.shape[1] * b.shape[1] < SPLIT_WORK:
        parts = 1
    edges = [a.shape[0] * k // parts for k in range(parts + 1)]
    together([functools.partial(np.matmul, a[r0:r1], b, out=out[r0:r1]) for r0, r1 in zip(edges, edges[1:])])
    return out


def together(calls):
    """Run the calls at once, the first on this thread and each other one on a thread of rnnkit's
    pool, with NumPy's BLAS on one thread meanwhile (each call has a core to itself); returns
    their results in order, once all are done."""
    global _pool
    if len(calls) > 1 and (_pool is None or _pool._max_workers < len(calls) - 1):
        _pool = ThreadPoolExecutor(len(calls) - 1, "rnnkit-products")
    previous = None if _set_threads is None else _set_threads(1)
    try:
        others = [_pool.submit(call) for call in calls[1:]]
        try:
            first = calls[0]()
        finally:
            wait(others)
        return [first] + [f.result() for f in others]
    finally:
        if previous is not None:
            _set_threads(previous)


def add_matmul(c, a, b, parts=1, ws=FRESH):
    """c += a @ b for a weight gradient (a product over all steps, a = dY.T), through `product`;
    straight into c, with no temporary, when c is all zero (as after zero_grad)."""
    if c.any():
        c += product(a, b, parts, ws=ws, gradient=True)
    else:
        product(a, b, parts, c, ws=ws, gradient=True)


@functools.lru_cache(maxsize=64)
def _all_columns(N):
    """rnnkit.gemm.pack's columns for the whole of a W with N columns, once per N, read-only."""
    cols = packed.columns(np.arange(N)[None], np.ones((1, N), bool))
    cols.flags.writeable = False
    return cols


def packs(M, K, N, parts, gradient=False, keep=True):
    """Whether a product of M rows and W (K, N) runs through rnnkit.gemm: with Numba, on parts > 1
    threads, with a block of rows for each of two threads at least, where the product is too small
    for matmul to split (a small layer's; packing W then costs little memory) or, except for a
    weight gradient (whose K, the rows of all steps, is long), where M >= 2K (the packed copy of W
    then takes at most half the memory of the output, and packing it little time next to the
    product; packing a weight gradient at M >= 2K raised the GRU's memory at H = 650 above
    PyTorch's in `python bench/speed.py`; in inference, keep False, no training step's peak is
    at stake and M >= K is enough) and W has at most PACK_VALUES values. Each block of rows reads
    all of W, and a W past a core's L2 comes from L3 for each: `python bench/gemm.py --layer
    --repeats 5`, two runs on two cores of an Intel Xeon (L2 2 MB a core), product / BLAS: up to
    2^18 values, 0.93-1.12 at (M, K, N) = (6400, 512, 512), (3200, 256, 1024) and (3200, 1024,
    256); past it, 0.77-0.99 at (6400, 512, 1536), (6400, 512, 2048), (6400, 2048, 512), (700,
    650, 650) and (700, 650, 2600). On the Xeon whose LLVM name is emeraldrapids (also L2 2 MB a
    core), BLAS took the lead from fewer values (PACK_VALUES_ON). There, a throwaway timing on two
    threads (the two ways in turns, 31 rounds in one process; BLAS's time over the packed
    product's, median and quartiles): (6400, 512, 512) 0.871 (0.793-0.928) and, in a second run,
    0.832 (0.811-0.852); (3200, 1024, 256) 0.914, (3200, 256, 768) 0.879, (3200, 768, 256) 0.930;
    at 2^16 values and fewer, (3200, 256, 256) 0.940, (3200, 128, 512) 0.895, (3200, 512, 128)
    0.977, (3200, 384, 128) 0.999, (3200, 128, 128) 1.192 and (800, 64, 64) 1.548. In the layers
    (a throwaway A/B in one process, 15 rounds in turns; time at 2^18 over 2^16, training and
    inference): RNN (T, B, I, H) = (100, 64, 512, 512) 1.032 and 1.070, GRU (100, 32, 256, 256)
    1.045 and 1.003, LSTM (100, 32, 256, 256) 0.984 and 0.984; at 2^15, GRU (100, 32, 128, 128)
    0.970 and 0.941, so 2^16.

    Where NARROW_BLAS (NumPy's OpenBLAS runs kernels of 256-bit vectors, rnnkit.gemm's tiles take
    512: on Zen 5 with OPENBLAS_CORETYPE=Haswell), every product of 2 * PRODUCT_ROWS rows or more
    packs, on any number of parts, past PACK_VALUES, and weight gradients of any size. There, `python
    bench/gemm.py --layer --repeats 5` gave product / BLAS 1.81-3.16; a weight gradient alone (two
    threads, a throwaway timing) ran at 332-403 GFLOP/s packed against 215-239 in BLAS row blocks;
    and `python bench/compare.py a76c099 104126c --modes LSTM,GRU,RNN --sizes 35,20,650,650
    100,32,128,128 100,64,512,512 100,32,256,256 50,16,64,64 --rounds 3 --repeats 5` (base/new) gave
    training 1.145-1.510 from H = 128, inference 1.326-1.446 at (35, 20, 650, 650) and 0.861-1.061
    elsewhere. The projection's packing in training raised the GRU's peak there past PyTorch's
    until Workspace.flat dropped the buffers too small for the next packing."""
    if not kernels.ENABLED or M < 2 * kernels.PRODUCT_ROWS:
        return False
    if NARROW_BLAS:
        return True
    if parts == 1:
        return False
    return M * K * N < SPLIT_WORK or (not gradient and M >= (2 if keep else 1) * K and K * N <= PACK_VALUES)


def product(a, W, parts=1, out=None, bias=None, ws=FRESH, gradient=False, keep=True):
    """a @ W (+ bias) for a (M, K) and W (K, N), into out if given: through rnnkit.gemm where
    `packs` says so (gradient: a is a weight gradient's dY.T; keep False: in inference), otherwise
    through matmul."""
    K, N = W.shape
    if packs(a.shape[0], K, N, parts, gradient, keep):
        return packed_product(a, W, parts, out, bias, ws)
    out = matmul(a, W, parts, out)
    if bias is not None:
        out += bias
    return out


def packed_product(a, W, parts, out=None, bias=None, ws=FRESH):
    """a @ W (+ bias) through rnnkit.gemm on parts threads, W packed into scratch from ws."""
    K, N = W.shape
    if out is None:
        out = workspace.empty((a.shape[0], N), np.result_type(a, W))
    shape = packed.packed_shape(1, K, N)
    buffer = ws.flat(math.prod(shape), W.dtype)
    Wk = packed.packed_in(buffer, shape)
    packed.pack[parts](W, _all_columns(N), Wk)
    kernels.packed_product[parts](a, Wk[0], out[0] if bias is None else bias, out, bias is not None,
                                  kernels.product_blocks(a.shape[0], parts))
    ws.give_back(buffer)
    return out
