"""bench/speed.py's summary lines (the memory target, from the unrounded figures, and each ratio below 1.0) and
its memory probe's release of the C heap's free memory."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SPEED = Path(__file__).resolve().parents[1] / "bench" / "speed.py"


def load_speed():
    spec = importlib.util.spec_from_file_location("bench_speed", SPEED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(mode, cfg, ours, theirs):
    return dict(mode=mode, cfg=cfg, ours=dict(mem=ours), theirs=dict(mem=theirs))


def test_memory_lines_count_ties_as_met_and_name_each_excess_to_two_decimals():
    rows = [row("RNN", (50, 16, 64, 64), 0.6, 1.3),
            row("GRU", (35, 20, 650, 650), 19.29, 19.29),          # a tie: at most torch's
            row("GRU", (35, 20, 650, 650), 19.29, 19.26),          # shows as 19.3 against 19.3 in the table
            row("LSTM", (200, 1, 64, 128), 1.6, 2.9)]
    lines = load_speed().memory_lines(rows)
    assert lines == ["training-step memory: rnnkit's at most torch's in 3 of 4 configurations",
                     "memory above torch: GRU (35, 20, 650, 650) rnnkit 19.29 MB, torch 19.26 MB"]


def test_below_lines_name_each_ratio_under_one_with_its_rounds():
    rows = [dict(mode="LSTM", cfg=(100, 32, 256, 256), train=1.2, infer=0.98,
                 gf=dict(ours=(180.0, 190.0), torch=(150.0, 196.0)),
                 rounds=dict(train=[1.1, 1.2, 1.3], infer=[0.95, 1.04, 0.98])),
            dict(mode="GRU", cfg=(50, 16, 64, 64), train=1.0, infer=3.0,            # 1.0 is not below
                 gf=dict(ours=(50.0, 60.0), torch=(10.0, 20.0)),
                 rounds=dict(train=[0.9, 1.0, 1.1], infer=[3.0, 3.0, 3.0]))]
    lines = load_speed().below_lines(rows, ceiling=200.0, peak=400.0)
    assert lines == ["below 1.0: LSTM (100, 32, 256, 256) inference 0.98: rnnkit at 95% (48%) of the ceiling "
                     "(the FMA peak), torch at 98% (49%); the rounds' ratios 0.95, 1.04, 0.98"]


def test_release_free_heap_hands_freed_chunks_back_so_a_later_peak_counts_them():
    # In a fresh process: 64 MB in chunks below glibc's mmap threshold, so they come from the heap,
    # freed but for one allocated after them that keeps the heap's top from being trimmed on free.
    script = f"""
import importlib.util, json, numpy as np
spec = importlib.util.spec_from_file_location("bench_speed", {str(SPEED)!r})
speed = importlib.util.module_from_spec(spec); spec.loader.exec_module(speed)
chunks = [np.ones(12 * 1024, np.float64) for _ in range(683)]
pin = np.ones(12 * 1024, np.float64)
del chunks
before = speed.resident_mb("VmRSS")
speed.release_free_heap()
print(json.dumps(dict(before=before, after=speed.resident_mb("VmRSS"), pin=float(pin.sum()))))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    rss = json.loads(done.stdout)
    assert rss["before"] - rss["after"] > 48, rss
