"""Time-series forecasting: a recurrent model against persistence, AR and ARIMA, rolling origin.

    series = read_csv_series("data.csv", "SP500")      # or sunspots_series()
    result = train_forecast(ForecastConfig(csv="data.csv", column="SP500", out="runs/sp500"))
    print(format_tables(result["tables"], result["name"]))
    model, meta = load_forecaster("runs/sp500")
    path = forecast_levels(model, meta, series.values, horizon=12)   # the next 12 values

The series y_0..y_N-1 is turned into a stationary-ish z (transform "logdiff": z_t = log y_t -
log y_t-1, for prices; "diff": y_t - y_t-1; "level": y_t), standardised with the training
statistics. The recurrent model reads z one step at a time and predicts the next (MSE, teacher
forcing on random windows); h steps ahead it feeds its own predictions back (recursive). Levels
are rebuilt from the last observed level (logdiff: y_t * exp(sum of predicted z)).

Evaluation is by rolling origin over the test period (the last `test_fraction` of the series):
from every origin t (all data up to t observed) each model forecasts t+1..t+h; errors at horizon
1 and h are measured on the levels. The baselines see exactly the same history:
  persistence  y_t+k = y_t (the naive forecast)
  AR(p)        statsmodels AutoReg on z, p chosen by AIC on the pre-test data
  ARIMA(p,0,q) statsmodels ARIMA on z (so ARIMA(p,1,q) on the levels for "diff"), order by AIC
Every model's parameters come from the pre-test period only; the recurrent model trains on its
first 1 - valid_fraction and stops early on the rest, the AR and ARIMA fits use all of it.
"""
from __future__ import annotations

import csv
import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import checks, optim
from .. import checkpoint as ckpt_io
from ..models import ManyToMany, ModelConfig
from ..module import atomic_write
from ..plots import pyplot, save_png
from ..paths import data_path
from ..train import Trainer, TrainConfig

TRANSFORMS = ("auto", "logdiff", "diff", "level")
DATASETS = ("sp500", "sunspots")
MIN_LENGTH = 40                    # fewest values a series may have


# --- data -------------------------------------------------------------------------------------------
@dataclass
class Series:
    name: str                      # e.g. "SP500" or "sunspots"
    values: np.ndarray             # (N,) float64
    labels: list                   # (N,) dates or years, for tables and plots


def read_csv_series(path, column: str) -> Series:
    """One numeric column of a CSV file with a header row. The first column, when it is not the
    series, labels the rows (dates). A trailing run of exact zeros is dropped: the S&P 500 file marks
    months without data that way. Every error names the file, and the line where there is one."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        raise ValueError(f"csv file {str(path)!r} is not a text file") from None
    except csv.Error as e:
        raise ValueError(f"csv file {str(path)!r} is not valid CSV: {e}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise ValueError(f"csv file {str(path)!r} is empty")
    header = [h.strip() for h in rows[0]]
    if column not in header:
        raise ValueError(f"csv file {str(path)!r} has no column {column!r}; its columns are {header}")
    j = header.index(column)
    values, labels = [], []
    for line, row in enumerate(rows[1:], start=2):
        cell = row[j].strip() if j < len(row) else ""
        try:
            v = float(cell)
        except ValueError:
            raise ValueError(f"csv file {str(path)!r} line {line}: column {column!r} holds {cell!r}, "
                             "not a number") from None
        if not math.isfinite(v):
            raise ValueError(f"csv file {str(path)!r} line {line}: column {column!r} holds {cell!r}, "
                             "not a finite number")
        values.append(v)
        labels.append(row[0].strip() if j != 0 and row else str(line - 1))
    values = np.array(values, np.float64)
    while values.size and values[-1] == 0.0:
        values, labels = values[:-1], labels[:-1]
    if values.size < MIN_LENGTH:
        raise ValueError(f"csv file {str(path)!r} column {column!r} has {values.size} values; "
                         f"forecasting needs at least {MIN_LENGTH}")
    return Series(column, values, labels)


def sunspots_series() -> Series:
    """Yearly mean sunspot numbers 1700-2008, shipped with statsmodels."""
    from statsmodels.datasets import sunspots

    d = sunspots.load_pandas().data
    return Series("sunspots", d["SUNACTIVITY"].to_numpy(np.float64), [str(int(y)) for y in d["YEAR"]])


def load_series(csv_path: str | None = None, column: str | None = None, dataset: str | None = None) -> Series:
    """A user's CSV column, or a named data set ("sp500": $RNNKIT_DATA/sp500/data.csv, column SP500)."""
    if csv_path is not None:
        if dataset is not None:
            raise ValueError(f"give a csv file or a dataset, not both (got dataset={dataset!r})")
        if not column:
            raise ValueError(f"a csv file needs a column name, got column={column!r}")
        return read_csv_series(csv_path, column)
    if column is not None:
        raise ValueError(f"column={column!r} needs a csv file")
    checks.one_of("dataset", dataset or "sp500", set(DATASETS))
    if dataset == "sunspots":
        return sunspots_series()
    return read_csv_series(data_path("sp500", "data.csv"), "SP500")


# --- transforms -------------------------------------------------------------------------------------
def choose_transform(values: np.ndarray, transform: str) -> str:
    checks.one_of("transform", transform, set(TRANSFORMS))
    if transform == "auto":
        return "logdiff" if np.all(values > 0) and values.max() / values.min() > 10 else "level"
    if transform == "logdiff" and not np.all(values > 0):
        raise ValueError(f"transform 'logdiff' needs positive values, got a minimum of {values.min()}")
    return transform


def to_z(values: np.ndarray, transform: str) -> np.ndarray:
    """z aligned so that z[i] is known once level OFFSET[transform] + i is observed."""
    if transform == "logdiff":
        return np.diff(np.log(values))
    if transform == "diff":
        return np.diff(values)
    return values.astype(np.float64)


OFFSET = {"logdiff": 1, "diff": 1, "level": 0}


def to_levels(last_level: np.ndarray, z_path: np.ndarray, transform: str) -> np.ndarray:
    """Level forecasts (n, h) from the last observed levels (n,) and forecast z paths (n, h)."""
    if transform == "logdiff":
        return last_level[:, None] * np.exp(np.cumsum(z_path, axis=1))
    if transform == "diff":
        return last_level[:, None] + np.cumsum(z_path, axis=1)
    return z_path


# --- the recurrent model ----------------------------------------------------------------------------
def rnn_paths(model: ManyToMany, zs: np.ndarray, ends: np.ndarray, horizon: int, context: int) -> np.ndarray:
    """Recursive forecasts (n, horizon) in scaled z, one row per origin: row i has seen zs[:ends[i]]
    (its last `context` values, zeros before the start). Eval mode is the caller's."""
    n = len(ends)
    x = np.zeros((context, n, 1), model.dtype)                      # (T, B, 1)
    for i, e in enumerate(ends):
        window = zs[max(0, e - context):e]
        x[context - len(window):, i, 0] = window
    pred, state = model.forward(x)                                  # (T, B, 1)
    out = [pred[-1, :, 0]]
    for _ in range(horizon - 1):
        pred, state = model.forward(out[-1][None, :, None], state)
        out.append(pred[-1, :, 0])
    return np.stack(out, axis=1).astype(np.float64)


def window_batches(zs: np.ndarray, window: int, batch: int, per_epoch: int, seed: int):
    """batches(epoch): `per_epoch` batches of random windows of zs, inputs and next-step targets."""
    if len(zs) < window + 1:
        raise ValueError(f"the training part has {len(zs)} values, fewer than window + 1 = {window + 1}")

    def batches(epoch: int):
        rng = np.random.default_rng((seed, epoch))
        for _ in range(per_epoch):
            starts = rng.integers(0, len(zs) - window, batch)
            idx = starts[None, :] + np.arange(window + 1)[:, None]   # (W + 1, B)
            w = zs[idx][..., None].astype(np.float32)
            yield w[:-1], w[1:]

    return batches


# --- baselines --------------------------------------------------------------------------------------
def fit_ar(z_fit: np.ndarray, maxlag: int = 24):
    """statsmodels AutoReg with a constant, lags chosen by AIC. Returns (const, {lag: coefficient}, p)."""
    from statsmodels.tsa.ar_model import AutoReg, ar_select_order

    maxlag = max(1, min(maxlag, len(z_fit) // 5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lags = ar_select_order(z_fit, maxlag=maxlag, ic="aic", trend="c").ar_lags or []
        res = AutoReg(z_fit, lags=lags, trend="c").fit()
    params = np.asarray(res.params)
    return res, float(params[0]), dict(zip(lags, params[1:].tolist()))


def ar_paths(const: float, coefs: dict, z: np.ndarray, ends: np.ndarray, horizon: int) -> np.ndarray:
    """AR recursions (n, horizon) from each origin, history z[:ends[i]]."""
    p = max(coefs, default=0)
    hist = np.zeros((len(ends), p + horizon))
    for i, e in enumerate(ends):
        past = z[max(0, e - p):e]
        hist[i, p - len(past):p] = past
    for k in range(horizon):
        hist[:, p + k] = const + sum(c * hist[:, p + k - lag] for lag, c in coefs.items())
    return hist[:, p:]


def fit_arima(z_fit: np.ndarray, orders=((1, 0, 0), (1, 0, 1), (2, 0, 1), (2, 0, 2))):
    """statsmodels ARIMA with a constant; the order of lowest AIC among `orders`."""
    from statsmodels.tsa.arima.model import ARIMA

    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for order in orders:
            res = ARIMA(z_fit, order=order, trend="c").fit()
            if best is None or res.aic < best.aic:
                best = res
    return best


def arima_paths(res, z: np.ndarray, ends: np.ndarray, horizon: int) -> np.ndarray:
    """Forecasts (n, horizon) of the fitted ARIMA (parameters fixed) from each origin, history
    z[:ends[i]]: one Kalman filter pass over z, then from the filtered state a_t|t of each origin
    a_t+1 = c + T a_t, y_t+1 = d + Z a_t+1 (the same numbers as res.apply(z[:e]).forecast(h))."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = res.apply(z)
    ssm = full.model.ssm
    Z, T = _last(ssm["design"], 3), _last(ssm["transition"], 3)          # (1, k), (k, k)
    c, d = _last(ssm["state_intercept"], 2), _last(ssm["obs_intercept"], 2)  # (k,), (1,)
    a = np.asarray(full.filtered_state)[:, np.asarray(ends) - 1].T     # (n, k) a_t|t at each origin
    out = np.zeros((len(ends), horizon))
    for k in range(horizon):
        a = a @ T.T + c
        out[:, k] = (a @ Z.T + d)[:, 0]
    return out


def _last(matrix, time_varying_ndim: int) -> np.ndarray:
    """A state-space matrix at the last time step (time-varying ones carry time as the last axis)."""
    m = np.asarray(matrix)
    return m[..., -1] if m.ndim == time_varying_ndim else m


# --- evaluation -------------------------------------------------------------------------------------
def metrics(actual: np.ndarray, pred: np.ndarray) -> dict:
    err = pred - actual
    m = {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err)))}
    if np.all(actual > 0):
        m["mape"] = float(100 * np.mean(np.abs(err) / actual))
    return m


def rolling_origin(series_values: np.ndarray, transform: str, test_start: int, horizon: int, predictors: dict):
    """Forecast from every origin t in [test_start - 1, N - 2] (all levels up to t observed).
    predictors: name -> f(ends in z, horizon) -> z paths (n, horizon), ends[i] = number of z values
    known at origin i. Returns (origins, {name: level forecasts (n, horizon)})."""
    y = series_values
    off = OFFSET[transform]
    origins = np.arange(test_start - 1, len(y) - 1)
    ends = origins - off + 1
    paths = {"persistence": np.repeat(y[origins][:, None], horizon, axis=1)}
    for name, f in predictors.items():
        paths[name] = to_levels(y[origins], f(ends, horizon), transform)
    return origins, paths


def tables(y: np.ndarray, origins: np.ndarray, paths: dict, horizons) -> dict:
    """{h: {model: metrics}} over the origins whose target t + h lies inside the series."""
    out = {}
    for h in horizons:
        ok = origins + h < len(y)
        actual = y[origins[ok] + h]
        out[h] = {name: metrics(actual, p[ok, h - 1]) for name, p in paths.items()}
        base = out[h]["persistence"]["rmse"]
        for m in out[h].values():
            m["rmse_vs_persistence"] = m["rmse"] / base if base > 0 else float("nan")
            m["n"] = int(ok.sum())
    return out


def format_tables(tabs: dict, name: str) -> str:
    lines = []
    for h, rows in tabs.items():
        n = next(iter(rows.values()))["n"]
        lines.append(f"{name}: {h}-step-ahead forecasts, rolling origin over the test period ({n} forecasts)")
        has_mape = all("mape" in m for m in rows.values())
        lines.append(f"  {'model':<16} {'RMSE':>12} {'MAE':>12}" + (f" {'MAPE %':>8}" if has_mape else "")
                     + f" {'RMSE/persistence':>17}")
        for model, m in rows.items():
            lines.append(f"  {model:<16} {m['rmse']:>12.4g} {m['mae']:>12.4g}"
                         + (f" {m['mape']:>8.2f}" if has_mape else "") + f" {m['rmse_vs_persistence']:>17.3f}")
    return "\n".join(lines)


def plot_forecasts(path, series: Series, origins: np.ndarray, paths: dict, horizon: int, log_scale: bool) -> None:
    """Actual series over the test period against 1-step and `horizon`-step forecasts of each model."""
    plt = pyplot()

    y = series.values
    fig, axes = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for ax, h in zip(axes, (1, horizon)):
        ok = origins + h < len(y)
        t = origins[ok] + h
        ax.plot(np.arange(origins[0], len(y)), y[origins[0]:], color="black", lw=1.6, label="actual")
        for name, p in paths.items():
            ax.plot(t, p[ok, h - 1], lw=1, label=name)
        ax.set_title(f"{series.name}: forecasts {h} step{'s' if h > 1 else ''} ahead (rolling origin, test period)")
        if log_scale:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ticks = np.linspace(origins[0], len(y) - 1, 8).astype(int)
    axes[1].set_xticks(ticks, [series.labels[i] for i in ticks], fontsize=8)
    fig.tight_layout()
    save_png(fig, str(path), dpi=80)


def plot_future(path, series: Series, forecast: np.ndarray, history: int = 120) -> None:
    """The last `history` values of the series and the forecast that follows them."""
    plt = pyplot()

    y, n = series.values, len(series.values)
    start = max(0, n - history)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(np.arange(start, n), y[start:], color="black", lw=1.5, label=f"{series.name} (observed)")
    ax.plot(np.arange(n - 1, n + len(forecast)), np.r_[y[-1], forecast], "o-", ms=3, color="tab:orange",
            label=f"forecast, {len(forecast)} steps")
    ticks = np.linspace(start, n - 1, 6).astype(int)
    ax.set_xticks(ticks, [series.labels[i] for i in ticks], fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_png(fig, str(path), dpi=80)


# --- training ---------------------------------------------------------------------------------------
@dataclass
class ForecastConfig:
    out: str = "runs/forecast"        # run folder: checkpoints, curves.png, forecast.png
    csv: str | None = None            # CSV file with a header row; None: the named dataset
    column: str | None = None         # the CSV column to forecast
    dataset: str | None = None        # "sp500" ($RNNKIT_DATA/sp500/data.csv, SP500) or "sunspots"; None: sp500
    transform: str = "auto"           # "logdiff", "diff", "level"; auto: logdiff for positive series spanning 10x
    test_fraction: float = 0.2        # the last part of the series, forecast by rolling origin
    valid_fraction: float = 0.15      # the end of the pre-test part, for early stopping
    horizon: int = 12                 # the multi-step horizon of the evaluation
    cell: str = "gru"                 # "rnn", "lstm" or "gru"
    hidden: int = 32                  # recurrent units
    window: int = 48                  # training window, and the context the model reads before forecasting
    batch: int = 32                   # windows per batch
    lr: float = 3e-3                  # Adam learning rate
    weight_decay: float = 1e-4        # decoupled weight decay (AdamW)
    clip: float | None = 1.0          # clip gradients to this global norm; None: no clipping
    arima: str | None = None          # "p,q": ARIMA(p,0,q) on z; None: lowest AIC of 1,0 1,1 2,1 2,2
    max_steps: int = 2000             # stop after this many optimizer steps
    eval_every: int = 50              # steps between validations (the best one is kept)
    patience: int | None = 8          # stop after this many validations without improvement; None: never
    seed: int = 0                     # weights and windows
    progress: bool = True             # show a progress bar

    def __post_init__(self):
        checks.one_of("transform", self.transform, set(TRANSFORMS))
        for name in ("test_fraction", "valid_fraction"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
                raise ValueError(f"{name} must be a number in (0, 1), got {v!r}")
        for name in ("horizon", "hidden", "window", "batch"):
            checks.positive_int(name, getattr(self, name))
        if self.arima is not None:
            arima_orders(self.arima)


def arima_orders(text: str | None) -> tuple:
    """The ARIMA orders to try: ((p, 0, q),) from "p,q", or the default grid for None."""
    if text is None:
        return ((1, 0, 0), (1, 0, 1), (2, 0, 1), (2, 0, 2))
    try:
        p, q = (int(v) for v in text.split(","))
        if p < 0 or q < 0 or p + q == 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"arima must be 'p,q' with integers p, q >= 0, not both 0, got {text!r}") from None
    return ((p, 0, q),)


def _splits(n_z: int, off: int, cfg: ForecastConfig):
    """Level index where the test starts; z counts for training and for the pre-test part."""
    n_levels = n_z + off
    test_start = n_levels - max(cfg.horizon + 1, int(round(cfg.test_fraction * n_levels)))
    pre = test_start - off                                          # z values before the test
    train = pre - max(2, int(round(cfg.valid_fraction * pre)))
    if train < cfg.window + 1 or test_start < 2:
        raise ValueError(f"the series has {n_levels} values: too short for window {cfg.window} with "
                         f"test_fraction {cfg.test_fraction} and valid_fraction {cfg.valid_fraction}")
    return test_start, pre, train


def train_forecast(cfg: ForecastConfig, log=None) -> dict:
    """Train the recurrent model, fit the baselines, evaluate all by rolling origin over the test
    period, write forecast.png and evaluation.json in cfg.out. Returns {"name", "transform", "params",
    "arima_order", "ar_lags", "tables": {1: ..., horizon: ...}, "steps", "seconds", "png"}."""
    series = load_series(cfg.csv, cfg.column, cfg.dataset)
    transform = choose_transform(series.values, cfg.transform)
    off = OFFSET[transform]
    z = to_z(series.values, transform)
    test_start, pre, train = _splits(len(z), off, cfg)
    mean, std = float(z[:train].mean()), float(z[:train].std() or 1.0)
    zs = ((z - mean) / std).astype(np.float32)

    mc = ModelConfig(input_size=1, output_size=1, hidden=cfg.hidden, cell=cfg.cell, output="real", seed=cfg.seed)
    model = ManyToMany(mc)
    opt = optim.AdamW(model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    valid_ends = np.arange(train, pre)                    # one-step forecasts of z[train:pre]

    def evaluate(m):
        pred = rnn_paths(m, zs, valid_ends, 1, cfg.window)[:, 0]
        return float(np.mean((pred - zs[valid_ends]) ** 2))

    meta = {"task": "forecast", "series": series.name, "transform": transform, "mean": mean, "std": std,
            "window": cfg.window, "forecast": asdict(cfg)}
    tc = TrainConfig(out_dir=cfg.out, max_steps=cfg.max_steps, clip_norm=cfg.clip, log_every=25,
                     eval_every=cfg.eval_every, patience=cfg.patience, progress=cfg.progress)
    trainer = Trainer(model, opt, window_batches(zs[:train], cfg.window, cfg.batch, 20, cfg.seed),
                      evaluate=evaluate, config=tc, meta=meta, log=log)
    result = trainer.fit()
    model, _ = load_forecaster(cfg.out)

    ar_res, const, coefs = fit_ar(z[:pre])
    arima = fit_arima(z[:pre], arima_orders(cfg.arima))
    predictors = {
        f"{cfg.cell.upper()} ({cfg.hidden})": lambda ends, h: rnn_paths(model, zs, ends, h, cfg.window) * std + mean,
        f"AR({max(coefs, default=0)})": lambda ends, h: ar_paths(const, coefs, z, ends, h),
        "ARIMA({},{},{})".format(*arima.model.order): lambda ends, h: arima_paths(arima, z, ends, h),
    }
    origins, paths = rolling_origin(series.values, transform, test_start, cfg.horizon, predictors)
    tabs = tables(series.values, origins, paths, sorted({1, cfg.horizon}))
    png = str(Path(cfg.out) / "forecast.png")
    plot_forecasts(png, series, origins, paths, cfg.horizon, log_scale=transform == "logdiff")
    out = {"name": series.name, "transform": transform, "params": model.num_parameters(),
           "test_period": [series.labels[test_start], series.labels[-1]],
           "arima_order": list(arima.model.order), "ar_lags": sorted(coefs), "tables": tabs,
           "steps": result.steps, "seconds": result.seconds, "png": png}
    atomic_write(str(Path(cfg.out) / "evaluation.json"), json.dumps(out, indent=1).encode())
    return out


def load_forecaster(path, which: str = "best"):
    """(model in eval mode, config.json) from a run folder or checkpoint folder of `rnnkit train forecast`."""
    ck = ckpt_io.load_task(path, "forecast", which)
    model = ManyToMany.from_config(ck.config["model"])
    model.load_state_dict(ck.weights)
    return model.eval(), ck.config


def forecast_levels(model: ManyToMany, meta: dict, values: np.ndarray, horizon: int) -> np.ndarray:
    """The next `horizon` levels after the end of `values`, with the transform and scaling of training."""
    checks.positive_int("horizon", horizon)
    transform = meta["transform"]
    values = np.asarray(values, np.float64)
    if transform == "logdiff" and not np.all(values > 0):
        raise ValueError(f"this model forecasts log-returns and needs positive values, got a minimum of {values.min()}")
    zs = ((to_z(values, transform) - meta["mean"]) / meta["std"]).astype(np.float32)
    if len(zs) < 1:
        raise ValueError(f"forecasting needs at least 2 values, got {len(values)}")
    path = rnn_paths(model, zs, np.array([len(zs)]), horizon, meta["window"]) * meta["std"] + meta["mean"]
    return to_levels(values[-1:], path, transform)[0]
