"""`rnnkit train music` and `rnnkit sample-music`: polyphonic music on piano rolls (JSB Chorales)."""
from __future__ import annotations

from .options import add_config_options, config_from_args


def register(verbs, train_tasks):
    from ..tasks.music import MusicConfig

    p = train_tasks.add_parser(
        "music", help="train a piano-roll model on polyphonic music (default: JSB Chorales)",
        description="Train a next-step piano-roll model (88 sigmoid outputs) on a JSON file of pieces with "
                    "train/valid[/test] keys, each time step a list of MIDI notes in [21, 108]. The defaults "
                    "follow Chung et al. (2014): about 20k parameters, RMSprop, gradient clipping. Prints the "
                    "test NLL per time step of the checkpoint with the best validation NLL.")
    add_config_options(p, MusicConfig, required={"out"})
    p.set_defaults(func=run_train)

    p = verbs.add_parser("sample-music", help="sample a new piece from a trained music model to a MIDI file",
                         description="Sample a piece from the music model in DIR; writes FILE.mid and a "
                                     "piano-roll picture beside it (FILE.png).")
    p.add_argument("dir", metavar="DIR", help="run folder (or checkpoint folder) of `rnnkit train music`")
    p.add_argument("--steps", type=int, default=64, help="time steps (quarter notes) to sample (default 64)")
    p.add_argument("--out", required=True, metavar="FILE.mid", help="MIDI file to write")
    p.add_argument("--png", default=None, metavar="FILE.png", help="piano-roll picture (default: FILE.png)")
    p.add_argument("--bpm", type=float, default=90.0, help="tempo in quarter notes per minute (default 90)")
    p.add_argument("--seed", type=int, default=None, help="random seed: the same seed gives the same piece")
    p.set_defaults(func=run_sample)


def run_train(args):
    from ..tasks.music import MusicConfig, train_music

    cfg = config_from_args(MusicConfig, args)
    if cfg.max_steps < 1:
        raise ValueError(f"--max-steps must be a positive integer, got {cfg.max_steps}")
    r = train_music(cfg)
    test = "no test split" if r["test_nll"] is None else f"test NLL {r['test_nll']:.4f} nats/step"
    print(f"{r['cell']} ({r['hidden']} units, {r['params']:,} parameters): {r['steps']} steps ({r['stopped']}) "
          f"in {r['seconds']:.1f}s; validation NLL {r['valid_nll']:.4f}, {test}")
    print(f"checkpoint: {r['checkpoint']}")


def run_sample(args):
    from pathlib import Path

    from ..tasks.music import load_music, plot_roll, sample_roll, write_midi

    if args.steps < 1:
        raise ValueError(f"--steps must be a positive integer, got {args.steps}")
    if not args.bpm > 0:
        raise ValueError(f"--bpm must be positive, got {args.bpm}")
    model, _ = load_music(args.dir)
    roll = sample_roll(model, args.steps, args.seed)
    write_midi(roll, args.out, bpm=args.bpm)
    png = args.png or str(Path(args.out).with_suffix(".png"))
    plot_roll(roll, png, title=f"sampled from {args.dir} ({args.steps} steps)")
    print(f"wrote {args.out} ({args.steps} steps, {int(roll.sum())} notes sounding in all) and {png}")
