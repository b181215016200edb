"""`rnnkit train adding`: the adding problem, a test of memory across T steps (options: AddingConfig's fields)."""
from __future__ import annotations

from .options import add_config_options, config_from_args


def register(verbs, train_tasks):
    from ..adding import AddingConfig

    p = train_tasks.add_parser("adding", help="the adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015)")
    add_config_options(p, AddingConfig)
    p.add_argument("--save", metavar="FILE", default=None,
                   help="write the trained model (safetensors) for `rnnkit diagnose --model FILE`")
    p.set_defaults(func=run)


def run(args):
    from ..adding import AddingConfig, build_model, train

    cfg = config_from_args(AddingConfig, args)
    model = build_model(cfg)
    r = train(cfg, model=model)
    verdict = (f"reached test MSE < {cfg.target:g} at step {r.solved_step}" if r.solved_step is not None
               else f"did not reach test MSE < {cfg.target:g}")
    print(f"{r.cell}: test MSE {r.test_mse:.4f} (best {r.best_mse:.4f}, predicting 1: {r.baseline_mse:.4f}) after "
          f"{r.steps} steps, {r.seconds:.0f} s; {verdict}")
    if r.diverged:
        print(f"stopped early: {r.diverged}")
    if args.save:
        model.save(args.save)
        print(f"saved {args.save}")
