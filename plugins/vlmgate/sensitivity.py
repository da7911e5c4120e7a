"""Whether a gate can fail at this run's n, and the smallest effect it would catch.

An interval-mode gate fails only when the whole 95 % interval lies beyond its limit, so at
a small n it may be unable to fail whatever the model does: ``decay_c`` with ``max = 0.95``
cannot fail below 73 images (every answer kept at every level gives [0.951, 1] only from
there). Such a gate is *inert*: it reads as a pass while judging nothing, and a user who
is not told switches off a gate that never fired, or trusts one that cannot.

``sensitivity(threshold, result)`` answers from the result's own interval method
(``vlmgate.metrics.clustered``), for the worst outcome the metric can take:

* a proportion under ``max`` (``min``): every unit 1 (0), with no spread between images,
  so the interval rests on the images alone (the clustered method's own worst case). If
  even that interval does not clear the limit, the gate is inert, and ``needs_clusters`` is
  the smallest number of images at which it would not be. Otherwise ``fails_from`` is the
  smallest share of whole images failing (every instance of a failing image failing) that
  would fail the gate: the effect it catches for sure at this n.
* a mean: with fewer than two images the interval is the metric's whole range, so the
  gate is inert; otherwise a mean can reach any value in its range and the gate can fail.
* ``strict`` mode compares the point value, which any outcome beyond the limit fails.

A limit at the edge of the metric's range (``max = 1`` on a share) records the metric
without gating it; that is a choice, not an inert gate, and is not reported as one.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlmgate.records import PROPORTION, MetricResult
from vlmgate.thresholds import Threshold

#: Largest number of images ``needs_clusters`` searches up to.
MOST_CLUSTERS = 100_000


@dataclass(frozen=True)
class Sensitivity:
    """What a gate can detect at this run's n (see the module docstring)."""

    inert: bool
    #: The number of independent samples (images) the result rests on.
    n_clusters: int
    #: Smallest share of whole failing images that fails the gate (proportions, not inert).
    fails_from: float | None = None
    #: Smallest number of images at which the gate could fail (inert proportions).
    needs_clusters: int | None = None

    def describe(self, threshold: Threshold) -> str:
        if self.inert:
            needs = f" (it needs at least {self.needs_clusters})" if self.needs_clusters else ""
            return (f"inert: {threshold.describe()} cannot fail at n = {self.n_clusters} images whatever the "
                    f"model does{needs}; raise --vlmgate-limit or move the limit")
        if self.fails_from is not None:
            return f"catches {self.fails_from:.3f} or more of whole images failing at n = {self.n_clusters}"
        return ""


def _proportion_bound(successes: int, clusters: int, per_cluster: int, upper: bool) -> float:
    """The clustered interval's bound when ``successes`` of ``clusters`` images fail whole."""
    import numpy as np

    from vlmgate.metrics.clustered import Clustered, proportion_interval

    # Clusters in the order Clustered.of_units gives ids "0", "1", ... (as strings), so the
    # sums below add in the same order as for a result's own units.
    order = sorted(range(clusters), key=str)
    data = Clustered(np.array([float(per_cluster) if c < successes else 0.0 for c in order]),
                     np.full(clusters, float(per_cluster)))
    low, high = proportion_interval(data)
    return high if upper else low


def sensitivity(threshold: Threshold, result: MetricResult, lowest: float = 0.0, highest: float = 1.0
                ) -> Sensitivity:
    """Whether ``threshold`` can fail ``result``'s metric at its n (``lowest`` / ``highest``: its range)."""
    clusters = result.n_clusters
    gated_max = threshold.max is not None and threshold.max < highest
    gated_min = threshold.min is not None and threshold.min > lowest
    if threshold.mode == "strict" or not (gated_max or gated_min) or clusters == 0:
        return Sensitivity(False, clusters)
    if result.kind != PROPORTION:
        return Sensitivity(clusters < 2, clusters, needs_clusters=2 if clusters < 2 else None)
    per_cluster = max(1, round(result.n / clusters))

    def fails(successes: int, images: int) -> bool:
        if (gated_max and threshold.max is not None
                and _proportion_bound(successes, images, per_cluster, upper=False) > threshold.max):
            return True
        return bool(gated_min and threshold.min is not None
                    and _proportion_bound(successes, images, per_cluster, upper=True) < threshold.min)

    worst = clusters if gated_max else 0
    if not fails(worst, clusters):
        return Sensitivity(True, clusters, needs_clusters=_needed(fails, gated_max))
    if not gated_max:
        return Sensitivity(False, clusters)
    low, high = 0, clusters  # fails(high) holds: the smallest failing count, by bisection
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if fails(middle, clusters) else (middle, high)
    return Sensitivity(False, clusters, fails_from=high / clusters)


def _needed(fails, gated_max: bool) -> int | None:
    """The smallest number of images at which the worst outcome fails the gate (doubling, then bisection)."""
    def can_fail(images: int) -> bool:
        return fails(images if gated_max else 0, images)

    high = 2
    while not can_fail(high):
        high *= 2
        if high > MOST_CLUSTERS:
            return None
    low = high // 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if can_fail(middle) else (middle, high)
    return high
