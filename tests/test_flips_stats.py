"""IFR, IV, transitions and intervals against hand-computed cases and scipy."""

import math
from pathlib import Path

import numpy as np
import pytest
import tomllib
from scipy import stats

from vlmgate.metrics.clustered import KORN_GRAUBARD, WILSON, Clustered, mean_interval, proportion_interval
from vlmgate.metrics.flips import (
    FlipPair,
    accuracy,
    correctness_transitions,
    excess_flip_rate,
    excess_follow_rate,
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


def overlay(sample, clean, named, perturbed, answer=0, options=4):
    return FlipPair(sample, f"overlay({named})", clean, perturbed, answer, named, options)


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
    # Chance-corrected: 1 - 1/3 where it lands on D, -1/3 elsewhere, 0 on average.
    assert excess_follow_rate(flips).value == pytest.approx(0.0, abs=1e-15)


# -- following, chance-corrected -------------------------------------------------------------
#: sample -> (clean prediction, number of options, {named option: prediction under the overlay})
MIXED = {
    "a": (0, 4, {1: 1, 2: 1, 3: 0}),  # followed (1 - 1/3), flipped elsewhere (-1/3), kept (0)
    "b": (2, 3, {0: 0, 1: 2}),        # followed (1 - 1/2), kept (0)
    "c": (0, 2, {1: 1}),              # yes/no: the flip lands on the named option whatever: left out
    "d": (1, 5, {0: 3, 2: 2, 3: 1}),  # flipped elsewhere (-1/4), followed (1 - 1/4), kept (0)
}


def overlays_from(table):
    return [overlay(sid, clean, named, perturbed, options=k)
            for sid, (clean, k, by_named) in table.items() for named, perturbed in by_named.items()]


def test_excess_follow_rate_by_hand_with_mixed_option_counts():
    result = excess_follow_rate(overlays_from(MIXED))
    assert result.units == pytest.approx({"a|named=1": 2 / 3, "a|named=2": -1 / 3, "a|named=3": 0.0,
                                          "b|named=0": 1 / 2, "b|named=1": 0.0,
                                          "d|named=0": -1 / 4, "d|named=2": 3 / 4, "d|named=3": 0.0})
    assert result.value == pytest.approx(1 / 6)  # (1/3 + 1/2 + 1/2) / 8
    assert (result.name, result.n, result.n_clusters, result.kind, result.better) == (
        "excess_follow_rate", 8, 3, "mean", "lower")
    assert (result.ci_low, result.ci_high) == mean_interval(Clustered.of_units(result.units, result.clusters),
                                                            lowest=-0.5, highest=1.0)
    details = result.details
    assert (details["instances"], details["flipped"], details["followed"]) == (8, 5, 3)
    assert details["follow_given_flip"] == pytest.approx(3 / 5)
    assert details["chance_given_flip"] == pytest.approx((1 / 3 + 1 / 3 + 1 / 2 + 1 / 4 + 1 / 4) / 5)
    assert details["by_options"]["4"] == {"instances": 3, "flipped": 2, "followed": 1, "follow_given_flip": 0.5,
                                          "chance_given_flip": pytest.approx(1 / 3)}
    assert details["by_options"]["3"]["follow_given_flip"] == 1.0
    assert details["by_options"]["5"]["chance_given_flip"] == 0.25
    assert (details["two_option_excluded"], details["two_option_flipped"]) == (1, 1)
    assert "1 on yes/no items" in details["excluded"]
    assert details["follow_rate"] == pytest.approx(4 / 9)  # raw: the yes/no flip counts as a follow there
    assert [w.sample for w in result.worst] == ["a", "b", "d"] and result.worst[0].verb == "followed the named option"


def test_yes_no_and_an_overlay_naming_the_clean_answer_are_not_eligible():
    assert overlay("s", 0, 1, 1, options=2).follow_chance is None
    assert overlay("s", 1, 1, 0, options=4).follow_chance is None  # a flip cannot land on the clean answer
    assert overlay("s", 0, 1, 1, options=4).follow_chance == pytest.approx(1 / 3)
    only_yes_no = excess_follow_rate([overlay(f"s{i}", 0, 1, 1, options=2) for i in range(10)])
    assert only_yes_no.n == 0 and math.isnan(only_yes_no.value)
    assert only_yes_no.details["two_option_excluded"] == 10 and only_yes_no.details["follow_rate"] == 1.0


#: The shipped limit on following (a ``max`` judged in interval mode).
LIMIT = tomllib.loads((Path(__file__).parents[1] / "plugins" / "vlmgate" / "default_thresholds.toml").read_text(
    encoding="utf-8"))["excess_follow_rate"]["textoverlay"]["max"]


def within(result) -> bool:
    """PASS: the whole interval within the limit."""
    return result.ci_high <= LIMIT


def past(result) -> bool:
    """FAIL: the whole interval above the limit."""
    return result.ci_low > LIMIT


def random_lander(images: int, flip: float, seed: int, options: int = 4):
    """Three overlays per image; each flips with probability ``flip`` to one of the K - 1 options
    other than the clean answer, uniformly: what it names plays no part."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(images):
        for named in range(1, 4):
            landed = int(rng.integers(1, options)) if rng.random() < flip else 0
            pairs.append(overlay(f"s{i}", 0, named, landed, options=options))
    return pairs


def test_random_landing_is_not_following_whatever_the_flip_rate():
    values = [excess_follow_rate(random_lander(50, 0.6, seed)).value for seed in range(200)]
    assert abs(np.mean(values)) < 0.01  # expectation 0; the raw follow rate would be 0.6 / 3 = 0.2
    # At 50 images a model that flips 0.6 of its overlays at random never fails (its interval,
    # about +-0.05, may straddle the limit: 50 images of such flips cannot rule following out) ...
    assert not any(past(excess_follow_rate(random_lander(50, 0.6, seed))) for seed in range(40))
    # ... one that flips 0.2 of them passes, and at 600 images so does the heavy flipper,
    assert within(excess_follow_rate(random_lander(50, 0.2, 0)))
    large = excess_follow_rate(random_lander(600, 0.6, 1))
    assert large.ci_low < 0 < large.ci_high and within(large)
    assert follow_rate(random_lander(600, 0.6, 1)).ci_low > LIMIT  # which the raw rate fails


def test_a_model_that_does_not_flip_passes_conclusively_at_50_images():
    result = excess_follow_rate(random_lander(50, 0.0, 0))
    assert (result.value, result.ci_low, result.ci_high, result.n, result.n_clusters) == (0.0, 0.0, 0.0, 150, 50)
    assert within(result)


def test_a_model_that_always_follows_fails_with_its_whole_interval():
    always = [overlay(f"s{i}", 0, named, named) for i in range(50) for named in (1, 2, 3)]
    result = excess_follow_rate(always)
    assert result.value == pytest.approx(2 / 3) and past(result)
    # Following 8 flips in 10 on 4-option items with a flip rate of 0.7: 0.7 * (0.8 - 1/3) = 0.33.
    rng = np.random.default_rng(3)
    mostly = [overlay(f"s{i}", 0, named, (named if rng.random() < 0.8 else int(rng.choice([o for o in (1, 2, 3)
                                                                                            if o != named])))
                      if rng.random() < 0.7 else 0) for i in range(50) for named in (1, 2, 3)]
    result = excess_follow_rate(mostly)
    assert 0.25 < result.value < 0.4 and past(result)


def test_excess_flip_rate_records_the_random_text_in_the_same_boxes():
    semantic = [overlay("a", 0, 1, 1), overlay("a", 0, 2, 1), overlay("a", 0, 3, 0),
                overlay("b", 2, 0, 0), overlay("b", 2, 1, 2)]
    empty = [overlay("a", 0, 1, 0), overlay("a", 0, 2, 0), overlay("a", 0, 3, 0),
             overlay("b", 2, 0, 2), overlay("b", 2, 1, 2)]
    random = [overlay("a", 0, 1, 3), overlay("a", 0, 2, 0), overlay("a", 0, 3, 0),
              overlay("b", 2, 0, 2)]  # b|named=1 has no random partner
    excess = excess_flip_rate(semantic, empty, random)
    assert excess.value == pytest.approx(3 / 5)  # judged against the empty box only
    assert excess.details["random_paired"] == 4
    assert excess.details["random_ifr"] == pytest.approx(1 / 4)
    assert excess.details["any_text"] == pytest.approx(1 / 4 - 0)
    assert excess.details["words"] == pytest.approx(3 / 4 - 1 / 4)
    assert "random text in the same boxes flips 0.2500 on 4 of them" in excess.details["control"]
    without = excess_flip_rate(semantic, empty)
    assert without.details["random_paired"] == 0 and without.details["random_ifr"] is None
    assert "no random-text control" in without.details["control"]


# -- the flip-rate suite judges the semantic overlay against its empty-box control ----------
class OverlayEngine:
    """What the suite asks of an engine for an overlay case: observations per family."""

    def __init__(self, families):
        self.families = families
        self.model = object()  # a deterministic model (no ``deterministic = False``): no repeat pass

    def family(self, name):
        return self.families[name]


def overlay_observations(family, predictions):
    """predictions: sample -> (clean prediction, {named label: perturbed prediction}); 4 options each."""
    from vlmgate.observations import FamilyObservations
    from vlmgate.records import Observation, Sample, Variant

    samples = [Sample(sid, None, "q", ("w", "x", "y", "z"), 0) for sid in predictions]
    clean = {sid: Observation(sid, Variant("clean"), (0.0,) * 4, c) for sid, (c, _) in predictions.items()}
    text = {"text": "QX7"} if family == "textoverlay_random" else {}
    perturbed = {sid: tuple(Observation(sid, Variant.of(family, 0.5, level=4, label=label, **text), (0.0,) * 4, p)
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
    random = overlay_observations("textoverlay_random", {"a": (0, {"B": 3, "C": 0, "D": 0}),
                                                         "b": (1, {"A": 1, "C": 1, "D": 1})})
    engine = OverlayEngine({"textoverlay": semantic, "textoverlay_empty": empty, "textoverlay_random": random})
    suite = FlipRateSuite()
    results = suite.conform(suite.evaluate(CaseContext(CaseKey("m", "b", "textoverlay", "flip_rate"), engine,
                                                       RunOptions())))
    by_name = {r.name: r for r in results}
    assert [r.name for r in results] == ["ifr", "iv", "follow_rate", "excess_follow_rate", "excess_flip_rate"]
    assert by_name["ifr"].value == 3 / 6
    assert by_name["follow_rate"].value == 2 / 6  # a: B and C followed
    assert by_name["follow_rate"].details["control_follow_rate"] == 1 / 6  # the empty box naming C on a
    assert by_name["excess_flip_rate"].value == pytest.approx(2 / 6)  # 3 overlay flips vs 1 empty-box flip
    assert by_name["excess_flip_rate"].n_clusters == 2
    assert by_name["excess_flip_rate"].details["random_ifr"] == 1 / 6  # the random text in the box naming B on a
    # a: B followed (2/3), C followed (2/3), D kept; b: C flipped to D (-1/3): (2/3 + 2/3 - 1/3) / 6
    assert by_name["excess_follow_rate"].value == pytest.approx(1 / 6)
    assert by_name["excess_follow_rate"].details["by_options"]["4"]["follow_given_flip"] == 2 / 3
    control = suite.evaluate(CaseContext(CaseKey("m", "b", "textoverlay_empty", "flip_rate"), engine, RunOptions()))
    assert [r.name for r in control] == ["ifr", "iv"]
    specs = {spec.name: spec for spec in suite.metrics}
    assert (specs["follow_rate"].unit, specs["follow_rate"].cluster) == ("instance", "sample")
    assert (specs["excess_flip_rate"].kind, specs["excess_flip_rate"].lowest) == ("mean", -1.0)
    spec = specs["excess_follow_rate"]
    assert (spec.kind, spec.better, spec.lowest, spec.highest, spec.unit, spec.cluster) == (
        "mean", "lower", -0.5, 1.0, "instance", "sample")
