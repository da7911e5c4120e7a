"""Plots for the HTML report, drawn with matplotlib when it is installed.

matplotlib is optional (``pip install 'pytest-vlmgate[report]'``): without it every
function here returns ``None`` and the report shows its tables only. Figures are drawn
through the object-oriented API on an Agg canvas, never through ``pyplot``, so making a
report inside a pytest session changes no global matplotlib state (backend, open
figures).

A value plotted without its limit cannot be read as a verdict (is 0.09 good?), so every
bar that has a limit carries it as a marker line across its row, and a bar without one
is drawn grey: recorded, not gated.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PASS_COLOUR, FAIL_COLOUR, RECORDED_COLOUR, LIMIT_COLOUR = "#4c78a8", "#e45756", "#b8b8b8", "#222222"


@dataclass(frozen=True)
class Bar:
    """One bar: a label, a value with its interval, whether its gate passed, and the bounds
    of its limit (``max`` and / or ``min``, drawn as lines). ``gated``: a limit judges it,
    which may bound only its change since the baseline (no line to draw); ``None``: gated
    when it has bounds. A bar no limit judges is drawn in the "recorded" colour."""

    label: str
    value: float
    ci_low: float
    ci_high: float
    passed: bool
    limits: tuple[float, ...] = ()
    gated: bool | None = None

    @property
    def judged(self) -> bool:
        return bool(self.limits) if self.gated is None else self.gated


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def interval_figure(title: str, bars: Sequence[Bar], xlabel: str) -> "Figure | None":
    """Horizontal bars with 95 % interval whiskers and a marker line at each bar's limit."""
    if not bars or not matplotlib_available():
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 1.1 + 0.32 * len(bars)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    rows = list(reversed(bars))  # first bar on top
    positions = range(len(rows))
    values = [b.value for b in rows]
    errors = [[max(0.0, b.value - b.ci_low) for b in rows], [max(0.0, b.ci_high - b.value) for b in rows]]
    colours = [RECORDED_COLOUR if not b.judged else PASS_COLOUR if b.passed else FAIL_COLOUR for b in rows]
    axes.barh(positions, values, xerr=errors, color=colours, ecolor="#333333", capsize=3)
    limited = [(y, limit) for y, b in zip(positions, rows) for limit in b.limits]
    if limited:
        axes.vlines([limit for _, limit in limited], [y - 0.45 for y, _ in limited], [y + 0.45 for y, _ in limited],
                    colors=LIMIT_COLOUR, linestyles="dashed", linewidth=1.6, label="limit", zorder=3)
        axes.legend(loc="lower right", fontsize=8, framealpha=0.9)
    axes.set_yticks(list(positions), [b.label for b in rows], fontsize=8)
    axes.set_xlabel(xlabel)
    reach = max([b.ci_high for b in rows] + [limit for _, limit in limited] + [1e-6])
    axes.set_xlim(0, reach * 1.08)
    axes.set_title(title, fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def interval_bars(title: str, bars: Sequence[Bar], xlabel: str) -> bytes | None:
    """``interval_figure`` as PNG bytes (``None`` without matplotlib)."""
    figure = interval_figure(title, bars, xlabel)
    if figure is None:
        return None
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
