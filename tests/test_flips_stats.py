"""IFR, IV, transitions and intervals against hand-computed cases and scipy."""

import math

import numpy as np
import pytest
from scipy import stats

from vlmgate.metrics.clustered import KORN_GRAUBARD, WILSON, Clustered, mean_interval, proportion_interval
from vlmgate.metrics.flips import (
    FlipPair,
    accuracy,
    correctness_transitions,
    excess_flip_rate,
    flip_rate_results,
    follow_rate,
    image_vulnerability,
    instance_flip_rate,
)
from vlmgate.metrics.stats import bootstrap_interval, wilson_interval
from vlmgate.records import WorstSample


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
    assert worst[0] == WorstSample("c", 2, 4, 1, ("v0", "v1"), (3, 0), answer=1)  # and what it flipped to


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


# -- instances nested in images -------------------------------------------------------------
def test_ifr_interval_is_clustered_by_image_and_wider_than_instance_wilson():
    # 10 images x 8 shifts: 3 fragile images flip on every shift, 7 never flip.
    table = {f"s{i}": (0, 0, [1] * 8 if i < 3 else [0] * 8) for i in range(10)}
    ifr = instance_flip_rate(pairs_from(table))
    assert (ifr.value, ifr.n, ifr.n_clusters, ifr.count) == (0.3, 80, 10, 24)
    assert (ifr.ci_low, ifr.ci_high) == proportion_interval(Clustered.of_units(ifr.units, ifr.clusters))
    naive = wilson_interval(24, 80)
    assert ifr.ci_low < naive[0] and ifr.ci_high > naive[1]
    assert ifr.details["interval"] == KORN_GRAUBARD and ifr.details["design_effect"] == pytest.approx(
        ((10 / 9) * sum((t - 0.3 * 8) ** 2 for t in [8] * 3 + [0] * 7) / 80 ** 2) / (0.3 * 0.7 / 80))


def test_one_instance_per_image_keeps_the_wilson_interval():
    ifr = instance_flip_rate(pairs_from({f"s{i}": (0, 0, [int(i < 3)]) for i in range(10)}))
    assert (ifr.ci_low, ifr.ci_high) == wilson_interval(3, 10) and ifr.details["interval"] == WILSON


def overlay(sample, clean, named, perturbed, answer=0):
    return FlipPair(sample, f"overlay({named})", clean, perturbed, answer, named)


def test_follow_rate_counts_moves_to_the_named_option_only():
    # a: followed, flipped elsewhere, kept; b: followed once
    semantic = [overlay("a", 0, 1, 1), overlay("a", 0, 2, 1), overlay("a", 0, 3, 0),
                overlay("b", 2, 0, 0), overlay("b", 2, 1, 2), overlay("b", 2, 3, 2)]
    empty = [overlay("a", 0, 1, 1), overlay("a", 0, 2, 0), overlay("a", 0, 3, 0),
             overlay("b", 2, 0, 2), overlay("b", 2, 1, 2), overlay("b", 2, 3, 2)]
    follow = follow_rate(semantic, empty)
    assert (follow.name, follow.value, follow.n, follow.n_clusters, follow.count) == ("follow_rate", 2 / 6, 6, 2, 2)
    assert follow.units == {"a|named=1": 1, "a|named=2": 0, "a|named=3": 0,
                            "b|named=0": 1, "b|named=1": 0, "b|named=3": 0}
    assert follow.clusters["b|named=3"] == "b" and follow.kind == "proportion"
    assert follow.details["control_follow_rate"] == pytest.approx(1 / 6)  # the empty box "followed" by chance
    assert [w.sample for w in follow.worst] == ["a", "b"] and follow.worst[0].flipped_by == ("overlay(1)",)


def test_excess_flip_rate_pairs_each_overlay_with_its_empty_box_on_the_same_image():
    semantic = [overlay("a", 0, 1, 1), overlay("a", 0, 2, 1), overlay("a", 0, 3, 0),
                overlay("b", 2, 0, 0), overlay("b", 2, 1, 2), overlay("c", 1, 0, 1)]
    empty = [overlay("a", 0, 1, 1), overlay("a", 0, 2, 0), overlay("a", 0, 3, 0),
             overlay("b", 2, 0, 2), overlay("b", 2, 1, 3), overlay("d", 1, 0, 0)]  # c and d have no partner
    excess = excess_flip_rate(semantic, empty)
    assert excess.units == {"a|named=1": 0, "a|named=2": 1, "a|named=3": 0, "b|named=0": 1, "b|named=1": -1}
    assert (excess.value, excess.n, excess.n_clusters, excess.kind) == (1 / 5, 5, 2, "mean")
    assert excess.details["semantic_ifr"] == pytest.approx(3 / 5)
    assert excess.details["control_ifr"] == pytest.approx(2 / 5)
    assert excess.details["unpaired"] == 2
    assert (excess.ci_low, excess.ci_high) == mean_interval(Clustered.of_units(excess.units, excess.clusters),
                                                            lowest=-1, highest=1)


def test_occlusion_alone_gives_no_excess_and_no_follow():
    """A model that flips on the box whatever it says: raw IFR is high, the overlay gates see nothing."""
    flips = [overlay(s, 0, named, 3) for s in "abcd" for named in (1, 2, 3)]  # always option D
    assert instance_flip_rate(flips).value == 1.0
    assert excess_flip_rate(flips, flips).value == 0.0
    assert follow_rate(flips, flips).value == 1 / 3  # the box naming D only: as often as the empty box "follows"
    assert follow_rate(flips, flips).details["control_follow_rate"] == 1 / 3


# -- the flip-rate suite judges the semantic overlay against its empty-box control ----------
class OverlayEngine:
    """What the suite asks of an engine for an overlay case: observations per family."""

    def __init__(self, families):
        self.families = families
        self.model = object()  # a deterministic model (no ``deterministic = False``): no repeat pass

    def family(self, name):
        return self.families[name]


def overlay_observations(family, predictions):
    """predictions: sample -> (clean prediction, {named label: perturbed prediction})."""
    from vlmgate.engine import FamilyObservations
    from vlmgate.records import Observation, Sample, Variant

    samples = [Sample(sid, None, "q", ("w", "x", "y", "z"), 0) for sid in predictions]
    clean = {sid: Observation(sid, Variant("clean"), (0.0,) * 4, c) for sid, (c, _) in predictions.items()}
    perturbed = {sid: tuple(Observation(sid, Variant.of(family, 0.5, level=4, label=label), (0.0,) * 4, p)
                            for label, p in by_label.items())
                 for sid, (_, by_label) in predictions.items()}
    return FamilyObservations(family, samples, clean, perturbed)


def test_the_textoverlay_case_records_follow_and_excess_beside_ifr_and_its_controls_do_not():
    from vlmgate.cases import CaseKey
    from vlmgate.suites.base import CaseContext, RunOptions
    from vlmgate.suites.flip_rate import FlipRateSuite

    semantic = overlay_observations("textoverlay", {"a": (0, {"B": 1, "C": 2, "D": 0}),
                                                    "b": (1, {"A": 1, "C": 3, "D": 1})})
    empty = overlay_observations("textoverlay_empty", {"a": (0, {"B": 0, "C": 2, "D": 0}),
                                                       "b": (1, {"A": 1, "C": 1, "D": 1})})
    engine = OverlayEngine({"textoverlay": semantic, "textoverlay_empty": empty})
    suite = FlipRateSuite()
    results = suite.conform(suite.evaluate(CaseContext(CaseKey("m", "b", "textoverlay", "flip_rate"), engine,
                                                       RunOptions())))
    by_name = {r.name: r for r in results}
    assert [r.name for r in results] == ["ifr", "iv", "follow_rate", "excess_flip_rate"]
    assert by_name["ifr"].value == 3 / 6
    assert by_name["follow_rate"].value == 2 / 6  # a: B and C followed
    assert by_name["follow_rate"].details["control_follow_rate"] == 1 / 6  # the empty box naming C on a
    assert by_name["excess_flip_rate"].value == pytest.approx(2 / 6)  # 3 overlay flips vs 1 empty-box flip
    assert by_name["excess_flip_rate"].n_clusters == 2
    control = suite.evaluate(CaseContext(CaseKey("m", "b", "textoverlay_empty", "flip_rate"), engine, RunOptions()))
    assert [r.name for r in control] == ["ifr", "iv"]
    specs = {spec.name: spec for spec in suite.metrics}
    assert (specs["follow_rate"].unit, specs["follow_rate"].cluster) == ("instance", "sample")
    assert (specs["excess_flip_rate"].kind, specs["excess_flip_rate"].lowest) == ("mean", -1.0)
