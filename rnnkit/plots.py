"""matplotlib without a screen, and PNGs written atomically."""
from __future__ import annotations

import io

from .module import atomic_write


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path, dpi: int = 80) -> str:
    """Write `fig` to `path` as a PNG (temporary file, then rename) and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    atomic_write(str(path), buf.getvalue())
    return str(path)
