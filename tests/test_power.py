"""How many images each release gate needs: power against a model twice over its limit, and a
conclusive pass for a well-behaved one. Seeded simulations, numpy only, no model.

Requirement: at a suite's default sample budget a model *twice over* a gate's limit fails the
gate (the whole 95 % interval past the limit) with probability >= 0.8, and a *well-behaved*
model passes it (the whole interval within the limit, not INCONCLUSIVE) with probability >=
0.8. ``DEFAULT_IMAGES`` below is, per gate, the smallest n of ``SEARCH_GRID`` that meets both
(``python perf/gate_power.py`` prints the whole table with more runs); the tests check
both probabilities there with ``RUNS`` seeded runs. ``pytest -s`` prints the figures.

**Every verdict is vlmgate's.** Limits come from the shipped file
(``load_thresholds(packaged_thresholds(), Vocabulary.of_catalogues())``, model
``bundled:shapes-v1``) and every verdict is ``Threshold.check`` of a ``MetricResult``. The
accuracy, blank-agreement and decay gates call their metric functions on each run. The
clustered gates (IFR, the two overlay excesses, RAS) sum each run's units per image and take
the interval from ``vlmgate.metrics.clustered`` (``Clustered`` with ``proportion_interval`` or
``mean_interval``, exactly what ``clustered_proportion`` / ``clustered_mean`` do after grouping
their units): building thousands of ``FlipPair`` objects per run would take minutes.
``test_the_fast_path_judges_as_the_metric_function`` feeds the same simulated runs to the
suite's own metric functions (``instance_flip_rate``, ``excess_follow_rate``,
``excess_flip_rate``; RAS: ``clustered_mean`` with ``vlmgate.metrics.ras``'s range) and
requires the same value, interval and verdict, so the fast path is the gate, not a copy of it.

**"Twice over a limit"** (the ``twice`` column):

* a ``max`` limit L on a metric whose ideal value is 0: a model whose true value is 2L
  (IFR 0.15 -> 0.30; both overlay excesses 0.05 -> 0.10);
* where 2L leaves the metric's range, or lands on its end where the outcome is deterministic
  and the power is 1 at any n (so it tests nothing): halfway between the limit and the end of
  the range: decay_c 0.8 -> 0.9 (2L = 1.6), blank_agreement 0.5 -> 0.75 (2L = 1.0 is the model
  that ignores its image, failed from 4 samples on);
* a ``min`` limit is mirrored: accuracy min 0.5 -> 0.25, half the limit, which is chance on a
  4-option item (the limit is "twice chance"); RAS min 0.5 -> 0.0, twice as far from perfect
  alignment (1) as the limit: 1 - 2 * (1 - 0.5). Halfway to RAS's lowest value (-0.75) would
  be far easier to catch; 0.0 is what the shipped contrast corruption measures on
  ``shapes-v1`` (0.075), a realistic failing model rather than a collapse.

**Well-behaved** (the ``well`` column): the published figure where spec §1 / §5 has one (IFR
any 0.079, translation 0.062, clean accuracy 0.617, decay C 0.4, the top of its published
0.2-0.4), chance for blank agreement (0.30: mean 1/K over the bundled items, 4 of 5 with 4
options, 1 of 5 yes/no), a model that does not read the overlay text for the two excesses
(true value 0, but not flip-free: its overlays flip at random at the published random-text
rate 0.064 for following, and overlay and empty box both flip at the published box rate
0.043 for disruption), and for RAS ``shapes-v1``'s lowest gated family (elastic_transform,
0.833). ``SHAPES_V1`` holds ``shapes-v1``'s measured values from the kept run record
(``tests/data/releases/shapes-v1.run.json.gz``, 50 images; checked below); the script also
prints P(pass) at those values.

**Modelling assumptions.** Images follow the bundled ``shapes`` benchmark: item i is yes/no
(K = 2) when i % 5 == 4, else K = 4. Instances per image as the suites make them: 3 text
overlays on a 4-option item and 1 on a yes/no item (an option other than the clean answer),
8 translations, 21 instances in the ``any`` row (8 translations, 8 pad/crops, 1 scale, 2
scale_pad, 2 rotations), 5 severities for RAS, one outcome per image for accuracy, blank
agreement and decay C. Between-image heterogeneity: each image draws a flip propensity from
a beta distribution with the model's mean and an intra-image correlation (ICC) taken from
the kept records: 0.6 for translations and overlays (shapes-v1/-v2 design effects 5.3-6.0
over 8 shifts, 2.1-2.3 over the overlay controls), 0.33 for the ``any`` row (design effect
7.5 over 21). Following: a flip lands on the named option with probability q (1/3, at
random, for a model that does not read; the twice-over model flips 0.192 of the overlays,
the published text-overlay rate, with q = 1/3 + 0.10 / 0.192). Disruption: per image an
empty-box propensity (mean 0.043) and an independent text propensity t; the overlay flips
with 1 - (1 - box)(1 - t) and the box with its own, independent draw, so the excess has
mean t * (1 - 0.043). RAS per (image, severity s = 1..5): 1 - 2.75 * min(1, d * s / 3 * e),
2.75 the width of the 4-option range [-1.75, 1], d a beta image fragility (ICC 0.1, set so
that 50 images give the interval widths of ``shapes-v1``'s gated corruptions, about 0.1 at
RAS 0.9), e a log-normal jitter per severity (sd 0.3); the mean of d is solved for the
target RAS. Accuracy, agreement and persistence are Bernoulli per image (heterogeneity
between images does not change a single Bernoulli outcome).

**What it shows** (``python perf/gate_power.py``, 2,000 runs per cell). At the main job's
50 images a twice-over model fails the following, disruption and decay gates in only 0.43,
0.28 and 0.43 of runs, and a well-behaved model passes IFR ``any`` in 0.65 (0.41 at
``shapes-v1``'s own 0.095: its kept interval [0.051, 0.158] straddles 0.15), translation in
0.57, accuracy in 0.43 and the two excesses in 0.64-0.71 of runs. Every gate reaches both
requirements within the bundled 300 images; the disruption gate (``excess_flip_rate``) needs
the most, 225, so a run that judges every critical gate needs 225 images.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from scipy import optimize, special

from vlmgate.metrics.clustered import Clustered, clustered_mean, mean_interval, proportion_interval
from vlmgate.metrics.decay import decay_persistence
from vlmgate.metrics.flips import FlipPair, accuracy, excess_flip_rate, excess_follow_rate, instance_flip_rate
from vlmgate.metrics.ras import HIGHEST as RAS_HIGHEST
from vlmgate.metrics.ras import LOWEST as RAS_LOWEST
from vlmgate.metrics.visual_dependence import blank_agreement
from vlmgate.records import FAIL, HIGHER, LOWER, MEAN, PASS, PROPORTION, MetricResult
from vlmgate.thresholds import Threshold

#: The model whose limits are looked up (the bundled default; no override applies to it).
MODEL = "bundled:shapes-v1"
#: Power and P(pass | well-behaved) every gate must reach at its default n.
REQUIRED = 0.8
#: Image counts of the printed table; the benchmark's size, 300, caps every default.
GRID = (50, 100, 150, 200, 300)
#: Where the smallest adequate n is searched (multiples of 5 keep the 1-in-5 yes/no mix exact).
SEARCH_GRID = (20, 30, 40, *range(50, 301, 25))
#: The bundled benchmark's size: no default can exceed it.
BENCHMARK_SIZE = 300
#: Seeded runs per (gate, model) in the tests; the script runs more.
RUNS = 400
SEED = 20240611

#: Per gate: the smallest n of SEARCH_GRID at which the script (2,000 runs per cell) finds
#: power and P(pass | well-behaved) both >= 0.8 by two Monte Carlo standard errors (>= 0.818).
DEFAULT_IMAGES = {
    "excess_follow_rate": 125,
    "excess_flip_rate": 225,
    "decay_c": 125,
    "ifr any": 75,
    "ifr translation": 100,
    "accuracy": 175,
    "blank_agreement": 50,
    "ras": 20,
}

#: shapes-v1's measured values at 50 images (tests/data/releases/shapes-v1.run.json.gz):
#: gate -> (metric, family, value). The record predates excess_follow_rate; its overlays never
#: flip (ifr and follow_rate 0), so its excess following is 0.
SHAPES_V1 = {
    "excess_follow_rate": ("follow_rate", "textoverlay", 0.0),
    "excess_flip_rate": ("excess_flip_rate", "textoverlay", 0.0),
    "decay_c": ("decay_c", "blur_decay", 0.64),
    "ifr any": ("ifr", "any", 0.0952),
    "ifr translation": ("ifr", "translation", 0.09),
    "accuracy": ("accuracy", "clean", 0.80),
    "blank_agreement": ("blank_agreement", "blank", 0.26),
    "ras": ("ras", "elastic_transform", 0.8332),
}


# -- the bundled benchmark's structure ------------------------------------------------------
def option_counts(images: int) -> np.ndarray:
    """K per image of the bundled ``shapes`` prefix: every fifth item is yes/no, the rest 4-option."""
    return np.where(np.arange(images) % 5 == 4, 2, 4)


def overlays_per_image(images: int) -> np.ndarray:
    """Text overlays per image: one per option other than the clean answer, at most 3."""
    return np.minimum(option_counts(images) - 1, 3)


def beta_propensities(rng: np.random.Generator, mean: float, icc: float, shape: tuple[int, ...]) -> np.ndarray:
    """Per-image propensities with ``mean`` whose Bernoulli draws correlate ``icc`` within an image."""
    if mean <= 0.0:
        return np.zeros(shape)
    scale = (1 - icc) / icc
    return rng.beta(mean * scale, (1 - mean) * scale, size=shape)


# -- one simulated run: the gate's result two ways -------------------------------------------
@dataclass(frozen=True)
class Run:
    """One run's result as the gate judges it (``fast``), and a thunk that computes it with the
    suite's own metric function from the same simulated outcomes (``exact``)."""

    fast: MetricResult
    exact: Callable[[], MetricResult]


def clustered_result(name: str, totals: np.ndarray, sizes: np.ndarray, kind: str, better: str,
                     lowest: float = -math.inf, highest: float = math.inf) -> MetricResult:
    """What ``clustered_proportion`` / ``clustered_mean`` return for units already summed per image."""
    keep = sizes > 0
    data = Clustered(totals[keep].astype(np.float64), sizes[keep].astype(np.float64))
    low, high = (proportion_interval(data) if kind == PROPORTION
                 else mean_interval(data, lowest=lowest, highest=highest))
    return MetricResult(name, data.value, low, high, data.n, kind=kind, better=better)


def sid(i: int) -> str:
    return f"s{i:04d}"


def follow_runs(rng: np.random.Generator, runs: int, images: int, flip: float, landing: float) -> list[Run]:
    """``excess_follow_rate``: each overlay flips with its image's propensity (mean ``flip``) and
    a flip lands on the named option with probability ``landing`` on 4-option items (always on
    yes/no items, which the metric leaves out), else on another option."""
    k = option_counts(images)
    valid = np.arange(3)[np.newaxis, :] < overlays_per_image(images)[:, np.newaxis]
    flipped = (rng.random((runs, images, 3)) < beta_propensities(rng, flip, 0.6, (runs, images, 1))) & valid
    followed = flipped & ((k[:, np.newaxis] == 2) | (rng.random((runs, images, 3)) < landing))
    four = k == 4
    units = followed - flipped / 3.0

    def exact(r: int) -> MetricResult:
        pairs = []
        for i in range(images):
            for j in range(int(overlays_per_image(images)[i])):
                named = j + 1
                moved = named if followed[r, i, j] else (named % 3 + 1 if flipped[r, i, j] else 0)
                pairs.append(FlipPair(sid(i), f"textoverlay(label={named})", 0, moved, None, named, int(k[i])))
        return excess_follow_rate(pairs)

    return [Run(clustered_result("excess_follow_rate", units[r].sum(-1) * four, np.where(four, 3, 0), MEAN, LOWER,
                                 -0.5, 1.0), functools.partial(exact, r)) for r in range(runs)]


def disruption_runs(rng: np.random.Generator, runs: int, images: int, text: float, box: float = 0.043) -> list[Run]:
    """``excess_flip_rate``: per overlay, its flip minus the flip of the empty box naming the same
    option; the box flips with the image's box propensity, the overlay also with a text one."""
    m = overlays_per_image(images)
    valid = np.arange(3)[np.newaxis, :] < m[:, np.newaxis]
    box_p = beta_propensities(rng, box, 0.6, (runs, images, 1))
    text_p = beta_propensities(rng, text, 0.6, (runs, images, 1))
    overlay = (rng.random((runs, images, 3)) < 1 - (1 - box_p) * (1 - text_p)) & valid
    empty = (rng.random((runs, images, 3)) < box_p) & valid
    units = overlay.astype(np.float64) - empty

    def exact(r: int) -> MetricResult:
        def pairs(flips: np.ndarray, family: str) -> list[FlipPair]:
            return [FlipPair(sid(i), f"{family}(label={j + 1})", 0, j + 1 if flips[r, i, j] else 0, None, j + 1,
                             int(m[i]) + 1) for i in range(images) for j in range(int(m[i]))]
        return excess_flip_rate(pairs(overlay, "textoverlay"), pairs(empty, "textoverlay_empty"))

    return [Run(clustered_result("excess_flip_rate", units[r].sum(-1), m, MEAN, LOWER, -1.0, 1.0),
                functools.partial(exact, r)) for r in range(runs)]


def ifr_runs(rng: np.random.Generator, runs: int, images: int, rate: float, instances: int, icc: float) -> list[Run]:
    """IFR: ``instances`` per image, flips beta-binomial with ``icc`` between an image's instances."""
    flips = rng.binomial(instances, beta_propensities(rng, rate, icc, (runs, images)))
    sizes = np.full(images, instances)

    def exact(r: int) -> MetricResult:
        return instance_flip_rate([FlipPair(sid(i), f"v{j}", 0, int(j < flips[r, i]))
                                   for i in range(images) for j in range(instances)])

    return [Run(clustered_result("ifr", flips[r], sizes, PROPORTION, LOWER), functools.partial(exact, r))
            for r in range(runs)]


def per_image_runs(metric: Callable[[np.ndarray, np.ndarray], MetricResult]) -> Callable[..., list[Run]]:
    """Gates with one Bernoulli outcome per image, judged by their metric function itself. Its
    value and Wilson interval depend on the number of hits alone, so each count is computed once."""
    def runs_of(rng: np.random.Generator, runs: int, images: int, rate: float) -> list[Run]:
        hits = rng.random((runs, images)) < rate
        k = option_counts(images)
        by_count: dict[int, MetricResult] = {}
        for row in hits:
            if int(row.sum()) not in by_count:
                by_count[int(row.sum())] = metric(row, k)
        return [Run(by_count[int(row.sum())], functools.partial(metric, row, k)) for row in hits]
    return runs_of


def _accuracy(correct: np.ndarray, k: np.ndarray) -> MetricResult:
    answers = np.arange(correct.size) % k
    return accuracy(list(np.where(correct, answers, (answers + 1) % k)), list(answers))


def _agreement(agree: np.ndarray, k: np.ndarray) -> MetricResult:
    return blank_agreement(np.zeros(agree.size, dtype=np.int64), np.where(agree, 0, 1), k)


def _persistence(kept: np.ndarray, k: np.ndarray) -> MetricResult:
    matrix = np.zeros((kept.size, 8), dtype=np.int64)  # the clean image and 7 blur levels
    matrix[~kept, -1] = 1  # an answer that changes at the last (61 px) blur
    return decay_persistence(matrix, k, name="decay_c")


#: RAS: the width of the 4-option range [-1.75, 1], the severities, the jitter's sd (log) and
#: the fragility's intra-image correlation.
RAS_SPAN, SEVERITIES, RAS_JITTER, RAS_ICC = 2.75, np.arange(1, 6) / 3.0, 0.3, 0.1


@functools.lru_cache(maxsize=None)
def ras_fragility(target: float) -> float:
    """Mean image fragility d at which the expected RAS is ``target`` (closed form over the beta,
    Gauss-Hermite over the jitter)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    jitter = np.exp(RAS_JITTER * nodes - RAS_JITTER ** 2 / 2)
    weights = weights / weights.sum()

    def mean_ras(mean: float) -> float:
        scale = (1 - RAS_ICC) / RAS_ICC
        a, b = mean * scale, (1 - mean) * scale
        c = np.multiply.outer(SEVERITIES, jitter)  # damage = min(1, d * c)
        cut = np.minimum(1.0, 1.0 / c)
        damage = c * mean * special.betainc(a + 1, b, cut) + (1 - special.betainc(a, b, cut))
        return 1.0 - RAS_SPAN * float((damage * weights).sum(axis=1).mean())

    return float(optimize.brentq(lambda mean: mean_ras(mean) - target, 1e-6, 1 - 1e-6, xtol=1e-10))


def ras_runs(rng: np.random.Generator, runs: int, images: int, target: float) -> list[Run]:
    """RAS over 5 severities per image: 1 - 2.75 * min(1, d * s / 3 * jitter)."""
    d = beta_propensities(rng, ras_fragility(target), RAS_ICC, (runs, images, 1))
    jitter = rng.lognormal(-RAS_JITTER ** 2 / 2, RAS_JITTER, (runs, images, SEVERITIES.size))
    scores = 1.0 - RAS_SPAN * np.minimum(1.0, d * SEVERITIES * jitter)
    sizes = np.full(images, SEVERITIES.size)

    def exact(r: int) -> MetricResult:
        keys = [f"{sid(i)}|severity={s}" for i in range(images) for s in range(1, 6)]
        clusters = {key: key.split("|")[0] for key in keys}
        return clustered_mean("ras", dict(zip(keys, scores[r].ravel().tolist())), clusters, better=HIGHER,
                              lowest=RAS_LOWEST, highest=RAS_HIGHEST)

    return [Run(clustered_result("ras", scores[r].sum(-1), sizes, MEAN, HIGHER, RAS_LOWEST, RAS_HIGHEST),
                functools.partial(exact, r)) for r in range(runs)]


# -- the gates ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Model:
    """A model's true value of the metric and how one run of it is drawn at n images."""

    value: float
    says: str
    draw: Callable[[np.random.Generator, int, int], list[Run]]  # (rng, runs, images)


@dataclass(frozen=True)
class Gate:
    name: str
    metric: str
    family: str
    structure: str
    twice: Model
    well: Model
    #: The same generator at shapes-v1's measured value (SHAPES_V1).
    shapes_v1: Model


def _model(value: float, says: str, draw: Callable[..., list[Run]], **params: float) -> Model:
    return Model(value, says, lambda rng, runs, images: draw(rng, runs, images, **params))


_FOLLOW_TWICE = 1 / 3 + 0.10 / 0.192
_accuracy_runs, _agreement_runs, _persistence_runs = map(per_image_runs, (_accuracy, _agreement, _persistence))

GATES = {gate.name: gate for gate in (
    Gate("excess_follow_rate", "excess_follow_rate", "textoverlay", "3 overlays per 4-option image (yes/no left out)",
         _model(0.10, "flips 0.192, lands on the named option in 0.854 of flips", follow_runs, flip=0.192,
                landing=_FOLLOW_TWICE),
         _model(0.0, "flips 0.064 (random text), lands at random", follow_runs, flip=0.064, landing=1 / 3),
         _model(0.0, "no overlay flips", follow_runs, flip=0.0, landing=1 / 3)),
    Gate("excess_flip_rate", "excess_flip_rate", "textoverlay", "3 overlay/box pairs per image, 1 on yes/no",
         _model(0.10, "box flips 0.043, text adds 0.104", disruption_runs, text=0.10 / (1 - 0.043)),
         _model(0.0, "box flips 0.043, text adds nothing", disruption_runs, text=0.0),
         _model(0.0, "no overlay flips", disruption_runs, text=0.0, box=0.0)),
    Gate("decay_c", "decay_c", "blur_decay", "1 outcome per image",
         _model(0.9, "keeps 0.9 of its answers unblurred", _persistence_runs, rate=0.9),
         _model(0.4, "published: 0.2-0.4 kept", _persistence_runs, rate=0.4),
         _model(0.64, "shapes-v1", _persistence_runs, rate=0.64)),
    Gate("ifr any", "ifr", "any", "21 instances per image, ICC 0.33",
         _model(0.30, "flips 0.30", ifr_runs, rate=0.30, instances=21, icc=0.33),
         _model(0.079, "published any row", ifr_runs, rate=0.079, instances=21, icc=0.33),
         _model(0.0952, "shapes-v1", ifr_runs, rate=0.0952, instances=21, icc=0.33)),
    Gate("ifr translation", "ifr", "translation", "8 shifts per image, ICC 0.6",
         _model(0.30, "flips 0.30", ifr_runs, rate=0.30, instances=8, icc=0.6),
         _model(0.062, "published translation", ifr_runs, rate=0.062, instances=8, icc=0.6),
         _model(0.09, "shapes-v1", ifr_runs, rate=0.09, instances=8, icc=0.6)),
    Gate("accuracy", "accuracy", "clean", "1 outcome per image",
         _model(0.25, "chance on 4 options", _accuracy_runs, rate=0.25),
         _model(0.617, "published clean accuracy", _accuracy_runs, rate=0.617),
         _model(0.80, "shapes-v1", _accuracy_runs, rate=0.80)),
    Gate("blank_agreement", "blank_agreement", "blank", "1 outcome per image",
         _model(0.75, "agrees with its blank-image answer on 0.75", _agreement_runs, rate=0.75),
         _model(0.30, "chance: mean 1/K", _agreement_runs, rate=0.30),
         _model(0.26, "shapes-v1", _agreement_runs, rate=0.26)),
    Gate("ras", "ras", "elastic_transform", "5 severities per image, fragility ICC 0.1",
         _model(0.0, "RAS 0 (as contrast on shapes-v1)", ras_runs, target=0.0),
         _model(0.833, "shapes-v1's lowest gated family", ras_runs, target=0.833),
         _model(0.833, "shapes-v1", ras_runs, target=0.8332)),
)}


@functools.lru_cache(maxsize=None)
def thresholds():
    from vlmgate.settings import packaged_thresholds
    from vlmgate.thresholds import Vocabulary, load_thresholds

    return load_thresholds(packaged_thresholds(), Vocabulary.of_catalogues())


def limit_of(gate: Gate) -> Threshold:
    limit = thresholds().lookup(MODEL, gate.metric, gate.family)
    assert limit is not None and limit.gates_value, f"{gate.name}: no shipped value limit"
    return limit


def limit_text(limit: Threshold) -> str:
    return f"max {limit.max:g}" if limit.max is not None else f"min {limit.min:g}"


#: The models of a gate, in the order their seeds are derived.
ROLES = ("twice", "well", "shapes_v1")


def rates(gate: Gate, role: str, images: int, runs: int, seed: int = SEED) -> tuple[float, float]:
    """P(FAIL) and P(PASS) of the gate's model ``role`` at ``images`` images over ``runs`` seeded runs."""
    limit = limit_of(gate)
    salt = [seed, list(GATES).index(gate.name), ROLES.index(role), images]
    model: Model = getattr(gate, role)
    outcomes = [limit.check(run.fast).outcome for run in model.draw(np.random.default_rng(salt), runs, images)]
    return outcomes.count(FAIL) / runs, outcomes.count(PASS) / runs


# -- the tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(GATES))
def test_the_fast_path_judges_as_the_metric_function(name):
    gate, limit = GATES[name], limit_of(GATES[name])
    for model in (gate.twice, gate.well):
        for run in model.draw(np.random.default_rng([SEED, 1]), 3, 50):
            exact = run.exact()
            assert exact.n == run.fast.n
            assert np.allclose([exact.value, exact.ci_low, exact.ci_high],
                               [run.fast.value, run.fast.ci_low, run.fast.ci_high], rtol=0, atol=1e-9)
            assert limit.check(exact).outcome == limit.check(run.fast).outcome


def test_the_simulated_models_have_their_stated_true_values():
    rng = np.random.default_rng([SEED, 2])
    for gate in GATES.values():
        for model in (gate.twice, gate.well):
            values = [run.fast.value for run in model.draw(rng, 40, 300)]
            assert abs(np.mean(values) - model.value) < 0.02, (gate.name, model.says, np.mean(values))


def test_the_well_behaved_shapes_v1_values_are_the_kept_run_records():
    from support import kept_release

    record = kept_release("shapes-v1")
    measured = {(c.key.family, m.name): m.value for c in record.cases for m in c.metrics}
    for name, (metric, family, value) in SHAPES_V1.items():
        assert measured[(family, metric)] == pytest.approx(value, abs=5e-5), name
        assert GATES[name].shapes_v1.value == pytest.approx(value, abs=5e-4), name


def test_every_default_is_within_the_benchmark_and_the_search_grid():
    assert set(DEFAULT_IMAGES) == set(GATES)
    assert all(n in SEARCH_GRID and n <= BENCHMARK_SIZE for n in DEFAULT_IMAGES.values())


@pytest.mark.parametrize("name", list(GATES))
def test_a_model_twice_over_the_limit_fails_and_a_well_behaved_one_passes_at_the_default(name):
    gate = GATES[name]
    images = DEFAULT_IMAGES[name]
    power, _ = rates(gate, "twice", images, RUNS)
    _, passes = rates(gate, "well", images, RUNS)
    print(f"\n{name} ({limit_text(limit_of(gate))}) at {images} images, {RUNS} runs: "
          f"P(fail | {gate.twice.value:g}) {power:.3f}, P(pass | {gate.well.value:g}) {passes:.3f}")
    assert power >= REQUIRED
    assert passes >= REQUIRED
