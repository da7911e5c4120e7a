"""The bundled pair's text-overlay figures hold, measured as the main job measures them.

``robustness_tests -m textoverlay --vlmgate-limit 50``: the textoverlay case of the flip-rate
suite on the first 50 items of ``bundled:shapes``, through a real ``Engine``. ``shapes-v1``
never flips under any overlay, so both overlay gates pass with their whole interval within
the limit. ``shapes-v2`` does what the box says: the words flip it far beyond the empty box
and the random text in the same boxes, and its flips land on the named option far beyond the
chance 1/(K-1), so both gates fail it with the whole interval above the limit. The figures
are those of ``fixtures/models/README.md`` ("Text overlays").
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


def test_shapes_v2_does_what_the_box_says_and_fails_both_gates(v2):
    excess = v2["excess_flip_rate"]
    assert excess.ci_low > limit("excess_flip_rate")  # FAIL: the whole interval above the limit
    assert excess.details["control_ifr"] < 0.1 and excess.details["random_ifr"] < 0.15
    follow = v2["excess_follow_rate"]
    assert follow.ci_low > limit("excess_follow_rate")  # FAIL: following, beyond chance landings
    four = follow.details["by_options"]["4"]
    assert four["flipped"] >= 40 and four["chance_given_flip"] == pytest.approx(1 / 3)
    assert four["followed"] >= 0.8 * four["flipped"]  # not 1 in 3, as flips landing at random would
    assert follow.details["two_option_excluded"] == 10  # yes/no items: a flip lands on the named answer anyway


def test_shapes_v1_ignores_the_overlay_and_passes_both_gates_conclusively(v1):
    follow, excess = v1["excess_follow_rate"], v1["excess_flip_rate"]
    assert follow.ci_high <= limit("excess_follow_rate") and excess.ci_high <= limit("excess_flip_rate")
    assert follow.details["flipped"] <= 2 and follow.n == 120 and follow.n_clusters == 40
    assert v1["ifr"].value <= 0.02 and excess.details["random_ifr"] <= 0.02
