"""The RAS and visual-decay suites: on a stub adapter whose answers follow image statistics
(so every figure can be worked out by hand), and end to end through pytester."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest
from PIL import Image

from vlmgate.engine import Engine
from vlmgate.errors import ConfigError, DataError
from vlmgate.metrics.clustered import Clustered, mean_interval
from vlmgate.metrics.decay import decay_persistence
from vlmgate.metrics.ras import ras
from vlmgate.models.base import ScoreRequest
from vlmgate.observations import FamilyObservations
from vlmgate.perturbations.base import VariantContext, get_family
from vlmgate.perturbations.blur_decay import BlurDecay
from vlmgate.records import CLEAN, Observation, Sample
from vlmgate.seeding import rng_for
from vlmgate.suites.decay import decay_matrix
from vlmgate.suites.ras import DEFAULT_SAMPLES
from vlmgate.testing import evaluate_case

from support import DECAY_TEST, RAS_TEST, ListBenchmark, gate_args, junit_cases, outcomes

REPO = Path(__file__).resolve().parents[1]
K = 4
BETA = 2.0
BRIGHTNESS_DELTAS = (0.1, 0.2, 0.3, 0.4, 0.5)  # ImageNet-C brightness, severities 1-5


# ---------------------------------------------------------------------------- stubs


def mean_intensity(image: Image.Image) -> float:
    return float(np.asarray(image.convert("RGB"), dtype=np.float64).mean() / 255.0)


def doubled_std(image: Image.Image) -> float:
    """Twice the grey-level standard deviation: 1.0 for a black-and-white checkerboard."""
    return float(2 * (np.asarray(image.convert("L"), dtype=np.float64) / 255.0).std())


def bucket(value: float, options: int = K) -> int:
    return min(int(value * options), options - 1)


@dataclass
class BucketAdapter:
    """Answers the bucket (of ``options`` equal ones in [0, 1]) that an image statistic falls in.

    Option i scores ``-BETA * |bucket - i|``, so a score vector depends on the bucket
    alone and every softmax, entropy and confidence can be written down by hand.
    """

    statistic: Callable[[Image.Image], float]
    spec: str = "stub:bucket"
    fingerprint: str = "stub-bucket"
    requests: int = 0

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        self.requests += len(requests)
        out = []
        for request in requests:
            b = bucket(self.statistic(request.image), len(request.continuations))
            out.append(np.array([-BETA * abs(b - i) for i in range(len(request.continuations))]))
        return out


def uniform(level: int, size: int = 8) -> Image.Image:
    return Image.new("RGB", (size, size), (level, level, level))


def checkerboard(square: int, size: int = 64) -> Image.Image:
    y, x = np.mgrid[:size, :size]
    return Image.fromarray(np.where((x // square + y // square) % 2 == 0, 255, 0).astype(np.uint8)).convert("RGB")


def mcq(sample_id: str, image: Image.Image, answer: int | None) -> Sample:
    return Sample(sample_id, image, "Which bucket?", ("a", "b", "c", "d"), answer)


# ---------------------------------------------------------------------------- RAS by hand


def hand_ras(clean_bucket: int, corrupted_bucket: int, answer: int) -> float:
    """RAS of one instance from the spec's formula, written out without scipy."""
    def terms(b: int) -> tuple[float, float, float]:
        weights = [math.exp(-BETA * abs(b - i)) for i in range(K)]
        p = [w / sum(weights) for w in weights]
        entropy = -sum(q * math.log(q) for q in p) / math.log(K)
        return entropy, max(p), float(b == answer)

    h_c, conf_c, y_c = terms(clean_bucket)
    h_k, conf_k, y_k = terms(corrupted_bucket)
    return 1 - abs(h_k - h_c) - abs((conf_k - y_k) - (conf_c - y_c))


#: Grey levels chosen so that level/255 + delta stays >= 2/255 away from every bucket edge.
GREYS = (5, 44, 96, 145, 200, 230)


def brightened_bucket(grey: int, delta: float) -> int:
    value = min(grey / 255 + delta, 1.0)
    assert all(abs(value - edge / K) > 2 / 255 for edge in range(1, K)), "test data sits on a bucket edge"
    return bucket(value)


@pytest.fixture
def grey_engine() -> Engine:
    """Six uniform grey images, answers alternating right and wrong on the clean image, one unanswered."""
    items = []
    for i, grey in enumerate(GREYS):
        clean = bucket(grey / 255)
        answer = None if i == 5 else (clean if i % 2 == 0 else (clean + 1) % K)
        items.append(mcq(f"g{i}", uniform(grey), answer))
    return Engine(BucketAdapter(mean_intensity), ListBenchmark(tuple(items)), seed=3)


def test_ras_under_brightness_matches_the_formula_by_hand(grey_engine):
    primary, destructive, corrective = evaluate_case("ras", grey_engine, "brightness")
    judged = [s for s in grey_engine.samples() if s.answer is not None]
    per_sample = {
        s.id: [hand_ras(bucket(GREYS[int(s.id[1:])] / 255), brightened_bucket(GREYS[int(s.id[1:])], d), s.answer)
               for d in BRIGHTNESS_DELTAS]
        for s in judged
    }
    everything = [v for values in per_sample.values() for v in values]
    # Units are the 25 (sample, severity) instances, clustered by sample: 5 independent images.
    assert primary.name == "ras" and (primary.n, primary.n_clusters) == (25, 5)
    assert primary.value == pytest.approx(np.mean(everything), abs=1e-12)
    assert sorted(primary.units.values()) == pytest.approx(sorted(everything), abs=1e-12)
    for sid, values in per_sample.items():
        assert sorted(v for k, v in primary.units.items() if primary.clusters[k] == sid) == pytest.approx(
            sorted(values), abs=1e-12)
    assert all(key.startswith(f"{primary.clusters[key]}|brightness(") for key in primary.units)
    assert (primary.ci_low, primary.ci_high) == mean_interval(Clustered.of_units(primary.units, primary.clusters),
                                                              lowest=-2, highest=1)
    right = [s.id for s in judged if s.answer == bucket(GREYS[int(s.id[1:])] / 255)]
    assert right == ["g0", "g2", "g4"]
    assert destructive.value == pytest.approx(np.mean([per_sample[sid] for sid in right]), abs=1e-12)
    assert corrective.value == pytest.approx(np.mean([per_sample[s] for s in ("g1", "g3")]), abs=1e-12)
    assert (destructive.n_clusters, corrective.n_clusters) == (3, 2) and (destructive.n, corrective.n) == (15, 10)
    assert sorted(set(destructive.clusters.values())) == right
    severity_3 = primary.details["per_severity"]["3"]
    assert severity_3["ras"] == pytest.approx(np.mean([v[2] for v in per_sample.values()]), abs=1e-12)
    corrupted_right = [brightened_bucket(GREYS[int(s.id[1:])], 0.3) == s.answer for s in judged]
    assert severity_3["accuracy_corrupted"] == pytest.approx(np.mean(corrupted_right))
    assert primary.details["severities"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert primary.details["skipped_no_answer"] == 1 and primary.details["skipped_samples"] == ["g5"]
    assert primary.ci_low <= primary.value <= primary.ci_high


def test_ras_suite_equals_metrics_ras_on_the_same_observations(grey_engine):
    primary = evaluate_case("ras", grey_engine, "gaussian_noise")[0]
    family = get_family("gaussian_noise")
    judged = [s for s in grey_engine.samples() if s.answer is not None]
    clean, corrupted, answers = [], [], []
    for sample in judged:
        clean_obs = grey_engine.observe([(sample, CLEAN)])[0]
        context = VariantContext(clean_obs.prediction, rng_for(grey_engine.seed, "variants", sample.id, family.name))
        for obs in grey_engine.observe([(sample, v) for v in family.variants(sample, context)]):
            clean.append(clean_obs.scores)
            corrupted.append(obs.scores)
            answers.append(sample.answer)
    direct = ras(clean, corrupted, answers)
    assert primary.value == pytest.approx(direct.value, abs=1e-12)
    for field in ("destructive", "corrective", "accuracy_change", "erroneous_confidence", "hesitation",
                  "n_destructive", "n_corrective"):
        assert primary.details[field] == pytest.approx(direct.details[field], abs=1e-12), field
    assert primary.details["instances"] == direct.n == 25


def test_unchanged_images_score_one_with_a_degenerate_interval(grey_engine):
    # Contrast pulls pixels toward their channel means: a uniform image is its own fixed point.
    primary, destructive, corrective = evaluate_case("ras", grey_engine, "contrast")
    for result in (primary, destructive, corrective):
        assert (result.value, result.ci_low, result.ci_high) == (1.0, 1.0, 1.0)
    assert primary.details["accuracy_change"] == 0.0
    assert primary.details["erroneous_confidence"] == primary.details["hesitation"] == 0


def test_default_grid_judges_the_first_samples_and_an_explicit_limit_replaces_it():
    items = tuple(mcq(f"s{i:02d}", uniform(10 * i), 0) for i in range(DEFAULT_SAMPLES + 3))
    light = Engine(BucketAdapter(mean_intensity), ListBenchmark(items))
    result = evaluate_case("ras", light, "contrast")[0]
    assert result.n_clusters == DEFAULT_SAMPLES and result.details["samples_available"] == DEFAULT_SAMPLES + 3
    assert f"first {DEFAULT_SAMPLES} samples" in result.details["grid"] and "1, 2, 3, 4, 5" in result.details["grid"]
    # The clean pass is the engine's shared one (every sample, the same batches whichever suite
    # runs first, so results do not depend on test order); corruptions only on the judged grid.
    assert light.model.requests == len(items) + DEFAULT_SAMPLES * 5
    full = Engine(BucketAdapter(mean_intensity), ListBenchmark(items), limit=len(items))
    explicit = evaluate_case("ras", full, "contrast")[0]
    assert explicit.n_clusters == len(items) and "--vlmgate-limit" in explicit.details["grid"]


def test_benchmark_without_answers_is_a_data_error_naming_the_fix():
    engine = Engine(BucketAdapter(mean_intensity), ListBenchmark((mcq("x", uniform(9), None),)))
    with pytest.raises(DataError, match=r"stub:list.*needs ground truth.*not ras"):
        evaluate_case("ras", engine, "contrast")


# ---------------------------------------------------------------------------- decay


def _observation(sample_id: str, level: int, prediction: int) -> Observation:
    variant = CLEAN if level == 0 else BlurDecay().at_level(level)
    scores = tuple(1.0 if i == prediction else 0.0 for i in range(K))
    return Observation(sample_id, variant, scores, prediction)


def test_decay_matrix_places_levels_by_their_level_param():
    samples = (mcq("a", uniform(0), 0), mcq("b", uniform(0), 1))
    shuffled = [5, 2, 7, 1, 4, 3, 6]
    predictions = {"a": {lvl: lvl % K for lvl in range(8)}, "b": {lvl: (lvl * 3) % K for lvl in range(8)}}
    observations = FamilyObservations(
        "blur_decay", samples,
        {s.id: _observation(s.id, 0, predictions[s.id][0]) for s in samples},
        {s.id: tuple(_observation(s.id, lvl, predictions[s.id][lvl]) for lvl in shuffled) for s in samples},
    )
    matrix, levels = decay_matrix(observations)
    assert levels == list(range(8))
    assert matrix.tolist() == [[predictions[s][lvl] for lvl in range(8)] for s in ("a", "b")]


def test_decay_matrix_rejects_uneven_levels_and_levelless_variants():
    sample = mcq("a", uniform(0), 0)
    other = mcq("b", uniform(0), 0)
    uneven = FamilyObservations("blur_decay", (sample, other),
                                {s.id: _observation(s.id, 0, 0) for s in (sample, other)},
                                {"a": (_observation("a", 1, 0), _observation("a", 2, 0)),
                                 "b": (_observation("b", 1, 0),)})
    with pytest.raises(DataError, match="same non-empty set of levels"):
        decay_matrix(uneven)
    levelless = Observation("a", get_family("contrast").at_level(10), (0.0,) * K, 0)
    with pytest.raises(ConfigError, match="needs a distinct integer 'level'"):
        decay_matrix(FamilyObservations("blur_decay", (sample,), {"a": _observation("a", 0, 0)}, {"a": (levelless,)}))


def test_decay_on_uniform_and_checkerboard_images_by_hand():
    # A uniform image has no contrast to lose (std 0 at every level): its answer persists.
    # A 1-px checkerboard (doubled std 1.0, bucket 3) is grey after the first blur (bucket 0).
    items = (mcq("u0", uniform(30, 64), 0), mcq("c0", checkerboard(1), 3), mcq("u1", uniform(200, 64), 0),
             mcq("c1", checkerboard(1), 3), mcq("u2", uniform(90, 64), None))
    engine = Engine(BucketAdapter(doubled_std), ListBenchmark(items))
    persistence, agreement = evaluate_case("decay", engine, "blur_decay")
    assert persistence.name == "decay_c" and persistence.n == 5
    assert persistence.value == pytest.approx(3 / 5)
    assert persistence.details["agreement_by_level"] == pytest.approx([3 / 5] * 7)
    assert persistence.details["mean_agreement"] == pytest.approx(3 / 5)
    assert persistence.details["chance"] == pytest.approx(K ** -7)
    # Accuracy on the four answered samples: all right when clean, the checkerboards wrong once blurred.
    assert persistence.details["accuracy_by_level"] == pytest.approx([1.0] + [0.5] * 7)
    assert persistence.details["accuracy_given_persistent"] == 1.0 and persistence.details["accuracy_n"] == 4
    assert persistence.details["kernels"] == [1, 5, 9, 15, 21, 31, 45, 61]
    assert persistence.units == {"u0": 1, "c0": 0, "u1": 1, "c1": 0, "u2": 1}
    assert agreement.name == "decay_agreement" and agreement.value == pytest.approx(3 / 5)
    # E-bar pools the 7 blurred levels of each image: 35 instances in 5 images, a clustered proportion.
    assert (agreement.kind, agreement.n, agreement.n_clusters, agreement.count) == ("proportion", 35, 5, 21)
    assert agreement.units["c0|level=1"] == 0 and agreement.clusters["c0|level=1"] == "c0"


def test_decay_suite_equals_metrics_decay_whatever_order_the_grid_lists(monkeypatch):
    # 4-px squares lose contrast gradually, so the per-level agreement is not flat.
    items = tuple(mcq(f"q{s}", checkerboard(s), 3) for s in (2, 3, 4, 6, 8, 12, 16))
    forward = evaluate_case("decay", Engine(BucketAdapter(doubled_std), ListBenchmark(items)), "blur_decay")[0]
    curve = forward.details["agreement_by_level"]
    assert len(set(curve)) > 1 and curve == sorted(curve, reverse=True)
    engine = Engine(BucketAdapter(doubled_std), ListBenchmark(items))
    matrix = np.array([[bucket(doubled_std(engine.shown(s, BlurDecay().at_level(lvl)).image)) for lvl in range(8)]
                       for s in items])
    direct = decay_persistence(matrix, [K] * len(items), [3] * len(items))
    assert forward.value == direct.value
    assert forward.details["agreement_by_level"] == pytest.approx(direct.details["agreement_by_level"])
    original = BlurDecay.variants
    monkeypatch.setattr(BlurDecay, "variants", lambda self, sample, context: original(self, sample, context)[::-1])
    reversed_grid = evaluate_case("decay", engine, "blur_decay")[0]
    assert reversed_grid.details["agreement_by_level"] == pytest.approx(curve)
    assert reversed_grid.details["accuracy_by_level"] == pytest.approx(forward.details["accuracy_by_level"])


# ---------------------------------------------------------------------------- end to end

CASE = "hf_checkpoint-jsonl_bench7"
#: Recorded, not gated: the suites' mechanics are tested, not a model (min -2 on RAS or max 1 on
#: decay_c could never fail and are refused).
LIMITS = 'inherit = false\nmode = "interval"\n[ras]\n"*" = { gated = false }\n[decay_c]\n"*" = { gated = false }\n'


@pytest.fixture
def suite_dir(pytester: pytest.Pytester):
    pytester.makepyfile(test_ras=RAS_TEST, test_visual_decay=DECAY_TEST)
    pytester.makefile(".toml", limits=LIMITS)
    return pytester


def test_markers_select_ras_and_decay_cases(suite_dir, tiny_llava_checkpoint, manifest):
    def collected(marker: str) -> list[str]:
        result = suite_dir.runpytest_inprocess(*gate_args(tiny_llava_checkpoint, manifest, "--collect-only", "-q",
                                                          "-m", marker))
        return [line for line in result.outlines if line.startswith("test_")]

    ras_cases = collected("ras")
    assert len(ras_cases) == 19 and all(line.startswith(f"test_ras.py::test_ras[{CASE}-") for line in ras_cases)
    assert collected("corruption") == ras_cases
    assert collected("ras and gaussian_noise") == [f"test_ras.py::test_ras[{CASE}-gaussian_noise]"]
    assert collected("decay") == [f"test_visual_decay.py::test_visual_decay[{CASE}-blur_decay]"]


def test_decay_and_one_corruption_run_with_junit_properties(suite_dir, tiny_llava_checkpoint, manifest):
    result = suite_dir.runpytest_inprocess(*gate_args(
        tiny_llava_checkpoint, manifest, "-m", "decay or (ras and gaussian_noise)", "--junitxml=out.xml"))
    assert outcomes(result) == {"recorded": 2, "deselected": 18}
    cases = junit_cases(suite_dir.path / "out.xml")
    ras_props = cases[f"test_ras[{CASE}-gaussian_noise]"]
    assert ras_props["vlmgate.metric"] == "ras" and ras_props["vlmgate.threshold"] == "recorded (gated = false)"
    assert (ras_props["vlmgate.outcome"], ras_props["vlmgate.standing"]) == ("recorded", "recorded")
    # the manifest's seven answered samples (under the default of 20) at five severities
    assert (ras_props["vlmgate.n"], ras_props["vlmgate.n_clusters"]) == ("35", "7")
    value, low, high = (float(ras_props[f"vlmgate.{k}"]) for k in ("value", "ci_low", "ci_high"))
    assert -2.0 <= low <= value <= high <= 1.0
    parts = [int(ras_props[f"vlmgate.{m}.n_clusters"]) for m in ("ras_destructive", "ras_corrective")]
    assert sum(parts) == 7
    decay_props = cases[f"test_visual_decay[{CASE}-blur_decay]"]
    assert decay_props["vlmgate.metric"] == "decay_c" and decay_props["vlmgate.n"] == "7"
    assert decay_props["vlmgate.n_clusters"] == "7"  # one outcome per sample
    assert (decay_props["vlmgate.decay_agreement.n"], decay_props["vlmgate.decay_agreement.n_clusters"]) == ("49", "7")
    value, low, high = (float(decay_props[f"vlmgate.{k}"]) for k in ("value", "ci_low", "ci_high"))
    assert 0.0 <= low <= value <= high <= 1.0 and value * 7 == pytest.approx(round(value * 7))
    assert decay_props["vlmgate.decay_agreement.threshold"] == "none"
