"""The `rnnkit` command. Each verb lives in its own module with a `register(verbs, train_tasks)`.

A user's mistake (UserError, ValueError, OSError) prints one line on stderr and exits 2; the CLI
parses arguments and reports, the library does the math.
"""
from __future__ import annotations

import argparse
import sys


class UserError(Exception):
    """A mistake in what the user asked for: reported in one line, without a traceback."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def build_parser() -> Parser:
    from . import demo, lm, adding, diagnose, tag, sentiment, bench, music, forecast, translate

    parser = Parser(prog="rnnkit", description="Recurrent neural networks in NumPy.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    train = verbs.add_parser("train", help="train a model for a task")
    train_tasks = train.add_subparsers(dest="task", required=True, metavar="TASK")
    for module in (demo, lm, adding, diagnose, tag, sentiment, bench, music, forecast, translate):
        module.register(verbs, train_tasks)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (UserError, ValueError, OSError) as e:
        sys.stderr.write(f"rnnkit: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("rnnkit: interrupted\n")
        return 130
    return 0
