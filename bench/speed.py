"""Speed of rnnkit against PyTorch on this CPU: a training step and inference, RNN / LSTM / GRU.

    python bench/speed.py            # or: rnnkit bench speed      (a few minutes)
    python bench/speed.py --quick    # a smaller grid, a smoke test

For each (mode, T, B, I, H) both libraries get the same float32 weights and input. Times are
medians of --repeats runs after a warm-up (which also pays Numba's one-time compile or cache load),
in each of --rounds rounds where the two libraries take turns; a figure is the median of its rounds,
so that a burst of load from another tenant of the machine falls on both libraries, not on one:
  train  forward + backward with every parameter gradient and the input gradient, no optimizer
         (torch: loss = (y * dy).sum() with x.requires_grad, so it computes the same gradients);
  infer  forward only (torch under torch.no_grad(), rnnkit under rnnkit.no_grad()).

Each library runs in its own fresh subprocess per configuration, one after the other, so the two
never share thread pools (PyTorch's OpenMP threads spin after each parallel region and would slow
NumPy's BLAS threads in the same process) and so peak memory can be read honestly:
  mem    the peak resident set during the first full-size training step (Linux's VmHWM, reset
         through /proc/self/clear_refs just before it) minus the resident set just before it: what
         a training step costs on top of the libraries, the model and the data, PyTorch's autograd
         graph or rnnkit's caches included. Resetting the peak first means neither side is
         charged, or credited, for what importing and compiling touched earlier; handing the C
         heap's free memory back to the system first (release_free_heap) means every page the
         step touches counts, wherever the allocator places its requests.
GFLOP/s counts the matrix products only (2 flops per multiply-add; a training step is three
times the forward's 2*T*B*G*H*(I+H)); the ceiling is NumPy's float32 matmul on 2048x2048
matrices, the best of at least 10 in each of several workers spread over the run (before each
mode's configurations and after the last; on a shared machine other tenants only slow it, so the
best is the steadiest estimate, and the strictest one to compare with); the line names the
kernels NumPy's OpenBLAS runs, which it picks from the CPU unless OPENBLAS_CORETYPE names others
(AVX2's Haswell kernels run at about half the speed of its AVX-512 ones on a core with 512-bit
FMA units: 243-265 GFLOP/s against 478 on two cores of an AMD EPYC, Zen 5). The table is printed
once the last ceiling is in; progress goes to stderr meanwhile. %ceil is the better of rnnkit's
two GFLOP/s over the ceiling, and the column beside it torch's. Beside the ceiling stands what
no product can pass: the cores' float32 multiply-add peak, every core at once, timed by
bench/fma_peak.py in its own processes next to each ceiling (the best of those timings). For
every ratio below 1.0 a line says how close each library came to the ceiling there, and to that
peak (where both are near it, neither can pull ahead), and each round's ratio (the libraries'
turns in a round are next to each other, so rounds on both sides of 1.0 point to a tie that the
machine's load decided). A line counts the
configurations where rnnkit's training-step memory is at most PyTorch's, from the unrounded
figures, and names, to two decimals, each where it is not. Both libraries use their default
thread counts.

The streaming line times an LSTM cell step by step (B=1, H=128), 2000 steps per run, in turns
over the rounds as above.

The model line times a whole model's training step, where a layer meets the rest of a network:
a character language model (embedding, two LSTM layers, a linear head, cross-entropy and Adam, at
the sizes of LM below), the same weights in both libraries, the median of the rounds' medians.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

GRID = [(50, 16, 64, 64), (100, 32, 128, 128), (100, 32, 256, 256), (100, 64, 512, 512),
        (200, 1, 64, 128), (35, 20, 650, 650)]
QUICK_GRID = [(50, 16, 64, 64), (200, 1, 64, 128), (35, 20, 650, 650)]
MODES = ["RNN", "LSTM", "GRU"]
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def median_time(f, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def resident_mb(field):
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} is missing from /proc/self/status")


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def release_free_heap():
    """Hand the C allocator's free memory back to the system (glibc's malloc_trim(0), every arena),
    so that a later peak counts each page a step touches. Without it, a step whose requests happened
    to fit chunks freed earlier (and still resident) counted nothing for them: the peak then said
    more about the allocator's placement than about the step. Elsewhere than glibc, nothing."""
    import ctypes
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


# --- workers: one library, one configuration, one fresh process ----------------------------------

def setup(lib, mode, T, B, I, H, layers=1, bidirectional=False, package="rnnkit"):
    """The layer, a training step and an inference step for one library, same weights and data
    (rnnkit's from the package of that name: bench/compare.py imports two revisions side by side)."""
    import importlib

    import numpy as np
    rnnkit = importlib.import_module(package)

    layer = getattr(rnnkit, mode)(I, H, num_layers=layers, bidirectional=bidirectional, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dy = rng.standard_normal((T, B, layer.num_directions * H)).astype(np.float32)
    if lib == "rnnkit":
        def train():
            layer.zero_grad()
            y, _ = layer.forward(x)
            layer.backward(dy)

        def infer():
            with rnnkit.no_grad():
                layer.forward(x)
        return train, infer

    import torch
    twin = getattr(torch.nn, mode)(I, H, num_layers=layers, bidirectional=bidirectional)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    xt, dyt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

    def train():
        twin.zero_grad(set_to_none=False)
        xt.grad = None
        y, _ = twin(xt)
        (y * dyt).sum().backward()

    def infer():
        with torch.no_grad():
            twin(xt)
    return train, infer


def worker(lib, mode, T, B, I, H, repeats):
    # Load the libraries and kernels before the memory probe; for rnnkit, its threaded kernels and
    # every kind of product too: 128 rows and G*H >= 128 pack each product below SPLIT_WORK, and
    # SPLIT_WORK = 0 splits the weight gradients into BLAS row blocks. On threads, a batch of 1 packs
    # W_hh alone (the input projected apart), one of 4 packs [W_ih, W_hh] on the threads, split by
    # units, and one of 8 packs it on one thread, each thread working alone on its rows.
    small = [setup(lib, mode, 32, b, 4, 128) for b in (1, 4, 8)]
    for small_train, small_infer in small:
        small_train(), small_infer()
    if lib == "rnnkit":
        from rnnkit import kernels, products
        sizes = kernels.MIN_WORK, kernels.MIN_UNITS, products.SPLIT_WORK
        for split_work in (products.SPLIT_WORK, 0):
            kernels.MIN_WORK, kernels.MIN_UNITS, products.SPLIT_WORK = 0, 1, split_work
            for small_train, small_infer in small:
                small_train(), small_infer()
        kernels.MIN_WORK, kernels.MIN_UNITS, products.SPLIT_WORK = sizes
    train, infer = setup(lib, mode, T, B, I, H)
    release_free_heap()
    reset_peak()
    base = resident_mb("VmRSS")
    train()                                                        # warm-up, and the memory probe
    mem = resident_mb("VmHWM") - base
    t_train = median_time(train, repeats)
    infer()
    t_infer = median_time(infer, repeats)
    print(json.dumps(dict(train=t_train, infer=t_infer, mem=mem)))


def cell_worker(lib, repeats, steps=2000):
    """Microseconds per step of an LSTM cell at B=1, H=I=128: inference, and with grad (cache kept)."""
    import contextlib

    import numpy as np
    import rnnkit
    cell = rnnkit.LSTMCell(128, 128, seed=0)
    x = np.random.default_rng(0).standard_normal((1, 128)).astype(np.float32)
    state = (np.zeros((1, 128), np.float32), np.zeros((1, 128), np.float32))
    no_grad = rnnkit.no_grad
    if lib == "torch":
        import torch
        twin = torch.nn.LSTMCell(128, 128)
        twin.load_state_dict({k: torch.from_numpy(v) for k, v in cell.state_dict().items()})
        cell, x, state, no_grad = twin, torch.from_numpy(x), tuple(map(torch.from_numpy, state)), torch.no_grad

    def run_steps():
        s = state
        for _ in range(steps):
            s = cell(x, s)
    result = {}
    for key in ("infer", "grad"):
        with no_grad() if key == "infer" else contextlib.nullcontext():
            run_steps()
            result[key] = median_time(run_steps, repeats) / steps * 1e6
    print(json.dumps(result))


LM = dict(V=65, H=256, layers=2, T=100, B=32)     # a character model the size of char-rnn's on Shakespeare


def lm_worker(lib, repeats):
    """Seconds per training step of a character language model (embedding V x H, LSTM layers of H
    units, linear head, cross-entropy, Adam): forward, backward and the update."""
    import numpy as np
    from rnnkit.models import LanguageModel, ModelConfig
    from rnnkit.optim import Adam
    V, H, T, B = LM["V"], LM["H"], LM["T"], LM["B"]
    model = LanguageModel(ModelConfig(input_size=V, output_size=V, vocab_input=True, hidden=H,
                                      layers=LM["layers"]), stateful=False)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    if lib == "rnnkit":
        opt = Adam(model, lr=1e-3)

        def step():
            model.zero_grad()
            model.loss((x, y))
            model.backward()
            opt.step()
    else:
        import torch

        class Twin(torch.nn.Module):                 # its parameters' names are the rnnkit model's
            def __init__(self):
                super().__init__()
                self.embedding = torch.nn.Embedding(V, H)
                self.rnn = torch.nn.LSTM(H, H, LM["layers"])
                self.head = torch.nn.Linear(H, V)

            def forward(self, ids):
                return self.head(self.rnn(self.embedding(ids))[0])
        twin = Twin()
        twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
        opt = torch.optim.Adam(twin.parameters(), lr=1e-3)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y).reshape(-1)

        def step():
            opt.zero_grad(set_to_none=False)
            torch.nn.functional.cross_entropy(twin(xt).reshape(-1, V), yt).backward()
            opt.step()
    step()
    print(json.dumps(dict(step=median_time(step, repeats))))


def matmul_worker(repeats, n=2048):
    """The best of 10 (at least) float32 products of 2048x2048 matrices: what NumPy reaches here when
    the machine lets it (other tenants only ever slow it down)."""
    import numpy as np
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    out = np.empty_like(a)
    np.dot(a, a, out=out)
    times = []
    for _ in range(max(10, 2 * repeats)):
        t0 = time.perf_counter()
        np.dot(a, a, out=out)
        times.append(time.perf_counter() - t0)
    print(json.dumps(dict(gflops=2 * n ** 3 / min(times) / 1e9)))


# --- the driver -----------------------------------------------------------------------------------

def spawn(*args, env=None, cwd=None, script=__file__, flag="--worker"):
    """One worker of script in a fresh process, called with flag and args (env and cwd: its environment
    and folder, else this one's); its last line of output, as JSON."""
    cmd = [sys.executable, os.path.abspath(script), flag, *map(str, args)]
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{flag[2:]} {' '.join(map(str, args))} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def alternate(rounds, *config):
    """Both libraries' workers, taking turns for this many rounds: medians over the rounds, and
    each round's time ratios torch/rnnkit (the two libraries' turns in a round are next to each
    other; memory has none: a training step may raise rnnkit's peak by nothing at all)."""
    results = {"rnnkit": [], "torch": []}
    for _ in range(rounds):
        for lib in results:
            results[lib].append(spawn(lib, *config))
    ours, theirs = [{key: statistics.median(r[key] for r in runs) for key in runs[0]} for runs in results.values()]
    ratios = {key: [t[key] / o[key] for o, t in zip(*results.values())] for key in ours if key != "mem"}
    return ours, theirs, ratios


def require_positive(*options):
    """(name, value) pairs of command-line counts: a one-line exit at the first below 1."""
    for name, value in options:
        if value < 1:
            raise SystemExit(f"{name} must be a positive integer, got {value}")


def parse_modes(text):
    """--modes, a comma-separated subset of MODES, as a list; a one-line exit otherwise."""
    modes = [m.strip().upper() for m in text.split(",")]
    if any(m not in MODES for m in modes):
        raise SystemExit(f"--modes must be a subset of {','.join(MODES)}, got {text!r}")
    return modes


def forward_flops(mode, T, B, I, H):
    return 2.0 * T * B * GATES[mode] * H * (I + H)


def below_lines(rows, ceiling, peak):
    """A line for each ratio below 1.0: how close each library came to the ceiling there and to the
    cores' multiply-add peak, and each round's ratio."""
    def share(gflops):
        return f"{100 * gflops / ceiling:.0f}% ({100 * gflops / peak:.0f}%)"
    return [f"below 1.0: {row['mode']} {row['cfg']} {name} {row[key]:.2f}: rnnkit at "
            f"{share(row['gf']['ours'][i])} of the ceiling (the FMA peak), torch at "
            f"{share(row['gf']['torch'][i])}; the rounds' ratios "
            f"{', '.join(f'{r:.2f}' for r in row['rounds'][key])}"
            for row in rows for i, (key, name) in enumerate((("train", "training"), ("infer", "inference")))
            if row[key] < 1.0]


def memory_lines(rows):
    """In how many configurations rnnkit's training-step memory is at most PyTorch's, from the
    unrounded figures (the table's one decimal can show a tie either way), and a line for each
    where it is not."""
    over = [row for row in rows if row["ours"]["mem"] > row["theirs"]["mem"]]
    return ([f"training-step memory: rnnkit's at most torch's in {len(rows) - len(over)} of {len(rows)} configurations"]
            + [f"memory above torch: {row['mode']} {row['cfg']} rnnkit {row['ours']['mem']:.2f} MB, "
               f"torch {row['theirs']['mem']:.2f} MB" for row in over])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smaller grid and 3 repeats (a smoke test)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 5)")
    p.add_argument("--rounds", type=int, default=None, help="turns each library takes per configuration (default 3)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of RNN,LSTM,GRU")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if "torch" in (kind, *rest[:1]):
            # torch before rnnkit: torch's OpenMP reads its settings once, when it loads, and rnnkit
            # sets a default GOMP_SPINCOUNT for its own (rnnkit.jit); torch runs with its defaults
            import torch  # noqa: F401
        if kind == "matmul":
            return matmul_worker(int(rest[0]))
        if rest[0] == "cell":
            return cell_worker(kind, int(rest[1]))
        if rest[0] == "lm":
            return lm_worker(kind, int(rest[1]))
        mode, *nums = rest
        return worker(kind, mode, *map(int, nums))

    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    require_positive(("--repeats", repeats), ("--rounds", rounds))
    modes = parse_modes(args.modes)
    grid = QUICK_GRID if args.quick else GRID
    import numpy as np
    import torch
    from fma_peak import cores_peak                              # bench/, this script's folder

    ceilings, peaks, rows = [], [], []
    for mode in modes:
        ceilings.append(spawn("matmul", repeats)["gflops"])
        peaks.append(sum(cores_peak()))
        for (T, B, I, H) in grid:
            print(f"timing {mode} {(T, B, I, H)} ...", file=sys.stderr, flush=True)
            ours, theirs, ratios = alternate(rounds, mode, T, B, I, H, repeats)
            f = forward_flops(mode, T, B, I, H)
            gf = {lib: (3 * f / r["train"] / 1e9, f / r["infer"] / 1e9)              # GFLOP/s: training, inference
                  for lib, r in (("ours", ours), ("torch", theirs))}
            rows.append(dict(mode=mode, cfg=(T, B, I, H), ours=ours, theirs=theirs, gf=gf, rounds=ratios,
                             train=theirs["train"] / ours["train"], infer=theirs["infer"] / ours["infer"]))
    ceilings.append(spawn("matmul", repeats)["gflops"])
    peaks.append(sum(cores_peak()))
    ceiling, peak = max(ceilings), max(peaks)   # other tenants only ever slow them: the best is the steadiest
    print(f"rnnkit vs torch {torch.__version__} (default threads: {torch.get_num_threads()}), numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs, float32, medians of {repeats} runs after warm-up, median of {rounds} rounds")
    from rnnkit.blas import core_name
    core = core_name("numpy")                                    # the kernels NumPy's OpenBLAS runs
    print(f"NumPy float32 matmul ceiling (2048x2048{'' if core is None else f', OpenBLAS {core} kernels'}): "
          f"{ceiling:.1f} GFLOP/s, the best of "
          f"{', '.join(f'{c:.1f}' for c in ceilings)} (before each mode's rows and after the last)")
    print(f"the cores' float32 multiply-add (FMA) peak, all {os.cpu_count()} at once (bench/fma_peak.py): "
          f"{peak:.1f} GFLOP/s, the best of {', '.join(f'{g:.1f}' for g in peaks)}")
    head = (f"{'mode':5} {'T':>4} {'B':>3} {'I':>4} {'H':>4} | {'train ms':>9} {'torch':>8} {'ratio':>5} | "
            f"{'infer ms':>9} {'torch':>8} {'ratio':>5} | {'GFLOP/s tr/inf':>14} {'%ceil':>5} {'torch':>5} | "
            f"{'mem MB':>6} {'torch':>6}")
    print(head)
    print("-" * len(head))
    for row in rows:
        (T, B, I, H), ours, theirs, gf = row["cfg"], row["ours"], row["theirs"], row["gf"]
        row["ceil"] = max(gf["ours"]) / ceiling
        print(f"{row['mode']:5} {T:>4} {B:>3} {I:>4} {H:>4} | {ours['train'] * 1e3:9.2f} "
              f"{theirs['train'] * 1e3:8.2f} {row['train']:5.2f} | {ours['infer'] * 1e3:9.2f} "
              f"{theirs['infer'] * 1e3:8.2f} {row['infer']:5.2f} | "
              f"{gf['ours'][0]:6.1f} /{gf['ours'][1]:6.1f} {100 * row['ceil']:4.0f}% "
              f"{100 * max(gf['torch']) / ceiling:4.0f}% | "
              f"{ours['mem']:6.1f} {theirs['mem']:6.1f}")
    ours, theirs, _ = alternate(rounds, "cell", repeats)
    print(f"streaming LSTMCell B=1 H=128, us/step: inference rnnkit {ours['infer']:.1f}  torch {theirs['infer']:.1f}"
          f"  ratio {theirs['infer'] / ours['infer']:.2f} | with grad rnnkit {ours['grad']:.1f}  "
          f"torch {theirs['grad']:.1f}  ratio {theirs['grad'] / ours['grad']:.2f}")
    ours, theirs, _ = alternate(rounds, "lm", repeats)
    print(f"model: char LM training step (embedding {LM['V']}x{LM['H']}, {LM['layers']} LSTM layers of {LM['H']}, "
          f"linear, cross-entropy, Adam; T={LM['T']}, B={LM['B']}), ms: rnnkit {ours['step'] * 1e3:.1f}  "
          f"torch {theirs['step'] * 1e3:.1f}  ratio {theirs['step'] / ours['step']:.2f}")
    for key, name in (("train", "training"), ("infer", "inference")):
        r = [row[key] for row in rows]
        print(f"{name} torch/rnnkit: median {statistics.median(r):.2f}, min {min(r):.2f}")
    for line in below_lines(rows, ceiling, peak) + memory_lines(rows):
        print(line)
    big = [row["ceil"] for row in rows if row["cfg"][3] >= 512]
    if big:
        print(f"H >= 512: rnnkit reaches {100 * min(big):.1f}% to {100 * max(big):.1f}% of the matmul ceiling")
    print("reproduce: python bench/speed.py" + (" --quick" if args.quick else "")
          + ("" if args.repeats is None else f" --repeats {args.repeats}")
          + ("" if args.rounds is None else f" --rounds {args.rounds}")
          + ("" if modes == MODES else f" --modes {','.join(modes)}") + "   (or: rnnkit bench speed)")


if __name__ == "__main__":
    main()
