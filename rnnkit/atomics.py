"""Atomic operations on an int64 array's elements, for the meeting points between the phases of a
kernel's steps (rnnkit.kernels): Numba has no atomics on the CPU, so these emit LLVM's own.

fetch_add(a, i, v) adds v to a[i] and returns the old value; load(a, i) reads a[i] (acquire);
pause() tells the core it is spinning (x86's PAUSE; nothing elsewhere). a is 1-D, i in range.
"""
from __future__ import annotations

import platform

from .jit import ENABLED

if ENABLED:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    def _pointer(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        return cgutils.get_item_pointer(context, builder, sig.args[0], array, [args[1]])

    @intrinsic
    def fetch_add(typingctx, a, i, v):
        def codegen(context, builder, sig, args):
            return builder.atomic_rmw("add", _pointer(context, builder, sig, args), args[2], "seq_cst")
        return types.int64(types.Array(types.int64, 1, "C"), types.intp, types.int64), codegen

    @intrinsic
    def load(typingctx, a, i):
        def codegen(context, builder, sig, args):
            return builder.load_atomic(_pointer(context, builder, sig, args), "acquire", 8)
        return types.int64(types.Array(types.int64, 1, "C"), types.intp), codegen

    @intrinsic
    def pause(typingctx):
        def codegen(context, builder, sig, args):
            if platform.machine() in ("x86_64", "AMD64"):
                spin_hint = ir.FunctionType(ir.VoidType(), [])
                builder.call(cgutils.get_or_insert_function(builder.module, spin_hint, "llvm.x86.sse2.pause"), [])
            return context.get_dummy_value()
        return types.none(), codegen
