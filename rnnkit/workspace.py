"""Scratch arrays that a layer reuses from one training step to the next.

A training step of a recurrent layer needs the same buffers every time: the input projections,
the states and gates its backward reads, the packed weights, the weight-gradient products. Memory
fresh from the system costs a page fault at the first touch of each 4 KiB page (about 2 us each on
a 2-core virtual machine: several milliseconds a step for an LSTM of 128 units over 100 steps of
32 rows). A Workspace hands such arrays out (`empty`) and takes them back when the step is done
with them (`give_back`), so a loop over same-shaped batches touches fresh memory only once.

Only arrays that never reach the caller are given back. Free arrays are kept for the `shapes`
most recently used shapes; when shapes change (a new batch size or sequence length) the older
ones are dropped, so a workspace holds little more than one step's worth.

Packed weights, whose sizes differ from one product to the next (the forward's [W_ih, W_hh],
the backward's W_hh, each large product's W), come from `flat`: any free 1-D buffer large
enough, so that one step's packings, one after another, share a buffer instead of holding one each.

Every array here starts on a cache line (`empty`): NumPy's large arrays start 16 bytes past one,
so that each 64-byte vector load of a packed panel's row, rnnkit.gemm's every read of W, and the
gate loops' loads and stores would span two cache lines. On one core of an Intel Xeon (LLVM:
emeraldrapids), rnnkit.gemm with W packed 16 bytes past a cache line took 1.03-1.12 times as long
as with W on one, at (B, K, N) = (8, 256, 256) to (64, 512, 2048), in each of five throwaway
timings (15 rounds in turns, medians of the rounds' ratios). In the layers the gain is within the
machine's noise: a throwaway A/B in one process (15 rounds in turns), time unaligned over aligned,
training and inference: LSTM (T, B, I, H) = (100, 64, 512, 512) 1.041 and 1.062, (100, 32, 256,
256) 1.033 and 0.974, (35, 20, 650, 650) 0.977 and 0.998; RNN (100, 64, 512, 512) 1.013 and 1.017;
GRU (100, 64, 512, 512) 1.004 and 1.034.
"""
from __future__ import annotations

import math
import weakref
from collections import OrderedDict

import numpy as np

ALIGN = 64      # bytes: a cache line, and one AVX-512 vector


def empty(shape, dtype):
    """np.empty(shape, dtype) whose data starts at a multiple of ALIGN bytes."""
    dtype = np.dtype(dtype)
    shape = tuple(shape) if np.iterable(shape) else (int(shape),)
    nbytes = math.prod(shape) * dtype.itemsize
    memory = np.empty(nbytes + ALIGN, np.uint8)
    start = -memory.ctypes.data % ALIGN
    return memory[start:start + nbytes].view(dtype).reshape(shape)


class Workspace:
    def __init__(self, shapes: int = 16):
        self.shapes = shapes
        self._free = OrderedDict()          # (shape, dtype) -> free arrays, least recently used first
        self._made = weakref.WeakValueDictionary()      # id -> each array made here, while it lives

    def _new(self, shape, dtype):
        a = empty(shape, dtype)
        self._made[id(a)] = a
        return a

    def empty(self, shape, dtype):
        """An uninitialized array: a free one of this shape and dtype, else a new one."""
        key = (tuple(shape), np.dtype(dtype))
        stack = self._free.get(key)
        if stack:
            self._free.move_to_end(key)
            return stack.pop()
        return self._new(shape, dtype)

    def flat(self, size, dtype):
        """A 1-D array of at least size elements: the smallest free one that is large enough, else a
        new one of size, and the free ones of this dtype are dropped (any later request that they
        fit, the new one fits too), so that packings one after another hold one buffer, not one of
        each size. The caller uses its first size elements and gives back the whole. Where a
        training step's input projection packed W_ih and the recurrence then [W_ih, W_hh] (larger),
        the first buffer stayed on beside the second: the first step's peak at GRU (T, B, I, H) =
        (35, 20, 650, 650) was 18.8 MB with it kept, 13.9 MB with it dropped (bench/speed.py's
        worker, a throwaway run of each), and later steps make no new buffer either way."""
        dtype = np.dtype(dtype)
        flats = [key for key, stack in self._free.items() if stack and len(key[0]) == 1 and key[1] == dtype]
        fits = [key for key in flats if key[0][0] >= size]
        if not fits:
            for key in flats:                          # too small for this one, and so for the next
                del self._free[key]
            return self._new(size, dtype)
        key = min(fits, key=lambda key: key[0][0])
        self._free.move_to_end(key)
        return self._free[key].pop()

    def give_back(self, *arrays):
        """These arrays are no longer used: later requests may hand them out again. None, and any array
        not made here (a view of a layer's output, say), is skipped."""
        for a in arrays:
            if a is not None and self._made.get(id(a)) is a:
                key = (a.shape, a.dtype)
                self._free.setdefault(key, []).append(a)
                self._free.move_to_end(key)
        while len(self._free) > self.shapes:
            self._free.popitem(last=False)


class Fresh:
    """The Workspace interface without reuse: every request is a new array."""

    @staticmethod
    def empty(shape, dtype):
        return empty(shape, dtype)

    @staticmethod
    def flat(size, dtype):
        return empty(size, dtype)

    @staticmethod
    def give_back(*arrays):
        pass


FRESH = Fresh()
