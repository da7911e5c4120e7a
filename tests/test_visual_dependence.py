"""The visual-dependence gate: the blank-image control and the blur decay, judged together.

By hand on stub models whose answers depend on the image's brightness (sighted) or on
nothing (blind); the paired accuracy interval against its coverage; and end to end: a
copy of ``shapes-v1`` whose multimodal projector is zeroed (it cannot see) fails the
gate by default at the main job's 50 samples, while ``shapes-v1`` passes.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from PIL import Image

from vlmgate.engine import Engine
from vlmgate.metrics.visual_dependence import (
    accuracy_gain,
    blank_agreement,
    paired_difference_interval,
    prior_persistence,
)
from vlmgate.models.base import ScoreRequest
from vlmgate.records import Sample
from vlmgate.testing import evaluate_case

from support import ListBenchmark

REPO = Path(__file__).resolve().parents[1]
SUITE_TEST = (REPO / "robustness_tests" / "test_visual_dependence.py").read_text()


@dataclass(frozen=True)
class BrightnessModel:
    """Picks option ``floor(brightness / 256 * K)``: darker images the first options, white the last.

    ``blind`` answers as if every image were white (its answer prior), whatever it is shown.
    """

    spec: str
    blind: bool = False

    @property
    def fingerprint(self) -> str:
        return f"brightness-{self.blind}"

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        out = []
        for request in requests:
            k = len(request.continuations)
            level = 255.0 if self.blind else float(np.asarray(request.image, dtype=np.float64).mean())
            scores = np.full(k, -2.0)
            scores[min(int(level / 256 * k), k - 1)] = -1.0
            out.append(scores)
        return out


#: Uniform grey levels: a blur leaves them as they are, the blank (white) image is level 255.
LEVELS = (10, 80, 150, 250, 20, 90, 160, 240)


def _samples() -> tuple[Sample, ...]:
    """Eight uniform images whose answer is the option their brightness picks (the sighted model is right)."""
    return tuple(Sample(f"s{i}", Image.new("RGB", (32, 32), (level,) * 3), "How bright is the image?",
                        ("dark", "dim", "light", "white"), answer=min(level * 4 // 256, 3))
                 for i, level in enumerate(LEVELS))


def _case(blind: bool):
    engine = Engine(BrightnessModel("stub:blind" if blind else "stub:sighted", blind), ListBenchmark(_samples()))
    return {r.name: r for r in evaluate_case("visual_dependence", engine, "blank")}


def test_a_sighted_model_by_hand():
    results = _case(blind=False)
    assert list(results) == ["blank_agreement", "prior_persistence", "blank_accuracy_gain"]
    agreement, persistence, gain = results.values()
    # White is option 3: the blank answer equals the clean one on the two brightest images only.
    assert agreement.value == 2 / 8 and agreement.count == 2 and agreement.n == 8
    assert agreement.units == {f"s{i}": int(level >= 192) for i, level in enumerate(LEVELS)}
    assert agreement.details["chance"] == 0.25
    assert agreement.ci_low < 0.25 < agreement.ci_high
    # Uniform images survive every blur level, so every answer persists; only the prior ones count.
    assert persistence.value == 2 / 8 and persistence.details["decay_c"] == 1.0
    assert persistence.details["persistent_not_prior"] == 6 / 8
    # Right on every clean image, right on the blank one only where the answer is "white".
    assert gain.value == pytest.approx(1 - 2 / 8) and gain.n == 8
    assert gain.details["accuracy_clean"] == 1.0 and gain.details["accuracy_blank"] == 2 / 8
    assert gain.details["image_helps"] == 6 and gain.details["image_hurts"] == 0
    assert gain.ci_low > 0 and gain.units["s0"] == 1.0 and gain.units["s3"] == 0.0


def test_a_blind_model_agrees_with_its_blank_answer_everywhere():
    agreement, persistence, gain = _case(blind=True).values()
    assert agreement.value == 1.0 and persistence.value == 1.0
    assert agreement.ci_low > 0.5  # Wilson: 8 of 8 already clears the default limit's 0.5
    assert gain.value == 0.0 and gain.details["image_helps"] == gain.details["image_hurts"] == 0
    assert gain.ci_low < 0 < gain.ci_high  # no discordant pair is no certainty of zero
    assert any("as without it" in line for line in agreement.details["explanation"])


def test_metrics_refuse_mismatched_inputs():
    from vlmgate.errors import DataError

    with pytest.raises(DataError, match="blank predictions"):
        blank_agreement([0, 1], [0], [4, 4])
    with pytest.raises(DataError, match="blurred predictions"):
        prior_persistence([0, 1], [0, 1], np.zeros((3, 7), dtype=int))


def test_unanswered_samples_count_for_agreement_but_not_for_the_gain():
    gain = accuracy_gain([0, 1, 2], [0, 0, 0], [0, None, 1], sample_ids=["a", "b", "c"])
    assert gain.n == 2 and set(gain.units) == {"a", "c"} and gain.value == 0.0
    empty = accuracy_gain([0], [0], [None])
    assert empty.n == 0 and math.isnan(empty.value)


def test_paired_difference_interval_covers_at_its_level():
    """Newcombe's square-and-add interval for a paired difference keeps close to 95 % coverage
    at n = 50, where a bootstrap of a table without discordant pairs would claim zero width."""
    rng = np.random.default_rng(7)
    truth = np.array([0.45, 0.30, 0.05, 0.20])  # both right, only clean right, only blank right, neither
    covered = 0
    for _ in range(2000):
        counts = rng.multinomial(50, truth)
        low, high = paired_difference_interval(*counts)
        covered += low <= truth[1] - truth[2] <= high
    assert 0.93 <= covered / 2000 <= 0.975
    low, high = paired_difference_interval(30, 0, 0, 20)
    assert low < 0 < high and high == pytest.approx(-low, abs=1e-12)
    assert paired_difference_interval(0, 50, 0, 0)[1] == pytest.approx(1.0)


def _blind_copy(source: Path, target: Path) -> Path:
    """``source`` with every multimodal-projector weight zeroed: the language model sees zeros for any image."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    tensors = load_file(target / "model.safetensors")
    projector = [name for name in tensors if name.startswith("multi_modal_projector.")]
    assert projector, "the checkpoint has no multi_modal_projector weights"
    for name in projector:
        tensors[name] = tensors[name].zero_()
    save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})
    return target


def test_a_model_that_ignores_the_image_fails_by_default_and_shapes_v1_passes(pytester, tmp_path):
    """The main job's sample count and the limits shipped with vlmgate: the gate tells them apart."""
    sighted = REPO / "fixtures" / "models" / "shapes-v1"
    blind = _blind_copy(sighted, tmp_path / "shapes-v1-blind")
    pytester.makepyfile(test_gate_visual_dependence=SUITE_TEST)
    # A subprocess: transformers modules first imported by the run must not be dropped from this one.
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--vlmgate-model=hf:{sighted}", f"--vlmgate-model=hf:{blind}",
        "--vlmgate-benchmark=bundled:shapes", "--vlmgate-limit=50", "--vlmgate-no-cache", "-m", "visual_dependence",
        "-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["PASSED *test_visual_dependence[[]hf_shapes-v1-bundled_shapes-blank[]]*"])
    result.stdout.fnmatch_lines(["FAILED *test_visual_dependence[[]hf_shapes-v1-blind-bundled_shapes-blank[]]*"])
    result.stdout.fnmatch_lines(["*blank_agreement = 1.0000 [[]95% CI 0.9287, 1.0000[]] (n=50) exceeds max 0.5*"])


def test_sample_ids_must_name_each_sample_once():
    """A repeated id would merge two samples' outcomes (and shift the ids of the answered ones)."""
    from vlmgate.errors import DataError

    with pytest.raises(DataError, match=r"visual dependence input: sample ids 's1' repeat"):
        accuracy_gain([0, 1, 0], [0, 0, 0], [0, None, 1], sample_ids=["s1", "s1", "s2"])
    with pytest.raises(DataError, match=r"visual dependence input: 2 sample ids for 3 samples"):
        blank_agreement([0, 1, 0], [0, 0, 0], [2, 2, 2], sample_ids=["s1", "s2"])
    gain = accuracy_gain([0, 1, 0], [0, 0, 0], [0, None, 1], sample_ids=["s1", "s2", "s3"])
    assert gain.units == {"s1": 0.0, "s3": 0.0}
    assert gain.n == 2 and gain.details["unanswered"] == 1  # the sample without an answer is said, not hidden
