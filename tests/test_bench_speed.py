"""bench/speed.py's summary of the memory target, from the unrounded figures."""
import importlib.util
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
