"""Software prefetches for Numba code, which has none: prefetch(a, i) asks the core to bring the
cache line that holds a[i] into L2 (LLVM's llvm.prefetch, read, locality 1: x86's PREFETCHT2),
prefetch_l1(a, i) into L1 as well (locality 3: PREFETCHT0). i is an index, or a tuple of them for
an array of more dimensions; it is not checked against the bounds, nor wrapped round where
negative. A prefetch never faults and changes no value; without Numba it does nothing.
"""
from __future__ import annotations

from .jit import ENABLED


def prefetch(a, i):
    pass


def prefetch_l1(a, i):
    pass


if ENABLED:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    def _hint(locality):
        """An intrinsic that prefetches the line of a[i] for reading, with LLVM's locality (0-3)."""
        @intrinsic
        def hint(typingctx, a, i):
            def codegen(context, builder, sig, args):
                array = context.make_array(sig.args[0])(context, builder, args[0])
                indices = (cgutils.unpack_tuple(builder, args[1]) if isinstance(sig.args[1], types.BaseTuple)
                           else [args[1]])
                pointer = cgutils.get_item_pointer(context, builder, sig.args[0], array, indices, wraparound=False)
                i32 = ir.IntType(32)
                call = ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32])
                function = cgutils.get_or_insert_function(builder.module, call, "llvm.prefetch.p0")
                builder.call(function, [pointer, ir.Constant(i32, 0), ir.Constant(i32, locality), ir.Constant(i32, 1)])
                return context.get_dummy_value()
            return types.none(a, i), codegen
        return hint

    prefetch = _hint(1)         # noqa: F811
    prefetch_l1 = _hint(3)      # noqa: F811
