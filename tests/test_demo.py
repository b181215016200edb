"""The README's main job runs, learns, and reports mistakes in one line."""
import numpy as np

from rnnkit.cli import main
from rnnkit.demo import DemoConfig, run


def test_demo_learns_quickly():
    lines = []
    loss = run(DemoConfig(hidden=32, steps=60, batch=16, unroll=24, lr=1e-2), log=lines.append)
    assert loss < 0.8 * np.log(45)       # well below uniform guessing over the 45 characters
    assert lines[-1].startswith("after training:\nBeautiful")


def test_demo_bad_steps_is_one_line(capsys):
    assert main(["demo", "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "rnnkit: error: --steps must be a positive integer, got 0\n"


def test_unknown_option_is_one_line(capsys):
    try:
        main(["demo", "--frobnicate"])
    except SystemExit as e:
        assert e.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized arguments: --frobnicate" in err
