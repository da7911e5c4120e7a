"""Intervals for units nested in samples: the instances of one image are not independent trials.

The 8 shifts of one image, the 5 severities of one corruption, the 7 blur levels and the
≤ 3 overlays of one image all show that image: a fragile image flips under most of its
shifts, a robust one under none. Pooling them as independent trials (a Wilson interval
over instances) counts one image's fragility up to 8 times, so the interval is too narrow
by the square root of the *design effect* ``deff = 1 + (m − 1)·ICC`` (``m`` instances per
image, ``ICC`` their correlation): 2.5x for the 8 shifts of an earlier ``shapes-v2`` (deff 6.3), whose
translation IFR at 100 samples is [0.087, 0.130] over instances but [0.058, 0.174]
clustered by image. Every interval here treats the sample (the cluster) as the
independent unit.

**Variance.** Both kinds of metric are ratio estimators over clusters: with ``T_g`` the
sum of cluster ``g``'s outcomes and ``M_g`` its number of units,
``value = Σ T_g / Σ M_g`` and its cluster-robust (linearisation, "sandwich") variance is
``var = G/(G−1) · Σ_g (T_g − value·M_g)² / (Σ_g M_g)²`` on ``G − 1`` degrees of freedom.
It needs no model of how instances correlate, and with one unit per cluster it is the
ordinary variance of a mean.

**Proportions** (IFR, the pooled ``any`` row, the follow rate, E-bar over blur levels):
the Korn & Graubard (1998) interval, the one survey statistics uses for proportions of
clustered samples: the Clopper-Pearson interval at the *effective* sample size
``n_eff = value·(1 − value) / var`` (at most ``n``: clustering never adds information),
scaled by ``(t_{n−1} / t_{G−1})²`` for the few degrees of freedom that ``G`` images give.
It stays inside [0, 1], keeps a finite width at 0 flips, and a unit per cluster gives the
independent case (there the plain Wilson interval is used, as for every unclustered
proportion). With 0 or all units positive the spread between images, and so the
correlation, cannot be estimated: the interval then assumes the worst (one trial per
image, ``n_eff = G``) rather than the best.

**Means** (RAS over severities, the excess flip rate over overlay pairs, drift over
samples): Hall's (1992) skewness-corrected t interval on the linearised cluster residuals.
Per-image means of these metrics are skewed (most images keep RAS near 1, a few collapse;
drift has a long right tail) and a symmetric t interval then misses on one side; Hall's
monotone cubic transformation of the t statistic removes the first-order skewness term.
The interval is clipped to the metric's range.

**Why not a cluster bootstrap.** In ``tests/test_cluster_statistics.py`` (50 images, a
latent per-image propensity, 1,000 runs) the percentile bootstrap over images covers 0.92
when flips concentrate on a few fragile images (IFR 0.06, ICC 0.4), because a resample can
only reuse the images that happened to be drawn; the Korn-Graubard interval covers 0.95,
and every interval here ≥ 0.94 in each scenario of that file (the instance-level Wilson
interval 0.51-0.87) but one: drift with a heavy tail between images (sd(log) 1) gets 0.93,
missing on the upper side only, so a ``max`` gate still fails a model at its limit in at
most 2.5 % of runs. They are also closed-form: no generator to seed, no resampling cost,
and the same numbers on every machine.

References: E. L. Korn, B. I. Graubard, "Confidence intervals for proportions with small
expected number of positive counts estimated from survey data", Survey Methodology 24
(1998) 193-201. P. Hall, "On the removal of skewness by transformation", JRSS B 54 (1992)
221-228.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from vlmgate.metrics.stats import wilson_interval
from vlmgate.records import MEAN, PROPORTION, MetricResult, WorstSample

#: Confidence level of every interval a gate judges.
CONFIDENCE = 0.95
KORN_GRAUBARD = "Korn-Graubard (Clopper-Pearson at the effective n), clustered by image"
WILSON = "Wilson"
HALL_T = "skewness-corrected t (Hall 1992), clustered by image"
#: The intervals that treat an image's units as one cluster: a verdict may say so only for these.
CLUSTERED_INTERVALS = frozenset({KORN_GRAUBARD, HALL_T})


@dataclass(frozen=True)
class Clustered:
    """Outcomes summed per cluster: ``totals[g]`` over ``sizes[g]`` units, clusters sorted by id.

    ``value``, ``variance`` and the intervals below treat clusters as the independent
    draws; a unit without a cluster is its own.
    """

    totals: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of_units(cls, units: Mapping[str, float], clusters: Mapping[str, str] | None = None) -> "Clustered":
        """Group ``units`` (key -> outcome) by ``clusters`` (key -> cluster id); every unit
        counts once (a pooled rate or mean)."""
        clusters = clusters or {}
        grouped: dict[str, list[float]] = {}
        for key, outcome in units.items():
            grouped.setdefault(clusters.get(key, key), []).append(float(outcome))
        order = sorted(grouped)
        return cls(np.array([math.fsum(grouped[c]) for c in order], dtype=np.float64),
                   np.array([len(grouped[c]) for c in order], dtype=np.float64))

    @property
    def n(self) -> int:
        return int(self.sizes.sum())

    @property
    def n_clusters(self) -> int:
        return int(self.totals.size)

    @property
    def nested(self) -> bool:
        """Whether some cluster holds more than one unit (else the units are independent)."""
        return bool((self.sizes > 1).any())

    @property
    def value(self) -> float:
        return float(self.totals.sum() / self.sizes.sum()) if self.totals.size else math.nan

    def residuals(self) -> np.ndarray:
        """Linearised residuals ``(T_g − value·M_g) / mean(M)``: they sum to 0."""
        return (self.totals - self.value * self.sizes) / self.sizes.mean()

    def variance(self) -> float:
        """Cluster-robust variance of ``value`` (module docstring); NaN with fewer than 2 clusters."""
        g = self.n_clusters
        if g < 2:
            return math.nan
        return float(np.sum(self.residuals() ** 2) / (g * (g - 1)))

    def design_effect(self) -> float:
        """``var / (p(1−p)/n)`` of a proportion: how many instances one independent trial is worth."""
        p = self.value
        if not 0.0 < p < 1.0 or self.n_clusters < 2:
            return math.nan
        return self.variance() / (p * (1.0 - p) / self.n)


def _t(df: float, confidence: float) -> float:
    return float(stats.t.ppf(0.5 + confidence / 2, df))


def proportion_interval(data: Clustered, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Korn-Graubard interval of a clustered proportion (module docstring); ``[0, 1]`` if undefined.

    Independent units (one per cluster) get the Wilson interval.
    """
    n, g, p = data.n, data.n_clusters, data.value
    if n == 0 or g < 2:
        return 0.0, 1.0
    if not data.nested:
        return wilson_interval(int(round(data.totals.sum())), n, float(stats.norm.ppf(0.5 + confidence / 2)))
    variance = data.variance()
    if 0.0 < p < 1.0:
        effective = min(float(n), p * (1.0 - p) / variance) if variance > 0 else float(n)
    else:  # no spread between images: assume the worst correlation, one trial per image
        effective = float(g)
    effective *= (_t(n - 1, confidence) / _t(g - 1, confidence)) ** 2
    successes = p * effective
    alpha = 1.0 - confidence
    low = float(stats.beta.ppf(alpha / 2, successes, effective - successes + 1)) if successes > 0 else 0.0
    high = float(stats.beta.ppf(1 - alpha / 2, successes + 1, effective - successes)) if p < 1.0 else 1.0
    return low, high


def mean_interval(data: Clustered, *, lowest: float = -math.inf, highest: float = math.inf,
                  confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Hall's skewness-corrected t interval of a clustered mean, clipped to ``[lowest, highest]``.

    With ``T = (value − μ)/se``, Hall's ``g(T) = T + a·T² + a²·T³/3 + b`` with
    ``a = γ/(3√G)``, ``b = γ/(6√G)`` (``γ`` the skewness of the cluster residuals) is
    monotone and close to t-distributed, so ``μ ∈ [value − se·g⁻¹(q), value − se·g⁻¹(−q)]``
    with ``q`` the t quantile on ``G − 1`` degrees of freedom. Fewer than 2 clusters give
    the whole range; clusters that all agree give the point.
    """
    g, value = data.n_clusters, data.value
    if g < 2:
        return lowest, highest
    residuals = data.residuals()
    second = float(np.mean(residuals ** 2))
    if second == 0.0:
        return value, value
    se = math.sqrt(data.variance())
    skew = float(np.mean(residuals ** 3)) / second ** 1.5
    a, b = skew / (3 * math.sqrt(g)), skew / (6 * math.sqrt(g))
    q = _t(g - 1, confidence)

    def inverse(y: float) -> float:
        if abs(a) < 1e-12:
            return y - b
        return (float(np.cbrt(1 + 3 * a * (y - b))) - 1) / a

    low, high = value - se * inverse(q), value - se * inverse(-q)
    return max(lowest, low), min(highest, high)


def interval_details(data: Clustered, method: str) -> dict[str, Any]:
    """What a result records about how its interval was made (the method, a proportion's design effect)."""
    details: dict[str, Any] = {"interval": method}
    deff = data.design_effect() if method == KORN_GRAUBARD else math.nan
    if math.isfinite(deff):
        details["design_effect"] = deff
    return details


def clustered_proportion(name: str, units: Mapping[str, float], clusters: Mapping[str, str], *, better: str,
                         worst: Sequence[WorstSample] = (), details: Mapping[str, Any] | None = None) -> MetricResult:
    """A proportion over 0/1 ``units`` nested in ``clusters``, with the interval the gate judges."""
    data = Clustered.of_units(units, clusters)
    low, high = proportion_interval(data)
    method = KORN_GRAUBARD if data.nested else WILSON
    return MetricResult(name, data.value, low, high, data.n, {**(details or {}), **interval_details(data, method)},
                        kind=PROPORTION, better=better, units=dict(units), clusters=dict(clusters),
                        count=int(round(data.totals.sum())), worst=tuple(worst))


def clustered_mean(name: str, units: Mapping[str, float], clusters: Mapping[str, str], *, better: str,
                   lowest: float = -math.inf, highest: float = math.inf,
                   details: Mapping[str, Any] | None = None) -> MetricResult:
    """A mean over real-valued ``units`` nested in ``clusters`` (see ``Clustered.of_units``)."""
    data = Clustered.of_units(units, clusters)
    low, high = mean_interval(data, lowest=lowest, highest=highest)
    return MetricResult(name, data.value, low, high, len(units), {**(details or {}), **interval_details(data, HALL_T)},
                        kind=MEAN, better=better, units=dict(units), clusters=dict(clusters))
