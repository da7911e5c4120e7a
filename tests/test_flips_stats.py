"""IFR, IV, transitions and intervals against hand-computed cases and scipy."""

import math

import numpy as np
import pytest

from vlmgate.records import WorstSample
from scipy import stats

from vlmgate.metrics.flips import (FlipPair, accuracy, correctness_transitions, flip_rate_results,
                                   image_vulnerability, instance_flip_rate)
from vlmgate.metrics.stats import bootstrap_interval, wilson_interval


def pairs_from(table):
    """table: sample -> (clean, answer, [perturbed predictions])."""
    return [FlipPair(sid, f"v{i}", clean, p, answer)
            for sid, (clean, answer, preds) in table.items() for i, p in enumerate(preds)]


TABLE = {
    "a": (0, 0, [0, 1, 0]),     # 1 flip, R->W once, R->R twice
    "b": (2, 0, [2, 2, 2]),     # 0 flips, W->W thrice
    "c": (1, 1, [3, 0, 1, 1]),  # 2 flips, R->W twice, R->R twice
    "d": (3, 0, [0]),           # 1 flip, W->R
}


def test_ifr_and_iv_by_hand():
    pairs = pairs_from(TABLE)
    ifr = instance_flip_rate(pairs)
    assert (ifr.value, ifr.n, ifr.count) == (4 / 11, 11, 4)
    iv = image_vulnerability(pairs)
    assert (iv.value, iv.n) == (3 / 4, 4)


def test_transitions_by_hand():
    assert correctness_transitions(pairs_from(TABLE)) == {"R->W": 3, "W->R": 1, "R->R": 4, "W->W": 3}


def test_transitions_skip_samples_without_answer():
    pairs = [FlipPair("x", "v", 0, 1, None), FlipPair("y", "v", 0, 1, 0)]
    assert sum(correctness_transitions(pairs).values()) == 1


def test_worst_samples_ranked_by_flips_then_id():
    worst = instance_flip_rate(pairs_from(TABLE)).worst
    assert [w.sample for w in worst] == ["c", "a", "d"]
    assert worst[0] == WorstSample("c", 2, 4, 1, ("v0", "v1"))


def test_flip_rate_results_order_and_transitions():
    ifr, iv = flip_rate_results(pairs_from(TABLE))
    assert (ifr.name, iv.name) == ("ifr", "iv")
    assert ifr.details["transitions"]["W->R"] == 1


def test_accuracy_ignores_missing_answers():
    result = accuracy([0, 1, 2, 3], [0, None, 1, 3])
    assert (result.value, result.n) == (2 / 3, 3)


def test_empty_is_nan_with_vacuous_interval():
    result = instance_flip_rate([])
    assert math.isnan(result.value) and (result.ci_low, result.ci_high) == (0.0, 1.0)


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (5, 10), (10, 10), (3, 811), (0, 1), (37, 400)])
def test_wilson_matches_scipy(k, n):
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)


def test_wilson_hand_computed():
    # k=3, n=10, z=1.959964: centre = (0.3 + z²/20) / (1 + z²/10), half = z·sqrt(0.021 + z²/400)/(1 + z²/10)
    z = 1.959963984540054
    centre = (0.3 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.3 * 0.7 / 10 + z * z / 400) / (1 + z * z / 10)
    assert wilson_interval(3, 10) == pytest.approx((centre - half, centre + half))


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(5, 3)


def test_bootstrap_reproducible_and_covers_mean():
    values = np.random.default_rng(1).normal(2.0, 1.0, size=200)
    first = bootstrap_interval(values, rng=np.random.default_rng(7))
    second = bootstrap_interval(values, rng=np.random.default_rng(7))
    assert first == second
    assert first[0] < values.mean() < first[1]
    # The percentile interval's width is close to the normal-theory one.
    sem = stats.sem(values)
    assert (first[1] - first[0]) == pytest.approx(2 * 1.96 * sem, rel=0.15)


def test_bootstrap_degenerate_cases():
    assert bootstrap_interval(np.array([1.0, 1.0, 1.0]), rng=np.random.default_rng(0)) == (1.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_interval(np.array([]), rng=np.random.default_rng(0)))
