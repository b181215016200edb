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


def read_user_bytes(path, what: str) -> bytes:
    """The bytes of a user's file; a missing path or a folder raises, naming `what` and the path."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} not found")
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a folder, not a file")
    return path.read_bytes()


def read_user_text(path, what: str) -> str:
    """A user's UTF-8 text file, with the errors of read_user_bytes and one for undecodable text."""
    try:
        return read_user_bytes(path, what).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {str(path)!r} is not UTF-8 text: {e}") from None
