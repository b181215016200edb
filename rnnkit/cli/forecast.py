"""`rnnkit train forecast` and `rnnkit forecast`: a recurrent forecaster against persistence, AR and ARIMA."""
from __future__ import annotations

from .options import add_config_options, config_from_args


def register(verbs, train_tasks):
    from ..tasks.forecast import ForecastConfig

    p = train_tasks.add_parser(
        "forecast", help="train a recurrent forecaster on a time series and compare it with AR/ARIMA baselines",
        description="Train a recurrent model on one column of a CSV file (--csv FILE --column NAME) or on a "
                    "named series (--dataset sp500|sunspots; default sp500 from $RNNKIT_DATA). The last "
                    "--test-fraction of the series is forecast by rolling origin, 1 and --horizon steps ahead, "
                    "by the model, persistence, AR(p) and ARIMA; the tables are printed and forecast.png is "
                    "written in --out.")
    add_config_options(p, ForecastConfig, required={"out"})
    p.set_defaults(func=run_train)

    p = verbs.add_parser("forecast", help="forecast the next values of a series with a trained model",
                         description="Forecast the values that follow the end of a series with the model in DIR. "
                                     "Without --csv/--dataset, the series the model was trained on.")
    p.add_argument("dir", metavar="DIR", help="run folder (or checkpoint folder) of `rnnkit train forecast`")
    p.add_argument("--csv", default=None, help="CSV file with a header row")
    p.add_argument("--column", default=None, help="the column to forecast (with --csv)")
    p.add_argument("--dataset", default=None, choices=("sp500", "sunspots"), help="a named series instead of --csv")
    p.add_argument("--horizon", type=int, default=12, help="steps to forecast (default 12)")
    p.add_argument("--png", default=None, metavar="FILE.png", help="also draw the recent series and the forecast")
    p.set_defaults(func=run_forecast)


def run_train(args):
    from ..tasks.forecast import ForecastConfig, format_tables, train_forecast

    cfg = config_from_args(ForecastConfig, args)
    if cfg.max_steps < 1:
        raise ValueError(f"--max-steps must be a positive integer, got {cfg.max_steps}")
    r = train_forecast(cfg)
    print(f"{r['name']} ({r['transform']}), test period {r['test_period'][0]} to {r['test_period'][1]}; "
          f"model {r['params']:,} parameters, {r['steps']} steps in {r['seconds']:.1f}s")
    print(format_tables(r["tables"], r["name"]))
    print(f"picture: {r['png']}")


def run_forecast(args):
    from ..tasks.forecast import forecast_levels, load_forecaster, load_series, plot_future

    if args.horizon < 1:
        raise ValueError(f"--horizon must be a positive integer, got {args.horizon}")
    model, meta = load_forecaster(args.dir)
    if args.csv is None and args.dataset is None and args.column is None:
        trained = meta["forecast"]
        series = load_series(trained["csv"], trained["column"], trained["dataset"])
    else:
        series = load_series(args.csv, args.column, args.dataset)
    values = forecast_levels(model, meta, series.values, args.horizon)
    print(f"{series.name}: last value {series.values[-1]:.6g} at {series.labels[-1]}; "
          f"forecast ({meta['transform']} model):")
    for k, v in enumerate(values, start=1):
        print(f"  +{k:<3d} {v:.6g}")
    if args.png:
        plot_future(args.png, series, values)
        print(f"picture: {args.png}")
