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
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np


class Workspace:
    def __init__(self, shapes: int = 16):
        self.shapes = shapes
        self._free = OrderedDict()          # (shape, dtype) -> free arrays, least recently used first

    def empty(self, shape, dtype):
        """An uninitialized array: a free one of this shape and dtype, else a new one."""
        key = (tuple(shape), np.dtype(dtype))
        stack = self._free.get(key)
        if stack:
            self._free.move_to_end(key)
            return stack.pop()
        return np.empty(shape, dtype)

    def flat(self, size, dtype):
        """A 1-D array of at least size elements: the smallest free one that is large enough, else a
        new one of size. The caller uses its first size elements and gives back the whole."""
        dtype = np.dtype(dtype)
        fits = [key for key, stack in self._free.items()
                if stack and len(key[0]) == 1 and key[1] == dtype and key[0][0] >= size]
        if not fits:
            return np.empty(size, dtype)
        key = min(fits, key=lambda key: key[0][0])
        self._free.move_to_end(key)
        return self._free[key].pop()

    def give_back(self, *arrays):
        """These arrays are no longer used: later requests may hand them out again (None is skipped)."""
        for a in arrays:
            if a is not None:
                key = (a.shape, a.dtype)
                self._free.setdefault(key, []).append(a)
                self._free.move_to_end(key)
        while len(self._free) > self.shapes:
            self._free.popitem(last=False)


class Fresh:
    """The Workspace interface without reuse: every request is a new array."""

    @staticmethod
    def empty(shape, dtype):
        return np.empty(shape, dtype)

    @staticmethod
    def flat(size, dtype):
        return np.empty(size, dtype)

    @staticmethod
    def give_back(*arrays):
        pass


FRESH = Fresh()
