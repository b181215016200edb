"""bench/compare.py's --in-process worker: two copies of rnnkit under their own names, timed in turns in one process."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pair_worker_times_each_copy_apart(tmp_path):
    # Two copies of this checkout's rnnkit; the "new" one's LSTM sleeps 20 ms per forward, so its
    # times must come out that much longer if, and only if, each copy is imported and timed as itself.
    for name in ("base", "new"):
        shutil.copytree(ROOT / "rnnkit", tmp_path / f"rnnkit_{name}", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "rnnkit_new" / "__init__.py", "a") as f:
        f.write("\nimport time as _time\n_forward = LSTM.forward\n"
                "def _slow(self, *args, **kwargs):\n    _time.sleep(0.02)\n    return _forward(self, *args, **kwargs)\n"
                "LSTM.forward = _slow\n")
    env = dict(os.environ, RNNKIT_NUMBA="0")                  # the NumPy path: nothing to compile
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "compare.py"), "--pair-worker", str(tmp_path),
                           "LSTM", "3", "2", "3", "4", "3", "1"], env=env, capture_output=True, text=True, check=True)
    times = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(times) == {"base", "new"}
    for key in ("train", "infer"):
        base, new = times["base"][key], times["new"][key]
        assert len(base) == len(new) == 3
        assert all(n - b > 0.015 for b, n in zip(base, new)), (key, base, new)
