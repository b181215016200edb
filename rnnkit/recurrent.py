"""Multi-layer, optionally bidirectional RNN, LSTM and GRU layers with PyTorch's interface.

    output, h_n = RNN(...).forward(x, h0, lengths)           # GRU too
    output, (h_n, c_n) = LSTM(...).forward(x, (h0, c0), lengths)
    grad_x, grad_h0 = layer.backward(grad_output, grad_h_n)  # grads in layer.grads

Shapes: x (T, B, I), or (B, T, I) with batch_first; output (T, B, D*H); h_n (L*D, B, H).
Per layer and direction, the input projection of all steps is one product (for the compiled
LSTM, a part of each step's product instead: rnnkit.loop.run_input), the time loop (rnnkit.loop)
does the recurrence, and the weight gradients are one product each afterwards.
"""
from __future__ import annotations

import numpy as np

from . import checks, kernels
from .grad_mode import is_grad_enabled
from .init import RECURRENT_INITS, recurrent_params
from .loop import L2_BYTES, release, run_backward, run_input
from .module import Module
from .products import add_matmul, product, together
from .steps import GRUStep, LSTMStep, RNNStep
from .workspace import Workspace


def set_cell_arguments(module, input_size, hidden_size, bias, nonlinearity, dtype, init_hh, forget_bias):
    """Check and set the arguments that layers and cells share; returns the step math for module.mode."""
    module.input_size = checks.positive_int("input_size", input_size)
    module.hidden_size = checks.positive_int("hidden_size", hidden_size)
    module.bias = bool(bias)
    module.nonlinearity = nonlinearity
    module.dtype = checks.float_dtype("dtype", dtype)
    module.init_hh = checks.one_of("init_hh", init_hh, set(RECURRENT_INITS))
    if forget_bias is not None and module.mode != "LSTM":
        raise ValueError(f"forget_bias applies to LSTM only, got forget_bias={forget_bias!r} for {module.mode}")
    module.forget_bias = forget_bias
    return make_step(module.mode, nonlinearity)


def make_step(mode: str, nonlinearity: str = "tanh"):
    if mode == "LSTM":
        return LSTMStep()
    if mode == "GRU":
        return GRUStep()
    return RNNStep(checks.one_of("nonlinearity", nonlinearity, {"tanh", "relu"}))


DIRECTIONS_AT_ONCE = True     # a bidirectional layer's two directions at once, where that pays (RNNBase._directions)


class RNNBase(Module):
    mode = "RNN"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 nonlinearity: str = "tanh", dtype=np.float32, seed: int | None = None,
                 init_hh: str = "uniform", forget_bias: float | None = None):
        super().__init__()
        self.step = set_cell_arguments(self, input_size, hidden_size, bias, nonlinearity, dtype, init_hh, forget_bias)
        self.num_layers = checks.positive_int("num_layers", num_layers)
        self.batch_first = bool(batch_first)
        self.dropout = checks.probability("dropout", dropout)
        self.bidirectional = bool(bidirectional)
        self.rng = np.random.default_rng(seed)
        D = 2 if self.bidirectional else 1
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else D * self.hidden_size
            for d in range(D):
                p = recurrent_params(self.step.G, in_size, self.hidden_size, self.bias, self.dtype, self.rng,
                                     self.init_hh, forget_bias, self._suffix(layer, d))
                for name, value in p.items():
                    self.add_param(name, value)
        self._cache = None
        self._workspaces = tuple(Workspace() for _ in range(D))         # scratch reused between steps, by direction

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def config(self) -> dict:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    bias=self.bias, batch_first=self.batch_first, dropout=self.dropout,
                    bidirectional=self.bidirectional, nonlinearity=self.nonlinearity,
                    dtype=self.dtype.name, init_hh=self.init_hh, forget_bias=self.forget_bias)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _weights(self, layer, d):
        s = self._suffix(layer, d)
        p = self.params
        return p["weight_ih" + s], p["weight_hh" + s], p.get("bias_ih" + s), p.get("bias_hh" + s)

    # --- forward ----------------------------------------------------------------------------------
    def _check_state(self, hx, B):
        shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        return checks.recurrent_state(hx, shape, self.dtype, self.step.has_c, "hx for LSTM", ("h_0", "c_0"))

    def forward(self, input, hx=None, lengths=None):
        """input (T, B, I) [or (B, T, I) with batch_first]; hx the initial state; lengths (B,) ints.

        Returns output (T, B, D*H) and h_n, or (h_n, c_n) for LSTM, each (L*D, B, H). Outside
        rnnkit.no_grad() the output is read-only until backward (or the next forward), as backward
        reads the states from its memory: change a copy of it, not the output itself.
        """
        x = checks.floating_array("input", input, self.dtype, 3, self.input_size)
        if self.batch_first:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
        T, B, _ = x.shape
        h0, c0 = self._check_state(hx, B)
        mask = None
        if lengths is not None:
            lengths = checks.lengths_array(lengths, T, B)
            if (lengths < T).any():
                mask = (np.arange(T)[:, None] < lengths[None, :])[:, :, None]
        D, H = self.num_directions, self.hidden_size
        keep = is_grad_enabled()                                        # False under rnnkit.no_grad()
        h_n = np.empty_like(h0)
        c_n = np.empty_like(c0) if c0 is not None else None
        layer_input, inputs, caches, drop_masks = x, [], [], []
        P = self._parts(T, B)
        for layer in range(self.num_layers):
            def direction(d, parts, layer=layer, layer_input=layer_input):
                W_ih, W_hh, b_ih, b_hh = self._weights(layer, d)
                k = layer * D + d
                out, h_n[k], c_last, cache = run_input(
                    self.step, layer_input, W_ih, b_ih, W_hh, b_hh, h0[k], None if c0 is None else c0[k], mask,
                    d == 1, keep, parts, self._workspaces[d])
                if c_n is not None:
                    c_n[k] = c_last
                return out, cache
            outs = self._directions(direction, T, B, layer_input.shape[2], P, keep)
            output = outs[0][0] if D == 1 else np.concatenate([out for out, _ in outs], axis=2)
            caches += [cache for _, cache in outs]
            inputs.append(layer_input)
            drop = None
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                p_keep = 1.0 - self.dropout                             # inverted dropout between layers
                drop = (self.rng.random(output.shape) < p_keep).astype(self.dtype) / p_keep
                output = output * drop
            drop_masks.append(drop)
            layer_input = output
        if self.batch_first:
            layer_input = np.ascontiguousarray(layer_input.transpose(1, 0, 2))
        self._drop_cache()
        if keep:                    # backward reads states from the output's memory (rnnkit.loop.outputs)
            layer_input.flags.writeable = False
            self._cache = dict(inputs=inputs, caches=caches, drop_masks=drop_masks, mask=mask, B=B, T=T,
                               output=layer_input)
        return layer_input, ((h_n, c_n) if c_n is not None else h_n)

    def _drop_cache(self):
        """Forget the last forward's cache; its output, read-only until now, becomes writeable."""
        if self._cache is not None:
            self._cache["output"].flags.writeable = True
            self._cache = None

    __call__ = forward

    # --- backward ---------------------------------------------------------------------------------
    def backward(self, grad_output, grad_state=None):
        """Back-propagate through the most recent forward; parameter gradients accumulate in grads.

        grad_state is the gradient of h_n (or a (dh_n, dc_n) tuple for LSTM, either may be None).
        Returns grad_input (shaped like the input) and grad_state (shaped like the initial state).
        """
        if self._cache is None:
            raise ValueError("backward() called before forward(), or after a forward under rnnkit.no_grad(): "
                             "there is no forward pass to back-propagate")
        cache = self._cache
        T, B = cache["T"], cache["B"]
        D, H, L = self.num_directions, self.hidden_size, self.num_layers
        shape_out = (B, T, D * H) if self.batch_first else (T, B, D * H)
        dy = checks.state_array("grad_output", grad_output, self.dtype, shape_out)
        if self.batch_first:
            dy = np.ascontiguousarray(dy.transpose(1, 0, 2))
        state_shape = (L * D, B, H)
        dh_n, dc_n = self._grad_state(grad_state, state_shape)
        dh0 = np.empty(state_shape, self.dtype)
        dc0 = np.empty(state_shape, self.dtype) if dc_n is not None else None
        g = self.grads
        P = self._parts(T, B)
        for layer in range(L - 1, -1, -1):
            if cache["drop_masks"][layer] is not None:
                dy = dy * cache["drop_masks"][layer]
            x = cache["inputs"][layer]
            x2 = x.reshape(T * B, -1)

            def direction(d, parts, layer=layer, dy=dy):
                k = layer * D + d
                W_ih, W_hh, b_ih, _ = self._weights(layer, d)
                step_cache, ws = cache["caches"][k], self._workspaces[d]
                dxp, dhp, dh0[k], dc_first, (db_ih, db_hh) = run_backward(
                    self.step, W_hh, np.ascontiguousarray(dy[:, :, d * H:(d + 1) * H]), dh_n[k],
                    None if dc_n is None else dc_n[k], cache["mask"], d == 1, step_cache, parts, ws)
                if dc0 is not None:
                    dc0[k] = dc_first
                s = self._suffix(layer, d)
                GH = dxp.shape[2]
                dxp2 = dxp.reshape(T * B, GH)
                add_matmul(g["weight_ih" + s], dxp2.T, x2, parts, ws)        # one product over all steps
                if b_ih is not None:
                    g["bias_ih" + s] += db_ih
                    g["bias_hh" + s] += db_hh
                col = 0
                for block in dhp:                                          # dhp's column blocks
                    n = block.shape[2]
                    block2 = block.reshape(T * B, n)
                    add_matmul(g["weight_hh" + s][col:col + n], block2.T, step_cache.h_prevs.reshape(T * B, H), parts,
                               ws)
                    col += n
                dx_d = product(dxp2, W_ih, parts, ws=ws)                   # into this layer's input
                release(step_cache, ws)
                return dx_d
            dxs = self._directions(direction, T, B, x.shape[2], P, True)
            dx = dxs[0] if D == 1 else dxs[0] + dxs[1]
            dy = dx.reshape(x.shape)
        self._drop_cache()
        if self.batch_first:
            dy = np.ascontiguousarray(dy.transpose(1, 0, 2))
        return dy, ((dh0, dc0) if dc0 is not None else dh0)

    def _parts(self, T, B):
        """Threads for the recurrence and the large products (see rnnkit.kernels.parts)."""
        return kernels.parts(T, B, self.step.G, self.hidden_size) if kernels.ENABLED else 1

    def _directions(self, direction, T, B, I, P, keep):
        """[direction(d, parts) for each direction d]: one after the other, each on P threads, or both
        at once, each on half the threads that their work taken together is worth (kernels.parts
        for twice the rows), a thread each on two cores. At once where a direction's weights,
        W_ih (I columns) and W_hh packed for one thread, take less than a core's L2 (each thread
        then reads all of them at every step), in training, and in inference where the recurrence
        would not have each thread work alone on its rows anyway (kernels.packing_parts).
        `python bench/bidirectional.py`, in bench/SPEED.md, "Session 42"."""
        D, G, H = self.num_directions, self.step.G, self.hidden_size
        if DIRECTIONS_AT_ONCE and D == 2 and kernels.ENABLED:
            both, W_hh = kernels.parts(T, 2 * B, G, H), self._weights(0, 0)[1]
            if (both > 1 and kernels.weights_size(W_hh, 1, I) * W_hh.itemsize < L2_BYTES
                    and (keep or P == 1 or kernels.packing_parts(P, B, W_hh) > 1)):
                return together([lambda: direction(0, both // 2), lambda: direction(1, both // 2)])
        return [direction(d, P) for d in range(D)]

    def _grad_state(self, grad_state, shape):
        return checks.recurrent_state(grad_state, shape, self.dtype, self.step.has_c, "grad_state for LSTM",
                                      ("grad_state[0]", "grad_state[1]") if self.step.has_c else ("grad_state", ""))


class RNN(RNNBase):
    """Elman RNN: h_t = f(x_t @ W_ih.T + b_ih + h_{t-1} @ W_hh.T + b_hh), f = tanh or relu.

    nonlinearity="relu" with init_hh="identity" is the IRNN of Le et al. (2015).
    """
    mode = "RNN"


class LSTM(RNNBase):
    """Long short-term memory; gate rows [i|f|g|o] as in torch.nn.LSTM. See rnnkit.steps.LSTMStep."""
    mode = "LSTM"

    def __init__(self, *args, **kwargs):
        if "nonlinearity" in kwargs:
            raise TypeError("LSTM takes no nonlinearity argument")
        super().__init__(*args, **kwargs)


class GRU(RNNBase):
    """Gated recurrent unit; gate rows [r|z|n] as in torch.nn.GRU. See rnnkit.steps.GRUStep."""
    mode = "GRU"

    def __init__(self, *args, **kwargs):
        if "nonlinearity" in kwargs:
            raise TypeError("GRU takes no nonlinearity argument")
        super().__init__(*args, **kwargs)
