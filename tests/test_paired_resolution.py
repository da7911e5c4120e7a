"""Paired-test p-values resolved as far as the decision needs (``vlmgate.metrics.paired``):
the exact sign-flip law of integer differences against brute force, Monte Carlo against it,
the adaptive decision against exact bounds on the kept records of ``shapes-v1`` and
``shapes-v2`` (``tests/data/releases``), and what the release diff of those records finds."""

from __future__ import annotations

import gzip
import itertools
import math

import numpy as np
import pytest

from vlmgate.metrics import paired
from vlmgate.metrics.paired import (
    ALPHA,
    EXACT,
    EXACT_BOUNDS,
    MONTE_CARLO,
    SIGN_FLIP,
    PairedChange,
    cluster_differences,
    compare_units,
    paired_bootstrap_test,
    paired_units,
    sign_flip_bounds,
    sign_flip_distribution,
    sign_flip_test,
)
from vlmgate.records import is_worse
from vlmgate.report.diff import diff_runs
from vlmgate.report.record import RunRecord, load_record

from support import RELEASES

#: The RAS regressions of shapes-v2 against shapes-v1 that a 1/2000 resampling floor hid.
HIDDEN_RAS = ("impulse_noise", "speckle_noise", "jpeg_compression", "motion_blur", "pixelate", "zoom_blur",
              "gaussian_noise")
#: The level of a diff of the kept records: alpha over its ~150 paired tests.
DECIDE_AT = ALPHA / 150


def brute_force_p(differences: np.ndarray) -> float:
    """Every sign assignment of the non-zero differences, counted."""
    moved = differences[differences != 0]
    if moved.size == 0:
        return 1.0
    signs = np.array(list(itertools.product((-1, 1), repeat=moved.size)))
    return float(np.mean(np.abs(signs @ moved) >= abs(moved.sum()) - 1e-9))


# -- exact law of integer differences -----------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_exact_integer_p_matches_brute_force_enumeration(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 15))
    differences = rng.integers(-6, 7, size=size).astype(np.float64)
    result = sign_flip_test(differences, rng=np.random.default_rng(0))
    assert result.method == EXACT and result.draws == 0
    assert result.value == pytest.approx(brute_force_p(differences), rel=1e-12, abs=1e-15)


def test_the_exact_law_is_the_subset_sum_count():
    magnitudes = np.array([3, 1, 2, 2, 5, 0, 1])
    counts = np.zeros(magnitudes.sum() + 1)
    for chosen in itertools.product((0, 1), repeat=magnitudes.size):
        counts[int(np.dot(chosen, magnitudes))] += 1
    assert sign_flip_distribution(magnitudes) == pytest.approx(counts / 2 ** magnitudes.size, rel=1e-14)
    assert sign_flip_distribution(np.array([], dtype=int)).tolist() == [1.0]


def test_a_change_no_resampling_reaches_gets_its_exact_p():
    # 36 images each newly follow an overlay: p = 2 / 2^36 exactly, with no draw.
    change = sign_flip_test(np.array([1.0] * 36 + [0.0] * 14), rng=np.random.default_rng(0), decide_at=1e-9)
    assert (change.value, change.method, change.draws) == (pytest.approx(2 / 2 ** 36, rel=1e-12), EXACT, 0)
    assert change.value < 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_monte_carlo_agrees_with_the_exact_p(seed):
    """Integer differences divided by 3 (not integers any more, the same p) go through the draws."""
    rng = np.random.default_rng([5, seed])
    differences = rng.integers(-4, 6, size=60).astype(np.float64)
    exact = sign_flip_test(differences, rng=np.random.default_rng(0))
    drawn = sign_flip_test(differences / 3, rng=np.random.default_rng(seed), decide_at=ALPHA)
    assert exact.method == EXACT
    if drawn.method == MONTE_CARLO:
        low, high = drawn.interval
        assert low <= exact.value <= high
        assert drawn.value == pytest.approx(exact.value, abs=4 * math.sqrt(exact.value / drawn.draws) + 2 / drawn.draws)
    assert (drawn.value < ALPHA) == (exact.value < ALPHA)


def test_exact_bounds_bracket_the_exact_p_and_narrow_with_the_grid():
    rng = np.random.default_rng(9)
    differences = rng.normal(0.15, 1.0, size=18)  # few enough to enumerate
    magnitudes, observed = np.abs(differences), abs(differences.sum()) - 1e-9
    exact = brute_force_p(differences)
    widths = []
    for bins in (64, 1024, 1 << 14):
        low, high = sign_flip_bounds(magnitudes, observed, bins)
        assert low <= exact <= high
        widths.append(high - low)
    assert widths[-1] < widths[0] and widths[-1] < 0.01 * exact


# -- the adaptive decision ---------------------------------------------------------------------------
def test_significant_compares_with_the_level_the_change_was_decided_at():
    change = PairedChange("ras", SIGN_FLIP, 10, 0.9, 0.8, 0, 5, 0.001, 5, decided_at=0.01)
    assert change.significant
    assert not PairedChange("ras", SIGN_FLIP, 10, 0.9, 0.8, 0, 5, 0.001, 5, decided_at=0.001).significant


def test_an_unresolved_p_is_its_upper_bound_and_never_significant(monkeypatch):
    # A level inside the first grid's bounds, with too few draws and no finer grid allowed.
    rng = np.random.default_rng(3)
    differences = rng.normal(0.35, 1.0, size=40)
    magnitudes, observed = np.abs(differences), abs(differences.sum()) - 1e-9 * (1 + np.abs(differences).sum())
    coarse = sign_flip_bounds(magnitudes, observed, paired.BRACKET_BINS)
    level = sum(coarse) / 2
    monkeypatch.setattr(paired, "SIGN_FLIP_MAX_DRAWS", 4000)
    monkeypatch.setattr(paired, "MAX_BRACKET_WORK", 40 * paired.BRACKET_BINS)
    result = sign_flip_test(differences, rng=np.random.default_rng(0), decide_at=level)
    assert not result.resolved and result.method == EXACT_BOUNDS
    assert result.value == result.interval[1] >= level > result.interval[0]
    change = compare_units("ras", "mean", {f"s{i}": 0.0 for i in range(40)},
                           {f"s{i}": float(d) for i, d in enumerate(differences)}, rng=np.random.default_rng(0),
                           clusters={f"s{i}": f"s{i // 1}" for i in range(40)}, decide_at=level)
    assert change.test == paired.BOOTSTRAP  # one unit per image: the bootstrap, not the sign flips
    monkeypatch.undo()
    fine = sign_flip_bounds(magnitudes, observed, 1 << 20)
    resolved = sign_flip_test(differences, rng=np.random.default_rng(0), decide_at=level)
    if fine[1] < level or fine[0] >= level:
        assert resolved.resolved and (resolved.value < level) == (fine[1] < level)


def test_the_bootstrap_is_resolved_the_same_way_and_agrees_with_its_exhaustive_value():
    differences = np.array([0.3, -0.1, 0.5, 0.2, 0.4, 0.35])
    d = differences - differences.mean()
    sums = np.array([d[list(idx)].sum() for idx in itertools.product(range(6), repeat=6)])
    exact = float(np.mean(np.abs(sums) >= abs(differences.sum()) - 1e-12))
    for level in (0.05, 0.01, exact * 1.5, exact / 1.5):
        result = paired_bootstrap_test(differences, rng=np.random.default_rng(1), decide_at=level)
        assert result.method == MONTE_CARLO and result.resolved
        assert result.interval[0] <= exact <= result.interval[1]
        assert (result.value < level) == (exact < level)


def test_the_same_inputs_and_seeded_generator_give_the_same_p():
    rng = np.random.default_rng(17)
    before = {f"s{i}|sev={k}": float(v) for i in range(40) for k, v in enumerate(rng.random(5))}
    after = {key: value - 0.08 * rng.random() for key, value in before.items()}
    clusters = {key: key.split("|")[0] for key in before}
    shuffled = dict(reversed(list(after.items())))
    results = [compare_units("ras", "mean", before, units, rng=np.random.default_rng(4), clusters=clusters,
                             decide_at=DECIDE_AT) for units in (after, after, shuffled)]
    assert results[0] == results[1] == results[2]
    assert results[0].p_method in (MONTE_CARLO, EXACT_BOUNDS) and results[0].decided_at == DECIDE_AT


# -- the kept records of shapes-v1 and shapes-v2 --------------------------------------------------------
@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> tuple[RunRecord, RunRecord]:
    """The kept records, decompressed (``load_record`` reads plain ``run.json``)."""
    folder = tmp_path_factory.mktemp("releases")
    records = []
    for name in ("shapes-v1", "shapes-v2"):
        path = folder / f"{name}.run.json"
        path.write_bytes(gzip.decompress((RELEASES / f"{name}.run.json.gz").read_bytes()))
        records.append(load_record(path))
    return records[0], records[1]


def ras_differences(releases) -> dict[tuple[str, str], np.ndarray]:
    """Per-image differences of every RAS metric the two records share, by (family, metric)."""
    before, after = releases
    cases = {(case.key.family, case.test): case for case in before.cases}
    found = {}
    for case in after.cases:
        if case.key.suite != "ras" or (case.key.family, case.test) not in cases:
            continue
        for metric in case.metrics:
            old = cases[(case.key.family, case.test)].metric(metric.name)
            keys, x, y = paired_units(old.units, metric.units)
            found[(case.key.family, metric.name)] = cluster_differences(keys, y - x, {**old.clusters,
                                                                                     **metric.clusters})
    return found


def test_the_records_load_and_pair(releases):
    before, after = releases
    assert list(before.models) == ["bundled:shapes-v1"] and list(after.models) == ["bundled:shapes-v2"]
    assert before.completeness.complete and after.completeness.complete
    assert len(ras_differences(releases)) >= 2 * len(HIDDEN_RAS)


def test_the_adaptive_decision_matches_exact_bounds_on_the_records_ras_metrics(releases):
    """Each RAS change of the records, decided at alpha / 150, against an independent exact
    bracket of its sign-flip p (a fine grid: ``sign_flip_bounds``)."""
    checked = 0
    for (family, name), differences in ras_differences(releases).items():
        moved = differences[differences != 0]
        if moved.size <= paired.EXACT_SIGN_FLIPS:
            continue
        low, high = sign_flip_bounds(np.abs(moved), abs(moved.sum()) - 1e-9 * (1 + np.abs(moved).sum()), 1 << 20)
        assert high - low <= 0.1 * high, (family, name)
        result = sign_flip_test(differences, rng=np.random.default_rng([1, checked]), decide_at=DECIDE_AT)
        assert result.resolved, (family, name, result)
        assert result.interval[0] <= high and low <= result.interval[1], (family, name, result, (low, high))
        if high < DECIDE_AT or low >= DECIDE_AT:
            assert (result.value < DECIDE_AT) == (high < DECIDE_AT), (family, name, result, (low, high))
        checked += 1
    assert checked >= 30
    for family in HIDDEN_RAS:  # the changes a 1/2000 floor hid: all below alpha / 150 exactly
        differences = ras_differences(releases)[(family, "ras")]
        moved = differences[differences != 0]
        _, high = sign_flip_bounds(np.abs(moved), abs(moved.sum()) - 1e-9 * (1 + np.abs(moved).sum()), 1 << 20)
        assert high < DECIDE_AT, family


def holm(p_values: list[float]) -> np.ndarray:
    """Holm-adjusted p-values in the input order."""
    p = np.asarray(p_values)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(np.minimum(1.0, (p.size - np.arange(p.size)) * p[order]))
    return adjusted


def test_the_diff_of_the_records_finds_the_hidden_ras_regressions(releases):
    diff = diff_runs(*releases)
    rows = [row for row in diff.rows if row.change is not None and row.change.tested]
    adjusted = holm([row.change.p_value for row in rows])
    # Keyed by the case id's last part (``textoverlay``, ``padcrop.ctx_mcq``) and the metric.
    significant = {(row.case.rsplit("bundled_shapes-", 1)[-1], row.metric): row
                   for row, p in zip(rows, adjusted) if p < ALPHA}
    print(f"\n{len(rows)} paired tests, {len(significant)} significant (Holm):")
    for (family, metric), row in sorted(significant.items(), key=lambda item: item[1].change.p_value):
        print(f"  {family:34s} {metric:18s} {row.change.test:28s} p = {row.change.p_value:.3g} "
              f"({row.change.p_method}{', %d draws' % row.change.draws if row.change.draws else ''})")
    assert len(rows) == 150
    for family in HIDDEN_RAS:
        row = significant.get((family, "ras"))
        assert row is not None and is_worse(row.better, row.change.delta), family
        assert row.change.resolved and row.change.p_value < DECIDE_AT
    # What a resampling floor of 1/2000 already let through stays significant.
    for family, metric in [("textoverlay", "iv"), ("textoverlay", "ifr"), ("textoverlay", "follow_rate"),
                           ("textoverlay", "excess_flip_rate"), ("spatter", "ras"), ("spatter", "ras_destructive"),
                           ("shot_noise", "ras"), ("shot_noise", "ras_destructive"),
                           ("speckle_noise", "ras_destructive")]:
        assert (family, metric) in significant, (family, metric)
    # Every significant change is a regression of v2, and beyond those 9 + 7 each is either the
    # destructive half of a RAS change (the same images) or a mean change tested by the paired
    # bootstrap, whose p was floored at 1/2001 before.
    assert all(is_worse(row.better, row.change.delta) for row in significant.values())
    others = set(significant) - {(family, "ras") for family in HIDDEN_RAS} - {
        ("textoverlay", "iv"), ("textoverlay", "ifr"), ("textoverlay", "follow_rate"),
        ("textoverlay", "excess_flip_rate"), ("spatter", "ras"), ("spatter", "ras_destructive"),
        ("shot_noise", "ras"), ("shot_noise", "ras_destructive"), ("speckle_noise", "ras_destructive")}
    for key in others:
        row = significant[key]
        assert row.metric == "ras_destructive" or row.change.test == paired.BOOTSTRAP, key
