"""Numba's on-disk cache of rnnkit's kernels goes stale when any file they draw from changes, not
only the kernel's own (rnnkit.jit._StampedLocator)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from rnnkit import jit

CALL = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from rnnkit import kernels
assert kernels.__file__.startswith(sys.argv[1]), kernels.__file__
kernels.add_rows(np.zeros((3, 2)), np.array([0, 2]), np.ones((2, 2)))
stats = kernels.add_rows.stats
print(json.dumps([sum(stats.cache_hits.values()), sum(stats.cache_misses.values())]))
"""


def test_sources_hash_follows_every_source(tmp_path):
    for name in jit.SOURCES:
        (tmp_path / name).write_text(f"# {name}\n")
    seen = {jit.sources_hash(str(tmp_path))}
    assert jit.sources_hash(str(tmp_path)) in seen            # the same files, the same hash
    for name in jit.SOURCES:
        (tmp_path / name).write_text(f"# {name}, edited\n")
        seen.add(jit.sources_hash(str(tmp_path)))
    assert len(seen) == len(jit.SOURCES) + 1                  # each edit, a new hash


@pytest.mark.skipif(not jit.ENABLED, reason="Numba not available")
def test_a_kernel_recompiles_after_an_edit_of_another_source(tmp_path):
    """A kernel of kernels.py loads from the cache until gemm.py changes, kernels.py untouched."""
    package = tmp_path / "rnnkit"
    shutil.copytree(os.path.dirname(jit.__file__), package, ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def hits_and_misses():
        done = subprocess.run([sys.executable, "-c", CALL, str(tmp_path)], env=env, capture_output=True,
                              text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert hits_and_misses() == [0, 1]                 # compiled and cached
    assert hits_and_misses() == [1, 0]                 # loaded
    with open(package / "gemm.py", "a") as f:
        f.write("\n# an edit\n")
    assert hits_and_misses() == [0, 1]                 # stale: compiled again
    assert hits_and_misses() == [1, 0]


@pytest.mark.skipif(not jit.ENABLED, reason="Numba not available")
@pytest.mark.parametrize("name,features", [(None, None), ("skylake-avx512", None), (None, "+avx2")])
def test_wide_vectors_drops_the_256_bit_preference_unless_the_user_chose(name, features):
    from numba.core.codegen import get_host_cpu_features
    config = type("Config", (), {"CPU_NAME": name, "CPU_FEATURES": features})()
    jit.wide_vectors(config)
    if name is None and features is None:
        assert config.CPU_FEATURES == get_host_cpu_features() + ",-prefer-256-bit"
    else:
        assert (config.CPU_NAME, config.CPU_FEATURES) == (name, features)
