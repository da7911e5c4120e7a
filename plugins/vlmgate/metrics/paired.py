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
  instances calls noise significant: on ``shapes-v1`` -> an earlier ``shapes-v2``, translation, it
  says p = 1.5e-4 where the images say p ≈ 0.10, and in ``tests/test_cluster_statistics.py``
  it is significant in 19 % of runs of two equally good models (this test: 4 %, at most
  alpha). Under "no change" the two runs are exchangeable, so each ``D_g`` is as likely to
  be ``−D_g``: p is the share of the ``2^G`` sign assignments whose ``|Σ ± D_g|`` reaches
  the observed ``|Σ D_g|``. It needs no model of the correlation, and with one 0/1 unit
  per cluster it *is* the exact McNemar test, which is therefore kept for independent units.

**How far a p-value is resolved.** A report tests ~150 metrics at once and decides each at
``alpha / m`` (``report.multiplicity``), so a p-value floored at 1 / (1 + resamples) would
make a clear regression "not significant". The caller passes the level the decision is
made at (``decide_at``), and the p-value is computed as far as that decision needs:

* **exact** where the per-cluster differences are integers (proportions: flips summed per
  image): ``Σ ±D_g = 2T − Σ|D_g|`` where ``T`` is the sum of the ``|D_g|`` drawn with a
  plus sign, whose distribution is the convolution of the ``G`` two-point laws
  ``{0, |D_g|}``, computed over the integer sums (``sign_flip_distribution``); also exact,
  by enumeration, for at most ``EXACT_SIGN_FLIPS`` real-valued non-zero clusters;
* **Monte Carlo, resolved adaptively** for real-valued differences (means: RAS, drift)
  and for the paired bootstrap: draws come in rounds (``first`` draws, then four times as
  many as drawn so far, all from the given generator, so the same inputs and the same
  seeded generator give the same p), and after each round a Clopper–Pearson interval for
  the exact p at error ``MC_ERROR`` (split over the rounds) is formed. Drawing stops once
  that interval lies wholly on one side of ``decide_at`` and is narrow enough to show
  (``DISPLAY_PRECISION``, up to ``DISPLAY_DRAWS``), or at the cap (``MAX_DRAWS``; for the
  bootstrap also ``MAX_BOOTSTRAP_WORK`` resampled units). The p shown is the Monte Carlo
  p ``(1 + extreme) / (1 + draws)``. Where the cap is reached with the interval still
  straddling ``decide_at``, the sign-flip test turns to **exact bounds**
  (``sign_flip_bounds``: the differences rounded to a grid, whose exact law brackets the p),
  refined until they leave ``decide_at`` (``p_method`` ``exact bounds``, the p shown their
  upper end); where those too straddle it (or for the bootstrap, at its cap) the decision is
  *unresolved* and the p is reported as its upper bound (conservative), so it is never
  significant. In every case
  ``p_value < decided_at`` is exactly the decision, so it may be compared, or adjusted by
  ``min(1, p · alpha / decided_at)``, without reading the interval.

A change is significant when its p is below the level it was decided at (``ALPHA`` unless
the caller says otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
from scipy import stats

from vlmgate.errors import RecordError
from vlmgate.records import MEAN, PROPORTION

#: Significance level of a paired test decided on its own (callers pass ``alpha / m`` for a family).
ALPHA = 0.05
#: Draws of the first Monte Carlo round (the paired bootstrap and the real-valued sign-flip test).
BOOTSTRAP_RESAMPLES = 2000
SIGN_FLIP_RESAMPLES = 2000
#: Draws after which a Monte Carlo p-value stops: its decision is then unresolved if still open.
MAX_DRAWS = 10_000_000
#: Draws after which the real-valued sign-flip test turns to exact bounds instead (cheaper there).
SIGN_FLIP_MAX_DRAWS = 1_000_000
#: The paired bootstrap also stops at this many table look-ups (draws × look-ups per draw).
MAX_BOOTSTRAP_WORK = 50_000_000
#: Chance that the Clopper–Pearson interval of a Monte Carlo p-value misses the exact p,
#: over all rounds together (each round's interval is formed at its share).
MC_ERROR = 1e-6
#: Once decided, drawing goes on (up to ``DISPLAY_DRAWS``) until the interval's width is at
#: most this share of the p shown.
DISPLAY_PRECISION = 1.0
DISPLAY_DRAWS = 20_000
#: Each round draws this many times what was drawn before it.
_GROWTH = 4

#: Non-zero real-valued clusters up to which the sign-flip test enumerates every assignment.
EXACT_SIGN_FLIPS = 16
#: Largest ``G · Σ|D_g|`` for which integer differences get the exact distribution.
EXACT_INTEGER_WORK = 50_000_000
#: Where the draws leave a real-valued sign-flip decision open: the first grid of exact bounds
#: (``sign_flip_bounds``), refined four-fold up to ``G · bins`` of this much work.
BRACKET_BINS = 1 << 16
MAX_BRACKET_WORK = 200_000_000
#: Largest table of tuple sums the bootstrap resamples from (entries).
_TUPLE_TABLE = 1 << 18
#: Draws evaluated at once (memory: ``batch × bytes per draw``).
_BATCH = 1 << 18

MCNEMAR = "exact McNemar"
BOOTSTRAP = "paired bootstrap"
SIGN_FLIP = "sign-flip test over images"
UNTESTED = "none"

#: How a p-value was obtained (``PairedChange.p_method``).
EXACT = "exact"
MONTE_CARLO = "Monte Carlo"
EXACT_BOUNDS = "exact bounds"
NO_P = "none"


@dataclass(frozen=True)
class PValue:
    """A p-value and how far it is resolved.

    ``value`` is the exact p (``method`` ``exact``), the Monte Carlo p
    ``(1 + extreme) / (1 + draws)``, or the upper of exact bounds; ``interval`` is the
    Clopper–Pearson interval of the exact p at ``MC_ERROR``, or the exact bounds
    (``(value, value)`` when exact). ``resolved`` is False when the interval still straddles
    ``decided_at``: ``value`` is then its upper end.
    """

    value: float
    method: str
    draws: int = 0
    interval: tuple[float, float] | None = None
    decided_at: float = ALPHA
    resolved: bool = True

    @classmethod
    def exact(cls, value: float, decided_at: float = ALPHA) -> "PValue":
        value = min(1.0, float(value))
        return cls(value, EXACT, 0, (value, value), decided_at, True)


@dataclass(frozen=True)
class PairedChange:
    """How a metric moved between two runs, measured on the units both share.

    ``before``/``after`` are the metric's mean over the paired units (equal to the
    runs' values when both measured the same units), ``delta = after - before``.
    ``test`` is ``"none"`` (and ``p_value`` NaN) when there was nothing to pair;
    ``n_clusters`` counts the samples the paired units nest in (``None``: each unit its own).

    ``decided_at`` is the level the change was decided at (``ALPHA``, or ``alpha / m``
    after a multiplicity adjustment) and ``significant`` means ``p_value < decided_at``.
    ``p_method`` says how the p-value was obtained (``exact``, ``Monte Carlo``,
    ``exact bounds``, ``none``); a Monte Carlo p comes with its ``draws`` and ``p_interval``
    (Clopper–Pearson at ``MC_ERROR``), exact bounds with ``p_interval`` = the bounds (and
    ``p_value`` their upper end); ``resolved`` is False when neither left ``decided_at``:
    ``p_value`` is then the upper bound, never significant.
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
    #: The significance level the change was decided at (alpha, or alpha / m after a multiplicity adjustment).
    decided_at: float = ALPHA
    p_method: str = EXACT
    draws: int = 0
    p_interval: tuple[float, float] | None = None
    resolved: bool = True

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def tested(self) -> bool:
        return self.test != UNTESTED

    @property
    def significant(self) -> bool:
        return self.tested and self.p_value < self.decided_at

    def describe(self) -> str:
        if not self.tested:
            return f"{self.metric}: no shared per-unit outcomes, change not tested"
        within = f" in {self.n_clusters} images" if self.n_clusters is not None else ""
        return (f"{self.metric} {self.before:.4f} -> {self.after:.4f} ({self.delta:+.4f}) on {self.n_pairs} "
                f"paired units{within}, {self.test} p = {self.p_value:.3g}{self.p_note()}")

    def p_note(self) -> str:
        """How the p-value was resolved (empty for an exact one)."""
        if self.p_method == EXACT or self.p_interval is None:
            return ""
        low, high = self.p_interval
        bounds = f"[{low:.3g}, {high:.3g}]"
        how = (f"Monte Carlo, {self.draws:,} draws, {bounds}" if self.p_method == MONTE_CARLO
               else f"upper of exact bounds {bounds}")
        if not self.resolved:
            return f" (unresolved at {self.decided_at:.3g}: upper bound; {how})"
        return f" ({how})"


def mcnemar_exact(rose: int, fell: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts."""
    if rose < 0 or fell < 0:
        raise ValueError(f"discordant counts must be >= 0, got {rose}, {fell}")
    if rose + fell == 0:
        return 1.0
    return float(stats.binomtest(rose, rose + fell, 0.5, alternative="two-sided").pvalue)


# -- Monte Carlo resolution ------------------------------------------------------------------
def clopper_pearson(extreme: int, draws: int, error: float) -> tuple[float, float]:
    """Exact binomial interval for the probability of an extreme draw, missing it with chance ``error``."""
    low = 0.0 if extreme == 0 else float(stats.beta.ppf(error / 2, extreme, draws - extreme + 1))
    high = 1.0 if extreme == draws else float(stats.beta.isf(error / 2, extreme + 1, draws - extreme))
    return low, high


def _schedule(first: int, cap: int) -> list[int]:
    """Cumulative draws after each round: ``first``, then growing ``_GROWTH``-fold, ending at ``cap``."""
    first = max(1, min(first, cap))
    totals = [first]
    while totals[-1] < cap:
        totals.append(min(cap, totals[-1] * (_GROWTH + 1)))
    return totals


def resolve(count: Callable[[int], int], *, decide_at: float, first: int, cap: int = MAX_DRAWS) -> PValue:
    """Draw in rounds until the Monte Carlo p's interval leaves ``decide_at`` (module docstring).

    ``count(size)`` draws ``size`` more assignments and returns how many were at least as
    extreme as the observation; it must draw from one generator in order, so the result
    depends only on the inputs and that generator's state.
    """
    totals = _schedule(first, cap)
    error = MC_ERROR / len(totals)
    drawn = extreme = 0
    for total in totals:
        extreme += count(total - drawn)
        drawn = total
        low, high = clopper_pearson(extreme, drawn, error)
        value = (1 + extreme) / (1 + drawn)
        decided = high < decide_at or low >= decide_at
        shown = high - low <= DISPLAY_PRECISION * value or drawn >= DISPLAY_DRAWS
        if decided and shown:
            return PValue(value, MONTE_CARLO, drawn, (low, high), decide_at, True)
        if decided and total == totals[-1]:
            break
    resolved = high < decide_at or low >= decide_at
    return PValue(value if resolved else high, MONTE_CARLO, drawn, (low, high), decide_at, resolved)


# -- paired bootstrap (independent units) ---------------------------------------------------
def _tuple_sums(values: np.ndarray, size: int) -> np.ndarray:
    """``Σ values[i_1..i_size]`` for every index tuple, flattened in row-major order (``n^size`` entries)."""
    sums = np.zeros(1)
    for _ in range(size):
        sums = (sums[:, np.newaxis] + values[np.newaxis, :]).ravel()
    return sums


def paired_bootstrap_test(differences: np.ndarray, *, rng: np.random.Generator, decide_at: float = ALPHA,
                          n_resamples: int = BOOTSTRAP_RESAMPLES) -> PValue:
    """Two-sided test of "mean difference = 0" by a centred paired bootstrap, resolved at ``decide_at``."""
    differences = np.asarray(differences, dtype=np.float64)
    if differences.size == 0:
        return PValue(math.nan, NO_P, decided_at=decide_at)
    if np.all(differences == 0):
        return PValue.exact(1.0, decide_at)
    observed = abs(float(differences.mean()))
    centred = differences - differences.mean()
    n = centred.size
    # Several resampled units per look-up: a table of the sums of every k-tuple of centred
    # differences, indexed uniformly on ``n^k``, is k independent uniform draws at 1/k the cost.
    k = max(1, min(n, int(math.log(_TUPLE_TABLE) / math.log(n)) if n > 1 else 1))
    tables = {size: _tuple_sums(centred, size) for size in {k, n % k} if size}
    looks = n // k

    def count(size: int) -> int:
        extreme = 0
        batch = max(1, min(_BATCH, (1 << 22) // (looks + 1)))
        for start in range(0, size, batch):
            rows = min(batch, size - start)
            sums = tables[k][rng.integers(0, tables[k].size, size=(rows, looks))].sum(axis=1)
            if n % k:
                sums += tables[n % k][rng.integers(0, tables[n % k].size, size=rows)]
            # A tolerance so that float noise in a mean of identical differences never counts as extreme.
            extreme += int(np.count_nonzero(np.abs(sums / n) >= observed - 1e-12 * (1 + observed)))
        return extreme

    cap = max(n_resamples, min(MAX_DRAWS, MAX_BOOTSTRAP_WORK // (looks + 1)))
    return resolve(count, decide_at=decide_at, first=n_resamples, cap=cap)


def paired_bootstrap_p(differences: np.ndarray, *, rng: np.random.Generator, decide_at: float = ALPHA,
                       n_resamples: int = BOOTSTRAP_RESAMPLES) -> float:
    """The p-value of ``paired_bootstrap_test``."""
    return paired_bootstrap_test(differences, rng=rng, decide_at=decide_at, n_resamples=n_resamples).value


# -- sign-flip test (clustered units) -------------------------------------------------------
def sign_flip_distribution(magnitudes: np.ndarray) -> np.ndarray:
    """``P(T = t)`` for ``t = 0 … Σ a_g``, where ``T = Σ a_g B_g`` over fair coins ``B_g`` and
    integer ``a_g >= 0``: the law of the plus-signed part of ``Σ ±a_g`` (exact convolution)."""
    magnitudes = np.asarray(magnitudes, dtype=np.int64)
    if np.any(magnitudes < 0):
        raise ValueError("magnitudes must be >= 0")
    dist = np.zeros(int(magnitudes.sum()) + 1)
    dist[0] = 1.0
    top = 0
    for a in magnitudes.tolist():
        if a == 0:  # both signs give the same sum
            continue
        dist[a:top + a + 1] += dist[:top + 1]  # overlapping slices: numpy buffers the right-hand side
        dist[:top + a + 1] *= 0.5
        top += a
    return dist


def _exact_integer_sign_flip(moved: np.ndarray) -> float:
    magnitudes = np.abs(np.rint(moved)).astype(np.int64)
    total = int(magnitudes.sum())
    observed = abs(int(np.rint(moved).sum()))
    if observed == 0:
        return 1.0
    dist = sign_flip_distribution(magnitudes)
    sums = 2 * np.arange(total + 1) - total
    return min(1.0, float(np.sum(dist[np.abs(sums) >= observed])))


def sign_flip_bounds(magnitudes: np.ndarray, observed: float, bins: int) -> tuple[float, float]:
    """Exact lower and upper bounds on ``P(|Σ ±a_g| >= observed)`` for real ``a_g >= 0``.

    Each ``a_g`` is rounded to a multiple ``q·b_g`` of ``q = Σ a_g / bins``; every sign
    assignment's sum then differs from ``q·Σ ±b_g`` by at most ``E = Σ |a_g − q·b_g|``, so the
    exact law of ``Σ ±b_g`` (``sign_flip_distribution``) counted beyond ``observed ∓ E``
    brackets the p-value. Work ``G · bins``; the bracket narrows as ``bins`` grows.
    """
    magnitudes = np.asarray(magnitudes, dtype=np.float64)
    quantum = float(magnitudes.sum()) / bins
    rounded = np.rint(magnitudes / quantum).astype(np.int64)
    slack = float(np.abs(magnitudes - quantum * rounded).sum()) + 1e-12 * (1 + float(magnitudes.sum()))
    dist = sign_flip_distribution(rounded)
    sums = quantum * np.abs(2 * np.arange(dist.size) - int(rounded.sum()))
    upper = float(np.sum(dist[sums >= observed - slack]))
    lower = float(np.sum(dist[sums >= observed + slack]))
    return min(1.0, lower), min(1.0, upper)


def _bracketed(magnitudes: np.ndarray, observed: float, decide_at: float, drawn: PValue) -> PValue:
    """Where resampling left the decision open: refine ``sign_flip_bounds`` until they leave ``decide_at``."""
    bins = BRACKET_BINS
    while True:
        low, high = sign_flip_bounds(magnitudes, observed, bins)
        resolved = high < decide_at or low >= decide_at
        if resolved or magnitudes.size * bins * 4 > MAX_BRACKET_WORK:
            return PValue(high, EXACT_BOUNDS, drawn.draws, (low, high), decide_at, resolved)
        bins *= 4


def _chunk_tables(magnitudes: np.ndarray) -> np.ndarray:
    """``tables[c, b]``: the sum of the magnitudes of chunk ``c`` (8 clusters) whose bit is set in byte ``b``."""
    chunks = -(-magnitudes.size // 8)
    padded = np.zeros(chunks * 8)
    padded[:magnitudes.size] = magnitudes
    bits = ((np.arange(256)[:, np.newaxis] >> np.arange(8)) & 1).astype(np.float64)
    return (bits @ padded.reshape(chunks, 8).T).T.copy()


def _enumerated_sign_flip(magnitudes: np.ndarray, observed: float) -> float:
    """Every one of the ``2^G`` assignments, as outer sums of the 8-cluster chunk tables."""
    tables = _chunk_tables(magnitudes)
    sizes = [2 ** min(8, magnitudes.size - 8 * c) for c in range(tables.shape[0])]
    plus = np.zeros(1)
    for table, size in zip(tables, sizes):
        plus = (plus[:, np.newaxis] + table[np.newaxis, :size]).ravel()
    return float(np.mean(np.abs(2 * plus - magnitudes.sum()) >= observed))


def sign_flip_test(differences: np.ndarray, *, rng: np.random.Generator, decide_at: float = ALPHA,
                   n_resamples: int = SIGN_FLIP_RESAMPLES) -> PValue:
    """Two-sided test of "no change" from per-cluster differences, resolved at ``decide_at`` (module docstring)."""
    differences = np.asarray(differences, dtype=np.float64)
    if differences.size == 0:
        return PValue(math.nan, NO_P, decided_at=decide_at)
    moved = differences[differences != 0]
    if moved.size == 0:
        return PValue.exact(1.0, decide_at)
    magnitudes = np.abs(moved)
    if (np.all(moved == np.rint(moved)) and magnitudes.max() < 2 ** 31
            and moved.size * float(magnitudes.sum()) <= EXACT_INTEGER_WORK):
        return PValue.exact(_exact_integer_sign_flip(moved), decide_at)
    # A tolerance so that float noise in an equal sum never counts as less extreme.
    observed = abs(float(moved.sum())) - 1e-9 * (1 + float(magnitudes.sum()))
    if moved.size <= EXACT_SIGN_FLIPS:
        return PValue.exact(_enumerated_sign_flip(magnitudes, observed), decide_at)
    tables = _chunk_tables(magnitudes)
    flat = tables.ravel()
    offsets = (256 * np.arange(tables.shape[0])).astype(np.intp)
    total = float(magnitudes.sum())

    def count(size: int) -> int:
        extreme = 0
        for start in range(0, size, _BATCH):
            rows = min(_BATCH, size - start)
            # One random byte per chunk of 8 clusters: bit j set = cluster 8c + j keeps its sign.
            codes = rng.integers(0, 256, size=(rows, tables.shape[0]), dtype=np.uint8)
            plus = flat[codes + offsets].sum(axis=1)
            extreme += int(np.count_nonzero(np.abs(2 * plus - total) >= observed))
        return extreme

    drawn = resolve(count, decide_at=decide_at, first=n_resamples, cap=max(n_resamples, SIGN_FLIP_MAX_DRAWS))
    return drawn if drawn.resolved else _bracketed(magnitudes, observed, decide_at, drawn)


def sign_flip_p(differences: np.ndarray, *, rng: np.random.Generator, decide_at: float = ALPHA,
                n_resamples: int = SIGN_FLIP_RESAMPLES) -> float:
    """The p-value of ``sign_flip_test``."""
    return sign_flip_test(differences, rng=rng, decide_at=decide_at, n_resamples=n_resamples).value


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
                  before_value: float = math.nan, after_value: float = math.nan, where: str = "",
                  decide_at: float = ALPHA) -> PairedChange:
    """Test the change of ``metric`` from ``before`` to ``after`` units (see module docstring).

    ``clusters`` maps a unit to the sample it nests in (both runs' maps merged): when some
    sample holds more than one shared unit, the change is tested over samples.
    ``decide_at`` is the level the change is decided at (``alpha / m`` in a family of
    ``m`` tests): a Monte Carlo p-value is resolved until it is clearly on one side of it.
    ``before_value``/``after_value`` are reported when no unit pairs (nothing tested);
    ``where`` (e.g. the case id) prefixes error messages.
    """
    if not 0 < decide_at <= 1:
        raise ValueError(f"decide_at must be a level in (0, 1], got {decide_at!r}")
    prefix = f"{where}: " if where else ""
    keys, x, y = paired_units(before, after)
    if not keys:
        return PairedChange(metric, UNTESTED, 0, before_value, after_value, 0, 0, math.nan,
                            decided_at=decide_at, p_method=NO_P)
    rose, fell = int(np.count_nonzero(y > x)), int(np.count_nonzero(y < x))
    if kind not in (PROPORTION, MEAN):
        raise RecordError(f"{prefix}metric {metric!r} has unknown kind {kind!r}; expected {PROPORTION} or {MEAN}")
    if kind == PROPORTION and not (np.isin(x, (0, 1)).all() and np.isin(y, (0, 1)).all()):
        raise RecordError(f"{prefix}metric {metric!r} is a proportion but its units are not all 0 or 1; "
                          "declare kind = 'mean' in its details or record 0/1 outcomes")
    per_cluster = cluster_differences(keys, y - x, clusters or {})
    n_clusters = None
    if per_cluster.size < len(keys):
        p, test, n_clusters = sign_flip_test(per_cluster, rng=rng, decide_at=decide_at), SIGN_FLIP, \
            int(per_cluster.size)
    elif kind == PROPORTION:
        p, test = PValue.exact(mcnemar_exact(rose, fell), decide_at), MCNEMAR
    else:
        p, test = paired_bootstrap_test(y - x, rng=rng, decide_at=decide_at), BOOTSTRAP
    return PairedChange(metric, test, len(keys), float(x.mean()), float(y.mean()), rose, fell, p.value, n_clusters,
                        decide_at, p.method, p.draws, p.interval if p.method != EXACT else None, p.resolved)
