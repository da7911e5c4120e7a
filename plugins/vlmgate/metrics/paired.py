"""Paired tests of a metric's change between two runs, on the same units.

Two releases are judged on the same samples, so their difference is tested on the
pairs, not by comparing two independent intervals (which would need a much larger
change to notice it, and would flag noise as often as it should). Units are paired by
key (``"sample|variant"`` or a sample id); units present in only one run are left out.

* **proportion** (0/1 per unit): the exact McNemar test. Only discordant pairs carry
  information: with ``rose`` units 0 -> 1 and ``fell`` units 1 -> 0, under "no change"
  each discordant pair is equally likely to go either way, so ``rose`` is
  Binomial(rose + fell, 1/2) and the two-sided p-value is that binomial test's
  (``scipy.stats.binomtest``). No discordant pair -> p = 1.
* **mean** (real-valued per unit): a paired bootstrap of the mean difference. The
  differences are centred (the null hypothesis "mean difference 0" made true), pairs
  resampled with replacement, and p = (1 + #{|resampled mean| >= |observed mean|}) /
  (1 + resamples). All differences zero -> p = 1.

* **clustered units** (instances nested in a sample: the shifts of one image, its
  severities, its blur levels), either kind: a sign-flip randomisation test on the
  per-cluster differences ``D_g = Σ_{units of g} (after − before)``. Instances of one
  image change together (a retrained model that became fragile on an image flips most
  of its shifts), so their discordant pairs are not independent and McNemar over
  instances calls noise significant: on ``shapes-v1`` -> ``shapes-v2`` translation it
  says p = 1.5e-4 where the images say p ≈ 0.10, and in ``tests/test_cluster_statistics.py``
  it is significant in 19 % of runs of two equally good models (this test: 4 %, at most
  alpha). Under "no change" the two runs
  are exchangeable, so each ``D_g`` is as likely to be ``−D_g``: p is the share of the
  ``2^G`` sign assignments whose ``|Σ ± D_g|`` reaches the observed ``|Σ D_g|`` (exact
  over the non-zero clusters when there are at most ``EXACT_SIGN_FLIPS``, else
  ``SIGN_FLIP_RESAMPLES`` random ones, counted as (1 + extreme) / (1 + resamples), or
  Hoeffding's bound on the exact p where that is smaller: the far tail resampling cannot
  resolve, which matters once a report adjusts many p-values at once). It
  needs no model of the correlation, and with one 0/1 unit per cluster it *is* the exact
  McNemar test, which is therefore kept for independent units.

A change is significant when p < ``ALPHA``; the resampling tests draw from an explicit
generator, so a comparison is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy import stats

from vlmgate.errors import RecordError
from vlmgate.records import MEAN, PROPORTION

#: Significance level of every paired test.
ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
#: Resamples drawn per batch, bounding memory at ``batch × n`` indices.
_BOOTSTRAP_BATCH = 250

#: Clusters with a non-zero difference up to which the sign-flip test enumerates every assignment.
EXACT_SIGN_FLIPS = 11
SIGN_FLIP_RESAMPLES = 1999

MCNEMAR = "exact McNemar"
BOOTSTRAP = "paired bootstrap"
SIGN_FLIP = "sign-flip test over images"
UNTESTED = "none"


@dataclass(frozen=True)
class PairedChange:
    """How a metric moved between two runs, measured on the units both share.

    ``before``/``after`` are the metric's mean over the paired units (equal to the
    runs' values when both measured the same units), ``delta = after - before``.
    ``test`` is ``"none"`` (and ``p_value`` NaN) when there was nothing to pair;
    ``n_clusters`` counts the samples the paired units nest in (``None``: each unit its own).
    """

    metric: str
    test: str
    n_pairs: int
    before: float
    after: float
    rose: int
    fell: int
    p_value: float
    n_clusters: int | None = None

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def tested(self) -> bool:
        return self.test != UNTESTED

    @property
    def significant(self) -> bool:
        return self.tested and self.p_value < ALPHA

    def describe(self) -> str:
        if not self.tested:
            return f"{self.metric}: no shared per-unit outcomes, change not tested"
        within = f" in {self.n_clusters} images" if self.n_clusters is not None else ""
        return (f"{self.metric} {self.before:.4f} -> {self.after:.4f} ({self.delta:+.4f}) on {self.n_pairs} "
                f"paired units{within}, {self.test} p = {self.p_value:.3g}")


def mcnemar_exact(rose: int, fell: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts."""
    if rose < 0 or fell < 0:
        raise ValueError(f"discordant counts must be >= 0, got {rose}, {fell}")
    if rose + fell == 0:
        return 1.0
    return float(stats.binomtest(rose, rose + fell, 0.5, alternative="two-sided").pvalue)


def paired_bootstrap_p(differences: np.ndarray, *, rng: np.random.Generator,
                       n_resamples: int = BOOTSTRAP_RESAMPLES) -> float:
    """Two-sided p-value of "mean difference = 0" by a centred paired bootstrap."""
    differences = np.asarray(differences, dtype=np.float64)
    if differences.size == 0:
        return math.nan
    observed = abs(float(differences.mean()))
    if np.all(differences == 0):
        return 1.0
    centred = differences - differences.mean()
    n = centred.size
    extreme = 0
    for start in range(0, n_resamples, _BOOTSTRAP_BATCH):
        size = min(_BOOTSTRAP_BATCH, n_resamples - start)
        means = centred[rng.integers(0, n, size=(size, n))].mean(axis=1)
        # A tolerance so that float noise in a mean of identical differences never counts as extreme.
        extreme += int(np.count_nonzero(np.abs(means) >= observed - 1e-12))
    return (1 + extreme) / (1 + n_resamples)


def sign_flip_p(differences: np.ndarray, *, rng: np.random.Generator,
                n_resamples: int = SIGN_FLIP_RESAMPLES) -> float:
    """Two-sided p-value of "no change" from per-cluster differences (module docstring)."""
    differences = np.asarray(differences, dtype=np.float64)
    if differences.size == 0:
        return math.nan
    moved = differences[differences != 0]
    if moved.size == 0:
        return 1.0
    # A tolerance so that float noise in an equal sum never counts as less extreme.
    observed = abs(float(moved.sum())) - 1e-9 * (1 + float(np.abs(moved).sum()))
    if moved.size <= EXACT_SIGN_FLIPS:
        signs = ((np.arange(2 ** moved.size)[:, np.newaxis] >> np.arange(moved.size)) & 1) * 2 - 1
        return float(np.mean(np.abs(signs @ moved) >= observed))
    extreme = 0
    for start in range(0, n_resamples, _BOOTSTRAP_BATCH):
        size = min(_BOOTSTRAP_BATCH, n_resamples - start)
        signs = rng.integers(0, 2, size=(size, moved.size)) * 2 - 1
        extreme += int(np.count_nonzero(np.abs(signs @ moved) >= observed))
    # Resampling cannot show a p below 1 / (1 + resamples), and a report tests many metrics
    # at once (Holm): a change that no random assignment reaches would stay "n.s." there.
    # Hoeffding's inequality bounds the exact p from above for any Rademacher sum,
    # P(|Σ ±D_g| >= t) <= 2 exp(-t² / (2 Σ D_g²)), so where that bound is the smaller
    # it is a conservative value for the tail the resamples cannot resolve.
    hoeffding = 2.0 * math.exp(-max(observed, 0.0) ** 2 / (2.0 * float(np.sum(moved ** 2))))
    return min((1 + extreme) / (1 + n_resamples), hoeffding)


def cluster_differences(keys: list[str], differences: np.ndarray, clusters: Mapping[str, str]) -> np.ndarray:
    """``differences`` (one per key) summed per cluster (a key without a cluster is its own)."""
    _, index = np.unique([clusters.get(key, key) for key in keys], return_inverse=True)
    return np.bincount(index, weights=differences)


def paired_units(before: Mapping[str, float], after: Mapping[str, float]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Shared unit keys (sorted) and the two runs' outcomes on them."""
    keys = sorted(set(before) & set(after))
    return (keys, np.array([before[k] for k in keys], dtype=np.float64),
            np.array([after[k] for k in keys], dtype=np.float64))


def compare_units(metric: str, kind: str, before: Mapping[str, float], after: Mapping[str, float], *,
                  rng: np.random.Generator, clusters: Mapping[str, str] | None = None,
                  before_value: float = math.nan, after_value: float = math.nan, where: str = "") -> PairedChange:
    """Test the change of ``metric`` from ``before`` to ``after`` units (see module docstring).

    ``clusters`` maps a unit to the sample it nests in (both runs' maps merged): when some
    sample holds more than one shared unit, the change is tested over samples.
    ``before_value``/``after_value`` are reported when no unit pairs (nothing tested);
    ``where`` (e.g. the case id) prefixes error messages.
    """
    prefix = f"{where}: " if where else ""
    keys, x, y = paired_units(before, after)
    if not keys:
        return PairedChange(metric, UNTESTED, 0, before_value, after_value, 0, 0, math.nan)
    rose, fell = int(np.count_nonzero(y > x)), int(np.count_nonzero(y < x))
    if kind not in (PROPORTION, MEAN):
        raise RecordError(f"{prefix}metric {metric!r} has unknown kind {kind!r}; expected {PROPORTION} or {MEAN}")
    if kind == PROPORTION and not (np.isin(x, (0, 1)).all() and np.isin(y, (0, 1)).all()):
        raise RecordError(f"{prefix}metric {metric!r} is a proportion but its units are not all 0 or 1; "
                          "declare kind = 'mean' in its details or record 0/1 outcomes")
    per_cluster = cluster_differences(keys, y - x, clusters or {})
    n_clusters = None
    if per_cluster.size < len(keys):
        p_value, test, n_clusters = sign_flip_p(per_cluster, rng=rng), SIGN_FLIP, int(per_cluster.size)
    elif kind == PROPORTION:
        p_value, test = mcnemar_exact(rose, fell), MCNEMAR
    else:
        p_value, test = paired_bootstrap_p(y - x, rng=rng), BOOTSTRAP
    return PairedChange(metric, test, len(keys), float(x.mean()), float(y.mean()), rose, fell, p_value, n_clusters)
