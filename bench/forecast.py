"""Time-series forecasting: a GRU against persistence, AR(p) and ARIMA on the monthly S&P 500 and the
yearly sunspot numbers, by rolling origin over the last 20% of each series, 1 and 12 steps ahead.

Each series is trained and evaluated with the defaults of `rnnkit train forecast`, so the tables are
reproduced by

    rnnkit train forecast --dataset sp500 --out runs/forecast-sp500
    rnnkit train forecast --dataset sunspots --out runs/forecast-sunspots

The tables are printed whatever they say: on monthly S&P 500 log-returns there is little to predict,
and the comparison that matters is against persistence and the linear models on the same origins.

Usage: python bench/forecast.py [--datasets sp500 sunspots] [--out runs/bench-forecast] [--max-steps N]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from rnnkit.tasks.forecast import DATASETS, ForecastConfig, format_tables, train_forecast


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--out", default="runs/bench-forecast", help="parent folder of the run folders")
    ap.add_argument("--max-steps", type=int, default=ForecastConfig.max_steps)
    args = ap.parse_args()
    for name in args.datasets:
        out = str(Path(args.out) / name)
        print(f"$ rnnkit train forecast --dataset {name} --out {out} --max-steps {args.max_steps}", flush=True)
        start = time.perf_counter()
        r = train_forecast(ForecastConfig(dataset=name, out=out, max_steps=args.max_steps, progress=False),
                           log=lambda s: None)
        print(f"{r['name']} ({r['transform']}), test period {r['test_period'][0]} to {r['test_period'][1]}; "
              f"GRU {r['params']:,} parameters, {r['steps']} steps; {time.perf_counter() - start:.0f} s in all")
        print(format_tables(r["tables"], r["name"]))
        print(f"picture: {r['png']}\n", flush=True)


if __name__ == "__main__":
    main()
