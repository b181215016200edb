"""rnnkit has NumPy's OpenBLAS put its idle threads to sleep at once: no thread of it spins on after
a product, holding a core that the threaded recurrence needs (rnnkit.blas.sleep_when_idle)."""
import os
import platform
import subprocess
import sys

import pytest

from rnnkit import blas, kernels

pytestmark = pytest.mark.skipif(not kernels.ENABLED or blas.thread_setter("numpy") is None,
                                reason="needs Numba and the OpenBLAS that NumPy ships")

IDLE_CPU = """
import time, numpy as np
np.matmul(np.ones((64, 64), np.float32), np.ones((64, 64), np.float32))   # OpenBLAS started
{extra}
a, b = np.ones((2048, 2048), np.float32), np.ones((2048, 2048), np.float32)
np.matmul(a, b)                                                          # a product on all threads
c0 = time.process_time()
time.sleep(0.3)
print(time.process_time() - c0)                                          # CPU seconds while idle
"""


def idle_cpu(extra):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    done = subprocess.run([sys.executable, "-c", IDLE_CPU.format(extra=extra)], capture_output=True, text=True,
                          env=env, check=True)
    return float(done.stdout)


def test_no_openblas_thread_spins_after_a_product_once_rnnkit_is_imported():
    spun = idle_cpu("")
    if spun < 0.03:
        pytest.skip(f"this OpenBLAS did not spin after a product ({spun:.3f} s of CPU): nothing to stop")
    assert idle_cpu("import rnnkit") < 0.01


def test_a_timeout_the_user_set_is_left_alone(monkeypatch):
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "30")
    assert blas.sleep_when_idle("numpy") is False
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == "30"


def test_together_runs_the_calls_on_two_threads_and_waits_for_each():
    """products.together: results in order, each call on a thread of its own, NumPy's BLAS on one
    thread while they run and as it was after; a call that raises does so once the others are done."""
    import threading
    import time

    from rnnkit import products
    seen = []

    def call(value, delay=0.0):
        time.sleep(delay)
        seen.append((threading.get_ident(), products._set_threads(1) if products._set_threads else 1))
        return value
    before = products._set_threads(2) if products._set_threads else None
    assert products.together([lambda: call("a"), lambda: call("b", 0.05)]) == ["a", "b"]
    assert len({ident for ident, _ in seen}) == 2                        # two threads
    assert all(threads == 1 for _, threads in seen)                     # BLAS on one thread meanwhile
    if before is not None:
        assert products._set_threads(before) == 2                       # and as it was after

    def fails():
        raise RuntimeError("first")
    seen.clear()
    with pytest.raises(RuntimeError, match="first"):
        products.together([fails, lambda: call("late", 0.1)])
    assert len(seen) == 1                                               # the other call had finished


@pytest.mark.parametrize("core", ["Haswell", "SkylakeX"])
def test_numpys_blas_is_narrower_where_its_kernels_take_256_bits_and_rnnkits_512(core):
    """OpenBLAS runs the kernels that OPENBLAS_CORETYPE names (where the CPU has what they need):
    rnnkit.products.NARROW_BLAS where those take 256-bit vectors and rnnkit.gemm's tiles 512."""
    env = dict(os.environ, OPENBLAS_CORETYPE=core)
    code = "from rnnkit import blas, gemm, products; print(blas.core_name('numpy'), gemm.AVX512, products.NARROW_BLAS)"
    name, avx512, narrow = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                          check=True).stdout.split()
    if core == "Haswell" and platform.machine() == "x86_64":
        assert name == "Haswell"
    assert narrow == str(name not in blas.WIDE_CORES and avx512 == "True")
