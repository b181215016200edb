"""The cores' float32 multiply-add peak: what no product, rnnkit's or a BLAS's, can pass.

A loop compiled by LLVM for this CPU (Numba's compiler) keeps ACCUMULATORS vectors of float32
in registers and updates each by a fused multiply-add at every pass, a = a * 0.5 + 0.25, with no
memory access: the core's vector FMA throughput, 2 flops a lane. The vectors are the widest the
host has (512 bits with AVX-512, else 256). It runs on one core alone, then on every core at
once, one process each (cores may slow down when all of them work). Each figure is the best of
--rounds timings of --passes passes.

    python bench/fma_peak.py [--rounds 7] [--passes 20000000]
"""
from __future__ import annotations

import argparse
import ctypes
import multiprocessing
import os
import time

ACCUMULATORS = 12     # independent chains: enough to cover an FMA's latency on two FMA units


def lanes():
    from llvmlite import binding
    return 16 if binding.get_host_cpu_features().get("avx512f") else 8


def loop_ir(width, accumulators):
    """LLVM IR of `float run(i64 n)`: n passes of the accumulators' multiply-adds."""
    vec = f"<{width} x float>"

    def splat(value):
        return "<" + ", ".join([f"float {value}"] * width) + ">"

    lines = [f"declare {vec} @llvm.fmuladd.v{width}f32({vec}, {vec}, {vec})",
             "define float @run(i64 %n) {", "entry:", "  br label %loop", "loop:",
             "  %i = phi i64 [0, %entry], [%i1, %loop]"]
    lines += [f"  %a{j} = phi {vec} [{splat('1.0')}, %entry], [%b{j}, %loop]" for j in range(accumulators)]
    lines += [f"  %b{j} = call {vec} @llvm.fmuladd.v{width}f32({vec} %a{j}, {vec} {splat('0.5')}, {vec} "
              f"{splat('0.25')})" for j in range(accumulators)]
    lines += ["  %i1 = add i64 %i, 1", "  %more = icmp slt i64 %i1, %n",
              "  br i1 %more, label %loop, label %exit", "exit:"]
    total = "%b0"
    for j in range(1, accumulators):                  # every chain reaches the result, so none is dropped
        lines.append(f"  %s{j} = fadd {vec} {total}, %b{j}")
        total = f"%s{j}"
    lines += [f"  %r = extractelement {vec} {total}, i32 0", "  ret float %r", "}"]
    return "\n".join(lines)


def compiled_loop(width, accumulators=ACCUMULATORS):
    """loop_ir compiled for the host CPU: run(n) makes n passes and returns the sum of the
    accumulators' first lanes. The engine comes along, as run lives only as long as it."""
    from llvmlite import binding
    binding.initialize_native_target()
    binding.initialize_native_asmprinter()
    module = binding.parse_assembly(loop_ir(width, accumulators))
    module.verify()
    machine = binding.Target.from_default_triple().create_target_machine(
        cpu=binding.get_host_cpu_name(), features=binding.get_host_cpu_features().flatten(), opt=3)
    engine = binding.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    return ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_int64)(engine.get_function_address("run")), engine


def core_peak(rounds=7, passes=20_000_000):
    """GFLOP/s of the register-only FMA loop on the calling process's core: the best of rounds."""
    width = lanes()
    run, _engine = compiled_loop(width)
    run(1000)
    best = min(_timed(run, passes) for _ in range(rounds))
    return passes * ACCUMULATORS * width * 2 / best / 1e9


def _timed(run, passes):
    t0 = time.perf_counter()
    run(passes)
    return time.perf_counter() - t0


def cores_peak(rounds=7, passes=20_000_000):
    """core_peak on every core at once, one fresh process each: their GFLOP/s."""
    cores = os.cpu_count() or 1
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        return pool.starmap(core_peak, [(rounds, passes)] * cores)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7, help="timings per core; the best counts (default 7)")
    p.add_argument("--passes", type=int, default=20_000_000, help="passes of the loop per timing")
    args = p.parse_args(argv)
    for name in ("rounds", "passes"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be a positive integer, got {getattr(args, name)}")
    from llvmlite import binding
    print(f"{binding.get_host_cpu_name()}, {lanes() * 32}-bit vectors, {ACCUMULATORS} accumulators, "
          f"float32 GFLOP/s (best of {args.rounds})")
    print(f"one core alone: {core_peak(args.rounds, args.passes):.1f}")
    each = cores_peak(args.rounds, args.passes)
    print(f"{len(each)} cores at once: {', '.join(f'{g:.1f}' for g in each)}; together {sum(each):.1f}")
    options = "" if (args.rounds, args.passes) == (7, 20_000_000) else f" --rounds {args.rounds} --passes {args.passes}"
    print("reproduce: python bench/fma_peak.py" + options)


if __name__ == "__main__":
    main()
