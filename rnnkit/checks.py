"""Argument checks shared by every layer: each error names the argument and the value received."""
from __future__ import annotations

import numpy as np


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def probability(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def one_of(name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def float_dtype(name: str, dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be a floating dtype, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {dt}")
    return dt


def floating_array(name: str, value, dtype: np.dtype, ndim: int, last: int | None = None) -> np.ndarray:
    """Return `value` as an array of `dtype`, refusing non-floating input, a wrong rank or last axis."""
    if not isinstance(value, np.ndarray):
        value = np.asarray(value)
    if value.dtype.kind != "f":
        raise TypeError(f"{name} must hold floating-point numbers, got dtype {value.dtype}")
    if value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {value.shape}")
    if last is not None and value.shape[-1] != last:
        raise ValueError(f"{name} must have size {last} in its last dimension, got shape {value.shape}")
    return np.ascontiguousarray(value, dtype=dtype)


def state_array(name: str, value, dtype: np.dtype, shape: tuple) -> np.ndarray:
    """An initial state of exactly `shape` (no broadcasting)."""
    if not isinstance(value, np.ndarray):
        value = np.asarray(value)
    if value.dtype.kind != "f":
        raise TypeError(f"{name} must hold floating-point numbers, got dtype {value.dtype}")
    if value.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got shape {value.shape}")
    return np.ascontiguousarray(value, dtype=dtype)


def lengths_array(value, T: int, B: int) -> np.ndarray:
    """Sequence lengths: B integers in [1, T]."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths must hold integers, got dtype {arr.dtype}")
    if arr.shape != (B,):
        raise ValueError(f"lengths must have shape ({B},) to match the batch, got shape {arr.shape}")
    if B and (arr.min() < 1 or arr.max() > T):
        raise ValueError(f"lengths must lie in [1, {T}] (the sequence length), got {arr.tolist()}")
    return arr.astype(np.int64)


def recurrent_state(value, shape: tuple, dtype: np.dtype, has_c: bool, arg: str, parts: tuple[str, str]):
    """A state h, or (h, c) when has_c, each exactly `shape`; None (or a None part) means zeros.

    `arg` names the argument in errors ("hx for LSTM"), `parts` its two halves ("h_0", "c_0").
    Returns (h, c), with c None when not has_c.
    """
    def one(name, v):
        return np.zeros(shape, dtype) if v is None else state_array(name, v, dtype, shape)

    if not has_c:
        return one(parts[0], value), None
    if value is None:
        return one(parts[0], None), one(parts[1], None)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{arg} must be a tuple ({parts[0]}, {parts[1]}), got {type(value).__name__}")
    return one(parts[0], value[0]), one(parts[1], value[1])
