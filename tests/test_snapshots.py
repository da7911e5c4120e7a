"""Snapshots of decisions (``report.snapshot``): the summary, the comparison, old files, and end to end.

A later release fails a case's snapshot only where a gated metric's verdict changed or its
value left the interval stored in the snapshot; recorded-only metrics never fail one.
"""

from __future__ import annotations

import json
import math
import re
from types import SimpleNamespace

import pytest

from vlmgate.cases import CaseKey
from vlmgate.records import FAIL, INCONCLUSIVE, PASS, RECORDED, MetricResult, Verdict
from vlmgate.report.snapshot import (
    FORMAT,
    PRECISION,
    VALUE_MOVED,
    VERDICT_CHANGED,
    VlmgateSnapshotExtension,
    case_summary,
    compare_summaries,
    within_tolerance,
)
from vlmgate.report.snapshot_folder import load_snapshot_folder
from vlmgate.thresholds import Judgement, Threshold

from support import gate_args

MODEL, BENCH = "hf:/runs/org:team/ckpt:v2", "jsonl:/data/manifest.jsonl"


def entry(verdict: str, value: float, low: float, high: float, limit: str | None = "max 0.2 (interval)",
          n: int = 56, n_clusters: int = 7) -> dict:
    return {"verdict": verdict, "value": value, "ci": [low, high], "n": n, "n_clusters": n_clusters, "limit": limit}


def summary(fmt: int | None = FORMAT, **metrics: dict) -> dict:
    document = {"suite": "flip_rate", "family": "rotation", "precision": 3, "metrics": metrics}
    if fmt is not None:
        document["format"] = fmt
    return document


# -- the summary --------------------------------------------------------------------------
def test_summary_stores_each_verdict_rounded_value_interval_counts_and_limit():
    clustered = MetricResult("ifr", 0.123456, 0.0987654, 0.2, 56, clusters={f"u{i}": f"s{i % 7}" for i in range(56)})
    judgements = [
        Judgement(clustered, Threshold("ifr", "*", max=0.2), Verdict(INCONCLUSIVE, "straddles")),
        Judgement(MetricResult("drift", 0.0024, 0.001, 0.004, 56), None, Verdict(RECORDED, "no limit")),
        Judgement(MetricResult("iv", 0.5, 0.4, 0.6, 7), Threshold("iv", "*", gated=False), Verdict(RECORDED, "r")),
    ]
    stored = case_summary(CaseKey(MODEL, BENCH, "translation", "flip_rate"), judgements)
    assert PRECISION == 3 and FORMAT == 2
    assert stored == {"format": 2, "suite": "flip_rate", "family": "translation", "precision": 3, "metrics": {
        "ifr": entry(INCONCLUSIVE, 0.123, 0.099, 0.2),
        "drift": entry(RECORDED, 0.002, 0.001, 0.004, limit=None, n_clusters=56),
        "iv": entry(RECORDED, 0.5, 0.4, 0.6, limit="recorded (gated = false)", n=7, n_clusters=7)}}
    assert MODEL not in json.dumps(stored)  # paths change between releases; results may not


# -- the comparison -----------------------------------------------------------------------
def test_a_recorded_only_metric_never_fails_however_far_it_moves():
    stored = summary(drift=entry(RECORDED, 0.002, 0.001, 0.003, limit=None))
    assert compare_summaries(summary(drift=entry(RECORDED, 0.9, 0.8, 1.0, limit=None)), stored) == []
    assert compare_summaries(summary(), stored) == []  # nor when it is no longer reported


@pytest.mark.parametrize("was,now", [(PASS, FAIL), (PASS, INCONCLUSIVE), (FAIL, PASS), (INCONCLUSIVE, PASS)])
def test_a_changed_verdict_of_a_gated_metric_fails_naming_the_metric_and_both_verdicts(was, now):
    [finding] = compare_summaries(summary(ifr=entry(now, 0.1, 0.05, 0.15)), summary(ifr=entry(was, 0.1, 0.05, 0.15)))
    assert (finding.metric, finding.reason) == ("ifr", VERDICT_CHANGED)
    assert finding.describe().startswith(f"ifr: verdict changed {was} -> {now} (stored 0.1 [0.05, 0.15], n 56 in 7 "
                                         "images, limit max 0.2 (interval); now 0.1 [0.05, 0.15]")


def test_a_stored_gate_no_longer_reported_fails_and_a_gate_on_one_side_only_does_not():
    [gone] = compare_summaries(summary(), summary(ifr=entry(PASS, 0.1, 0.05, 0.15)))
    assert gone.reason == VERDICT_CHANGED
    assert gone.describe() == ("ifr: verdict changed pass -> absent (stored 0.1 [0.05, 0.15], n 56 in 7 images, "
                               "limit max 0.2 (interval); now not reported)")
    # A new gate, or a change limit judged with --vlmgate-baseline on one side only: the limits
    # changed, not the release.
    low, high = entry(RECORDED, 0.1, 0.0, 0.2), entry(PASS, 0.9, 0.8, 1.0)
    assert compare_summaries(summary(ifr=entry(FAIL, 0.9, 0.8, 1.0)), summary()) == []
    assert compare_summaries(summary(ifr=high), summary(ifr=low)) == []
    assert compare_summaries(summary(ifr={**high, "verdict": RECORDED}), summary(ifr={**low, "verdict": PASS})) == []


@pytest.mark.parametrize("value,moved", [
    (0.05, False), (0.15, False), (0.1, False),  # inside the stored interval: not a significant move
    (0.151, False), (0.049, False),              # one unit in the last rounded place: rounding noise
    (0.152, True), (0.048, True), (0.3, True)])
def test_a_gated_value_fails_only_outside_the_stored_interval(value, moved):
    stored = summary(ifr=entry(PASS, 0.1, 0.05, 0.15))
    findings = compare_summaries(summary(ifr=entry(PASS, value, value - 0.01, value + 0.01)), stored)
    assert [f.reason for f in findings] == ([VALUE_MOVED] if moved else [])
    if moved:
        assert findings[0].describe().startswith(
            f"ifr: value moved outside the stored 95% interval under an unchanged verdict pass "
            f"(stored 0.1 [0.05, 0.15], n 56 in 7 images, limit max 0.2 (interval); now {value:g} [")


def test_nan_values_match_only_nan_and_a_changed_limit_is_named():
    nan = entry(FAIL, math.nan, math.nan, math.nan)
    assert compare_summaries(summary(ifr=nan), summary(ifr=nan)) == []
    [finding] = compare_summaries(summary(ifr=entry(FAIL, 0.5, 0.4, 0.6)), summary(ifr=nan))
    assert finding.reason == VALUE_MOVED
    [finding] = compare_summaries(summary(ifr=entry(FAIL, 0.5, 0.4, 0.6, limit="max 0.1 (interval)")),
                                  summary(ifr=entry(PASS, 0.5, 0.4, 0.6)))
    assert finding.describe().endswith("; the limit changed from 'max 0.2 (interval)' to 'max 0.1 (interval)'")


def test_an_old_format_snapshot_is_read_with_verdicts_derived_from_its_limits():
    """Format 1 stored pass / fail for everything and no n_clusters: no limit (or ``recorded``) is recorded."""
    old = summary(None, ifr={"value": 0.1, "ci": [0.05, 0.15], "n": 56, "limit": "max 0.2 (interval)",
                             "verdict": "pass"},
                  accuracy={"value": 0.8, "ci": [0.7, 0.9], "n": 7, "limit": None, "verdict": "pass"},
                  iv={"value": 0.5, "ci": [0.4, 0.6], "n": 7, "limit": "recorded (gated = false)", "verdict": "pass"},
                  delta={"value": 0.5, "ci": [0.4, 0.6], "n": 7, "limit": "max increase 0 vs baseline",
                         "verdict": "pass"})
    received = summary(ifr=entry(PASS, 0.12, 0.08, 0.16), accuracy=entry(RECORDED, 0.2, 0.1, 0.3, limit=None),
                       iv=entry(RECORDED, 0.9, 0.8, 1.0, limit="recorded (gated = false)"),
                       delta=entry(RECORDED, 0.9, 0.8, 1.0, limit="max increase 0 vs baseline"))
    assert compare_summaries(received, old) == []
    received["metrics"]["ifr"] = entry(FAIL, 0.3, 0.25, 0.35)
    [finding] = compare_summaries(received, old)
    assert (finding.metric, finding.reason, finding.stored_verdict) == ("ifr", VERDICT_CHANGED, PASS)


# -- the syrupy extension -----------------------------------------------------------------
def test_extension_writes_readable_sorted_json_and_matches_on_decisions():
    extension = VlmgateSnapshotExtension()
    stored = summary(ifr=entry(PASS, 0.062, 0.05, 0.08), drift=entry(RECORDED, 0.002, 0.001, 0.003, limit=None))
    text = extension.serialize(stored)
    assert json.loads(text) == stored and text.endswith("\n")
    assert text.splitlines()[1] == '  "family": "rotation",'  # sorted keys, two-space indent
    moved_drift = text.replace("0.002", "0.003")
    assert extension.matches(serialized_data=moved_drift, snapshot_data=text) and extension.findings == []
    assert extension.matches(serialized_data=text.replace("0.062", "0.07"), snapshot_data=text)
    assert not extension.matches(serialized_data=text.replace("0.062", "0.09"), snapshot_data=text)
    assert [f.reason for f in extension.findings] == [VALUE_MOVED]
    assert not extension.matches(serialized_data="{not json", snapshot_data=text) and extension.unreadable
    extension.rewrite = True  # --snapshot-update: every file whose text differs is rewritten
    assert not extension.matches(serialized_data=moved_drift, snapshot_data=text)
    location = SimpleNamespace(filepath="/repo/robustness_tests/test_flip_rate.py", basename="test_flip_rate")
    assert extension.dirname(test_location=location) == "/repo/robustness_tests/__vlmgate_snapshots__/test_flip_rate"


@pytest.mark.parametrize("received,stored,match", [
    (0.123, 0.124, True), (0.123, 0.125, False), ({"n": 5}, {"n": 6}, False), (math.nan, math.nan, True),
    (True, 1, False)])
def test_within_tolerance_is_structural_equality_up_to_rounding(received, stored, match):
    assert within_tolerance(received, stored) is match


# -- snapshot folders (vlmgate diff) --------------------------------------------------------
def test_snapshot_folders_of_both_formats_read_as_records(tmp_path):
    folder = tmp_path / "__vlmgate_snapshots__" / "test_flip_rate"
    folder.mkdir(parents=True)
    old = summary(None, ifr={"value": 0.1, "ci": [0.05, 0.15], "n": 56, "limit": "max 0.2 (interval)",
                             "verdict": "fail"},
                  accuracy={"value": 0.8, "ci": [0.7, 0.9], "n": 7, "limit": None, "verdict": "pass"})
    new = summary(ifr=entry(INCONCLUSIVE, 0.1, 0.05, 0.25), accuracy=entry(RECORDED, 0.8, 0.7, 0.9, limit=None))
    (folder / "test_flip_rate[b-rotation].json").write_text(json.dumps(old))
    (folder / "test_flip_rate[b-scale].json").write_text(json.dumps({**new, "family": "scale"}))
    record = load_snapshot_folder(tmp_path)
    verdicts = {(case.key.family, m.name): (m.verdict, m.passed, m.n_clusters) for case in record.cases
                for m in case.metrics}
    assert verdicts == {("rotation", "ifr"): (FAIL, False, None), ("rotation", "accuracy"): (RECORDED, True, None),
                        ("scale", "ifr"): (INCONCLUSIVE, False, 7), ("scale", "accuracy"): (RECORDED, True, 7)}


# -- end to end ----------------------------------------------------------------------------
#: ifr gated (max 0.95: passes), iv recorded only (gated = false), accuracy recorded (no limit).
LIMITS = 'inherit = false\nmode = "interval"\n[ifr]\n"*" = { max = 0.95 }\n[iv]\n"*" = { gated = false }\n'


def edit(path, metric, **fields):
    stored = json.loads(path.read_text())
    stored["metrics"][metric].update(fields)
    path.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")


def test_a_release_fails_its_snapshot_only_on_a_changed_verdict_or_a_gated_value_outside_the_interval(
        suite_dir, tiny_llava_checkpoint, manifest):
    suite_dir.makefile(".toml", limits=LIMITS)
    args = gate_args(tiny_llava_checkpoint, manifest, "-k", "padcrop or scale or clean", "-p", "no:xdist",
                     "--vlmgate-snapshot")
    recorded = suite_dir.runpytest_subprocess(*args, "--snapshot-update")
    assert recorded.ret == pytest.ExitCode.OK, recorded.stdout.str()
    folder = suite_dir.path / "__vlmgate_snapshots__" / "test_flip_rate"
    padcrop, scale, clean = (folder / f"test_flip_rate[jsonl_bench7-{family}].json"
                             for family in ("padcrop", "scale", "clean"))
    stored = json.loads(padcrop.read_text())
    assert stored["format"] == 2 and stored["metrics"]["ifr"]["verdict"] == PASS
    assert stored["metrics"]["iv"]["verdict"] == RECORDED == json.loads(clean.read_text())["metrics"]["accuracy"][
        "verdict"]
    value, (low, high) = stored["metrics"]["ifr"]["value"], stored["metrics"]["ifr"]["ci"]
    assert low < high

    # The same checkpoint against its own snapshots: everything passes.
    again = suite_dir.runpytest_subprocess(*args)
    assert again.ret == pytest.ExitCode.OK, again.stdout.str()

    # Stored: padcrop's ifr failed (a verdict change) and iv moved far (recorded only); scale's ifr
    # interval lies wholly above the value (a significant move); clean's accuracy moved (recorded)
    # and, in an old-format file, nothing gated changed.
    edit(padcrop, "ifr", verdict=FAIL)
    edit(padcrop, "iv", value=0.987, ci=[0.9, 1.0])
    scale_ifr = json.loads(scale.read_text())["metrics"]["ifr"]
    edit(scale, "ifr", value=round(scale_ifr["ci"][1] + 0.2, 3), ci=[round(scale_ifr["ci"][1] + 0.1, 3),
                                                                     round(scale_ifr["ci"][1] + 0.3, 3)])
    old = json.loads(clean.read_text())
    old.pop("format")
    for metric in old["metrics"].values():
        metric.pop("n_clusters")
        metric["verdict"] = "pass"
        metric["value"] = round(metric["value"] + 0.3, 3)
    clean.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    gated = suite_dir.runpytest_subprocess(*args)
    text = gated.stdout.str()
    assert gated.parseoutcomes().get("failed") == 2, text
    assert re.search(r"FAILED .*-padcrop\]", text) and re.search(r"FAILED .*-scale\]", text)
    assert not re.search(r"FAILED .*-clean\]", text)
    assert re.search(rf"ifr: verdict changed fail -> pass \(stored {value:g} \[{low:g}, {high:g}\]", text)
    assert "iv: " not in text.replace('"iv": ', "")  # the recorded-only metric is only in the JSON diff
    assert "ifr: value moved outside the stored 95% interval under an unchanged verdict pass" in text
    assert "syrupy's diff of the summaries (- stored, + received):" in text

    # An old-format file whose gated verdict changed fails and says how to re-record.
    edit(clean, "accuracy", limit="min 0.99 (interval)")  # a stored gate, now not judged: skipped in format 1
    old_gate = json.loads(scale.read_text())
    old_gate.pop("format")
    old_gate["metrics"]["ifr"] = {**old_gate["metrics"]["ifr"], "verdict": "fail"}
    scale.write_text(json.dumps(old_gate, indent=2, sort_keys=True) + "\n")
    again = suite_dir.runpytest_subprocess(*args, "-k", "scale or clean")
    text = again.stdout.str()
    assert again.parseoutcomes().get("failed") == 1 and re.search(r"FAILED .*-scale\]", text), text
    assert not re.search(r"FAILED .*-clean\]", text)
    assert "ifr: verdict changed fail -> pass" in text
    assert "predates snapshot format 2" in text
    assert "re-record it with pytest --vlmgate-snapshot --snapshot-update" in text
