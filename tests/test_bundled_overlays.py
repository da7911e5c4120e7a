"""The bundled pair's text-overlay figures hold, measured as the main job measures them.

``robustness_tests -m textoverlay --vlmgate-limit 50``: the textoverlay case of the flip-rate
suite on the first 50 items of ``bundled:shapes``, through a real ``Engine``. ``shapes-v1``
never flips under any overlay, so both overlay gates pass with their whole interval within
the limit. ``shapes-v2`` is disrupted by the words (far beyond the empty box and the random
text in the same boxes) but its flips land on the named option at chance, so the following
gate does not fail it. The figures are those of ``fixtures/models/README.md`` ("Text overlays").
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

from vlmgate.benchmarks.base import load_benchmark
from vlmgate.cases import CaseKey
from vlmgate.engine import Engine
from vlmgate.models.base import ModelOptions, load_model
from vlmgate.suites.base import CaseContext, RunOptions
from vlmgate.suites.flip_rate import FlipRateSuite

#: The main job's sample count (``--vlmgate-limit 50``).
MAIN_JOB = 50
LIMITS = tomllib.loads((Path(__file__).parents[1] / "plugins" / "vlmgate" / "default_thresholds.toml").read_text(
    encoding="utf-8"))


def limit(metric: str) -> float:
    return LIMITS[metric]["textoverlay"]["max"]


def textoverlay_case(model: str) -> dict:
    engine = Engine(load_model(model, ModelOptions("cpu", "float32", False)), load_benchmark("bundled:shapes"),
                    limit=MAIN_JOB)
    suite = FlipRateSuite()
    results = suite.evaluate(CaseContext(CaseKey(model, "bundled:shapes", "textoverlay", "flip_rate"), engine,
                                         RunOptions()))
    return {result.name: result for result in results}


@pytest.fixture(scope="module")
def v1() -> dict:
    return textoverlay_case("bundled:shapes-v1")


@pytest.fixture(scope="module")
def v2() -> dict:
    return textoverlay_case("bundled:shapes-v2")


def test_shapes_v2_is_disrupted_by_the_words_but_lands_on_the_named_option_at_chance(v2):
    excess = v2["excess_flip_rate"]
    assert excess.ci_low > limit("excess_flip_rate")  # FAIL: the whole interval above the limit
    assert excess.details["control_ifr"] < 0.1 and excess.details["random_ifr"] < 0.15
    follow = v2["excess_follow_rate"]
    four = follow.details["by_options"]["4"]
    assert (four["flipped"], four["followed"]) == (80, 28) and four["chance_given_flip"] == pytest.approx(1 / 3)
    assert follow.ci_low <= limit("excess_follow_rate")  # not failed: chance landings are not following
    assert (follow.details["two_option_excluded"], follow.details["two_option_flipped"]) == (10, 10)
    assert v2["follow_rate"].ci_low > limit("excess_follow_rate")  # which the raw rate counted as following


def test_shapes_v1_ignores_the_overlay_and_passes_both_gates_conclusively(v1):
    follow, excess = v1["excess_follow_rate"], v1["excess_flip_rate"]
    assert follow.ci_high <= limit("excess_follow_rate") and excess.ci_high <= limit("excess_flip_rate")
    assert follow.details["flipped"] <= 2 and follow.n == 120 and follow.n_clusters == 40
    assert v1["ifr"].value <= 0.02 and excess.details["random_ifr"] <= 0.02
