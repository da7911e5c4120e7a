"""The plugin end to end, through pytester: collection, markers, JUnit, gates, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from support import gate_args, junit_cases, outcomes

OVERLAY_FAMILIES = ("textoverlay", "textoverlay_empty", "textoverlay_random")


# The xunit2 schema pytest targets (Jenkins junit-10.xsd): allowed children and attributes
# per element, required attributes, and the time pattern. Written out here from the schema
# so that the check runs offline; the one documented departure is <properties> inside
# <testcase> (vlmgate's gate properties, the same as pytest's own record_property).
XUNIT2_CHILDREN = {
    "testsuites": {"testsuite"},
    "testsuite": {"testsuite", "properties", "testcase", "system-out", "system-err"},
    "testcase": {"skipped", "error", "failure", "system-out", "system-err", "rerunFailure", "rerunError",
                 "flakyFailure", "flakyError"},
    "properties": {"property"},
}
XUNIT2_ATTRIBUTES = {
    "testsuites": ({"name", "time", "tests", "failures", "errors"}, set()),
    "testsuite": ({"name", "tests", "failures", "errors", "group", "time", "skipped", "timestamp", "hostname",
                   "id", "package", "file", "log", "url", "version"}, {"name", "tests", "failures", "errors"}),
    "testcase": ({"name", "time", "classname", "group"}, {"name"}),
    "property": ({"name", "value"}, {"name", "value"}),
    "failure": ({"type", "message"}, set()),
    "error": ({"type", "message"}, set()),
    "skipped": ({"type", "message"}, set()),
}
SUREFIRE_TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]{0,3})?")


def assert_xunit2(path: Path) -> None:
    """Check a JUnit file against the xunit2 rules above, then read it with junitparser."""
    import junitparser

    def visit(element: ET.Element, parent: str | None) -> None:
        tag = element.tag
        if parent is not None and not (parent == "testcase" and tag == "properties"):
            assert tag in XUNIT2_CHILDREN.get(parent, set()), f"<{tag}> is not allowed in <{parent}>"
        allowed, required = XUNIT2_ATTRIBUTES.get(tag, (set(), set()))
        assert set(element.attrib) <= allowed, f"<{tag}> has attributes {set(element.attrib) - allowed}"
        assert required <= set(element.attrib), f"<{tag}> lacks {required - set(element.attrib)}"
        if tag in ("testsuite", "testsuites") and "time" in element.attrib:
            assert SUREFIRE_TIME.fullmatch(element.get("time")), element.get("time")
        for child in element:
            visit(child, tag)

    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    visit(root, None)
    parsed = junitparser.JUnitXml.fromfile(str(path))
    suites = list(parsed) if isinstance(parsed, junitparser.JUnitXml) else [parsed]
    cases = [case for suite in suites for case in suite]
    assert cases and all(case.name for case in cases)
    assert sum(suite.failures for suite in suites) == sum(1 for c in cases if not c.is_passed and not c.is_skipped)


def test_textoverlay_marker_selects_overlay_cases_with_junit_properties(suite_dir, tiny_llava_checkpoint, manifest):
    result = suite_dir.runpytest_subprocess(
        *gate_args(tiny_llava_checkpoint, manifest, "-m", "textoverlay", "--junitxml=out.xml", "-v"))
    # limits.toml records ifr and iv without gating them: every case reads RECORDED, never PASSED,
    # and a run that judged nothing but failed nothing is GO.
    assert outcomes(result) == {"recorded": 3, "deselected": 11} and result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*-textoverlay] RECORDED*", "*vlmgate: decision*",
                                 "GO: 3 cases: 3 recorded (exit code 0)"])
    assert " PASSED" not in result.stdout.str()
    assert_xunit2(suite_dir.path / "out.xml")
    cases = junit_cases(suite_dir.path / "out.xml")
    assert sorted(cases) == sorted(f"test_flip_rate[hf_checkpoint-jsonl_bench7-{f}]" for f in OVERLAY_FAMILIES)
    for props in cases.values():
        assert props["vlmgate.metric"] == "ifr"
        value, low, high = (float(props[f"vlmgate.{k}"]) for k in ("value", "ci_low", "ci_high"))
        assert 0.0 <= low <= value <= high <= 1.0
        assert props["vlmgate.threshold"] == "recorded (gated = false)"
        assert int(props["vlmgate.n"]) > 0
        assert {"vlmgate.iv.value", "vlmgate.iv.n", "vlmgate.ifr.outcome"} <= set(props)
        assert (props["vlmgate.outcome"], props["vlmgate.effect"], props["vlmgate.tier"]) == ("recorded", "none",
                                                                                              "critical")
        # A recorded metric has passed nothing: no "passed" property, its outcome says what it is.
        assert "vlmgate.ifr.passed" not in props and props["vlmgate.iv.outcome"] == "recorded"
        assert props["vlmgate.standing"] == "recorded" and props["vlmgate.case"] == "true"


def test_collection_ids_and_markers(suite_dir, tiny_llava_checkpoint, manifest):
    result = suite_dir.runpytest_subprocess(*gate_args(tiny_llava_checkpoint, manifest, "--collect-only", "-q"))
    ids = [line.split("[", 1)[1].rstrip("]") for line in result.outlines
           if line.startswith("test_flip_rate.py::") and line.endswith("]")]
    families = [i.rsplit("-", 1)[1] for i in ids]
    # clean first, then the pooled row (it walks every family's grid, which workers share), then the families
    assert families[:2] == ["clean", "any"] and families[2:] == sorted(families[2:])
    assert set(families) >= {"translation", "padcrop", "scale", "scale_pad", "rotation", "blank", *OVERLAY_FAMILIES}
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", i) for i in ids)
    rotation = suite_dir.runpytest_subprocess(*gate_args(tiny_llava_checkpoint, manifest, "--collect-only", "-q",
                                                         "-m", "rotation"))
    assert sum(line.startswith("test_flip_rate.py::") and line.endswith("]") for line in rotation.outlines) == 1


def test_failing_gate_names_metric_value_interval_and_limit(suite_dir, tiny_llava_checkpoint, manifest):
    # A minimum flip rate of 0.9 cannot be met by a model that flips less than that.
    suite_dir.makefile(".toml", strict='inherit = false\n[ifr]\n"*" = { min = 0.9, mode = "strict" }\n')
    result = suite_dir.runpytest_subprocess(
        *gate_args(tiny_llava_checkpoint, manifest, "-m", "translation", "--vlmgate-thresholds=strict.toml",
                   "--junitxml=fail.xml"))
    result.assert_outcomes(failed=1, deselected=13)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # NO-GO: exit code 1
    assert_xunit2(suite_dir.path / "fail.xml")
    text = result.stdout.str()
    assert "flip_rate gate failed for family 'translation' on hf:" in text
    assert re.search(r"FAIL \[critical: no-go\]: ifr = \d\.\d{4} \[95% CI \d\.\d{4}, \d\.\d{4}\] \(n=56\) "
                     r"is below min 0\.9 \(value below the limit, strict mode; from strict\.toml \[ifr\] \*\)", text)
    result.stdout.fnmatch_lines(["*vlmgate: decision*", "NO-GO: 1 cases: 1 fail (exit code 1)",
                                 "*vlmgate: gates that failed, were inconclusive or warned*",
                                 "*translation]: ifr = * limit min 0.9 (strict): FAIL (critical tier: no-go)"])
    props = junit_cases(suite_dir.path / "fail.xml")["test_flip_rate[hf_checkpoint-jsonl_bench7-translation]"]
    assert (props["vlmgate.ifr.outcome"], props["vlmgate.ifr.passed"], props["vlmgate.standing"]) == (
        "fail", "false", "fail")


def test_threshold_typo_is_a_one_line_usage_error(suite_dir, tiny_llava_checkpoint, manifest):
    suite_dir.makefile(".toml", typo='[ifr]\nrotaton = { max = 0.2 }\n')
    result = suite_dir.runpytest_subprocess(
        *gate_args(tiny_llava_checkpoint, manifest, "--vlmgate-thresholds=typo.toml"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if "rotaton" in line]
    assert len(errors) == 1
    assert "typo.toml" in errors[0] and "did you mean 'rotation'" in errors[0]


def test_missing_image_fails_cases_with_sample_and_path(suite_dir, tiny_llava_checkpoint, manifest):
    rows = manifest.read_text().splitlines()
    broken = json.loads(rows[2])
    broken["image"] = "images/gone.png"
    rows[2] = json.dumps(broken)
    manifest.write_text("\n".join(rows) + "\n")
    result = suite_dir.runpytest_subprocess(*gate_args(tiny_llava_checkpoint, manifest, "-m", "rotation"))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*DataError*sample 's2' not found at *gone.png*"])


def test_case_without_suite_marker_is_a_collection_error(pytester):
    pytester.makepyfile("def test_x(vlmgate_case):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*test_x uses the vlmgate_case fixture but carries no suite marker; mark it with one of: *flip_rate*"])


def test_results_identical_with_and_without_xdist(suite_dir, tiny_llava_checkpoint, manifest):
    args = gate_args(tiny_llava_checkpoint, manifest, "-k", "textoverlay or translation or clean")
    suite_dir.runpytest_subprocess(*args, "--junitxml=one.xml", "-p", "no:xdist")
    suite_dir.runpytest_subprocess(*args, "--junitxml=two.xml", "-n", "2")
    one, two = junit_cases(suite_dir.path / "one.xml"), junit_cases(suite_dir.path / "two.xml")
    assert one and one == two


def test_markers_are_registered(pytester):
    result = pytester.runpytest_subprocess("--markers")
    for name in ("flip_rate", "textoverlay", "translation", "scale_pad", "blank"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{name}:*"])


def test_plugin_import_does_not_import_torch():
    code = ("import sys, vlmgate.plugin; "
            "print(sorted(m for m in ('torch', 'transformers', 'PIL', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
