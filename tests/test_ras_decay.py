"""RAS (RAS-style, reconstructed), the visual-decay metrics and the blur-decay family.

Expected values come from hand arithmetic, from independent formulations (scipy's
entropy, a per-sample Python loop over the prediction matrix, a Monte-Carlo uniform
guesser, a brute-force k x k window sum) and from the spec's formulas written out here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy import stats
from scipy.special import softmax
from skimage import data

from vlmgate.errors import ConfigError, DataError
from vlmgate.metrics.clustered import Clustered, mean_interval, proportion_interval
from vlmgate.metrics.decay import (
    accuracy_by_level,
    agreement_by_level,
    chance_persistence,
    decay_agreement,
    decay_persistence,
    persistent,
)
from vlmgate.metrics.ras import ras, ras_terms
from vlmgate.perturbations import VariantContext, get_family
from vlmgate.perturbations.blur_decay import KERNEL_SIZES, blur_exact, gaussian_taps, kernel_sigma
from vlmgate.records import Sample, Variant

NEG_INF = -math.inf


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def spec_ras(p_clean: np.ndarray, p_corrupt: np.ndarray, answer: int) -> float:
    """The spec's formula, with scipy's entropy in base K."""
    k = p_clean.size
    h_c, h_k = stats.entropy(p_clean, base=k), stats.entropy(p_corrupt, base=k)
    y_c, y_k = float(np.argmax(p_clean) == answer), float(np.argmax(p_corrupt) == answer)
    return 1 - abs(h_k - h_c) - abs((p_corrupt.max() - y_k) - (p_clean.max() - y_c))


# ---------------------------------------------------------------- RAS


def test_identical_distributions_score_one() -> None:
    scores = [[-1.0, -2.0, -0.5], [-3.0, -0.1], [0.0, 0.0, 0.0, 0.0]]
    result = ras(scores, scores, [2, 0, 3])
    assert result.value == 1.0 and (result.ci_low, result.ci_high) == (1.0, 1.0)
    assert result.n == 3
    assert result.details["definition"] == "RAS-style, reconstructed"
    assert result.details["accuracy_change"] == 0.0


def test_hand_computed_two_option_case() -> None:
    # clean (0.8, 0.2), right: H = 0.72193, conf - y = -0.2
    # corrupted (0.4, 0.6), wrong: H = 0.97095, conf - y = 0.6
    terms = ras_terms(np.log([0.8, 0.2]), np.log([0.4, 0.6]), 0)
    h = lambda p: -(p * math.log2(p) + (1 - p) * math.log2(1 - p))  # noqa: E731
    assert terms.entropy_c == pytest.approx(h(0.8)) and terms.entropy_k == pytest.approx(h(0.4))
    assert terms.score == pytest.approx(1 - (h(0.4) - h(0.8)) - 0.8)
    assert terms.score == pytest.approx(-0.0490, abs=1e-4)


@pytest.mark.parametrize("k", [2, 4, 1000])
def test_both_extremes_reach_minus_two_plus_one_over_k(k: int) -> None:
    uniform = np.zeros(k)
    one_hot_wrong = np.full(k, NEG_INF)
    one_hot_wrong[1] = 0.0
    # confidently wrong on clean, uniform (tie -> option 0 = answer) under corruption, and back
    assert ras_terms(one_hot_wrong, uniform, 0).score == pytest.approx(-2 + 1 / k)
    assert ras_terms(uniform, one_hot_wrong, 0).score == pytest.approx(-2 + 1 / k)
    assert ras([one_hot_wrong], [uniform], [0]).value == pytest.approx(-2 + 1 / k)


def test_minus_two_is_approached_as_options_grow() -> None:
    values = []
    for k in (2, 10, 100, 10_000):
        one_hot = np.full(k, NEG_INF)
        one_hot[1] = 0.0
        values.append(ras_terms(one_hot, np.zeros(k), 0).score)
    assert values == sorted(values, reverse=True) and values[-1] < -1.9998


@given(st.integers(2, 6).flatmap(lambda k: st.tuples(
    st.lists(st.floats(-30, 5), min_size=k, max_size=k),
    st.lists(st.floats(-30, 5), min_size=k, max_size=k),
    st.integers(0, k - 1))))
def test_ras_lies_in_its_range_and_matches_the_spec_formula(case: tuple[list, list, int]) -> None:
    clean, corrupted, answer = case
    score = ras_terms(clean, corrupted, answer).score
    k = len(clean)
    assert -2 + 1 / k - 1e-9 <= score <= 1 + 1e-12
    p_c, p_k = softmax(np.array(clean)), softmax(np.array(corrupted))
    assert score == pytest.approx(spec_ras(p_c, p_k, answer), abs=1e-9)


def test_destructive_and_corrective_split_and_counts() -> None:
    log = np.log
    clean = [log([0.7, 0.3]), log([0.9, 0.1]), log([0.4, 0.6]), log([0.45, 0.55]), log([0.6, 0.4])]
    corrupted = [log([0.55, 0.45]), log([0.2, 0.8]), log([0.8, 0.2]), log([0.3, 0.7]), log([0.6, 0.4])]
    answers = [0, 0, 0, 0, 0]
    # clean right: samples 0, 1, 4; clean wrong: 2, 3
    ids = ["s0", "s1", "s2", "s3", "s4"]
    result = ras(clean, corrupted, answers, sample_ids=ids)
    per_sample = [spec_ras(np.exp(c), np.exp(k), a) for c, k, a in zip(clean, corrupted, answers)]
    d = result.details
    assert (result.kind, result.better) == ("mean", "higher")
    assert result.units == pytest.approx(dict(zip(ids, per_sample)))
    assert d["n_destructive"] == 3 and d["n_corrective"] == 2
    assert d["destructive"] == pytest.approx(np.mean([per_sample[i] for i in (0, 1, 4)]))
    assert d["corrective"] == pytest.approx(np.mean([per_sample[i] for i in (2, 3)]))
    assert result.value == pytest.approx((3 * d["destructive"] + 2 * d["corrective"]) / 5)
    assert d["accuracy_clean"] == pytest.approx(3 / 5)
    assert d["accuracy_corrupted"] == pytest.approx(3 / 5)  # 0 stays, 1 breaks, 2 is fixed, 3 wrong, 4 same
    assert d["accuracy_change"] == pytest.approx(0.0)
    # erroneous confidence = wrong under corruption and more confident than clean: sample 1
    # (0.8 < 0.9) no, sample 3 (0.7 > 0.55) yes -> 1. Hesitation = right under corruption but
    # less confident: sample 0 (0.55 < 0.7) yes, sample 2 (0.8 > 0.6) no, sample 4 equal -> 1
    assert d["erroneous_confidence"] == 1
    assert d["hesitation"] == 1
    assert result.ci_low <= result.value <= result.ci_high


def test_split_with_no_wrong_samples_reports_none() -> None:
    result = ras([[0.0, -1.0]], [[0.0, -2.0]], [0])
    assert result.details["corrective"] is None and result.details["n_corrective"] == 0


def test_ras_interval_is_closed_form_and_clustered_by_the_given_samples() -> None:
    gen = np.random.default_rng(11)
    clean = gen.normal(size=(40, 4))
    corrupted = clean + gen.normal(scale=2, size=(40, 4))
    answers = list(gen.integers(0, 4, size=40))
    a = ras(clean, corrupted, answers)
    assert (a.ci_low, a.ci_high) == (ras(clean, corrupted, answers).ci_low, ras(clean, corrupted, answers).ci_high)
    assert a.ci_low < a.value < a.ci_high
    # The same 40 rows as 8 images x 5 severities: the interval rests on 8 clusters, so it is wider.
    ids = [f"s{i // 5}|severity={i % 5 + 1}" for i in range(40)]
    nested = ras(clean, corrupted, answers, sample_ids=ids, clusters=[i.split("|")[0] for i in ids])
    assert (nested.value, nested.n, nested.n_clusters) == (a.value, 40, 8)
    assert nested.clusters["s3|severity=2"] == "s3" and nested.units["s3|severity=2"] == pytest.approx(
        ras([clean[16]], [corrupted[16]], [answers[16]]).value)
    assert (nested.ci_low, nested.ci_high) == mean_interval(Clustered.of_units(nested.units, nested.clusters),
                                                            lowest=-2, highest=1)
    assert nested.ci_high - nested.ci_low > a.ci_high - a.ci_low


@pytest.mark.parametrize(("clean", "corrupted", "answers", "match"), [
    ([[0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]], [0], "one of each per sample"),
    ([[0.0]], [[0.0]], [0], "at least 2 options"),
    ([[0.0, 1.0]], [[0.0, 1.0, 2.0]], [0], "equal length"),
    ([[0.0, 1.0]], [[0.0, 1.0]], [2], "answer 2"),
    ([[0.0, 1.0]], [[0.0, 1.0]], [None], "ground truth"),
    ([[0.0, math.nan]], [[0.0, 1.0]], [0], "NaN"),
])
def test_bad_ras_input_raises_data_error(clean, corrupted, answers, match) -> None:
    with pytest.raises(DataError, match=match):
        ras(clean, corrupted, answers)


# ---------------------------------------------------------------- decay metrics


def brute_force(pred: np.ndarray, answers: np.ndarray) -> dict:
    n, levels = pred.shape
    agreement = []
    for level in range(1, levels):
        agreement.append(sum(1 for i in range(n) if pred[i, level] == pred[i, 0]) / n)
    kept = []
    for i in range(n):
        same = True
        for level in range(1, levels):
            if pred[i, level] != pred[i, 0]:
                same = False
        kept.append(same)
    accuracy = [sum(1 for i in range(n) if pred[i, level] == answers[i]) / n for level in range(levels)]
    kept_right = [pred[i, 0] == answers[i] for i in range(n) if kept[i]]
    return {"E": agreement, "E_bar": sum(agreement) / len(agreement), "C": sum(kept) / n,
            "acc": accuracy, "acc_given_C": sum(kept_right) / len(kept_right) if kept_right else None}


@given(st.integers(1, 30), st.integers(2, 8), st.integers(0, 2**32 - 1))
def test_decay_metrics_match_a_brute_force_loop(n: int, levels: int, seed: int) -> None:
    gen = np.random.default_rng(seed)
    counts = gen.integers(2, 5, size=n)
    clean = gen.integers(0, counts)
    # keep most answers to make persistence common, change some
    pred = np.repeat(clean[:, None], levels, axis=1)
    flips = gen.random((n, levels)) < 0.2
    flips[:, 0] = False
    pred = np.where(flips, gen.integers(0, counts[:, None], size=(n, levels)), pred)
    answers = gen.integers(0, counts)
    expected = brute_force(pred, answers)
    np.testing.assert_allclose(agreement_by_level(pred), expected["E"])
    np.testing.assert_allclose(accuracy_by_level(pred, answers), expected["acc"])
    assert persistent(pred).mean() == pytest.approx(expected["C"])
    result = decay_persistence(pred, counts, answers)
    assert result.value == pytest.approx(expected["C"]) and result.n == n
    assert result.details["mean_agreement"] == pytest.approx(expected["E_bar"])
    assert result.details["accuracy_by_level"] == pytest.approx(expected["acc"])
    if expected["acc_given_C"] is None:
        assert result.details["accuracy_given_persistent"] is None
    else:
        assert result.details["accuracy_given_persistent"] == pytest.approx(expected["acc_given_C"])
    # stats.wilson_interval misses p = 0 and p = 1 by one rounding error (5.6e-17)
    assert result.ci_low - 1e-12 <= result.value <= result.ci_high + 1e-12
    agreement = decay_agreement(pred)
    assert agreement.value == pytest.approx(expected["E_bar"])


def test_decay_hand_computed_case() -> None:
    pred = np.array([[0, 0, 0, 0],    # persistent, right
                     [1, 1, 2, 1],    # changes at level 2
                     [2, 2, 2, 2],    # persistent, wrong
                     [3, 0, 0, 0]])   # changes at every level
    answers = np.array([0, 1, 1, 3])
    # level 1 keeps rows 0-2, level 2 rows 0 and 2, level 3 rows 0-2
    np.testing.assert_allclose(agreement_by_level(pred), [0.75, 0.5, 0.75])
    result = decay_persistence(pred, [4, 4, 4, 4], answers, sample_ids=["a", "b", "c", "d"])
    assert result.value == 0.5 and result.count == 2
    assert (result.kind, result.better) == ("proportion", "lower")
    assert result.units == {"a": 1, "b": 0, "c": 1, "d": 0}
    agreement = decay_agreement(pred, sample_ids=["a", "b", "c", "d"])
    assert {sid: np.mean([v for k, v in agreement.units.items() if agreement.clusters[k] == sid]) for sid in "abcd"} \
        == pytest.approx({"a": 1.0, "b": 2 / 3, "c": 1.0, "d": 0.0})
    assert agreement.units["b|level=2"] == 0 and (agreement.n, agreement.n_clusters, agreement.count) == (12, 4, 8)
    assert (agreement.ci_low, agreement.ci_high) == proportion_interval(
        Clustered.of_units(agreement.units, agreement.clusters))
    assert result.details["accuracy_given_persistent"] == 0.5
    assert result.details["accuracy_by_level"] == [0.75, 0.5, 0.25, 0.5]
    assert result.details["mean_agreement"] == pytest.approx((0.75 + 0.5 + 0.75) / 3)
    assert result.details["chance"] == pytest.approx(4.0 ** -3)


def test_chance_level_is_k_to_the_minus_l_minus_one() -> None:
    assert chance_persistence([4], 8) == pytest.approx(1 / 4 ** 7)
    assert chance_persistence([2, 4], 3) == pytest.approx((1 / 4 + 1 / 16) / 2)
    # a uniform guesser over K = 3 options at L = 3 levels keeps its answer with probability 1/9
    gen = np.random.default_rng(5)
    guesses = gen.integers(0, 3, size=(60_000, 3))
    assert persistent(guesses).mean() == pytest.approx(chance_persistence([3], 3), abs=0.006)


@pytest.mark.parametrize(("pred", "counts", "match"), [
    (np.zeros((3,), dtype=int), [2, 2, 2], "samples x levels"),
    (np.zeros((3, 1), dtype=int), [2, 2, 2], "at least one blurred level"),
    (np.zeros((2, 3)), [2, 2], "integers"),
    (np.zeros((2, 3), dtype=int), [2], "one integer per sample"),
    (np.array([[0, 0], [0, 3]]), [2, 2], "sample 1"),
])
def test_bad_decay_input_raises_data_error(pred, counts, match) -> None:
    with pytest.raises(DataError, match=match):
        decay_persistence(pred, counts)


def test_sample_ids_must_match_rows() -> None:
    with pytest.raises(DataError, match="sample ids"):
        decay_persistence(np.zeros((2, 3), dtype=int), [2, 2], sample_ids=["only-one"])
    with pytest.raises(DataError, match="sample ids"):
        ras([[0.0, 1.0]], [[0.0, 1.0]], [0], sample_ids=["a", "b"])


def test_empty_input_gives_json_safe_details() -> None:
    import json

    result = decay_persistence(np.zeros((0, 8), dtype=int), np.zeros(0, dtype=int))
    assert result.n == 0 and math.isnan(result.value)
    json.dumps(result.details, allow_nan=False)
    json.dumps(ras([], [], []).details, allow_nan=False)


# ---------------------------------------------------------------- blur_decay family


def test_kernel_sizes_and_sigmas() -> None:
    assert KERNEL_SIZES == (1, 5, 9, 15, 21, 31, 45, 61)
    # sigma = 0.3·((k - 1)/2 - 1) + 0.8, by hand
    assert [round(kernel_sigma(k), 10) for k in KERNEL_SIZES] == [0.5, 1.1, 1.7, 2.6, 3.5, 5.0, 7.1, 9.5]
    for k in KERNEL_SIZES:
        taps = gaussian_taps(k)
        assert taps.size == k and taps.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(taps, taps[::-1])
        if k > 1:  # neighbouring taps follow exp(-x²/2sigma²)
            centre = k // 2
            assert taps[centre + 1] / taps[centre] == pytest.approx(math.exp(-1 / (2 * kernel_sigma(k) ** 2)))
    with pytest.raises(ValueError):
        gaussian_taps(4)


@pytest.mark.parametrize(("shape", "k"), [((17, 23, 3), 5), ((17, 23, 3), 15), ((12, 9, 3), 31)])
def test_blur_is_the_exact_k_by_k_window_with_reflect_borders(shape: tuple, k: int) -> None:
    pixels = np.random.default_rng(2).random(shape) * 255
    half = k // 2
    padded = np.pad(pixels, ((half, half), (half, half), (0, 0)), mode="symmetric")  # d c b a | a b c d
    weights = np.exp(-((np.arange(k) - half) ** 2) / (2 * kernel_sigma(k) ** 2))
    kernel2d = np.outer(weights, weights) / np.outer(weights, weights).sum()
    windows = sliding_window_view(padded, (k, k), axis=(0, 1))  # H x W x 3 x k x k
    expected = (windows * kernel2d).sum(axis=(-2, -1))
    np.testing.assert_allclose(blur_exact(pixels, k), expected, atol=1e-8)


def test_blur_decay_family_levels_and_variants() -> None:
    family = get_family("blur_decay")
    assert family.tags == ("decay",) and family.max_level == 7
    sample = Sample("s", Image.new("RGB", (8, 8)), "q", ("a", "b"), 0)
    variants = family.variants(sample, VariantContext(None, rng()))
    assert [v.param_dict for v in variants] == [{"level": i, "kernel": k} for i, k in enumerate(KERNEL_SIZES) if i]
    assert [v.intensity for v in variants] == pytest.approx([i / 7 for i in range(1, 8)])


def test_blur_decay_level_zero_is_identity_and_blur_grows() -> None:
    family = get_family("blur_decay")
    image = Image.fromarray(data.astronaut()).resize((64, 64), Image.Resampling.BOX)
    assert np.array_equal(np.asarray(family.apply(image, family.at_level(0), rng())), np.asarray(image))
    base = np.asarray(image, dtype=float)
    errors = []
    for level in range(1, 8):
        out = family.apply(image, family.at_level(level), rng())
        assert out.size == image.size and out.mode == "RGB"
        errors.append(((np.asarray(out, dtype=float) - base) ** 2).mean())
    assert all(b > a for a, b in zip(errors, errors[1:])), errors
    expected = np.rint(np.clip(blur_exact(base.astype(np.float32), 9), 0, 255))
    assert np.abs(np.asarray(family.apply(image, family.at_level(2), rng()), dtype=float) - expected).max() <= 1


def test_blur_decay_rejects_malformed_variants() -> None:
    family = get_family("blur_decay")
    image = Image.new("RGB", (8, 8))
    with pytest.raises(ConfigError, match="kernel"):
        family.apply(image, Variant.of("blur_decay", kernel=4), rng())
    with pytest.raises(ConfigError, match="kernel"):
        family.apply(image, Variant.of("fog", severity=1), rng())
    with pytest.raises(ConfigError, match="no choices"):
        family.at_level(1, sigma=2)
