"""A software prefetch for Numba code, which has none: prefetch(a, i) asks the core to bring the
cache line that holds a[i] into L2 (LLVM's llvm.prefetch, read, locality 1: x86's PREFETCHT2). It
never faults and changes no value; without Numba it does nothing. a is 1-D and contiguous.
"""
from __future__ import annotations

from .jit import ENABLED


def prefetch(a, i):
    pass


if ENABLED:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def prefetch(typingctx, a, i):  # noqa: F811
        def codegen(context, builder, sig, args):
            array = context.make_array(sig.args[0])(context, builder, args[0])
            pointer = cgutils.get_item_pointer(context, builder, sig.args[0], array, [args[1]], wraparound=False)
            i32 = ir.IntType(32)
            hint = ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32])
            function = cgutils.get_or_insert_function(builder.module, hint, "llvm.prefetch.p0")
            builder.call(function, [pointer, ir.Constant(i32, 0), ir.Constant(i32, 1), ir.Constant(i32, 1)])
            return context.get_dummy_value()
        return types.none(a, types.intp), codegen
