"""Forecasting: CSV checks, transforms, the baselines' rolling forecasts against statsmodels', the
recurrent forecaster's recursion, and train -> forecast by CLI on a small CSV."""
import warnings

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.models import ManyToMany, ModelConfig
from rnnkit.tasks.forecast import (arima_paths, ar_paths, fit_ar, read_csv_series, rnn_paths, rolling_origin,
                                   tables, to_levels, to_z)


def write_csv(path, n=120, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    v = 100 + 20 * np.sin(2 * np.pi * t / 11) + rng.normal(0, 2, n)
    rows = ["Date,Value,Other"] + [f"{2000 + i // 12}-{i % 12 + 1:02d}-01,{x:.3f},1.0" for i, x in enumerate(v)]
    path.write_text("\n".join(rows) + "\n")
    return v


@pytest.fixture
def series_csv(tmp_path):
    path = tmp_path / "series.csv"
    write_csv(path)
    return path


def test_read_csv_series_and_trailing_zeros(tmp_path):
    path = tmp_path / "s.csv"
    v = write_csv(path, n=50)
    path.write_text(path.read_text() + "2010-01-01,0.0,2.0\n2010-02-01,0.0,2.0\n")   # months without data
    s = read_csv_series(path, "Value")
    np.testing.assert_allclose(s.values, np.round(v, 3))
    assert s.labels[0] == "2000-01-01" and len(s.labels) == 50


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("Date,Value\n", "has 0 values"),
    ("Date,Price\n2000-01-01,1\n", "has no column 'Value'; its columns are \\['Date', 'Price'\\]"),
    ("Date,Value\n2000-01-01,1\n2000-02-01,abc\n", "line 3: column 'Value' holds 'abc', not a number"),
    ("Date,Value\n2000-01-01,1\n2000-02-01\n", "line 3: column 'Value' holds '', not a number"),
    ("Date,Value\n2000-01-01,nan\n", "not a finite number"),
    ("Date,Value\n" + "2000-01-01,1\n" * 10, "has 10 values; forecasting needs at least 40"),
])
def test_bad_csv_files_fail_in_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_csv_series(path, "Value")
    assert main(["train", "forecast", "--csv", str(path), "--column", "Value", "--out", str(tmp_path / "r"),
                 "--max-steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rnnkit: error: csv file")


def test_missing_file_and_missing_column_option_are_one_line(tmp_path, capsys, series_csv):
    assert main(["train", "forecast", "--csv", str(tmp_path / "no.csv"), "--column", "V", "--out", "x"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["train", "forecast", "--csv", str(series_csv), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == "rnnkit: error: a csv file needs a column name, got column=None\n"


@pytest.mark.parametrize("transform", ["logdiff", "diff", "level"])
def test_levels_rebuilt_from_true_z_are_the_series(transform):
    y = np.exp(np.random.default_rng(1).normal(0, 0.1, 30).cumsum()) * 50
    z = to_z(y, transform)
    off = {"logdiff": 1, "diff": 1, "level": 0}[transform]
    t, h = 10, 5                                            # origin: levels up to t observed
    path = z[t + 1 - off:t + 1 - off + h][None]
    np.testing.assert_allclose(to_levels(y[t:t + 1], path, transform)[0], y[t + 1:t + 1 + h], rtol=1e-12)


def test_ar_and_arima_rolling_forecasts_equal_statsmodels():
    from statsmodels.tsa.arima.model import ARIMA

    rng = np.random.default_rng(2)
    z = np.zeros(160)
    for t in range(2, 160):
        z[t] = 0.3 + 0.5 * z[t - 1] - 0.2 * z[t - 2] + rng.normal()
    res, const, coefs = fit_ar(z[:120], maxlag=4)
    ends = np.array([120, 133, 150])
    ours = ar_paths(const, coefs, z, ends, 6)
    for i, e in enumerate(ends):
        np.testing.assert_allclose(ours[i], res.apply(z[:e]).forecast(6), rtol=1e-9, err_msg=f"AR origin {e}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arima = ARIMA(z[:120], order=(1, 0, 1), trend="c").fit()
        ours = arima_paths(arima, z, ends, 6)
        for i, e in enumerate(ends):
            np.testing.assert_allclose(ours[i], arima.apply(z[:e]).forecast(6), rtol=1e-7,
                                       err_msg=f"ARIMA origin {e}")


def test_rnn_paths_feed_predictions_back_one_step_at_a_time():
    model = ManyToMany(ModelConfig(1, 1, hidden=5, cell="lstm", output="real", seed=0, dtype="float64")).eval()
    zs = np.random.default_rng(3).normal(size=40)
    ends, context = np.array([12, 25, 40]), 12
    paths = rnn_paths(model, zs, ends, 4, context)
    for i, e in enumerate(ends):                            # by hand: read the context, then step
        x = zs[e - context:e][:, None, None]
        pred, state = model.forward(x)
        expect = [pred[-1, 0, 0]]
        for _ in range(3):
            pred, state = model.forward(np.array(expect[-1]).reshape(1, 1, 1), state)
            expect.append(pred[-1, 0, 0])
        np.testing.assert_allclose(paths[i], expect, rtol=1e-12)
    short = rnn_paths(model, zs, np.array([5]), 2, context)   # fewer values than the context: zero-padded
    assert np.all(np.isfinite(short))


def test_rolling_origin_scores_a_perfect_forecaster_zero():
    y = np.linspace(1, 2, 60) ** 2
    z = to_z(y, "logdiff")
    origins, paths = rolling_origin(y, "logdiff", 48, 3, {
        "oracle": lambda ends, h: np.stack([z[e:e + h] if e + h <= len(z) else np.r_[z[e:], np.zeros(e + h - len(z))]
                                            for e in ends])})
    assert origins[0] == 47 and origins[-1] == 58
    tabs = tables(y, origins, paths, [1, 3])
    assert tabs[1]["oracle"]["rmse"] < 1e-12 and tabs[3]["oracle"]["rmse"] < 1e-12
    assert tabs[1]["persistence"]["rmse_vs_persistence"] == 1.0 and tabs[3]["oracle"]["n"] == 10


def test_train_then_forecast_by_command_line(series_csv, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "forecast", "--csv", str(series_csv), "--column", "Value", "--out", str(run),
                 "--max-steps", "4", "--eval-every", "2", "--window", "12", "--hidden", "4", "--horizon", "3",
                 "--arima", "1,0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Value: 1-step-ahead forecasts" in out and "Value: 3-step-ahead forecasts" in out
    for name in ("persistence", "GRU (4)", "AR(", "ARIMA(1,0,0)"):
        assert name in out
    assert (run / "forecast.png").stat().st_size > 1000
    png = tmp_path / "future.png"
    assert main(["forecast", str(run), "--csv", str(series_csv), "--column", "Value", "--horizon", "5",
                 "--png", str(png)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Value: last value") and [ln.split()[0] for ln in lines[1:6]] == \
        ["+1", "+2", "+3", "+4", "+5"]
    assert all(np.isfinite(float(ln.split()[1])) for ln in lines[1:6]) and png.stat().st_size > 1000
    assert main(["forecast", str(run), "--horizon", "2"]) == 0      # the training series by default
    assert main(["forecast", str(run), "--csv", str(series_csv), "--column", "Nope"]) == 2
    assert "has no column 'Nope'" in capsys.readouterr().err
