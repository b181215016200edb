"""A layer's workspace reuses its scratch arrays between steps without changing any result; the
packed-weight product (rnnkit.gemm) equals NumPy's and compiles to vector arithmetic."""
import platform
import re

import numpy as np
import pytest

import rnnkit
from rnnkit import gemm, kernels, transpose, workspace
from rnnkit.gradcheck import relative_error
from rnnkit.workspace import Workspace


def step(layer, x, dy, lengths=None):
    layer.zero_grad()
    out, _ = layer.forward(x, None, lengths)
    dx, _ = layer.backward(dy)
    return [out, dx] + [g.copy() for g in layer.grads.values()]


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_reused_scratch_changes_nothing(mode):
    rng = np.random.default_rng(0)
    make = lambda: getattr(rnnkit, mode)(5, 7, num_layers=2, bidirectional=True, seed=3, dtype=np.float64)
    used = make()
    batches = [(rng.standard_normal((6, 4, 5)), rng.standard_normal((6, 4, 14)), np.array([6, 2, 5, 1]))
               for _ in range(3)]
    batches.append((rng.standard_normal((3, 2, 5)), rng.standard_normal((3, 2, 14)), None))   # new shapes
    batches.append(batches[0])
    for x, dy, lengths in batches:
        with rnnkit.no_grad():                             # an inference call in between takes scratch too
            used.forward(x[:2])
        first = step(used, x, dy, lengths)
        fresh = step(make(), x, dy, lengths)
        for a, b in zip(first, fresh):
            assert relative_error(a, b) < 1e-12
    assert used._workspaces[0]._free, "the workspace kept nothing to reuse"


def test_what_the_caller_holds_is_never_reused():
    rng = np.random.default_rng(1)
    layer = rnnkit.LSTM(4, 6, num_layers=2, seed=0, dtype=np.float64)
    x, dy = rng.standard_normal((5, 3, 4)), rng.standard_normal((5, 3, 6))
    held = step(layer, x, dy)
    kept = [a.copy() for a in held]
    for _ in range(2):
        step(layer, rng.standard_normal((5, 3, 4)), rng.standard_normal((5, 3, 6)))
        with rnnkit.no_grad():
            layer.forward(rng.standard_normal((5, 3, 4)))
    for a, b in zip(held, kept):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_output_holds_the_states_and_is_read_only_until_backward(mode, compiled, monkeypatch):
    monkeypatch.setattr(kernels, "ENABLED", kernels.ENABLED and compiled)
    rng = np.random.default_rng(2)
    layer = getattr(rnnkit, mode)(4, 6, num_layers=2, seed=0, dtype=np.float64)
    x, dy = rng.standard_normal((5, 3, 4)), rng.standard_normal((5, 3, 6))
    out, _ = layer.forward(x)
    h_prevs = layer._cache["caches"][-1].h_prevs
    assert np.shares_memory(out, h_prevs)                  # the states cost no memory of their own
    assert np.array_equal(h_prevs[1:], out[:-1]) and not h_prevs[0].any()
    with pytest.raises(ValueError, match="read-only"):
        out += 1                                           # it would change the states backward reads
    expected = out.copy()
    layer.backward(dy)
    out += 1                                               # backward is done with it
    assert np.array_equal(out, expected + 1)
    with rnnkit.no_grad():
        inferred, _ = layer.forward(x)
    inferred += 1                                          # nothing to back-propagate: writeable
    masked, _ = layer.forward(x, None, np.array([5, 2, 4]))   # padding outputs zeros: h_prevs apart
    assert not masked.flags.writeable
    assert not np.shares_memory(masked, layer._cache["caches"][-1].h_prevs)
    layer.forward(x)                                       # a new forward forgets the last one's cache
    masked += 1


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_inference_takes_no_new_scratch_after_its_first_call(mode, monkeypatch):
    """Under rnnkit.no_grad() a layer gives every scratch array it takes from its workspace back: a
    second and third call of the same shapes make no new one (the output, the caller's, is no scratch)."""
    layer = getattr(rnnkit, mode)(16, 32, seed=0)
    x = np.random.default_rng(0).standard_normal((20, 8, 16)).astype(np.float32)
    made, new = [], Workspace._new
    monkeypatch.setattr(Workspace, "_new", lambda self, shape, dtype: made.append(shape) or new(self, shape, dtype))
    with rnnkit.no_grad():
        layer(x)
        first = len(made)
        layer(x)
        layer(x)
    assert first > 0 and len(made) == first, made[first:]


def test_workspace_hands_back_and_forgets_old_shapes():
    ws = Workspace(shapes=2)
    a = ws.empty((3, 4), np.float32)
    ws.give_back(a)
    assert ws.empty((3, 4), np.float32) is a
    assert ws.empty((3, 4), np.float32) is not a           # taken already: a new one
    ws.give_back(a, ws.flat(5, float), ws.flat(6, float))  # three shapes, room for two
    assert ws.empty((3, 4), np.float32) is not a


def test_workspace_takes_back_only_its_own_arrays():
    ws = Workspace()
    own, foreign = ws.empty((3, 4), np.float32), np.empty((3, 4), np.float32)
    ws.give_back(foreign, own[1:])                         # neither was made here (own[1:] is a view)
    assert ws.empty((3, 4), np.float32) is not foreign
    ws.give_back(own)
    assert ws.empty((3, 4), np.float32) is own


@pytest.mark.parametrize("shape,dtype", [((1,), np.float32), ((3, 5), np.float32), ((100, 7, 3), np.float64),
                                         ((3_000_000,), np.float32)])
def test_scratch_starts_on_a_cache_line(shape, dtype):
    """With glibc's malloc NumPy itself starts an array of 3,000,000 values 16 bytes past a cache line."""
    for a in (workspace.empty(shape, dtype), Workspace().empty(shape, dtype), Workspace().flat(5, dtype),
              workspace.FRESH.empty(shape, dtype), workspace.FRESH.flat(7, dtype)):
        assert a.ctypes.data % workspace.ALIGN == 0
    a = workspace.empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable


def test_flat_hands_out_the_smallest_free_buffer_large_enough():
    ws = Workspace()
    small, large, wide = ws.flat(10, np.float32), ws.flat(100, np.float32), ws.flat(50, np.float64)
    ws.give_back(large, small, wide, ws.empty((8, 8), np.float32))   # a 2-D array is never a flat buffer
    assert ws.flat(10, np.float32) is small                    # fits exactly
    assert ws.flat(11, np.float32) is large                    # small is taken; the other float32 fits
    fresh = ws.flat(20, np.float32)                            # none free fits, and wide is float64
    assert fresh.shape == (20,) and fresh.dtype == np.float32 and fresh is not wide
    ws.give_back(large)
    assert ws.flat(64, np.float32) is large                    # the whole buffer, given back, serves again


def test_flat_drops_the_free_buffers_too_small_for_a_new_one():
    """A flat request that no free buffer fits makes a new one and forgets the free ones of its dtype
    (the new one serves whatever they would have), so they are not held on beside it."""
    ws = Workspace()
    small, other = ws.flat(10, np.float32), ws.flat(20, np.float64)
    ws.give_back(small, other)
    large = ws.flat(30, np.float32)                            # none free fits: small is dropped
    ws.give_back(large)
    assert ws.flat(10, np.float32) is large                    # what small served, large serves
    assert ws.flat(10, np.float32) is not small                # and small is gone
    assert ws.flat(20, np.float64) is other                    # another dtype's buffer stays


@pytest.mark.skipif(not kernels.ENABLED, reason="Numba not available")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,K,N", [(1, 5, 3), (1, 33, 200), (1, 20, 256), (3, 33, 64), (4, 17, 65), (7, 40, 100),
                                   (9, 30, 160), (15, 30, 100), (20, 900, 70), (32, 128, 512), (20, 700, 600),
                                   (5, 1000, 400), (37, 300, 96), (64, 700, 600)])
# B=1, N >= WIDE * V: one row by WIDE panels; B = 15 and 20: tiles of uneven rows; K = 900: in chunks
# (gemm.KC, but where gemm.WHOLE_K), one of them across X's last columns and A's first; (20, 700, 600)
# and (5, 1000, 400): a packed W past gemm.PREFETCH_BYTES, whose tiles prefetch (in chunks; in one chunk
# of a single tile), but where gemm.WHOLE_K (test_whole_panels_in_chunks_... runs both ways on any CPU);
# B = 32 to 64, where gemm.PAIRED_ROWS: paired tiles, of uneven rows and with a panel left over at N = 96,
# and past gemm.PREFETCH_BYTES at (64, 700, 600)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("order", ["C", "F"])
def test_packed_product_equals_numpy(B, K, N, dtype, threads, order):
    """... exactly: A's values are quarters and W's integers, all small, so that every product and
    every partial sum is exact in float32 in any order (gemm's one sum over the whole of K, where
    gemm.WHOLE_K, or its chunks; NumPy's blocked sums)."""
    rng = np.random.default_rng(B * K)
    A, W = (rng.integers(-8, 9, (B, K)) / 4).astype(dtype), rng.integers(-8, 9, (K, N)).astype(dtype)
    cols = np.full((2, gemm.panels(N) * gemm.V), -1)
    cols[0, :N] = np.arange(N)                             # all of W
    cols[1, :N:2] = np.arange(N - 1, -1, -2)               # every other column, last first
    packed = np.full(gemm.packed_shape(2, K, N), np.nan, dtype)     # a dirty buffer
    gemm.pack[threads](np.asarray(W, order=order), cols, packed)    # W read by rows or by columns
    for p, expected in enumerate([A @ W, np.where(np.arange(N) % 2 == 0, (A @ W)[:, cols[1, :N]], 0)]):
        C = np.full((B, packed.shape[1] * gemm.V), np.nan, dtype)
        gemm.compiled(dtype)(A[:, :K // 3], A[:, K // 3:], packed[p], C)  # [X, A]: A's columns in two
        assert np.array_equal(C[:, :N], expected)
        assert not C[:, N:].any()                          # the padded columns are zero
        memory = np.full(B * N + gemm.V, np.nan, dtype)    # C narrower than the panels: N columns,
        narrow = memory[:B * N].reshape(B, N)              # and nothing written past them
        gemm.compiled(dtype)(A[:, :0], A, packed[p], narrow)             # X with no columns
        assert np.array_equal(narrow, expected)
        assert np.isnan(memory[B * N:]).all()


@pytest.mark.skipif(not kernels.ENABLED, reason="Numba not available")
@pytest.mark.parametrize("K", [5, 32, 35])            # F order: blocks of 8 rows, and 3 past them at K = 35
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pack_lays_out_picked_columns(K, order, threads, dtype):
    """out[p, jp, k, v] = W[k, cols[p, jp * V + v]], 0 where the column is -1, whichever way W is read."""
    N, rng = 70, np.random.default_rng(K)
    W = np.asarray(rng.standard_normal((K, N)).astype(dtype), order=order)
    cols = np.full((2, 3 * gemm.V), -1)
    cols[0, :N] = np.arange(N)                                          # side by side, then padding
    cols[1, :40] = rng.permutation(N)[:40]                              # scattered
    cols[1, 50:60] = np.arange(10)                                      # consecutive, but not 8 of a group
    cols[1, 64:72] = np.arange(13, 21)                                  # a group of 8, from an odd column
    packed = np.full(gemm.packed_shape(2, K, 3 * gemm.V), np.nan, dtype)
    gemm.pack[threads](W, cols, packed)
    expected = np.where(cols[:, None] >= 0, W[:, cols].transpose(1, 0, 2), 0)     # (2, K, 3V): W[k, cols]
    assert np.array_equal(packed, expected.reshape(2, K, 3, gemm.V).transpose(0, 2, 1, 3))


@pytest.mark.skipif(not kernels.ENABLED, reason="Numba not available")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transpose8_moves_one_block_and_nothing_else(dtype):
    """dst[k + c, v + r] = src[j + r, k + c] for r, c < 8, from a view whose rows lie 30 values apart."""
    import numba
    src = np.arange(20 * 30, dtype=dtype).reshape(20, 30)[:, 1:]
    dst = np.full((40, 32), -1, dtype)

    @numba.njit
    def block(src, dst):
        transpose.transpose8(src, 3, 5, dst, 16)
    block(src, dst)
    expected = np.full((40, 32), -1, dtype)
    expected[5:13, 16:24] = src[3:11, 5:13].T
    assert np.array_equal(dst, expected)


def tile_signature(prefetching=False):
    """The float32 signature gemm's loops call a tile with: X, A, Wk, C, then i0, jp, k0, k1 and add
    as variables; prefetching, flat, pf0 and step too."""
    from numba import types as t
    signature = (t.Array(t.float32, 2, "A"), t.Array(t.float32, 2, "A"), t.Array(t.float32, 3, "C"),
                 t.Array(t.float32, 2, "C"), t.intp, t.intp, t.intp, t.intp, t.boolean)
    return signature + ((t.Array(t.float32, 1, "C"), t.intp, t.intp) if prefetching else ())


@pytest.mark.skipif(not kernels.ENABLED or platform.machine() not in ("x86_64", "AMD64"), reason="x86 and Numba only")
@pytest.mark.parametrize("rows,panels,prefetching", [(1, 1, False), (gemm.R, 1, False), (1, gemm.WIDE, False),
                                                     (gemm.R, 1, True), (gemm.PAIR_R, 2, False)])
def test_tiles_compile_to_vector_instructions(rows, panels, prefetching):
    """The straight-line vectorizer turns a tile's sums into packed (ymm/zmm) arithmetic, with no scalar
    arithmetic left (the loop vectorizer alone leaves scalar sums over k beside gathered ones); with
    AVX-512, into 512-bit (zmm) FMAs, even where LLVM's tuning for the CPU prefers 256 bits. A
    prefetching tile does the same, and prefetches (PREFETCHT2) only where it is asked to; the
    others of one panel prefetch its rows gemm.AHEAD ahead into L1 (PREFETCHT0), where AHEAD. The tile
    compiles for the signature gemm's loops call it with, its offsets and flag unknown until it runs:
    built for constants (Numba's literals), a tile whose k loop ran over X and A in turn vectorized,
    and for the offsets as variables it did not, and ran at a fifth of the speed."""
    scope = gemm.tile_scope()
    exec(gemm._tile_source("tile", rows, panels, prefetching), scope)
    tile = gemm.build_tile(scope["tile"])
    signature = tile_signature(prefetching)
    with gemm.straight_line_vectorizer():
        tile.compile(signature)
    tile.disable_compile()                         # the calls below run that build
    A, Wk = np.full((rows, 8), 2, np.float32), np.ones((panels, 8, gemm.V), np.float32)
    C = np.zeros((rows, panels * gemm.V), np.float32)
    args = (A[:, :0], A, Wk, C, 0, 0, 0, A.shape[1], False)
    tile(*args + ((Wk.reshape(-1), 2, 1 << 15) if prefetching else ()))
    assert (C == 16).all()
    asm = tile.inspect_asm(signature)
    assert re.search(r"v(fmadd\w*|mul|add)ps\s+.*%[yz]mm", asm)
    assert not re.search(r"v(fmadd\w*|mul|add)ss", asm)
    assert ("prefetcht2" in asm) == prefetching
    assert ("prefetcht0" in asm) == (not prefetching and panels == 1 and gemm.AHEAD > 0)
    if gemm.AVX512:
        assert re.search(r"vfmadd\w*ps\s+.*%zmm", asm) and not re.search(r"vfmadd\w*ps\s+.*%ymm", asm)


@pytest.mark.skipif(not kernels.ENABLED, reason="Numba not available")
def test_tiles_build_the_same_machine_code_without_ssa():
    """rnnkit.jit.WithoutSSA, the pipeline gemm builds its tiles with, leaves out only a pass that
    changes no instruction of a tile: a tile of 2 rows, built both ways, has the same machine code
    but for the functions' names."""
    import numba
    builds = []
    for build in (numba.njit(_nrt=False, **gemm.FAST), gemm.build_tile):
        scope = gemm.tile_scope()
        exec(gemm._tile_source("tile", 2), scope)
        tile = build(scope["tile"])
        with gemm.straight_line_vectorizer():
            tile.compile(tile_signature())
        asm = re.sub(r"_ZN[\w$.]+|\.L\w+", "NAME", tile.inspect_asm(tile_signature()))
        builds.append([line for line in asm.splitlines() if not line.lstrip().startswith((".file", ".ident"))])
    assert builds[0] == builds[1]
    assert any(re.search(r"vfmadd\w*ps", line) for line in builds[1])


@pytest.mark.skipif(not kernels.ENABLED or platform.machine() not in ("x86_64", "AMD64"), reason="x86 and Numba only")
def test_tiles_count_no_references():
    """rnnkit.gemm's tiles run with no reference counting: no call of Numba's NRT_incref or NRT_decref
    and no atomic (lock-prefixed) instruction, where the same tile compiled with Numba's defaults has
    both, for the views of A, W and C it takes."""
    import numba
    signature = tile_signature()
    scope = gemm.tile_scope()
    exec(gemm._tile_source("tile", 1), scope)
    counted = numba.njit(**gemm.FAST)(scope["tile"])
    for tile, counts in ((gemm.tile_1, False), (counted, True)):
        with gemm.straight_line_vectorizer():
            tile.compile(signature)
        asm = tile.inspect_asm(signature)
        assert ("NRT_incref" in asm and "NRT_decref" in asm) == counts
        assert bool(re.search(r"\block\b", asm)) == counts


@pytest.mark.skipif(not kernels.ENABLED, reason="Numba not available")
@pytest.mark.parametrize("R,paired", [(4, 0), (8, 0), (8, 32), (10, 32)])
def test_tiles_named_by_rows_cover_every_call(R, paired, monkeypatch):
    """With R rows in the largest tile (4 without AVX-512, 8 with it, 10 on Zen 5: gemm.R_ON), and
    paired tiles or none (gemm.PAIRED_ROWS), every tile that gemm's loops call exists and makes the
    rows and panels its name says, and tile_rows picks the tile of the rows and panels asked for
    (tiles compile lazily: nothing runs)."""
    monkeypatch.setattr(gemm, "R", R)
    monkeypatch.setattr(gemm, "PAIRED_ROWS", paired)
    pair_rows = range(1, gemm.PAIR_R + 1) if paired else range(0)
    tiles = gemm._tiles()
    loops = (gemm.panel_rows.py_func, gemm.gemm, tiles["tile_rows"].py_func)
    names = {name for f in loops for name in f.__code__.co_names}
    assert {name for name in names if name.startswith(("tile_", "pair_"))} <= tiles.keys()
    assert sorted(name for name in tiles if name[5:].isdigit()) == sorted(
        [f"tile_{r}" for r in range(1, R + 1)] + [f"pair_{r}" for r in pair_rows])
    singles = [(f"tile_{r}{s}", r, 1) for r in range(1, R + 1) for s in ("", "_prefetching")]
    pairs = [(f"pair_{r}", r, 2) for r in pair_rows]
    for name, rows, panels in singles + [("tile_wide", 1, gemm.WIDE)] + pairs:
        variables = tiles[name].py_func.__code__.co_varnames         # a{r}: a value of row r; w{p}: of panel p
        assert f"a{rows - 1}" in variables and f"a{rows}" not in variables
        assert f"w{panels - 1}" in variables and f"w{panels}" not in variables
        assert ("step" in variables) == name.endswith("_prefetching")
    called = []
    scope = dict(tiles["tile_rows"].py_func.__globals__)
    scope.update({name: (lambda name, r: lambda *args: called.append((name, r, args[4])))(name, r)
                  for name, r, _ in singles + pairs})
    pick = type(gemm.gemm)(tiles["tile_rows"].py_func.__code__, scope)
    expected = []
    for count, step, prefix, suffix, rows_asked in ((1, 0, "tile", "", range(1, R + 1)),
                                                    (1, 1, "tile", "_prefetching", range(1, R + 1)),
                                                    (2, 0, "pair", "", pair_rows)):
        for rows in rows_asked:
            pick(None, None, None, None, 3 * rows, rows, 0, 0, 1, False, None, 0, step, count)
            expected.append((f"{prefix}_{rows}{suffix}", rows, 3 * rows))
    assert called == expected


@pytest.mark.skipif(not kernels.ENABLED, reason="Numba not available")
@pytest.mark.parametrize("B", [1, 4, 9, 16, 20, 61])
@pytest.mark.parametrize("count", [1, 2])
def test_panel_rows_covers_each_row_once_in_tiles_of_at_most_R(B, count, monkeypatch):
    """... and the tiles share the lines to prefetch, spread evenly over their k loops: every line,
    or, where a single tile has more lines than k's, every other."""
    tiles = []
    monkeypatch.setitem(gemm.panel_rows.py_func.__globals__, "tile_rows",
                        lambda X, A, Wk, C, i0, rows, jp, k0, k1, add, flat, pf0, step, panels:
                        tiles.append((i0, rows, pf0, step, panels)))
    k0, k1, first, lines = 3, 259, 1000, 512                            # a chunk of 256 rows: 512 lines next
    gemm.panel_rows.py_func(None, np.empty((B, 2)), None, None, 0, k0, k1, False, None, first, lines, count)
    assert [t[0] for t in tiles] == list(np.cumsum([0] + [t[1] for t in tiles])[:-1])
    assert sum(t[1] for t in tiles) == B and len(tiles) == -(-B // (gemm.R if count == 1 else gemm.PAIR_R))
    assert all(t[4] == count for t in tiles)                           # one panel a tile, or two (paired)
    assert max(t[1] for t in tiles) - min(t[1] for t in tiles) <= 1
    fetched = sorted({pf0 + ((k * step) >> 16) for _, _, pf0, step, _ in tiles for k in range(k1 - k0)})
    assert fetched == list(range(first, first + lines, 2 if len(tiles) == 1 else 1))


@pytest.mark.skipif(not kernels.ENABLED, reason="Numba not available")
@pytest.mark.parametrize("whole_k,whole_bytes", [(False, 0), (True, 20 * 150 * 8), (True, 20 * 150 * 8 - 1)])
def test_whole_panels_in_chunks_with_prefetching_or_over_the_whole_of_k(whole_k, whole_bytes, monkeypatch):
    """whole_panels makes [X, A] @ W in chunks of K, prefetching the next one, as on most CPUs, or
    over the whole of K with no prefetching (gemm.WHOLE_K, Zen 4 and 5), but in chunks where A's rows
    over K take more than WHOLE_BYTES, whichever this CPU compiled: its Python runs here, calling
    the tiles' Python, with chunks of 64 rows and any W prefetched."""
    monkeypatch.setattr(gemm, "WHOLE_K", whole_k)
    monkeypatch.setattr(gemm, "WHOLE_BYTES", whole_bytes)
    monkeypatch.setattr(gemm, "PAIRED_ROWS", 0)
    monkeypatch.setattr(gemm, "KC", 64)
    monkeypatch.setattr(gemm, "PREFETCH_BYTES", 0)
    for f in ("panel_rows", "next_chunk", "tile_rows"):
        monkeypatch.setattr(gemm, f, getattr(gemm, f).py_func)
    tiles = gemm.tile_rows.__globals__                                  # the tiles tile_rows calls
    for name in [name for name in tiles if name.startswith(("tile_", "pair_")) and name != "tile_rows"]:
        monkeypatch.setitem(tiles, name, tiles[name].py_func)
    fetched, spans = [], set()
    tile_rows = gemm.tile_rows
    monkeypatch.setattr(gemm, "tile_rows", lambda *args: spans.add(args[7:9]) or tile_rows(*args))  # k0, k1
    monkeypatch.setitem(tiles["tile_1"].__globals__, "prefetch", lambda flat, i: fetched.append(i))
    monkeypatch.setitem(tiles["tile_1"].__globals__, "prefetch_l1", lambda a, i: None)    # an intrinsic: compiled code only
    B, K, N = 20, 150, 96                                               # 3 chunks, 3 panels, tiles of R rows
    rng = np.random.default_rng(0)
    A, W = rng.standard_normal((B, K)), rng.standard_normal((K, N))
    cols = np.arange(N)[None]
    packed = np.empty(gemm.packed_shape(1, K, N))
    gemm.pack[1](W, cols, packed)
    C = np.full((B, N), np.nan)
    assert gemm.whole_panels.py_func(A[:, :50], A[:, 50:], packed[0], C) == 3
    assert relative_error(C, A @ W) < 1e-14
    assert (len(fetched) == 0) == whole_k                              # a chunk ahead, but the last
    assert spans == ({(0, K)} if whole_k and B * K * 8 <= whole_bytes else {(0, 50), (50, 100), (100, 150)})
