"""The drift and structure suites end to end, through pytester: ids, markers, JUnit properties."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support import DRIFT_TEST, STRUCTURE_TEST, gate_args, junit_cases, outcomes

PROBES = ("ctx_mcq", "ans_mcq", "ans_mcq_free", "ctx_open")
DRIFT_FAMILIES = ("translation", "padcrop", "scale", "scale_pad", "rotation",
                  "textoverlay", "textoverlay_random", "textoverlay_empty")
CASE = "hf_checkpoint-jsonl_bench7"


@pytest.fixture
def suite_dir(pytester: pytest.Pytester):
    pytester.makepyfile(test_drift=DRIFT_TEST, test_structure=STRUCTURE_TEST)
    pytester.makefile(".toml", limits='inherit = false\nmode = "interval"\n[drift_ratio]\n"*" = { max = 1000.0 }\n')
    return pytester


def _collected(pytester: pytest.Pytester, checkpoint: Path, manifest: Path, marker: str) -> list[str]:
    result = pytester.runpytest_inprocess(*gate_args(checkpoint, manifest, "--collect-only", "-q", "-m", marker))
    return [line for line in result.outlines if line.startswith("test_")]


def test_drift_cases_are_family_by_probe_and_carry_family_markers(suite_dir, tiny_llava_checkpoint, manifest):
    drift = _collected(suite_dir, tiny_llava_checkpoint, manifest, "drift")
    assert sorted(drift) == sorted(f"test_drift.py::test_drift[{CASE}-{f}.{p}]" for f in DRIFT_FAMILIES for p in PROBES)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", line.split("[", 1)[1].rstrip("]")) for line in drift)
    overlay = _collected(suite_dir, tiny_llava_checkpoint, manifest, "drift and textoverlay")
    assert len(overlay) == 3 * len(PROBES)
    rotation = _collected(suite_dir, tiny_llava_checkpoint, manifest, "rotation")
    assert sorted(rotation) == sorted([*(f"test_drift.py::test_drift[{CASE}-rotation.{p}]" for p in PROBES),
                                       f"test_structure.py::test_structure[{CASE}-rotation]"])
    structure = _collected(suite_dir, tiny_llava_checkpoint, manifest, "structure")
    assert sorted(structure) == sorted(f"test_structure.py::test_structure[{CASE}-{f}]" for f in DRIFT_FAMILIES)


def test_drift_and_structure_cases_record_intervals(suite_dir, tiny_llava_checkpoint, manifest):
    result = suite_dir.runpytest_inprocess(*gate_args(
        tiny_llava_checkpoint, manifest, "-m", "(drift or structure) and (scale or rotation)",
        "--vlmgate-limit=3", "--junitxml=out.xml"))
    # The drift cases pass their limit; the structure cases have none: they judge nothing and read RECORDED.
    assert outcomes(result) == {"passed": 2 * len(PROBES), "recorded": 2,
                                "deselected": (len(DRIFT_FAMILIES) - 2) * (len(PROBES) + 1)}
    cases = junit_cases(suite_dir.path / "out.xml")
    drift = {name: props for name, props in cases.items() if name.startswith("test_drift")}
    assert sorted(drift) == sorted(f"test_drift[{CASE}-{f}.{p}]" for f in ("scale", "rotation") for p in PROBES)
    for props in drift.values():
        assert props["vlmgate.metric"] == "drift_ratio"
        assert props["vlmgate.threshold"] == "max 1000 (interval)"
        assert props["vlmgate.n"] == "3"
        for metric in ("drift_ratio", "drift_ratio_l2"):
            value, low, high = (float(props[f"vlmgate.{metric}.{k}"]) for k in ("value", "ci_low", "ci_high"))
            assert 0.0 < low <= value <= high
        assert props["vlmgate.drift_ratio_l2.threshold"] == "none"
        assert (props["vlmgate.outcome"], props["vlmgate.standing"]) == ("pass", "pass")
    structure = {name: props for name, props in cases.items() if name.startswith("test_structure")}
    assert sorted(structure) == [f"test_structure[{CASE}-rotation]", f"test_structure[{CASE}-scale]"]
    for props in structure.values():
        assert props["vlmgate.metric"] == "dirichlet_delta"
        for metric in ("dirichlet_delta", "spectral_high_rel"):
            value, low, high = (float(props[f"vlmgate.{metric}.{k}"]) for k in ("value", "ci_low", "ci_high"))
            assert low <= value <= high
            assert props[f"vlmgate.{metric}.threshold"] == "none"
        assert (props["vlmgate.outcome"], props["vlmgate.standing"]) == ("recorded", "recorded")


def test_a_drift_limit_fails_the_case_with_its_interval(suite_dir, tiny_llava_checkpoint, manifest):
    suite_dir.makefile(".toml", strict='inherit = false\n[drift_ratio]\n"*" = { max = 0.0, mode = "strict" }\n')
    result = suite_dir.runpytest_inprocess(*gate_args(
        tiny_llava_checkpoint, manifest, "-m", "drift and scale", "-k", "ans_mcq_free",
        "--vlmgate-limit=3", "--vlmgate-thresholds=strict.toml"))
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "drift gate failed for family 'scale.ans_mcq_free' on hf:" in text
    assert re.search(r"drift_ratio = \d+\.\d{4} \[95% CI \d+\.\d{4}, \d+\.\d{4}\] \(n=3\) exceeds max 0 ", text)
