"""The Numba kernels equal the NumPy steps (and PyTorch); rnnkit.no_grad keeps nothing; the fallback runs."""
import os
import subprocess
import sys

import numpy as np
import pytest

import rnnkit
from rnnkit import gemm, kernels, loop, products, recurrent
from rnnkit.gradcheck import relative_error

from conftest import compile_every_call, split_on, torch_twin

pytestmark = pytest.mark.skipif(not kernels.ENABLED, reason="Numba not available")
CELLS = [("RNN", "tanh"), ("RNN", "relu"), ("LSTM", "tanh"), ("GRU", "tanh")]
SHORT = loop.SHORT_STEPS, loop.SHORT_ROWS


@pytest.fixture(autouse=True)
def compiled_however_short(monkeypatch):
    """Here the compiled loop runs every call, however short (rnnkit.loop.compiled), so that these
    tests reach it at their small sizes; test_short_calls_run_the_numpy_steps puts the rule back."""
    compile_every_call(monkeypatch)


def make(mode, nl, dtype, **kw):
    cls = {"RNN": rnnkit.RNN, "LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU}[mode]
    extra = dict(nonlinearity=nl) if mode == "RNN" else {}
    return cls(5, 7, seed=1, dtype=dtype, **extra, **kw)


def train_step(layer, x, lengths, dy, dstate):
    layer.zero_grad()
    out, state = layer.forward(x, None, lengths)
    dx, dstate0 = layer.backward(dy, dstate)
    grads = {k: g.copy() for k, g in layer.grads.items()}
    return out, state, dx, dstate0, grads


def flat(state):
    return [s for s in (state if isinstance(state, tuple) else (state,)) if s is not None]


@pytest.mark.parametrize("mode,nl", CELLS)
@pytest.mark.parametrize("lengths", [np.array([6, 2, 5, 1]), None])   # None: h_prevs in the output's memory
@pytest.mark.parametrize("bias", [True, False])           # the kernels sum the bias gradients as they go
def test_fused_equals_numpy_steps(mode, nl, lengths, bias, monkeypatch):
    rng = np.random.default_rng(0)
    layer = make(mode, nl, np.float64, num_layers=2, bidirectional=True, bias=bias)
    T, B = 6, 4
    x = rng.standard_normal((T, B, 5))
    dy = rng.standard_normal((T, B, 14))
    dh = rng.standard_normal((4, B, 7))
    dstate = (dh, rng.standard_normal((4, B, 7))) if mode == "LSTM" else dh
    fused = train_step(layer, x, lengths, dy, dstate)
    monkeypatch.setattr(kernels, "ENABLED", False)
    plain = train_step(layer, x, lengths, dy, dstate)
    for name, a, b in [("output", fused[0], plain[0]), ("grad of input", fused[2], plain[2])]:
        assert relative_error(a, b) < 1e-10, name
    for a, b in zip(flat(fused[1]) + flat(fused[3]), flat(plain[1]) + flat(plain[3])):
        assert relative_error(a, b) < 1e-10, "state or grad of state"
    for k in plain[4]:
        assert relative_error(fused[4][k], plain[4][k]) < 1e-10, k


@pytest.mark.parametrize("mode,nl", CELLS)
def test_short_calls_run_the_numpy_steps(mode, nl, monkeypatch):
    """A call of one step and a row or two (as sampling makes) runs the NumPy steps, and so does
    one step of the RNN at any batch; longer calls run the compiled loop; both give the same numbers."""
    rng = np.random.default_rng(2)
    layer = make(mode, nl, np.float64)
    for T, B, numpy_steps in [(1, 1, True), (1, 2, True), (1, 32, mode == "RNN"), (3, 4, False), (9, 1, False)]:
        x, dy = rng.standard_normal((T, B, 5)), rng.standard_normal((T, B, 7))
        monkeypatch.setattr(loop, "SHORT_STEPS", SHORT[0])
        monkeypatch.setattr(loop, "SHORT_ROWS", SHORT[1])
        layer.forward(x)
        assert layer._cache["caches"][0].fused is not numpy_steps, (T, B)
        picked = train_step(layer, x, None, dy, None)
        compile_every_call(monkeypatch)
        compiled = train_step(layer, x, None, dy, None)
        for a, b in zip(flat(picked[1]) + [picked[0], picked[2]], flat(compiled[1]) + [compiled[0], compiled[2]]):
            assert relative_error(a, b) < 1e-10, (T, B)
        for k in compiled[4]:
            assert relative_error(picked[4][k], compiled[4][k]) < 1e-10, (T, B, k)


@pytest.mark.parametrize("mode,nl", CELLS)
@pytest.mark.parametrize("B", [4, 1, 13])       # B=1: matrix-vector products; B=13: each thread alone on its rows
@pytest.mark.parametrize("at_once", [False, True])
def test_parts_in_threads_equal_one_part(mode, nl, B, at_once, monkeypatch):
    """A bidirectional layer on three parts gives what it gives on one: each direction's units split
    over the threads (or each thread alone on its rows), or, at_once, both directions at once, a
    thread each: in training, and in inference where their units would split."""
    rng = np.random.default_rng(4)
    layer = make(mode, nl, np.float64, bidirectional=True)
    T = 5
    x = rng.standard_normal((T, B, 5))
    lengths = np.array([5, 1, 4, 2] * 4)[:B] if B > 1 else None
    dy = rng.standard_normal((T, B, 14))
    dh = rng.standard_normal((2, B, 7))
    dstate = (dh, rng.standard_normal((2, B, 7))) if mode == "LSTM" else dh
    split_on(monkeypatch, 3)
    monkeypatch.setattr(products, "SPLIT_WORK", 0)                     # and the weight gradients in blocks
    assert kernels.parts(T, B, 4, 7) == 3
    alone = kernels.packing_parts(3, B, layer.params["weight_hh_l0"]) == 1
    assert alone == (B == 13)                                           # else units [0, 2), [2, 4), [4, 7)
    monkeypatch.setattr(recurrent, "DIRECTIONS_AT_ONCE", at_once)
    calls = []
    monkeypatch.setattr(recurrent, "together", lambda tasks: calls.append(len(tasks)) or products.together(tasks))
    split = train_step(layer, x, lengths, dy, dstate)
    with rnnkit.no_grad():
        split_inferred = layer.forward(x, None, lengths)
    assert calls == ([] if not at_once else [2, 2] if alone else [2, 2, 2])   # training; inference unless alone
    monkeypatch.setattr(kernels, "THREADS", 1)
    whole = train_step(layer, x, lengths, dy, dstate)
    with rnnkit.no_grad():
        whole_inferred = layer.forward(x, None, lengths)
    for a, b in zip(flat(split_inferred[1]) + [split_inferred[0]], flat(whole_inferred[1]) + [whole_inferred[0]]):
        assert relative_error(a, b) < 1e-12
    for a, b in zip(flat(split[1]) + flat(split[3]) + [split[0], split[2]],
                    flat(whole[1]) + flat(whole[3]) + [whole[0], whole[2]]):
        assert relative_error(a, b) < 1e-12
    for k in whole[4]:
        assert relative_error(split[4][k], whole[4][k]) < 1e-12, k


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("mode,nonlinearity", [("LSTM", "tanh"), ("RNN", "tanh"), ("RNN", "relu")])
def test_input_in_each_step_equals_projection_of_all_steps(mode, nonlinearity, threads, monkeypatch):
    """The LSTM's or the RNN's step product that takes the input too ([x_t, h_prev] @ [W_ih,
    W_hh].T, for a batch of R rows or more) gives what the projection of all steps followed by the
    loop gives, training and under no_grad, on one part or three."""
    rng = np.random.default_rng(5)
    layer = make(mode, nonlinearity, np.float64, num_layers=2, bidirectional=True)
    T, B = 6, 5
    x = rng.standard_normal((T, B, 5))
    lengths = np.array([6, 2, 5, 1, 4])
    dy = rng.standard_normal((T, B, 14))
    dh = rng.standard_normal((4, B, 7))
    dstate = (dh, rng.standard_normal((4, B, 7))) if mode == "LSTM" else dh
    split_on(monkeypatch, threads)
    runs = []
    for inside in (True, False):
        monkeypatch.setattr(loop, "takes_input", lambda step, x, W_hh, keep, parts: inside)
        with rnnkit.no_grad():
            inferred = layer.forward(x, None, lengths)
        runs.append((inferred, train_step(layer, x, lengths, dy, dstate)))
    (inferred, inside), (inferred_apart, apart) = runs
    for a, b in zip([inferred[0], inside[0], inside[2]] + flat(inferred[1]) + flat(inside[1]) + flat(inside[3]),
                    [inferred_apart[0], apart[0], apart[2]] + flat(inferred_apart[1]) + flat(apart[1]) +
                    flat(apart[3])):
        assert relative_error(a, b) < 1e-12
    for k in apart[4]:
        assert relative_error(inside[4][k], apart[4][k]) < 1e-12, k


def test_input_apart_where_w_is_past_l2_and_the_batch_small(monkeypatch):
    """The LSTM (and the GRU in inference) take their input inside each step's product, but where
    each part's packed weights with W_ih are past a core's L2 and the batch has few rows: the
    packed values counted by hand. Where the tiles take K whole (Zen 4), the LSTM's never goes apart in
    inference."""
    monkeypatch.setattr(gemm, "WHOLE_K", False)
    monkeypatch.setattr(loop, "ALONE_APART", False)

    def layer(mode, H, B):
        G = {"LSTM": 4, "GRU": 3}[mode]
        return (getattr(rnnkit, mode)(H, H, seed=0).step, np.empty((1, B, H), np.float32),
                np.empty((G * H, H), np.float32))
    step, x, W_hh = layer("LSTM", 650, 20)                           # 325 units a part: 41 panels of 32
    assert kernels.weights_size(W_hh, 2, 650) == 2 * 41 * 32 * 1300   # over 1300 rows: 6.8 MB a part
    for keep in (True, False):
        assert loop.input_apart(step, 20, 650, W_hh, keep, 2)
        assert not loop.takes_input(step, x, W_hh, keep, 2) or not kernels.ENABLED
    assert loop.input_apart(step, 32, 650, W_hh, True, 2)             # training: up to 32 rows
    assert not loop.input_apart(step, 32, 650, W_hh, False, 2)        # inference: up to 20
    step, x, W_hh = layer("LSTM", 512, 64)
    assert not loop.input_apart(step, 64, 512, W_hh, True, 2)         # 4 MB a part, but 64 rows
    assert loop.takes_input(step, x, W_hh, True, 2) == kernels.ENABLED
    step, x, W_hh = layer("LSTM", 256, 20)
    assert not loop.input_apart(step, 20, 256, W_hh, True, 2)         # 2 MB on two parts: 1 MB each
    step, x, W_hh = layer("GRU", 512, 48)                             # 16 + 8 + 8 panels: 3.1 MB a part
    assert kernels.gru_input_size(512, 2, 512) == 2 * (16 * 32 * 1024 + 8 * 32 * 512 + 8 * 32 * 512)
    assert loop.input_apart(step, 48, 512, W_hh, False, 2)            # inference: up to 48 rows
    assert not loop.takes_input(step, x, W_hh, False, 2)
    step, x, W_hh = layer("GRU", 512, 64)
    assert not loop.input_apart(step, 64, 512, W_hh, False, 2)
    assert loop.takes_input(step, x, W_hh, False, 2) == kernels.ENABLED
    step, x, W_hh = layer("GRU", 256, 20)                             # 8 + 4 + 4 panels: 0.8 MB a part
    assert not loop.input_apart(step, 20, 256, W_hh, False, 2)
    assert loop.takes_input(step, x, W_hh, False, 2) == kernels.ENABLED
    monkeypatch.setattr(gemm, "WHOLE_K", True)
    step, x, W_hh = layer("LSTM", 650, 20)
    assert loop.input_apart(step, 20, 650, W_hh, True, 2)             # training as before
    assert not loop.input_apart(step, 20, 650, W_hh, False, 2)
    assert loop.takes_input(step, x, W_hh, False, 2) == kernels.ENABLED
    step, x, W_hh = layer("GRU", 512, 48)                             # the GRU's rule stays
    assert loop.input_apart(step, 48, 512, W_hh, False, 2)


@pytest.mark.parametrize("keep", [True, False])
def test_lstm_input_apart_where_that_leaves_its_threads_alone(keep, monkeypatch):
    """Where loop.ALONE_APART, the LSTM's input goes apart where [W_ih, W_hh] would split the units
    between the threads and W_hh alone lets each work alone on its rows: the bytes counted by hand."""
    monkeypatch.setattr(gemm, "WHOLE_K", False)
    assert kernels.ALONE_BYTES == 1 << 20
    step = rnnkit.LSTM(256, 256, seed=0).step
    W_hh = np.empty((1024, 256), np.float32)                          # 1 MB alone, 2 MB with W_ih (256, 1024)
    for alone_apart in (True, False):
        monkeypatch.setattr(loop, "ALONE_APART", alone_apart)
        assert loop.input_apart(step, 32, 256, W_hh, keep, 2) == alone_apart
        assert loop.input_apart(step, 8, 256, W_hh, keep, 2) == alone_apart    # 4 rows a thread: alone
        assert not loop.input_apart(step, 7, 256, W_hh, keep, 2)               # too few rows to work alone
        assert not loop.input_apart(step, 32, 128, np.empty((512, 128), np.float32), keep, 2)  # alone anyway
        assert not loop.input_apart(step, 32, 256, W_hh, keep, 1)              # one thread
        x = np.empty((10, 32, 256), np.float32)
        assert loop.takes_input(step, x, W_hh, keep, 2) == (kernels.ENABLED and not alone_apart)
    W_hh = np.empty((2048, 512), np.float32)                           # 4 MB alone: split either way
    monkeypatch.setattr(loop, "ALONE_APART", True)
    assert not loop.input_apart(step, 64, 512, W_hh, keep, 2)


@pytest.mark.parametrize("whole_k", [True, False])
def test_rnn_takes_its_input_inside_where_k_is_whole(whole_k, monkeypatch):
    """The compiled RNN's input goes inside each step's product, training and inference, where the
    tiles take K whole (rnnkit.gemm.WHOLE_K), from rnnkit.gemm.MIN_ROWS rows; never elsewhere."""
    monkeypatch.setattr(gemm, "WHOLE_K", whole_k)
    step, W_hh = rnnkit.RNN(650, 650, seed=0).step, np.empty((650, 650), np.float32)
    for B, T in ((20, 35), (64, 100), (gemm.MIN_ROWS, 50), (gemm.MIN_ROWS - 1, 50), (1, 200)):
        x = np.empty((T, B, 650), np.float32)
        for keep in (True, False):
            expected = whole_k and kernels.ENABLED and B >= gemm.MIN_ROWS
            assert loop.takes_input(step, x, W_hh, keep, 2) == expected, (B, keep)


@pytest.mark.parametrize("mode", ["RNN", "LSTM"])
def test_input_bias_joins_the_kernels(mode, monkeypatch):
    """Where the RNN or LSTM projects its input apart, the projection adds no bias, compiled or
    not: b_ih joins b_hh, and the kernel's output and gradients are the NumPy steps'."""
    rng = np.random.default_rng(0)
    layer = make(mode, "tanh", np.float64)
    x, dy = rng.standard_normal((6, 2, 5)), rng.standard_normal((6, 2, 7))   # 2 rows: the input apart
    biases = []
    real = loop.product
    monkeypatch.setattr(loop, "product", lambda *args, **kw: biases.append(args[4]) or real(*args, **kw))
    fused = train_step(layer, x, None, dy, None)
    assert len(biases) == 1 and biases[0] is None and np.abs(layer.params["bias_ih_l0"]).min() > 0
    monkeypatch.setattr(kernels, "ENABLED", False)
    plain = train_step(layer, x, None, dy, None)
    assert len(biases) == 2 and biases[1] is None
    for a, b in [(fused[0], plain[0]), (fused[2], plain[2])] + [(fused[4][k], plain[4][k]) for k in plain[4]]:
        assert relative_error(a, b) < 1e-10


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_gru_input_in_each_step_equals_projection_of_all_steps(threads, bias, monkeypatch):
    """GRU inference with its input inside each step's products (r and z against [x_t, h_prev], n's
    two terms apart) gives what the projection of all steps followed by the loop gives, on three
    parts (routed there by takes_input itself) or one (forced)."""
    rng = np.random.default_rng(6)
    layer = make("GRU", "tanh", np.float64, num_layers=2, bidirectional=True, bias=bias)
    x = rng.standard_normal((6, 5, 5))
    lengths = np.array([6, 2, 5, 1, 4])
    h0 = rng.standard_normal((4, 5, 7))
    split_on(monkeypatch, threads)
    monkeypatch.setattr(recurrent, "DIRECTIONS_AT_ONCE", False)         # each direction on every part
    monkeypatch.setattr(kernels, "GRU_INPUT_WORK", 0)
    monkeypatch.setattr(kernels, "GRU_INPUT_EXCESS", 10.0)          # H = 7 on 3 parts pads a lot
    packings = []
    monkeypatch.setattr(kernels, "gru_input_weights",
                        lambda *args, f=kernels.gru_input_weights: packings.append(args[4]) or f(*args))
    if threads == 1:
        monkeypatch.setattr(loop, "takes_input", lambda step, x, W_hh, keep, parts: not keep)
    with rnnkit.no_grad():
        inside = layer.forward(x, h0, lengths)
    assert packings == [threads] * 4                                    # every layer and direction
    monkeypatch.setattr(loop, "takes_input", lambda *args: False)
    with rnnkit.no_grad():
        apart = layer.forward(x, h0, lengths)
    assert relative_error(inside[0], apart[0]) < 1e-12
    assert relative_error(inside[1], apart[1]) < 1e-12


def test_gru_input_in_each_step_matches_torch_in_float32(monkeypatch):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    layer = rnnkit.GRU(16, 64, seed=3, bidirectional=True)
    x = rng.standard_normal((9, 5, 16)).astype(np.float32)
    h0 = rng.standard_normal((2, 5, 64)).astype(np.float32)
    for name, value in [("MIN_WORK", 0), ("THREADS", 2), ("ADAPT", False), ("GRU_INPUT_WORK", 0)]:
        monkeypatch.setattr(kernels, name, value)
    monkeypatch.setattr(recurrent, "DIRECTIONS_AT_ONCE", False)         # each direction on both parts
    packings = []
    monkeypatch.setattr(kernels, "gru_input_weights",
                        lambda *args, f=kernels.gru_input_weights: packings.append(args[4]) or f(*args))
    with rnnkit.no_grad():
        out, h_n = layer.forward(x, h0)
    assert packings == [2, 2]                                           # both directions, on two parts
    with torch.no_grad():
        out_t, h_t = torch_twin(layer)(torch.from_numpy(x), torch.from_numpy(h0))
    assert relative_error(out, out_t.numpy()) < 1e-5
    assert relative_error(h_n, h_t.numpy()) < 1e-5


def test_gru_input_where_it_pays():
    """The GRU takes its input inside each step's products where the step's products are large
    and its panels pad little: the packed values counted by hand, panels of 32 columns."""
    assert kernels.gru_input_size(650, 2, 650) == 2 * (21 * 32 * 1300 + 11 * 32 * 650 + 11 * 32 * 650)
    assert kernels.gru_input_size(256, 2, 128) == 2 * (8 * 32 * 384 + 4 * 32 * 128 + 4 * 32 * 256)
    assert kernels.gru_input_pays(20, 650, 650, 2)                      # 4% more than apart
    assert not kernels.gru_input_pays(16, 200, 200, 2)                  # 7 + 4 + 4 panels against 10: 14%
    assert kernels.gru_input_pays(32, 256, 256, 2)
    assert not kernels.gru_input_pays(4, 64, 128, 2)                    # too little work per step


@pytest.mark.parametrize("mode,nl", CELLS)
def test_backward_on_more_parts_than_forward(mode, nl, monkeypatch):
    """Backward packs W_hh into forward's scratch, or, when it runs on more parts (the cores other
    processes leave free changed in between) and that is too small, into a larger one."""
    rng = np.random.default_rng(6)
    layer = make(mode, nl, np.float64)
    x, dy = rng.standard_normal((5, 4, 5)), rng.standard_normal((5, 4, 7))
    monkeypatch.setattr(kernels, "MIN_UNITS", 1)
    monkeypatch.setattr(kernels, "MIN_WORK", 0)
    monkeypatch.setattr(kernels, "ADAPT", False)
    grads = []
    for backward_threads in (3, 1):
        monkeypatch.setattr(kernels, "THREADS", 1)
        layer.zero_grad()
        layer.forward(x)
        monkeypatch.setattr(kernels, "THREADS", backward_threads)
        dx, _ = layer.backward(dy)
        grads.append([dx] + [layer.grads[k].copy() for k in sorted(layer.grads)])
    for a, b in zip(*grads):
        assert relative_error(a, b) < 1e-12


def test_parts_follow_size_and_free_cores(monkeypatch):
    monkeypatch.setattr(kernels, "THREADS", 2)
    monkeypatch.setattr(kernels, "ADAPT", True)
    monkeypatch.setattr(kernels, "_cpus", lambda: 2)
    monkeypatch.setattr(kernels, "others_busy", lambda: 0.1)
    assert kernels.parts(35, 20, 4, 650) == 2
    assert kernels.parts(35, 20, 4, 40) == 1                 # too few units to share
    assert kernels.parts(1000, 1, 1, 64) == 1                # too little work per step to wake a thread
    assert kernels.parts(200, 1, 1, 128) == 2
    assert kernels.parts(50, 4, 1, 64) == 1                  # too little work in the whole sequence
    monkeypatch.setattr(kernels, "others_busy", lambda: 1.0)  # another process holds a core
    assert kernels.parts(35, 20, 4, 650) == 1
    monkeypatch.setattr(kernels, "ADAPT", False)             # RNNKIT_THREADS was set
    assert kernels.parts(35, 20, 4, 650) == 2


def test_others_busy_reads_the_machine():
    busy = kernels.others_busy()
    assert 0.0 <= busy <= os.cpu_count() + 0.5


def test_thread_count_from_environment():
    code = "from rnnkit import kernels; print(kernels.THREADS)"
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, RNNKIT_THREADS="3"),
                          capture_output=True, text=True)
    assert done.stdout.strip() == "3", done.stderr
    bad = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, RNNKIT_THREADS="two"),
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "RNNKIT_THREADS must be a positive integer, got 'two'" in bad.stderr


THREAD_LEFT_OUT = """
import numpy as np, rnnkit
from rnnkit import kernels
kernels.MIN_UNITS, kernels.MIN_WORK, kernels.ADAPT = 1, 0, False
results = []
for threads in (3, 1):
    kernels.THREADS = threads
    for B in (4, 12):                                     # 12: each of 3 threads alone on 4 rows
        for cls in (rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU):
            layer, rng = cls(5, 7, seed=1, dtype=np.float64), np.random.default_rng(0)
            x, dy = rng.standard_normal((6, B, 5)), rng.standard_normal((6, B, 7))
            out, _ = layer(x, lengths=[6, 2, 5, 3] * (B // 4))
            results.append((out, layer.backward(dy)[0], layer.grads["weight_hh_l0"].copy()))
alone = kernels.packing_parts(3, 12, layer.params["weight_hh_l0"]) == 1
same = all(np.array_equal(a, b) for split, whole in zip(results[:6], results[6:]) for a, b in zip(split, whole))
print(alone and same)
"""


def test_parts_with_fewer_threads_than_parts_finish_the_same():
    """Numba runs the prange's iterations one after another on its one thread: each phase waits for
    tasks no thread has claimed, takes them over, and the result is the same as with one part;
    where threads work alone, the first takes over the blocks of rows no thread has claimed."""
    done = subprocess.run([sys.executable, "-c", THREAD_LEFT_OUT], env=dict(os.environ, NUMBA_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=600)
    assert done.stdout.strip() == "True", done.stderr


def test_a_late_thread_takes_its_tasks_from_the_first_phase_left():
    """Two parts over 3 steps (6 phases), walked here in one thread in a fixed order. Part 1 starts
    late: part 0 does its own task of phase 0, then, part 1 not having started, takes over part 1's,
    then takes its own of phase 1. Part 1, starting now, finds phase 0 done and must take its own
    task of phase 1 (ending its walk there would leave part 0 waiting for it forever)."""
    sync = kernels.phases(3, 2)
    taken = [kernels.first(sync, 0, False)]
    while taken[-1][1:] != (1, 0):
        b, k, q = taken[-1]
        taken.append(kernels.after(sync, b, k, False))
    assert taken == [(0, 0, 0), (0, 0, 1), (0, 1, 0)]
    assert kernels.first(sync, 1, False) == (1, 1, 1)
    assert sync[:2].tolist() == [[1, 1, 2], [1, 1, 0]] and sync[-1, 0] == 2    # claimed, done; both started


@pytest.mark.parametrize("mode,nl", CELLS)
def test_float32_kernels_match_torch(mode, nl):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    layer = rnnkit.RNN(9, 33, seed=2, nonlinearity=nl) if mode == "RNN" else getattr(rnnkit, mode)(9, 33, seed=2)
    twin = torch_twin(layer)
    x = rng.standard_normal((7, 3, 9)).astype(np.float32)
    dy = rng.standard_normal((7, 3, 33)).astype(np.float32)
    out, _ = layer.forward(x)
    dx, _ = layer.backward(dy)
    xt = torch.from_numpy(x).requires_grad_()
    out_t, _ = twin(xt)
    (out_t * torch.from_numpy(dy)).sum().backward()
    assert relative_error(out, out_t.detach().numpy()) < 1e-5, "output"
    assert relative_error(dx, xt.grad.numpy()) < 1e-4, "grad of input"
    for name, p in twin.named_parameters():
        assert relative_error(layer.grads[name], p.grad.numpy()) < 1e-4, name


@pytest.mark.parametrize("mode,nl", CELLS)
def test_no_grad_same_output_no_cache(mode, nl):
    layer = make(mode, nl, np.float32)
    x = np.random.default_rng(2).standard_normal((4, 3, 5)).astype(np.float32)
    out, state = layer.forward(x, None, [4, 1, 3])
    with rnnkit.no_grad():
        out_ng, state_ng = layer.forward(x, None, [4, 1, 3])
    np.testing.assert_array_equal(out, out_ng)
    for a, b in zip(flat(state), flat(state_ng)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="no_grad"):
        layer.backward(np.ones_like(out))
    assert rnnkit.grad_mode.is_grad_enabled()


@pytest.mark.parametrize("B", [1, 3])
def test_lstm_cell_kernel_equals_numpy_step(B, monkeypatch):
    cell = rnnkit.LSTMCell(6, 5, seed=3, dtype=np.float64)
    rng = np.random.default_rng(3)
    x, h, c = rng.standard_normal((B, 6)), rng.standard_normal((B, 5)), rng.standard_normal((B, 5))
    dh, dc = rng.standard_normal((B, 5)), rng.standard_normal((B, 5))
    (h1, c1), cache = cell.step(x, (h, c))
    dx, (dh0, dc0) = cell.step_backward((dh, dc), cache)
    monkeypatch.setattr(kernels, "ENABLED", False)
    (h2, c2), cache2 = cell.step(x, (h, c))
    dx2, (dh02, dc02) = cell.step_backward((dh, dc), cache2)
    for name, a, b in [("h", h1, h2), ("c", c1, c2), ("dx", dx, dx2), ("dh_prev", dh0, dh02), ("dc_prev", dc0, dc02)]:
        assert relative_error(a, b) < 1e-10, name
    with rnnkit.no_grad():
        assert cell.step(x, (h, c))[1] is None
        cell.forward(x, (h, c))
    with pytest.raises(ValueError, match="no_grad"):
        cell.backward((dh, dc))


def test_numba_off_by_environment():
    code = ("import numpy as np, rnnkit; from rnnkit import kernels; assert not kernels.ENABLED; "
            "l = rnnkit.LSTM(3, 4, seed=0); y, _ = l.forward(np.ones((2, 1, 3), np.float32)); "
            "l.backward(np.ones_like(y)); print('ok')")
    env = dict(os.environ, RNNKIT_NUMBA="0")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr


def test_no_grad_keeps_nothing_with_dropout_between_layers():
    layer = rnnkit.LSTM(3, 4, num_layers=3, dropout=0.3, seed=0)   # training mode: dropout is drawn
    with rnnkit.no_grad():
        out, _ = layer.forward(np.ones((5, 2, 3), np.float32))
    with pytest.raises(ValueError, match="no_grad"):
        layer.backward(np.ones_like(out))


@pytest.mark.parametrize("rows", [1, 2, 32, 33])
def test_few_rows_by_a_transposed_w_turn_round_and_equal_numpy(rows):
    """2 to FEW_ROWS rows by W.T, W of TURNED_VALUES values or more, run as (W @ a.T).T, into out
    too; one row, more rows, a smaller W or a W.T of its own memory run as they are."""
    rng = np.random.default_rng(6)
    W = rng.standard_normal((256, 512))                                  # W.T: 2^17 values
    a = rng.standard_normal((rows, 512))
    assert products.turned_round(a, W.T) == (1 < rows <= products.FEW_ROWS)
    assert not products.turned_round(a, np.ascontiguousarray(W.T))
    assert not products.turned_round(a, W[:255].T)                       # below TURNED_VALUES
    expected = a @ W.T
    assert relative_error(products.matmul(a, W.T), expected) < 1e-12
    out = np.empty((rows, 256))
    assert products.matmul(a, W.T, 2, out) is out and relative_error(out, expected) < 1e-12


@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize("split_work", [0, products.SPLIT_WORK])     # in blocks, or small: on one thread
def test_products_in_row_blocks_equal_numpy(parts, split_work, monkeypatch):
    from rnnkit.products import matmul
    monkeypatch.setattr(products, "SPLIT_WORK", split_work)
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((40, 9)), rng.standard_normal((9, 6))
    np.testing.assert_allclose(matmul(a, b, parts), a @ b, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(matmul(a.T.copy().T, b, parts), a @ b, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(matmul(a[:, :6].T, a[:, 6:], parts), a[:, :6].T @ a[:, 6:], rtol=1e-13, atol=1e-13)
    out = np.full((40, 6), np.nan)
    assert matmul(a, b, parts, out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("parts,rows", [(1, 40), (2, 40), (3, 131), (2, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_product_equals_numpy(parts, rows, dtype):
    rng = np.random.default_rng(7)
    tolerance = 1e-6 if dtype == np.float32 else 1e-13
    for K, N in [(9, 6), (33, 70), (64, 96)]:                           # 70: a last panel cut short
        a, W = rng.standard_normal((rows, K)).astype(dtype), rng.standard_normal((N, K)).astype(dtype).T
        bias = rng.standard_normal(N).astype(dtype)
        assert relative_error(products.product(a, W, parts), a @ W) < tolerance
        out = np.full((rows, N), np.nan, dtype)
        assert products.product(a, np.ascontiguousarray(W), parts, out, bias) is out      # W either way
        assert relative_error(out, a @ W + bias) < tolerance


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("M", [5, 130, 257, 700])
def test_packed_product_blocks_cover_every_row_once(parts, M):
    """Blocks of rows of equal size but for whole tiles, as many for each thread: every row once."""
    rng = np.random.default_rng(M)
    a, W, bias = rng.standard_normal((M, 37)), rng.standard_normal((37, 45)), rng.standard_normal(45)
    blocks = kernels.product_blocks(M, parts)
    assert blocks % parts == 0 and M / blocks <= kernels.PRODUCT_ROWS
    out = np.full((M, 45), np.nan)
    products.packed_product(a, W, parts, out, bias)                   # the bias added once to each row
    assert relative_error(out, a @ W + bias) < 1e-13


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_weight_gradient_product_equals_numpy(parts, dtype, monkeypatch):
    """A weight gradient too small to split (A.T @ B over the steps): packed, on the parts' threads
    (where NumPy's BLAS is as wide as rnnkit.gemm's tiles)."""
    monkeypatch.setattr(products, "NARROW_BLAS", False)
    rng = np.random.default_rng(8)
    tolerance = 1e-6 if dtype == np.float32 else 1e-13
    steps, M, N = 300, 2 * kernels.PRODUCT_ROWS + 3, 70                # 70: a last panel cut short
    dxp, x = rng.standard_normal((steps, M)).astype(dtype), rng.standard_normal((steps, N)).astype(dtype)
    assert products.packs(M, steps, N, parts, gradient=True) == kernels.ENABLED   # small: packed
    assert not products.packs(M, steps, N, 1, gradient=True)
    big = products.SPLIT_WORK // (M * N) + 1                           # steps enough to split: matmul
    assert not products.packs(M, big, N, parts, gradient=True)
    n = products.PACK_VALUES // big                                    # W (big, n) within PACK_VALUES
    assert products.packs(2 * big, big, n, parts) == kernels.ENABLED    # M >= 2K packs a projection,
    assert not products.packs(2 * big, big, n, parts, gradient=True)    # not a weight gradient
    c = np.zeros((M, N), dtype)
    products.add_matmul(c, dxp.T, x, parts)
    assert relative_error(c, dxp.T @ x) < tolerance
    products.add_matmul(c, dxp.T, x, parts)
    assert relative_error(c, 2 * (dxp.T @ x)) < tolerance


def test_a_projection_packs_w_of_at_most_pack_values(monkeypatch):
    """Past PACK_VALUES values of W, a projection runs through matmul, in training and inference
    (where NumPy's BLAS is as wide as rnnkit.gemm's tiles)."""
    monkeypatch.setattr(products, "NARROW_BLAS", False)
    K = 512
    N = products.PACK_VALUES // K
    for keep in (True, False):
        assert products.packs(4 * K, K, N, 2, keep=keep) == kernels.ENABLED
        assert not products.packs(4 * K, K, N + 1, 2, keep=keep)


@pytest.mark.skipif(not kernels.ENABLED, reason="Numba not available")
@pytest.mark.parametrize("parts", [1, 2])
def test_where_numpys_blas_is_narrower_every_large_product_packs(parts, monkeypatch):
    """With NARROW_BLAS, every product of 2 * PRODUCT_ROWS rows or more goes through rnnkit.gemm,
    past PACK_VALUES, at fewer than 2K rows, and a weight gradient of any size; fewer rows, matmul.
    Such a weight gradient, over all steps (A.T a transposed view), equals NumPy's."""
    monkeypatch.setattr(products, "NARROW_BLAS", True)
    M, big = 2 * kernels.PRODUCT_ROWS, products.SPLIT_WORK
    assert products.packs(M, big, products.PACK_VALUES, parts) and products.packs(M, M, 8, parts)
    assert products.packs(M, big, 8, parts, gradient=True)
    assert not products.packs(M - 1, 8, 8, parts)
    rng = np.random.default_rng(4)
    steps, M, N = 700, 2 * kernels.PRODUCT_ROWS + 5, 70
    dxp, x = rng.standard_normal((steps, M)), rng.standard_normal((steps, N))
    calls = []
    packed_product = products.packed_product
    monkeypatch.setattr(products, "packed_product", lambda *args, **kw: calls.append(1) or packed_product(*args, **kw))
    c = np.zeros((M, N))
    products.add_matmul(c, dxp.T, x, parts)
    assert calls and relative_error(c, dxp.T @ x) < 1e-13


@pytest.mark.skipif(not kernels.ENABLED, reason="Numba not available")
@pytest.mark.parametrize("cpu", ["emeraldrapids", "znver4", "skylake-avx512"])
def test_pack_values_follow_the_cpu_numba_compiles_for(cpu):
    """PACK_VALUES is the CPU's own where PACK_VALUES_ON names it, and 2^18 elsewhere."""
    env = dict(os.environ, NUMBA_CPU_NAME=cpu)
    done = subprocess.run([sys.executable, "-c", "from rnnkit import products; print(products.PACK_VALUES)"],
                          env=env, capture_output=True, text=True, check=True)
    assert int(done.stdout) == {"emeraldrapids": 1 << 16}.get(cpu, 1 << 18)


def test_inference_packs_a_projection_of_fewer_than_2k_rows(monkeypatch):
    """In inference a projection of M rows, K <= M < 2K, goes through rnnkit.gemm (in training,
    where the packed copy would raise the step's peak, through matmul), and gives the same output."""
    split_on(monkeypatch, 2)
    monkeypatch.setattr(products, "NARROW_BLAS", False)
    monkeypatch.setattr(products, "SPLIT_WORK", 0)
    monkeypatch.setattr(loop, "takes_input", lambda *args: False)      # the projection of all steps, though
    T, B, I = 10, 15, 100                                              # on Zen 4 the RNN's input goes inside
    # M = 150: I <= M < 2I
    assert products.packs(T * B, I, 40, 2, keep=False) and not products.packs(T * B, I, 40, 2)
    layer = rnnkit.RNN(I, 40, seed=3, dtype=np.float64)
    x = np.random.default_rng(9).standard_normal((T, B, I))
    calls = []
    packed_product = products.packed_product
    monkeypatch.setattr(products, "packed_product", lambda *a, **k: calls.append(1) or packed_product(*a, **k))
    trained, _ = layer.forward(x)
    assert calls == []
    with rnnkit.no_grad():
        inferred, _ = layer.forward(x)
    assert calls == [1]
    assert relative_error(inferred, trained) < 1e-13


@pytest.mark.parametrize("parts", [1, 2])
def test_add_matmul_accumulates(parts):
    from rnnkit.products import add_matmul
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((30, 8)), rng.standard_normal((8, 5))
    c = np.zeros((30, 5))
    add_matmul(c, a, b, parts)                                  # into the zero array directly
    np.testing.assert_allclose(c, a @ b, rtol=1e-13, atol=1e-13)
    add_matmul(c, a, b, parts)                                  # then added
    np.testing.assert_allclose(c, 2 * (a @ b), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("split_work", [0, products.SPLIT_WORK])
def test_blas_thread_count_is_restored_after_row_blocks(split_work, monkeypatch):
    from rnnkit.products import _set_threads, matmul
    if _set_threads is None:
        pytest.skip("NumPy's OpenBLAS is not reachable")
    monkeypatch.setattr(products, "SPLIT_WORK", split_work)
    before = _set_threads(2)
    _set_threads(before)
    matmul(np.ones((40, 4)), np.ones((4, 3)), 2)
    assert _set_threads(before) == before
