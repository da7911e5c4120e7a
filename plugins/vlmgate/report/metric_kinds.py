"""What kind of quantity a metric is, and which direction of change is worse.

Comparing two releases needs two facts about each metric that its value alone does not
say. The *kind* picks the paired test: a ``proportion`` (0/1 outcome per unit: flip
rates, accuracy) is compared with an exact McNemar test, a ``mean`` (a real-valued
outcome per unit: drift, RAS) with a paired bootstrap. The *better* direction turns a
significant change into a regression or an improvement (flip rates up is worse,
accuracy down is worse).

Metrics declare both in their details (``kind``, ``better``), which keeps this open to
metrics added later; for a metric that does not, the kind falls back to ``proportion``
when the details carry a success ``count`` (what ``metrics.flips.proportion`` writes)
and ``mean`` otherwise, and the direction falls back to the threshold it is judged by
(only a ``min`` -> higher is better) and then to "lower", since most robustness metrics
measure damage.
"""

from __future__ import annotations

from typing import Any, Mapping

PROPORTION = "proportion"
MEAN = "mean"
KINDS = (PROPORTION, MEAN)
LOWER = "lower"
HIGHER = "higher"
DIRECTIONS = (LOWER, HIGHER)


def metric_kind(details: Mapping[str, Any]) -> str:
    """``proportion`` or ``mean`` for a metric with these details."""
    declared = details.get("kind")
    if declared in KINDS:
        return str(declared)
    return PROPORTION if "count" in details else MEAN


def better_direction(details: Mapping[str, Any], has_max: bool = False, has_min: bool = False) -> str:
    """``lower`` or ``higher``: which way a change of this metric is an improvement."""
    declared = details.get("better")
    if declared in DIRECTIONS:
        return str(declared)
    if has_min and not has_max:
        return HIGHER
    return LOWER


def is_worse(better: str, delta: float) -> bool:
    """Whether a change by ``delta`` (after - before) goes the worse way."""
    return delta > 0 if better == LOWER else delta < 0
