"""Release diffs: paired tests against hand computations, scipy and brute force; spec pairing;
``diff_runs`` statuses; ``vlmgate diff`` exit codes and formats; change limits and baselines."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re

import numpy as np
import pytest
from scipy import stats

from vlmgate.cases import CaseKey
from vlmgate.cli import main
from vlmgate.errors import ConfigError, RecordError
from vlmgate.metrics.paired import (
    ALPHA,
    BOOTSTRAP,
    DISPLAY_DRAWS,
    MCNEMAR,
    MONTE_CARLO,
    SIGN_FLIP,
    UNTESTED,
    PairedChange,
    compare_units,
    mcnemar_exact,
    paired_bootstrap_p,
    paired_bootstrap_test,
    sign_flip_p,
)
from vlmgate.records import MetricResult
from vlmgate.report.baseline import Baseline
from vlmgate.report.diff import diff_runs
from vlmgate.report.multiplicity import GATED_FAMILY, METHOD, RECORDED_FAMILY, adjust, adjusted_p, level
from vlmgate.report.pairing import CasePairing, pair_specs
from vlmgate.report.record import (
    SCHEMA_VERSION,
    CaseRecord,
    Completeness,
    Environment,
    MetricRecord,
    RunRecord,
    write_record,
)
from vlmgate.thresholds import Vocabulary, parse_thresholds

MODEL_A, MODEL_B = "hf:/runs/release-41/ckpt", "hf:/runs/release-42/candidate"
BENCH = "jsonl:/data/bench/manifest.jsonl"
TEST = "robustness_tests/test_flip_rate.py::test_flip_rate"


def binary_metric(name: str, units: dict[str, int], better: str, *, limit: str | None = "max 1 (interval)",
                  passed: bool = True, clusters: dict[str, str] | None = None) -> MetricRecord:
    """A 0/1 metric over ``units``; gated by ``limit`` (``None``: recorded only)."""
    value = sum(units.values()) / len(units)
    return MetricRecord(name, "proportion", better, value, 0.0, 1.0, len(units), limit, passed, "", units, {},
                        clusters or {})


def run(model: str, cases: list[tuple[str, list[MetricRecord]]]) -> RunRecord:
    """A schema-1 record (no outcomes stored): a case whose gate failed failed its test."""
    records = tuple(
        CaseRecord(f"m-b-{family}", TEST, CaseKey(model, BENCH, family, "flip_rate"),
                   "passed" if all(m.passed for m in metrics) else "failed", tuple(metrics))
        for family, metrics in sorted(cases)
    )
    return RunRecord(1, "0.1.0", 0, {}, {model: "fp-" + model[-4:]}, {BENCH: "fp-bench"}, records,
                     Environment("3.11", "linux"))


def flips(n: int, flipped: set[int]) -> dict[str, int]:
    return {f"s{i // 8}|translation({{\"dx\": {i % 8}}})": int(i in flipped) for i in range(n)}


def correct(n: int, wrong: set[int]) -> dict[str, int]:
    return {f"s{i}": int(i not in wrong) for i in range(n)}


# -- exact McNemar ---------------------------------------------------------------------
def test_mcnemar_matches_hand_computation():
    # 9 units rose, 1 fell: P(X >= 9) + P(X <= 1) for X ~ Bin(10, 1/2) = 2 * (10 + 1) / 1024.
    assert mcnemar_exact(9, 1) == pytest.approx(22 / 1024, rel=1e-12)
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64, rel=1e-12)  # all six discordant pairs one way
    assert mcnemar_exact(0, 0) == 1.0  # no discordant pair: no evidence of change
    assert mcnemar_exact(3, 3) == pytest.approx(1.0)


@pytest.mark.parametrize("rose,fell", [(r, f) for r in range(0, 13, 3) for f in range(0, 13, 4) if r + f])
def test_mcnemar_matches_scipy_and_the_binomial_sum(rose, fell):
    n = rose + fell
    pmf = [math.comb(n, k) / 2 ** n for k in range(n + 1)]
    # Two-sided: every outcome at most as likely as the observed one (scipy's definition).
    brute = min(1.0, sum(p for p in pmf if p <= pmf[rose] * (1 + 1e-7)))
    assert mcnemar_exact(rose, fell) == pytest.approx(brute, rel=1e-9)
    assert mcnemar_exact(rose, fell) == pytest.approx(stats.binomtest(rose, n, 0.5).pvalue, rel=1e-12)


def test_compare_units_pairs_by_key_and_counts_discordant_pairs():
    before = {"a": 0, "b": 0, "c": 1, "d": 1, "only-before": 1}
    after = {"d": 1, "c": 0, "b": 0, "a": 1, "only-after": 0}
    change = compare_units("ifr", "proportion", before, after, rng=np.random.default_rng(0))
    assert (change.test, change.n_pairs, change.rose, change.fell) == (MCNEMAR, 4, 1, 1)
    assert (change.before, change.after, change.delta, change.p_value) == (0.5, 0.5, 0.0, 1.0)
    assert not change.significant


def test_nothing_to_pair_is_untested_and_never_significant():
    change = compare_units("ifr", "proportion", {}, {"a": 1}, rng=np.random.default_rng(0),
                           before_value=0.1, after_value=0.9)
    assert change.test == UNTESTED and math.isnan(change.p_value) and not change.significant
    assert change.delta == pytest.approx(0.8)


def test_proportion_units_must_be_zero_or_one():
    with pytest.raises(RecordError, match="'ifr' is a proportion but its units are not all 0 or 1"):
        compare_units("ifr", "proportion", {"a": 0.5}, {"a": 1}, rng=np.random.default_rng(0))


# -- paired bootstrap -------------------------------------------------------------------
def exhaustive_bootstrap_p(differences: list[float]) -> float:
    """Every one of the n^n equally likely resamples of the centred differences, counted."""
    d = np.asarray(differences) - np.mean(differences)
    observed = abs(float(np.mean(differences)))
    means = [np.mean(d[list(idx)]) for idx in itertools.product(range(len(d)), repeat=len(d))]
    return float(np.mean([abs(m) >= observed - 1e-12 for m in means]))


@pytest.mark.parametrize("differences", [[0.3, -0.1, 0.5, 0.2, 0.4], [0.05, -0.2, 0.1, 0.0, -0.15]])
def test_paired_bootstrap_matches_the_exhaustive_bootstrap(differences):
    exact = exhaustive_bootstrap_p(differences)
    estimate = paired_bootstrap_p(np.array(differences), rng=np.random.default_rng(1), n_resamples=20000)
    assert estimate == pytest.approx(exact, abs=0.015)  # Monte Carlo SE <= 0.0036


def test_paired_bootstrap_edge_cases_and_reproducibility():
    assert paired_bootstrap_p(np.zeros(7), rng=np.random.default_rng(0)) == 1.0
    assert math.isnan(paired_bootstrap_p(np.array([]), rng=np.random.default_rng(0)))
    shifted = np.random.default_rng(3).normal(1.0, 0.1, size=40)
    p1 = paired_bootstrap_p(shifted, rng=np.random.default_rng(5))
    assert p1 == paired_bootstrap_p(shifted, rng=np.random.default_rng(5))
    # No resample of the centred data gets near a shift of 10 sd: drawing goes on past the first
    # 2,000 (whose floor 1/2001 could not show a p below alpha / 150) until the p can be shown.
    resolved = paired_bootstrap_test(shifted, rng=np.random.default_rng(5))
    assert resolved.value == p1 == pytest.approx(1 / (1 + resolved.draws)) and resolved.draws >= DISPLAY_DRAWS
    assert resolved.method == MONTE_CARLO and resolved.resolved and resolved.interval[1] < ALPHA


def test_mean_metric_uses_the_bootstrap():
    before = {f"s{i}": 0.1 * i for i in range(30)}
    after = {k: v + 0.5 for k, v in before.items()}
    change = compare_units("drift_ratio", "mean", before, after, rng=np.random.default_rng(0))
    assert change.test == BOOTSTRAP and change.delta == pytest.approx(0.5) and change.significant
    assert (change.rose, change.fell) == (30, 0)


# -- pairing ----------------------------------------------------------------------------
def test_pair_specs_exact_then_short_name_then_single_leftover():
    assert pair_specs(["hf:/a/x", "hf:/a/y"], ["hf:/a/y", "hf:/a/x"]) == {"hf:/a/x": "hf:/a/x", "hf:/a/y": "hf:/a/y"}
    assert pair_specs(["hf:/old/ckpt", "hf:/old/other"], ["hf:/new/ckpt", "hf:/new/third"]) == {
        "hf:/new/ckpt": "hf:/old/ckpt", "hf:/new/third": "hf:/old/other"}
    assert pair_specs([MODEL_A], [MODEL_B]) == {MODEL_B: MODEL_A}
    assert pair_specs(["hf:/a/p", "hf:/a/q"], ["hf:/b/r", "hf:/b/s"]) == {}  # ambiguous: left unpaired


def test_benchmarks_pair_by_name_never_by_elimination():
    """Two folders' ``manifest.jsonl`` are different benchmarks: their changes would be changes of data."""
    pairing = CasePairing.between([MODEL_A], ["jsonl:/data/pets/manifest.jsonl"],
                                  [MODEL_B], ["jsonl:/data/cars/manifest.jsonl"])
    assert pairing.models == {MODEL_B: MODEL_A} and pairing.benchmarks == {}
    moved = CasePairing.between([MODEL_A], ["jsonl:/ci/1/pets/manifest.jsonl"],
                                [MODEL_B], ["jsonl:/ci/2/pets/manifest.jsonl"])
    assert moved.benchmarks == {"jsonl:/ci/2/pets/manifest.jsonl": "jsonl:/ci/1/pets/manifest.jsonl"}
    renamed = CasePairing.between([MODEL_A], ["jsonl:/v1/manifest.jsonl?name=pets"],
                                  [MODEL_B], ["jsonl:/v2/manifest.jsonl?name=pets"])
    assert renamed.benchmarks == {"jsonl:/v2/manifest.jsonl?name=pets": "jsonl:/v1/manifest.jsonl?name=pets"}


# -- diff_runs --------------------------------------------------------------------------
def test_a_run_against_itself_has_no_significant_change():
    rng = np.random.default_rng(0)
    cases = [(family, [binary_metric("ifr", {f"u{i}": int(x) for i, x in enumerate(rng.integers(0, 2, 80))}, "lower"),
                       binary_metric("iv", {f"s{i}": int(x) for i, x in enumerate(rng.integers(0, 2, 10))}, "lower")])
             for family in ("translation", "rotation", "padcrop")]
    record = run(MODEL_A, cases)
    diff = diff_runs(record, record)
    assert len(diff.rows) == 6
    assert {row.status for row in diff.rows} == {"not_significant"}
    assert all(row.change.p_value == 1.0 and row.change.delta == 0.0 for row in diff.rows)


def test_diff_flags_a_constructed_regression_and_its_reverse_as_an_improvement():
    before = run(MODEL_A, [("translation", [binary_metric("ifr", flips(80, {1, 2}), "lower")]),
                           ("clean", [binary_metric("accuracy", correct(20, {0}), "higher")]),
                           ("rotation", [binary_metric("ifr", flips(16, {3}), "lower")])])
    after = run(MODEL_B, [("translation", [binary_metric("ifr", flips(80, {1, 2, *range(10, 20)}), "lower")]),
                          ("clean", [binary_metric("accuracy", correct(20, {0, *range(5, 13)}), "higher")]),
                          ("rotation", [binary_metric("ifr", flips(16, {4}), "lower")])])
    diff = diff_runs(before, after)
    status = {(row.key.family, row.metric): row for row in diff.rows}
    ifr = status[("translation", "ifr")]
    assert ifr.status == "regressed" and (ifr.change.rose, ifr.change.fell) == (10, 0)
    assert ifr.change.p_value == pytest.approx(2 / 1024) and ifr.change.delta == pytest.approx(10 / 80)
    assert status[("clean", "accuracy")].status == "regressed"  # accuracy down is worse
    assert status[("clean", "accuracy")].change.p_value == pytest.approx(2 / 256)
    assert status[("rotation", "ifr")].status == "not_significant"  # one unit each way
    assert len(diff.regressions()) == 2
    reverse = diff_runs(after, before)
    assert sorted(row.status for row in reverse.rows) == ["improved", "improved", "not_significant"]


def test_diff_reports_added_removed_and_untested_metrics():
    untested = MetricRecord("dirichlet_delta", "mean", "lower", 0.3, 0.2, 0.4, 5, None, True, "")
    before = run(MODEL_A, [("padcrop", [binary_metric("ifr", flips(8, set()), "lower")]),
                           ("rotation", [binary_metric("ifr", flips(8, set()), "lower"), untested])])
    after = run(MODEL_A, [("rotation", [binary_metric("ifr", flips(8, set()), "lower"), untested]),
                          ("scale", [binary_metric("ifr", flips(8, set()), "lower")])])
    statuses = {(row.key.family, row.metric): row.status for row in diff_runs(before, after).rows}
    assert statuses == {("padcrop", "ifr"): "removed", ("rotation", "ifr"): "not_significant",
                        ("rotation", "dirichlet_delta"): "untested", ("scale", "ifr"): "added"}


# -- the command ------------------------------------------------------------------------
@pytest.fixture
def records(tmp_path):
    before = run(MODEL_A, [("translation", [binary_metric("ifr", flips(80, set()), "lower")])])
    after = run(MODEL_B, [("translation", [binary_metric("ifr", flips(80, set(range(12))), "lower")])])
    return str(write_record(before, tmp_path / "v1")), str(write_record(after, tmp_path / "v2"))


def test_cli_fail_on_regression_exit_codes(records, capsys):
    v1, v2 = records
    assert main(["diff", v1, v1, "--fail-on", "regression"]) == 0
    assert "0 regressed" not in capsys.readouterr().out  # zero counts are left out of the summary
    assert main(["diff", v1, v2, "--fail-on", "regression"]) == 1
    text = capsys.readouterr().out
    assert "REGRESSED" in text and f"model {MODEL_A} (before) paired with {MODEL_B} (after)" in text
    assert main(["diff", v1, v2]) == 0  # reporting only, by default
    capsys.readouterr()
    assert main(["diff", v1, "missing/run.json"]) == 2
    assert "run record missing/run.json does not exist" in capsys.readouterr().err


def test_cli_json_and_markdown_formats(records, capsys):
    v1, v2 = records
    main(["diff", v1, v2, "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["regressed"] == 1 and data["pairing"]["models"] == {MODEL_B: MODEL_A}
    (row,) = data["rows"]
    assert row["status"] == "regressed" and row["change"]["rose"] == 12
    assert row["change"]["p_value"] == pytest.approx(2 / 4096)
    main(["diff", v1, v2, "--format", "markdown"])
    markdown = capsys.readouterr().out
    assert "| case | metric | before | verdict | after | verdict | change | pairs | p (adj.) | status |" in markdown
    assert "**REGRESSED**" in markdown and "m-b-translation" in markdown



def bad_inputs(folder) -> dict[str, tuple[str, str]]:
    """Broken run records: label -> (path, what the message must say)."""
    good = json.loads(run(MODEL_A, [("translation", [binary_metric("ifr", flips(8, set()), "lower")])]).to_json())
    (folder / "empty").mkdir()
    (folder / "latin1.json").write_bytes(b'{"vlmgate_version": "caf\xe9"}')
    (folder / "text.json").write_text("a table, not JSON")
    (folder / "future.json").write_text(json.dumps({**good, "schema_version": SCHEMA_VERSION + 1}))
    (folder / "keyless.json").write_text(json.dumps({k: v for k, v in good.items() if k != "cases"}))
    (folder / "odd" / "run.json").mkdir(parents=True)
    return {
        "missing": (str(folder / "missing.json"), "does not exist"),
        "folder without run.json": (str(folder / "empty"), "holds no run.json"),
        "not UTF-8": (str(folder / "latin1.json"), "not UTF-8 text"),
        "not JSON": (str(folder / "text.json"), "not valid JSON"),
        "future schema": (str(folder / "future.json"),
                          f"schema_version {SCHEMA_VERSION + 1} is not one this vlmgate reads"),
        "missing key": (str(folder / "keyless.json"), "cases: missing"),
        "a folder named run.json": (str(folder / "odd"), "cannot read it"),
    }


@pytest.mark.parametrize("label", ["missing", "folder without run.json", "not UTF-8", "not JSON", "future schema",
                                   "missing key", "a folder named run.json"])
def test_cli_bad_input_exits_2_with_one_line(records, tmp_path, capsys, label):
    path, problem = bad_inputs(tmp_path)[label]
    v1, _ = records
    for argv in (["diff", v1, path, "--fail-on", "regression"], ["diff", path, v1], ["report", path, "-o",
                                                                                     str(tmp_path / "r.html")]):
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        (line,) = captured.err.splitlines()
        assert line.startswith("vlmgate: ") and path in line
        assert problem in line and captured.out == ""
    assert not (tmp_path / "r.html").exists()


def test_cli_report_refuses_an_output_it_cannot_write(records, tmp_path, capsys):
    v1, _ = records
    (tmp_path / "taken").mkdir()
    assert main(["report", v1, "-o", str(tmp_path / "taken")]) == 2
    assert capsys.readouterr().err == f"vlmgate: -o {tmp_path / 'taken'}: is a folder, not a file; pass a file path, " \
                                      "or remove the folder\n"


def test_cli_fail_on_regression_with_nothing_paired_is_an_error(tmp_path, capsys):
    before = run(MODEL_A, [("translation", [binary_metric("ifr", flips(8, set()), "lower")])])
    other_bench = RunRecord(**{**before.__dict__, "benchmarks": {"jsonl:/x.jsonl": "fp", "jsonl:/y.jsonl": "fp"}})
    v1 = str(write_record(before, tmp_path / "v1"))
    rotated = str(write_record(run(MODEL_B, [("rotation", [binary_metric("ifr", flips(8, {1}), "lower")])]),
                               tmp_path / "v2"))
    elsewhere = str(write_record(other_bench, tmp_path / "v3"))
    assert main(["diff", v1, rotated]) == 0  # reporting only: added and removed cases are the answer
    capsys.readouterr()
    assert main(["diff", v1, rotated, "--fail-on", "regression"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vlmgate: {v1} and {rotated} share no case, so nothing was compared: ")
    assert "no case has the same family, suite and test function on paired specs" in err
    assert "before: translation; after: rotation" in err and len(err.splitlines()) == 1
    assert main(["diff", v1, elsewhere, "--fail-on", "regression"]) == 2
    assert "no benchmark of jsonl:/x.jsonl, jsonl:/y.jsonl pairs with one of " + BENCH in capsys.readouterr().err


def test_cli_diff_refuses_an_incomplete_record_unless_allowed(records, tmp_path, capsys):
    v1, v2 = records
    stopped = Completeness(False, "interrupted (KeyboardInterrupt)", 3, ("t.py::test_flip_rate[a]",))
    record = RunRecord.from_json(open(v2).read())
    partial = str(write_record(RunRecord(**{**record.__dict__, "completeness": stopped}), tmp_path / "partial"))
    for argv in (["diff", v1, partial], ["diff", partial, v1, "--fail-on", "regression"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == (f"vlmgate: {partial}: incomplete: 1 of 3 cases not run (interrupted (KeyboardInterrupt)); "
                       "re-run the suite to the end, or pass --allow-incomplete to compare the cases it holds\n")
    assert main(["diff", v1, partial, "--allow-incomplete", "--fail-on", "regression"]) == 1
    captured = capsys.readouterr()
    assert "REGRESSED" in captured.out and f"note: {partial}: incomplete: 1 of 3 cases not run" in captured.err
    with pytest.raises(RecordError, match=r"partial/run.json: incomplete: 1 of 3 cases not run .*; gate against "
                                          r"a complete record"):
        Baseline.load(partial, models=[MODEL_A], benchmarks=[BENCH], seed=0)


# -- change limits and baselines --------------------------------------------------------
def change(delta: float, p_value: float, test: str = MCNEMAR) -> PairedChange:
    return PairedChange("ifr", test, 100, 0.1, 0.1 + delta, 0, 0, p_value)


def test_change_limits_parse_and_describe():
    limits = parse_thresholds("t.toml", {"ifr": {"*": {"max": 0.2, "max_increase": 0.02}},
                                         "accuracy": {"*": {"max_decrease": 0.01}}}, Vocabulary.uniform(["clean"]))
    ifr = limits.lookup("hf:x", "ifr", "rotation")
    assert (ifr.max, ifr.max_increase, ifr.max_decrease, ifr.gates_change) == (0.2, 0.02, None, True)
    assert ifr.describe() == "max 0.2 (interval); max increase 0.02 vs baseline"
    accuracy = limits.lookup("hf:x", "accuracy", "clean")
    assert accuracy.describe() == "max decrease 0.01 vs baseline"
    assert accuracy.check(MetricResult("accuracy", 0.3, 0.2, 0.4, 50)).passed  # no value bound to fail
    with pytest.raises(ConfigError, match=r"t.toml: \[ifr\] \*.max_increase = -0.1 must be >= 0"):
        parse_thresholds("t.toml", {"ifr": {"*": {"max_increase": -0.1}}}, Vocabulary.uniform([]))


def test_change_verdicts_need_both_a_large_and_a_significant_change():
    limit = parse_thresholds("t.toml", {"ifr": {"*": {"max_increase": 0.02, "max_decrease": 0.05}}},
                             Vocabulary.uniform([])).lookup("m", "ifr", "f")
    assert limit.check_change(change(0.0, 1.0)).passed  # unchanged
    assert limit.check_change(change(0.01, 0.001)).passed  # significant but within the allowed rise
    loose = limit.check_change(change(0.10, 0.20))
    assert loose.passed and "beyond max_increase 0.02 but not significant" in loose.message
    failed = limit.check_change(change(0.10, 0.01), "baseline v1/run.json")
    assert not failed.passed and failed.failed_limits == ("change",)
    assert loose.failed_limits == ()
    assert "exceeds max_increase 0.02 and is significant" in failed.message and "t.toml [ifr] *" in failed.message
    assert "vs baseline v1/run.json" in failed.message
    assert not limit.check_change(change(-0.06, 0.01)).passed  # fell beyond max_decrease
    assert limit.check_change(None).passed and limit.check_change(change(0.5, math.nan, UNTESTED)).passed


def test_baseline_pairs_the_case_and_tests_the_units():
    record = run(MODEL_A, [("translation", [binary_metric("ifr", flips(40, {0}), "lower")])])
    baseline = Baseline(record, "v1/run.json", models=[MODEL_B], benchmarks=[BENCH], seed=0)
    units = flips(40, {0, *range(20, 30)})
    result = MetricResult("ifr", 11 / 40, 0.1, 0.4, 40, kind="proportion", units=units, count=11)
    key = CaseKey(MODEL_B, BENCH, "translation", "flip_rate")
    found = baseline.change(key, "other/dir/x.py::test_flip_rate", result)  # pairs by test function name
    assert (found.rose, found.fell, found.n_pairs) == (10, 0, 40)
    assert found.p_value == pytest.approx(2 / 1024)
    assert baseline.change(CaseKey(MODEL_B, BENCH, "rotation", "flip_rate"), TEST, result) is None
    assert baseline.change(CaseKey(MODEL_B, BENCH, "translation", "flip_rate"), TEST,
                           MetricResult("iv", 0.1, 0, 1, 4, {"count": 1})) is None


# -- snapshot folders -------------------------------------------------------------------
def write_snapshot(root, case_id, family, metrics):
    """One file as ``report.snapshot`` stores it: ``<test file>/<test>[<case id>].json``."""
    folder = root / "__vlmgate_snapshots__" / "test_flip_rate"
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"suite": "flip_rate", "family": family, "precision": 3, "metrics": {
        name: {"value": value, "ci": [low, high], "n": 40, "limit": limit, "verdict": verdict}
        for name, (value, low, high, limit, verdict) in metrics.items()}}
    (folder / f"test_flip_rate[{case_id}].json").write_text(json.dumps(summary, indent=2, sort_keys=True))


def test_diff_of_snapshot_folders_flags_flipped_verdicts(tmp_path, capsys):
    release, candidate = tmp_path / "v1", tmp_path / "v2"
    write_snapshot(release, "hf_release-41-bundled_shapes-rotation", "rotation",
                   {"ifr": (0.05, 0.02, 0.1, "max 0.15 (interval)", "pass")})
    write_snapshot(release, "hf_release-41-bundled_shapes-clean", "clean",
                   {"accuracy": (0.8, 0.7, 0.9, "min 0.5 (interval)", "pass")})
    write_snapshot(candidate, "hf_release-42-bundled_shapes-rotation", "rotation",
                   {"ifr": (0.4, 0.3, 0.5, "max 0.15 (interval)", "fail")})
    write_snapshot(candidate, "hf_release-42-bundled_shapes-clean", "clean",
                   {"accuracy": (0.79, 0.69, 0.89, "min 0.5 (interval)", "pass")})
    assert main(["diff", str(release), str(candidate), "--format", "json", "--fail-on", "regression"]) == 1
    rows = {row["family"]: row for row in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["rotation"]["status"] == "regressed"
    assert rows["rotation"]["before"] == 0.05 and rows["rotation"]["after"] == 0.4
    assert rows["clean"]["status"] == "untested"  # moved, no units to test, verdict unchanged
    assert main(["diff", str(release), str(release), "--fail-on", "regression"]) == 0
    capsys.readouterr()


def test_snapshot_folder_errors_name_the_file(tmp_path, capsys):
    write_snapshot(tmp_path, "m-b-rotation", "rotation", {"ifr": (0.1, 0.0, 0.2, None, "pass")})
    bad = tmp_path / "__vlmgate_snapshots__" / "test_flip_rate" / "test_flip_rate[m-b-scale].json"
    bad.write_text("{not json")
    assert main(["diff", str(tmp_path), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "test_flip_rate[m-b-scale].json: not a vlmgate snapshot" in err and "--snapshot-update" in err


# -- units nested in images: the change is tested over images -----------------------------
def nested(flipped_images: set[int], images: int = 10, shifts: int = 8) -> tuple[dict[str, int], dict[str, str]]:
    units = {f"s{i}|translation(dx={j})": int(i in flipped_images) for i in range(images) for j in range(shifts)}
    return units, {key: key.split("|")[0] for key in units}


def test_sign_flip_p_is_the_exhaustive_share_of_sign_assignments():
    differences = np.array([3.0, -1.0, 2.0, 0.0, 5.0, 1.0])
    signs = np.array(list(itertools.product((-1, 1), repeat=6)))
    exact = float(np.mean(np.abs(signs @ differences) >= abs(differences.sum()) - 1e-9))
    assert sign_flip_p(differences, rng=np.random.default_rng(0)) == pytest.approx(exact)
    many = np.random.default_rng(2).integers(-3, 6, size=40).astype(float)  # Monte Carlo beyond EXACT_SIGN_FLIPS
    estimate = sign_flip_p(many, rng=np.random.default_rng(3), n_resamples=20000)
    normal = 2 * stats.norm.sf(abs(many.sum()) / math.sqrt(np.sum(many ** 2)))  # the sign-flip CLT
    assert estimate == pytest.approx(normal, abs=0.01)
    assert sign_flip_p(np.zeros(5), rng=np.random.default_rng(0)) == 1.0


def test_a_change_beyond_what_resampling_resolves_gets_its_exact_p_not_the_resampling_floor():
    # 36 images each newly follow an overlay (the bundled v1 -> v2 textoverlay change): the
    # exact p is 2 / 2^36, far below the 1 / 2000 that 1,999 random sign assignments can show,
    # and a report testing 150 metrics (Bonferroni) needs p < 0.05 / 150. Integer differences
    # (flips summed per image) get the exact sign-flip law.
    differences = np.array([1.0] * 36 + [0.0] * 14)
    p = sign_flip_p(differences, rng=np.random.default_rng(0), decide_at=level(150))
    assert p == pytest.approx(2.0 / 2 ** 36, rel=1e-9)
    assert p < level(150) == 0.05 / 150


@pytest.mark.parametrize("rose,fell", [(9, 1), (6, 0), (3, 3), (7, 4)])
def test_one_unit_per_image_the_sign_flip_test_is_the_exact_mcnemar(rose, fell):
    differences = np.array([1.0] * rose + [-1.0] * fell + [0.0] * 5)
    assert sign_flip_p(differences, rng=np.random.default_rng(0)) == pytest.approx(mcnemar_exact(rose, fell))


def test_a_change_concentrated_in_few_images_is_tested_over_images():
    # Two images newly flip on all 8 shifts: 16 discordant instances, all one way.
    before, clusters = nested(set())
    after, _ = nested({0, 1})
    by_instance = compare_units("ifr", "proportion", before, after, rng=np.random.default_rng(0))
    by_image = compare_units("ifr", "proportion", before, after, rng=np.random.default_rng(0), clusters=clusters)
    assert (by_instance.test, by_instance.p_value) == (MCNEMAR, pytest.approx(2 / 2 ** 16))
    assert (by_image.test, by_image.n_pairs, by_image.n_clusters, by_image.rose) == (SIGN_FLIP, 80, 10, 16)
    assert by_image.p_value == pytest.approx(0.5) and not by_image.significant  # 2 images of 4 sign assignments
    assert "on 80 paired units in 10 images, sign-flip test over images p = 0.5" in by_image.describe()
    wide, wide_clusters = nested(set(range(8)), images=20)
    spread = compare_units("ifr", "proportion", nested(set(), images=20)[0], wide, rng=np.random.default_rng(0),
                           clusters=wide_clusters)
    assert spread.p_value == pytest.approx(2 / 2 ** 8) and spread.significant  # eight images, all one way


def test_the_baseline_gate_and_vlmgate_diff_pair_instances_at_the_image_level():
    units_before, clusters = nested(set())
    units_after, _ = nested({0, 1})
    record = run(MODEL_A, [("translation", [MetricRecord(**{**binary_metric("ifr", units_before, "lower").__dict__,
                                                            "clusters": clusters})])])
    baseline = Baseline(record, "v1/run.json", models=[MODEL_B], benchmarks=[BENCH], seed=0)
    result = MetricResult("ifr", 0.2, 0.0, 0.6, 80, kind="proportion", units=units_after, clusters=clusters, count=16)
    found = baseline.change(CaseKey(MODEL_B, BENCH, "translation", "flip_rate"), TEST, result)
    assert (found.test, found.n_clusters, found.p_value) == (SIGN_FLIP, 10, pytest.approx(0.5))
    after = run(MODEL_B, [("translation", [MetricRecord(**{**binary_metric("ifr", units_after, "lower").__dict__,
                                                           "clusters": clusters})])])
    (row,) = diff_runs(record, after).rows
    assert (row.change.test, row.status) == (SIGN_FLIP, "not_significant")


# -- what a release manager reads first ----------------------------------------------------
def overlay_units(flipped: set[int], images: int = 50, per_image: int = 3) -> tuple[dict[str, int], dict[str, str]]:
    """``follow_rate``-like units: ``per_image`` overlays on each image, ``flipped`` of them (by index) followed."""
    units = {f"s{i}|named={j}": int(i * per_image + j in flipped) for i in range(images) for j in range(per_image)}
    return units, {key: key.split("|")[0] for key in units}


def release_pair() -> tuple[RunRecord, RunRecord]:
    """v1 and v2 as a release manager meets them: one gate newly failing on 3 instances of one image
    (not significant), one fixed, one unchanged, and one metric without a limit that moved a lot."""
    quiet, clusters = overlay_units(set())
    followed, _ = overlay_units({0, 1, 2})
    limit = "max 0 (strict)"
    before = run(MODEL_A, [
        ("textoverlay", [binary_metric("follow_rate", quiet, "lower", limit=limit, clusters=clusters)]),
        ("clean", [binary_metric("accuracy", correct(20, {0, 1}), "higher", limit="min 0.95 (strict)", passed=False)]),
        ("translation", [binary_metric("ifr", flips(80, {1, 2}), "lower")]),
        ("saturate", [binary_metric("ras_corrective", correct(40, set()), "higher", limit=None)])])
    after = run(MODEL_B, [
        ("textoverlay", [binary_metric("follow_rate", followed, "lower", limit=limit, passed=False,
                                       clusters=clusters)]),
        ("clean", [binary_metric("accuracy", correct(20, set()), "higher", limit="min 0.95 (strict)")]),
        ("translation", [binary_metric("ifr", flips(80, {1, 2}), "lower")]),
        ("saturate", [binary_metric("ras_corrective", correct(40, set(range(30))), "higher", limit=None)])])
    return before, after


def test_bonferroni_decides_each_test_of_a_family_at_alpha_over_its_size():
    assert METHOD == "Bonferroni"
    assert level(4) == pytest.approx(0.0125) and level(0) == level(1) == 0.05 and level(10, alpha=0.01) == 0.001
    adjusted = adjust([0.01, 0.04, 0.003, 0.5, math.nan])  # m = 4: the NaN is not counted
    assert adjusted[:4] == pytest.approx([0.04, 0.16, 0.012, 1.0]) and math.isnan(adjusted[4])
    assert adjust([0.01, 0.02], family_size=10) == pytest.approx([0.1, 0.2])
    assert adjusted_p(0.001, level(20)) == pytest.approx(0.02) and adjusted_p(0.2, level(20)) == 1.0
    assert math.isnan(adjusted_p(math.nan, 0.05))
    rng = np.random.default_rng(0)
    for _ in range(300):  # adjusted p < alpha exactly where p < alpha / m: each test decided on its own
        p = rng.uniform(0, 0.08, size=int(rng.integers(1, 12)))
        for alpha in (0.01, 0.05):
            assert [bool(a < alpha) for a in adjust(p)] == [bool(x < level(len(p), alpha)) for x in p]
            assert [bool(adjusted_p(x, level(len(p), alpha), alpha) < alpha) for x in p] == [
                bool(x < level(len(p), alpha)) for x in p]


def gated(metric: MetricRecord, change: dict | None = None, **fields) -> MetricRecord:
    """``metric`` as a schema-3 record whose limit bounds its change (one of the run's gated changes)."""
    return dataclasses.replace(metric, change_limits={"max_increase": 0.02}, change=change, **fields)


def test_gated_changes_are_one_family_at_alpha_over_their_number_and_the_rest_another():
    """A metric whose limit bounds its change is decided at 0.05 / (gated changes), every other
    one at 0.05 / (recorded changes), and a gated change that the later run's gate judged against
    this very record at the level that gate used (read back from the record)."""
    before = run(MODEL_A, [("translation", [binary_metric("ifr", flips(80, set()), "lower")]),
                           ("rotation", [binary_metric("ifr", flips(80, set()), "lower")]),
                           ("clean", [binary_metric("accuracy", correct(20, set()), "higher", limit=None)])])

    def after(stored: dict | None) -> RunRecord:
        return run(MODEL_B, [("translation", [gated(binary_metric("ifr", flips(80, set(range(6))), "lower"), stored)]),
                             ("rotation", [gated(binary_metric("ifr", flips(80, set()), "lower"))]),
                             ("clean", [binary_metric("accuracy", correct(20, {0}), "higher", limit=None)])])

    diff = diff_runs(before, after(None))
    rows = {row.key.family: row for row in diff.rows}
    assert (diff.family_tests(GATED_FAMILY), diff.family_tests(RECORDED_FAMILY)) == (2, 1)
    assert {family: row.family for family, row in rows.items()} == {
        "translation": GATED_FAMILY, "rotation": GATED_FAMILY, "clean": RECORDED_FAMILY}
    translation = rows["translation"]
    assert translation.change.decided_at == level(2) and rows["clean"].change.decided_at == level(1)
    assert translation.change.p_value == pytest.approx(2 / 64)  # 6 of 6 one way: significant alone, not at 0.025
    assert translation.p_adjusted == pytest.approx(min(1.0, 2 * 2 / 64)) and translation.status == "not_significant"
    # The gate of the later run decided this change at 0.05 against this very record: the diff reads that back.
    judged = {"delta": 6 / 80, "p_value": 2 / 64, "decided_at": 0.05, "significant": True, "test": MCNEMAR,
              "n_pairs": 80, "baseline": before.digest}
    rows = {row.key.family: row for row in diff_runs(before, after(judged)).rows}
    assert rows["translation"].change.decided_at == 0.05 and rows["translation"].status == "regressed"
    assert rows["rotation"].change.decided_at == level(2)
    # ... but not when it was judged against another record.
    elsewhere = {**judged, "baseline": "0" * 64}
    rows = {row.key.family: row for row in diff_runs(before, after(elsewhere)).rows}
    assert rows["translation"].change.decided_at == level(2) and rows["translation"].status == "not_significant"


def test_a_gate_that_now_straddles_its_limit_is_newly_inconclusive_not_fixed_or_failing():
    passing = binary_metric("ifr", flips(80, set()), "lower", limit="max 0.1 (interval)")
    straddling = dataclasses.replace(binary_metric("ifr", flips(80, set(range(8))), "lower", limit="max 0.1 (interval)",
                                                   passed=False), outcome="inconclusive")
    failing = dataclasses.replace(passing, passed=False, outcome="fail")
    for before, after, transition in ((passing, straddling, "newly_inconclusive"),
                                      (failing, straddling, "newly_inconclusive"),
                                      (straddling, straddling, "unchanged"),
                                      (straddling, failing, "newly_failing"),
                                      (straddling, dataclasses.replace(passing, outcome="pass"), "unchanged")):
        (row,) = diff_runs(run(MODEL_A, [("translation", [before])]), run(MODEL_B, [("translation", [after])])).rows
        assert row.transition == transition, (before.outcome, after.outcome)
    (row,) = diff_runs(run(MODEL_A, [("translation", [passing])]), run(MODEL_B, [("translation", [straddling])])).rows
    assert row.verdicts == ("pass", "inconclusive")


def test_one_chance_change_among_eighty_one_tests_is_not_significant():
    moved = ("rotation", [binary_metric("ifr", flips(16, set()), "lower")])
    moved_after = ("rotation", [binary_metric("ifr", flips(16, set(range(6))), "lower")])  # 6 of 6 one way: p = 1/32
    still = [(f"family{i:02d}", [binary_metric("ifr", flips(16, {i % 16}), "lower")]) for i in range(80)]
    alone = diff_runs(run(MODEL_A, [moved]), run(MODEL_B, [moved_after]))
    assert alone.rows[0].change.p_value == pytest.approx(1 / 32) and alone.rows[0].status == "regressed"
    among = diff_runs(run(MODEL_A, [moved, *still]), run(MODEL_B, [moved_after, *still]))
    row = next(row for row in among.rows if row.key.family == "rotation")
    assert row.change.p_value == pytest.approx(1 / 32) and row.p_adjusted == 1.0  # 81 tests: 81/32 capped
    assert row.status == "not_significant" and among.tests == 81


def test_the_first_line_names_the_newly_failing_gate_and_counts_the_rest(tmp_path, capsys):
    before, after = release_pair()
    v1, v2 = str(write_record(before, tmp_path / "v1")), str(write_record(after, tmp_path / "v2"))
    assert main(["diff", v1, v2]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    # Both runs are NO-GO: v1 on its clean accuracy, v2 on its textoverlay follow_rate.
    assert lines[0] == ("decision NO-GO -> NO-GO; 1 gate newly failing: flip_rate textoverlay follow_rate; "
                        "1 fixed: flip_rate clean accuracy; 1 significant change without a limit")
    # The newly failing gate shows its verdicts, whatever its paired test says (3 instances, 1 image: n.s.).
    row = next(line for line in lines if "follow_rate" in line and "pass" in line)
    assert re.search(r"follow_rate\s+0\.0000\s+pass\s+0\.0200\s+FAIL\s+\+0\.0200\s+150\s+1\s+n\.s\.", row), row
    assert "change = after - before on the units both runs scored (paired)" in text
    # No limit of these records bounds a change: all four tests are recorded changes, each at 0.05 / 4.
    assert ("p adjusted (Bonferroni, family-wise alpha 0.05) over its family: 0 gated changes (at the level the "
            "gate used), 4 recorded changes") in text
    assert re.search(r"ras_corrective\s+1\.0000\s+recorded\s+0\.2500\s+recorded\s+-0\.7500\s+40\s+\S+\s+REGRESSED",
                     text)
    assert main(["diff", v1, v2, "--fail-on", "regression"]) == 1  # the newly failing gate
    assert main(["diff", v1, v1, "--fail-on", "regression"]) == 0
    capsys.readouterr()


def test_fail_on_regression_counts_gated_metrics_and_any_regression_counts_all(tmp_path, capsys):
    before = run(MODEL_A, [("saturate", [binary_metric("ras_corrective", correct(40, set()), "higher", limit=None)]),
                           ("translation", [binary_metric("ifr", flips(80, set()), "lower")])])
    after = run(MODEL_B, [("saturate", [binary_metric("ras_corrective", correct(40, set(range(30))), "higher",
                                                      limit=None)]),
                          ("translation", [binary_metric("ifr", flips(80, set()), "lower")])])
    v1, v2 = str(write_record(before, tmp_path / "v1")), str(write_record(after, tmp_path / "v2"))
    assert main(["diff", v1, v2, "--fail-on", "regression"]) == 0  # no limit: recorded, not gated
    assert capsys.readouterr().out.splitlines()[0] == ("decision GO -> GO; 0 gates newly failing; 0 fixed; "
                                                       "1 significant change without a limit")
    assert main(["diff", v1, v2, "--fail-on", "any-regression"]) == 1
    capsys.readouterr()
    gated = run(MODEL_B, [("saturate", [binary_metric("ras_corrective", correct(40, set()), "higher", limit=None)]),
                          ("translation", [binary_metric("ifr", flips(80, set(range(20))), "lower")])])
    v3 = str(write_record(gated, tmp_path / "v3"))
    assert main(["diff", v1, v3, "--fail-on", "regression"]) == 1  # gated, still passing, significantly worse
    assert capsys.readouterr().out.splitlines()[0] == (
        "decision GO -> GO; 0 gates newly failing; 0 fixed; 1 gated metric significantly worse: "
        "flip_rate translation ifr; 0 significant changes without a limit")


def test_the_change_is_after_minus_before_on_the_paired_units_and_says_so_when_the_sets_differ(tmp_path, capsys):
    # Each run scores its own 40 samples (RAS over the samples answered right, say); 20 are shared.
    before_units = {f"s{i}": int(20 <= i < 30) for i in range(0, 40)}  # 0.25 overall, 0.5 on the shared s20..s39
    after_units = {f"s{i}": int(i >= 40) for i in range(20, 60)}  # 0.5 overall, 0 on the shared
    before = run(MODEL_A, [("contrast", [binary_metric("ras_destructive", before_units, "lower", limit=None)])])
    after = run(MODEL_B, [("contrast", [binary_metric("ras_destructive", after_units, "lower", limit=None)])])
    v1, v2 = str(write_record(before, tmp_path / "v1")), str(write_record(after, tmp_path / "v2"))
    main(["diff", v1, v2, "--all"])
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if "ras_destructive" in line)
    assert re.search(r"0\.2500\s+recorded\s+0\.5000\s+recorded\s+-0\.5000 \(paired 0\.5000→0\.0000\)\s+20 of "
                     r"40/40", row), row
    assert ("(paired a→b): the runs scored different units; the change is measured on the units both scored, "
            "so it can differ from, even have the opposite sign of, the difference of the whole-set values") in text
    main(["diff", v1, v2, "--format", "json"])
    (data,) = json.loads(capsys.readouterr().out)["rows"]
    assert (data["before"], data["after"], data["change"]["delta"]) == (0.25, 0.5, -0.5)
    assert (data["change"]["before"], data["change"]["after"], data["change"]["paired_units_differ"]) == (0.5, 0.0,
                                                                                                       True)


def test_markdown_fits_a_pull_request_comment_and_json_keeps_everything(tmp_path, capsys):
    quiet, clusters = overlay_units(set())
    followed, _ = overlay_units({0, 1, 2})
    families = [f"family{i:02d}" for i in range(60)]
    before = run(MODEL_A, [(f, [binary_metric("ifr", flips(16, {1}), "lower"),
                                binary_metric("iv", correct(2, {0}), "lower"),
                                binary_metric("drift", correct(4, set()), "lower", limit=None)]) for f in families]
                 + [("textoverlay", [binary_metric("follow_rate", quiet, "lower", limit="max 0 (strict)",
                                                   clusters=clusters)])])
    after = run(MODEL_B, [(f, [binary_metric("ifr", flips(16, {1}), "lower"),
                               binary_metric("iv", correct(2, {0}), "lower"),
                               binary_metric("drift", correct(4, set()), "lower", limit=None)]) for f in families]
                + [("textoverlay", [binary_metric("follow_rate", followed, "lower", limit="max 0 (strict)",
                                                  passed=False, clusters=clusters)])])
    v1, v2 = str(write_record(before, tmp_path / "v1")), str(write_record(after, tmp_path / "v2"))
    main(["diff", v1, v2, "--format", "markdown"])
    markdown = capsys.readouterr().out
    lines = markdown.splitlines()
    summary = lines[0].removeprefix("### ").replace("\\_", "_").replace("\\>", ">")  # Markdown-escaped
    assert summary == "decision GO -> NO-GO; 1 gate newly failing: flip_rate textoverlay follow_rate; 0 fixed; " \
                      "0 significant changes without a limit"
    open_lines, depth = [], 0
    for line in lines:
        depth += line.count("<details>")
        if depth == 0:
            open_lines.append(line)
        depth -= line.count("</details>")
    assert len(open_lines) <= 60, "\n".join(open_lines)
    opened = "\n".join(open_lines)
    assert "m-b-textoverlay" in opened and "| follow\\_rate | 0.0000 | pass | 0.0200 | **FAIL** |" in opened
    assert "family00" not in opened  # the rest is collapsed
    assert all(f"m-b-{family}" in markdown for family in families)  # ... but there
    main(["diff", v1, v2, "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert data["summary"] == summary
    assert data["multiplicity"] == {"method": "Bonferroni", "alpha": 0.05, "tests": 181,
                                    "families": {GATED_FAMILY: 0, RECORDED_FAMILY: 181}}
    assert data["decisions"] == {"before": "GO", "after": "NO-GO"}
    assert len(data["rows"]) == 181 and data["newly_failing"] == [
        {"case": "m-b-textoverlay", "test": TEST, "metric": "follow_rate"}]
    row = next(row for row in data["rows"] if row["metric"] == "follow_rate")
    assert (row["verdict_before"], row["verdict_after"], row["gated"], row["transition"]) == (
        "pass", "fail", True, "newly_failing")
    assert row["change"]["p_adjusted"] == 1.0
