"""Plotting helpers shared by the analysis and the model card: a figure on matplotlib's Agg canvas (no pyplot: no
global backend switch, nothing left open) and an atomic PNG write.

The PNG goes through ``curricula.run_layout.atomic_write``: a ``_``-prefixed temporary next to the target, then one
rename. A reader (a checkpoint push uploading the folder in the background) sees the old plot or the new one, and a
plot hard-linked into a staging folder is replaced, never written through.
"""

from __future__ import annotations

from pathlib import Path

from curricula.run_layout import atomic_write

__all__ = ["figure", "save_figure", "domain_colors"]


def figure(width: float, height: float, dpi: int = 100):
    """A ``matplotlib.figure.Figure`` of ``width`` x ``height`` inches on the Agg canvas, constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path) -> Path:
    """Write ``fig`` as a PNG to ``path``, atomically (see the module docstring)."""
    return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png"))


def domain_colors(n: int) -> list:
    """``n`` distinct colours (tab10 up to 10 domains, tab20 beyond)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
