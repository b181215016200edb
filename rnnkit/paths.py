"""Where the real data sets live: $RNNKIT_DATA, else ../shared/data (from the working directory,
then from the repository root)."""
from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    env = os.environ.get("RNNKIT_DATA")
    if env:
        return Path(env)
    cwd = Path("../shared/data")
    if cwd.is_dir():
        return cwd
    return Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def data_path(*parts: str) -> Path:
    """A file under the data folder; raises FileNotFoundError naming the path if it is missing."""
    path = data_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"data file {str(path)!r} not found (set RNNKIT_DATA to the data folder)")
    return path
