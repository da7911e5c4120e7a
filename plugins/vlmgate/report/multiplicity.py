"""Many paired tests in one run: the one multiplicity policy of the gate, the diff and the report.

A run against a baseline tests the change of many metrics at once (20 to 30 change limits
on the bundled suite, 150 metrics in a whole diff). At alpha 0.05 each, two runs of equally
good checkpoints would show about one "significant" change in twenty tests by chance
alone. So the tests of one *family* are adjusted together, bounding the chance of calling
*any* change of the family significant when nothing changed (the family-wise error rate),
and a change is significant when its p-value is below ``alpha / m`` (Bonferroni): its
adjusted p-value ``min(1, m · p)`` is below alpha.

The families:

* **gated changes**: every metric of the run whose limit bounds its change
  (``max_increase`` / ``max_decrease``) and that has a counterpart in the baseline. The
  pytest gate counts them when the run is collected, so every case knows its level before
  any case runs; the run record stores the level each change was judged at, and ``vlmgate
  diff`` reads it back, so the failure line, the banner, the report and the diff judge
  each gated change with the same p-value at the same level and cannot disagree;
* **recorded changes**: the diff's other paired tests (metrics without a change limit),
  adjusted the same way among themselves. They are what to look at, not release criteria.

Bonferroni rather than Holm's step-down: Holm rejects more, but whether it rejects one
hypothesis depends on the p-values of all the others, so a case's verdict could only be
known once every other case had finished; in a pytest run (under xdist, on other workers,
or in other shards) each case is reported when it ends, and a verdict reported must never
change afterwards. Bonferroni controls the family-wise rate under any dependence between
the tests (IFR and IV move together) and decides each test on its own. The p-values are
resolved as far as that decision needs (``metrics.paired``: exact for integer differences,
adaptive resampling otherwise), so a clear change is never lost to a resampling floor.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from vlmgate.metrics.paired import ALPHA

METHOD = "Bonferroni"
GATED_FAMILY = "gated changes"
RECORDED_FAMILY = "recorded changes"


def level(family_size: int, alpha: float = ALPHA) -> float:
    """The significance level each test of a family of ``family_size`` is decided at."""
    return alpha / max(1, family_size)


def adjust(p_values: Sequence[float], family_size: int | None = None) -> np.ndarray:
    """Bonferroni-adjusted p-values, ``min(1, m · p)``, in the input order (NaN in, NaN out).

    ``family_size`` is ``m``; by default the number of p-values that are not NaN.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = int(np.count_nonzero(~np.isnan(p))) if family_size is None else family_size
    return np.minimum(1.0, p * max(1, m))


def adjusted_p(p_value: float, decided_at: float, alpha: float = ALPHA) -> float:
    """A p-value decided at ``decided_at`` on the alpha scale: ``min(1, p · alpha / decided_at)``."""
    if math.isnan(p_value):
        return math.nan
    return min(1.0, p_value * alpha / decided_at)
