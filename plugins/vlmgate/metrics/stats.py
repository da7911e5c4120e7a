"""Confidence intervals shared by every metric.

Gates are statistical: a proportion is judged by its Wilson interval, a mean by a seeded
bootstrap, so that sampling noise alone does not fail (or pass) a release.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import stats

#: Two-sided 95 % normal quantile.
Z95 = float(stats.norm.ppf(0.975))


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``successes / n`` (scipy's ``binomtest(...).proportion_ci``).

    Chosen over the normal (Wald) interval because gates sit near 0 (flip rates of a
    few percent) where Wald collapses to zero width. ``n = 0`` gives the vacuous [0, 1];
    ``z`` sets the confidence level (1.96 for 95 %).
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return 0.0, 1.0
    interval = stats.binomtest(successes, n).proportion_ci(2 * stats.norm.cdf(z) - 1, method="wilson")
    # At p = 0 or 1 the bound equals the point exactly; float rounding must not move it.
    low = 0.0 if successes == 0 else float(interval.low)
    high = 1.0 if successes == n else float(interval.high)
    return low, high


def bootstrap_interval(
    values: np.ndarray,
    statistic: Callable[..., np.ndarray] = np.mean,
    *,
    rng: np.random.Generator,
    n_resamples: int = 2000,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``values`` (scipy.stats.bootstrap).

    ``statistic`` is vectorised numpy-style: ``statistic(x, axis=-1)`` (``np.mean``,
    ``np.median``, ...), which lets scipy resample in batches.
    The generator is explicit so the interval is reproducible. Fewer than two values (or
    all equal) give a degenerate interval at the point value instead of NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan
    point = float(statistic(values))
    if values.size < 2 or np.all(values == values[0]):
        return point, point
    res = stats.bootstrap(
        (values,),
        statistic,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=rng,
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
