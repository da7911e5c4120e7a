"""Plots for the HTML report, drawn with matplotlib when it is installed.

matplotlib is optional (``pip install 'pytest-vlmgate[report]'``): without it every
function here returns ``None`` and the report shows its tables only. Figures are drawn
through the object-oriented API on an Agg canvas, never through ``pyplot``, so making a
report inside a pytest session changes no global matplotlib state (backend, open
figures).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Bar:
    """One bar: a label, a value with its interval, and whether its gate passed."""

    label: str
    value: float
    ci_low: float
    ci_high: float
    passed: bool


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def interval_bars(title: str, bars: Sequence[Bar], xlabel: str) -> bytes | None:
    """A horizontal bar chart with 95 % interval whiskers, as PNG bytes (``None`` without matplotlib)."""
    if not bars or not matplotlib_available():
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 0.8 + 0.32 * len(bars)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    rows = list(reversed(bars))  # first bar on top
    positions = range(len(rows))
    values = [b.value for b in rows]
    errors = [[max(0.0, b.value - b.ci_low) for b in rows], [max(0.0, b.ci_high - b.value) for b in rows]]
    colours = ["#4c78a8" if b.passed else "#e45756" for b in rows]
    axes.barh(positions, values, xerr=errors, color=colours, ecolor="#333333", capsize=3)
    axes.set_yticks(list(positions), [b.label for b in rows], fontsize=8)
    axes.set_xlabel(xlabel)
    axes.set_xlim(0, max(1e-6, max(b.ci_high for b in rows)) * 1.05)
    axes.set_title(title, fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
