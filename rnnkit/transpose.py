"""An 8 x 8 block of a matrix, transposed in registers: LLVM vector shuffles, which Numba does not
emit by itself (rnnkit.gemm's packing of a transposed view).

transpose8(src, j, k, dst, v): dst[k + c, v + r] = src[j + r, k + c] for r, c < 8. Both arrays
are 2-D with contiguous rows (strides[1] the itemsize), of the same float type; the block must
lie inside both: nothing is checked. Eight vector loads of a row each, three rounds of eight
two-input shuffles (pairs of rows interleaved, pairs of pairs, then halves), eight vector stores.
Without Numba, a NumPy slice copy.
"""
from __future__ import annotations

from .jit import ENABLED

# The three rounds, as (first input, second input, mask) per output, inputs indexed in the round before.
_PAIRS = [(2 * p, 2 * p + 1, mask) for p in range(4) for mask in      # rows 2p and 2p + 1 interleaved:
          ([0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15])]  # columns 0 1 4 5, then 2 3 6 7
_QUADS = [(a, a + 2, mask) for a in (0, 1, 4, 5) for mask in           # output q: rows 0-3 (q < 4) or 4-7,
          ([0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15])]  # column q % 4 low, q % 4 + 4 high
_HALVES = [(q, q + 4, [0, 1, 2, 3, 8, 9, 10, 11]) for q in range(4)] + \
          [(q, q + 4, [4, 5, 6, 7, 12, 13, 14, 15]) for q in range(4)]  # output c: column c of all eight rows


def transpose8(src, j, k, dst, v):
    dst[k:k + 8, v:v + 8] = src[j:j + 8, k:k + 8].T


if ENABLED:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    def _row_pointer(context, builder, arrty, array, i, j, vector):
        pointer = cgutils.get_item_pointer(context, builder, arrty, array, [i, j], wraparound=False)
        return builder.bitcast(pointer, vector.as_pointer())

    def _shuffle_round(builder, vectors, plan):
        return [builder.shuffle_vector(vectors[a], vectors[b], ir.Constant(ir.VectorType(ir.IntType(32), 8), mask))
                for a, b, mask in plan]

    @intrinsic
    def transpose8(typingctx, src, j, k, dst, v):
        if not (isinstance(src, types.Array) and isinstance(dst, types.Array) and src.dtype == dst.dtype
                and src.ndim == dst.ndim == 2):
            return None

        def codegen(context, builder, sig, args):
            srcty, _, _, dstty, _ = sig.args
            a = context.make_array(srcty)(context, builder, args[0])
            d = context.make_array(dstty)(context, builder, args[3])
            j, k, v = args[1], args[2], args[4]
            size = context.get_abi_sizeof(context.get_data_type(srcty.dtype))
            vector = ir.VectorType(context.get_data_type(srcty.dtype), 8)
            step = lambda base, r: builder.add(base, ir.Constant(base.type, r))  # noqa: E731
            rows = [builder.load(_row_pointer(context, builder, srcty, a, step(j, r), k, vector), align=size)
                    for r in range(8)]
            columns = _shuffle_round(builder, _shuffle_round(builder, _shuffle_round(builder, rows, _PAIRS), _QUADS),
                                     _HALVES)
            for c, column in enumerate(columns):
                builder.store(column, _row_pointer(context, builder, dstty, d, step(k, c), v, vector), align=size)
            return context.get_dummy_value()
        return types.none(src, types.intp, types.intp, dst, types.intp), codegen
