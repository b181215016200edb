"""Truncated backpropagation through time with two separate lengths (Williams & Peng 1990).

BPTT(k2; k1): run forward over one long sequence, and every k1 steps (and once more at the end)

  1. take the state at t - k2, stored when the forward pass went through it,
  2. run the layer from there over x[t-k2 : t],
  3. inject the errors of the newest k1 steps only (older ones were counted at earlier updates),
  4. back-propagate them to t - k2 and no further (the gradient of the state there is dropped),
  5. hand the gradients to `on_update` (an optimizer step, say).

So an error injected at step u flows back to step t - k2: through between k2 - k1 (the oldest
injected step) and k2 - 1 (the newest) earlier steps. k1 = k2 gives the common chunked truncation
(each chunk's errors stay inside the chunk, the first one sees nothing before it); k1 < k2 lets every
error look back at least k2 - k1 steps at the cost of k2/k1 times more backward work; k1 = k2 = T is
full BPTT.

The window is recomputed from its stored starting state with the weights of the moment, so after
an update the recomputed steps use the new weights while the starting state came from the old ones.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import checks
from .recurrent import RNNBase

LossFn = Callable[[np.ndarray, int, int], tuple[float, np.ndarray]]


def tbptt(layer: RNNBase, x, loss_fn: LossFn, k1: int, k2: int, *, hx=None,
          on_update: Callable[[int], None] | None = None) -> list[float]:
    """Truncated BPTT(k2; k1) of `layer` over x (T, B, I) (time-major); returns each update's loss.

    loss_fn(y, t0, t1) gets the layer's output y (t1 - t0, B, D*H) for steps t0..t1-1, the steps whose
    errors this update injects, and returns (loss, dL/dy); it may run a head and accumulate its
    gradients. Layer gradients accumulate in layer.grads; on_update(t1) is called after each update
    (step an optimizer and zero the gradients there, or leave them to accumulate).
    """
    if not isinstance(layer, RNNBase):
        raise TypeError(f"layer must be an rnnkit RNN, LSTM or GRU layer, got {type(layer).__name__}")
    if layer.batch_first:
        raise ValueError("tbptt takes time-major input: construct the layer with batch_first=False")
    k1 = checks.positive_int("k1", k1)
    k2 = checks.positive_int("k2", k2)
    if k2 < k1:
        raise ValueError(f"k2 (how far back to propagate) must be at least k1 (steps between updates), "
                         f"got k1={k1}, k2={k2}")
    x = checks.floating_array("input", x, layer.dtype, 3, layer.input_size)
    T = x.shape[0]
    anchor_t, anchor_state = 0, hx          # a stored state at a time <= the next window's start
    last_t, last_state = 0, hx              # the state at the end of the latest window
    losses, t0 = [], 0
    while t0 < T:
        t1 = min(t0 + k1, T)
        s = max(0, t1 - k2)                 # this window starts here
        if s == last_t:
            anchor_t, anchor_state = s, last_state
        elif s > anchor_t:                  # move the stored state forward to s (no gradient needed)
            _, anchor_state = layer.forward(x[anchor_t:s], anchor_state)
            anchor_t = s
        y, last_state = layer.forward(x[s:t1], anchor_state)
        last_t = t1
        loss, dy_new = loss_fn(y[t0 - s:], t0, t1)
        dy = np.zeros_like(y)
        dy[t0 - s:] = checks.state_array("dL/dy from loss_fn", dy_new, layer.dtype, y[t0 - s:].shape)
        layer.backward(dy)                  # stops at s: the gradient of the state there is dropped
        losses.append(float(loss))
        if on_update is not None:
            on_update(t1)
        t0 = t1
    return losses
