"""bench/fma_peak.py: the register-only multiply-add loop that times a core's peak."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import fma_peak  # noqa: E402


@pytest.mark.parametrize("passes", [0, 1, 3, 10])
def test_loop_makes_every_pass_on_every_accumulator(passes):
    # Each accumulator starts at 1 and becomes a * 0.5 + 0.25 at every pass: after n passes
    # 0.5 + 0.5 ** (n + 1) (exact in float32 for small n). The loop runs at least once, as compiled.
    run, _engine = fma_peak.compiled_loop(8, 5)
    n = max(passes, 1)
    assert run(passes) == pytest.approx(5 * (0.5 + 0.5 ** (n + 1)), rel=1e-6)


def test_bad_rounds_is_one_line_and_exit_code():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "fma_peak.py"), "--rounds", "0"],
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert done.stderr.strip() == "--rounds must be a positive integer, got 0"
