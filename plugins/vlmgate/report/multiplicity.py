"""Many paired tests in one diff: Holm's step-down adjustment of their p-values.

``vlmgate diff`` tests every metric of every case, 80 to 180 tests for the bundled suite.
At alpha 0.05 each, two runs of equally good checkpoints would show about one
"significant" change in twenty tests by chance alone, and ``--fail-on any-regression``
would fail such a release most of the time. So the p-values of one diff are adjusted
together, and a change is significant when its *adjusted* p-value is below alpha.

Holm (1979), not Benjamini–Hochberg: the diff gates a release, so what must be bounded
is the chance of calling *any* change significant when nothing changed (the family-wise
error rate), not the expected share of false calls among the calls made (the false
discovery rate, which BH bounds and which lets more noise through as more is called).
Holm bounds the family-wise rate under any dependence between the tests (the metrics of
one case, IFR and IV, move together), which BH guarantees only for positively dependent
tests; and it is uniformly more powerful than Bonferroni. The adjusted p-values are

    p~_(i) = max_{j <= i} min(1, (m - j + 1) · p_(j))

over the ``m`` p-values sorted ascending; a test is rejected at alpha exactly when Holm's
step-down procedure rejects it. Tests without a p-value (nothing paired) are not counted
in ``m`` and keep NaN.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

METHOD = "Holm"


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values in the input order (NaN in, NaN out, and not counted)."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    if tested.size == 0:
        return adjusted
    order = tested[np.argsort(p[tested], kind="stable")]
    m = order.size
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted
