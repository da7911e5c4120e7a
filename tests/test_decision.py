"""One release decision: case standings, tiers, the run's GO / NO-GO / INCONCLUSIVE and its exit
code, and the baseline gate and ``vlmgate diff`` agreeing on every gated change."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from vlmgate.decision import (
    BLOCKS,
    DEFAULT_TIERS,
    ERROR,
    EXIT_CODES,
    GO,
    HOLDS,
    NO_GO,
    NOTHING,
    UNDECIDED,
    WARNED,
    WARNS,
    case_standing,
    decide,
)

from support import gate_args, junit_cases, kept_release


def test_a_case_stands_as_its_worst_gate_under_its_tier():
    assert case_standing([("pass", NOTHING), ("fail", BLOCKS)]) == "fail"
    assert case_standing([("pass", NOTHING), ("inconclusive", HOLDS)]) == "inconclusive"
    assert case_standing([("inconclusive", HOLDS), ("fail", BLOCKS)]) == "fail"
    assert case_standing([("pass", NOTHING), ("fail", WARNS)]) == WARNED        # an advisory failure warns
    assert case_standing([("pass", NOTHING), ("recorded", NOTHING)]) == "pass"
    assert case_standing([("recorded", NOTHING)]) == "recorded"                 # judged nothing: not a pass
    assert case_standing([]) == "recorded"


def test_shipped_tier_policies():
    critical, supporting, advisory = (DEFAULT_TIERS[name] for name in ("critical", "supporting", "advisory"))
    assert (critical.effect("fail"), critical.effect("inconclusive")) == (BLOCKS, HOLDS)
    assert (supporting.effect("fail"), supporting.effect("inconclusive")) == (BLOCKS, WARNS)
    assert (advisory.effect("fail"), advisory.effect("inconclusive")) == (WARNS, WARNS)
    assert all(policy.effect("pass") == NOTHING and policy.effect("recorded") == NOTHING
               for policy in DEFAULT_TIERS.values())


def test_the_run_decision_and_its_exit_codes():
    assert decide(["pass", "recorded", WARNED]).verdict == GO
    assert decide(["pass", "inconclusive"]).verdict == UNDECIDED
    assert decide(["pass", "inconclusive", "fail"]).verdict == NO_GO
    assert decide(["pass", ERROR]).verdict == NO_GO                              # a case that judged nothing
    incomplete = decide(["pass"], complete=False, incomplete_reason="stopping after 1 failures")
    assert incomplete.verdict == UNDECIDED and "stopping after 1 failures" in incomplete.reasons[0]
    assert [EXIT_CODES[verdict] for verdict in (GO, NO_GO, UNDECIDED)] == [0, 1, 10]
    assert 10 not in {int(code) for code in pytest.ExitCode}                      # distinct from pytest's own
    assert decide(["fail", "inconclusive", "pass", "pass"]).headline() == (
        "NO-GO: 4 cases: 1 fail, 1 inconclusive, 2 pass")


def test_a_straddling_interval_is_inconclusive_never_passed(suite_dir, tiny_llava_checkpoint, manifest):
    """Clean accuracy on six items: a limit inside its wide interval cannot be judged either way.
    The case reads INCONCLUSIVE (not PASSED, not FAILED), JUnit and the record say so, and the
    run exits 10 with the decision stated first."""
    suite_dir.makefile(".toml", limits='inherit = false\n[accuracy]\n"*" = { min = 0.35 }\n'
                                       '[ifr]\n"*" = { gated = false }\n[iv]\n"*" = { gated = false }\n')
    result = suite_dir.runpytest_subprocess(
        *gate_args(tiny_llava_checkpoint, manifest, "-k", "clean", "--junitxml=out.xml", "--vlmgate-report=rep",
                   "-rA"))
    assert result.ret == EXIT_CODES[UNDECIDED]
    assert result.parseoutcomes() == {"inconclusive": 1, "deselected": 13}
    text = result.stdout.str()
    assert "PASSED" not in text and "FAILED" not in text
    assert "flip_rate gate INCONCLUSIVE for family 'clean'" in text
    assert "straddles min 0.35: inconclusive" in text
    result.stdout.fnmatch_lines(["*vlmgate: decision*", "INCONCLUSIVE: 1 cases: 1 inconclusive (exit code 10)"])
    props = next(iter(junit_cases(suite_dir.path / "out.xml").values()))
    assert props["vlmgate.standing"] == "inconclusive" and props["vlmgate.accuracy.outcome"] == "inconclusive"
    record = json.loads((suite_dir.path / "rep" / "run.json").read_text())
    (case,) = record["cases"]
    assert case["standing"] == "inconclusive"
    accuracy = next(m for m in case["metrics"] if m["name"] == "accuracy")
    assert accuracy["outcome"] == "inconclusive" and not accuracy["passed"] and accuracy["needed_n"] > 6
    assert '<p class="stamp">INCONCLUSIVE</p>' in (suite_dir.path / "rep" / "report.html").read_text()


@pytest.mark.parametrize("limit,standing,lines", [
    ('"*" = { gated = false }', "recorded", ["GO: 1 cases: 1 recorded (exit code 0)"]),  # judged nothing
    ('"*" = { min = 0.9, mode = "strict", tier = "advisory" }', "warned", [                # an advisory failure
        "*vlmgate: WARNED cases*", "flip_rate gate WARNED for family 'translation'*",
        "  FAIL ?advisory: warn?: ifr = * is below min 0.9*",                               # its evidence, shown
        "*translation]: ifr = * limit min 0.9 (strict): FAIL (advisory tier: warn)"]),
])
def test_a_case_that_judges_nothing_or_only_warns_keeps_the_run_go(suite_dir, tiny_llava_checkpoint, manifest, limit,
                                                                   standing, lines):
    suite_dir.makefile(".toml", limits=f"inherit = false\n[ifr]\n{limit}\n")
    result = suite_dir.runpytest_subprocess(*gate_args(tiny_llava_checkpoint, manifest, "-m", "translation"))
    assert result.ret == 0
    assert result.parseoutcomes() == {standing: 1, "deselected": 13}
    result.stdout.fnmatch_lines(lines)


# -- the baseline gate and the diff: one test, one family, one level ----------------------------------
def _gated_by_the_shipped_file(candidate, baseline):
    """The candidate's record as a run under the shipped thresholds against ``baseline`` writes it:
    each metric's change judged by the gate (``CaseGate.judge``'s steps) and stored with its level."""
    from vlmgate.report.baseline import Baseline
    from vlmgate.report.collect import judged_change
    from vlmgate.settings import packaged_thresholds
    from vlmgate.suites import get_suite
    from vlmgate.thresholds import Vocabulary, load_thresholds

    limits = load_thresholds(packaged_thresholds(), Vocabulary.of_catalogues())
    gate = Baseline(baseline, "v1.run.json", models=list(candidate.models), benchmarks=list(candidate.benchmarks),
                    seed=candidate.seed)
    size = gate.count_family([(case.key, case.test, [spec.name for spec in get_suite(case.key.suite).metrics])
                              for case in candidate.cases], limits)
    cases, failed_by_change = [], set()
    for case in candidate.cases:
        metrics = []
        for metric in case.metrics:
            limit = limits.lookup(case.key.model, metric.name, case.key.family)
            if limit is None or not limit.gates_change:
                metrics.append(metric)
                continue
            change = gate.change(case.key, case.test, metric)
            verdict = limit.check_change(change)
            if verdict.outcome == "fail":
                failed_by_change.add((case.id, metric.name))
            metrics.append(dataclasses.replace(metric, change=judged_change(change, gate.digest), change_limits={
                key: bound for key in ("max_increase", "max_decrease") if (bound := getattr(limit, key)) is not None}))
        cases.append(dataclasses.replace(case, metrics=tuple(metrics)))
    return dataclasses.replace(candidate, cases=tuple(cases)), failed_by_change, size, limits


def test_the_baseline_gate_and_the_diff_agree_on_every_gated_change():
    """shapes-v2 against shapes-v1's record (both kept as test data): a change the gate fails is
    significant and worse in the diff, and a gated change the diff finds significantly worse by
    more than its limit is one the gate fails; both decide at alpha over the same family."""
    from vlmgate.records import is_worse
    from vlmgate.report.diff import diff_runs
    from vlmgate.report.multiplicity import GATED_FAMILY

    before = kept_release("shapes-v1")
    after, failed_by_change, size, limits = _gated_by_the_shipped_file(kept_release("shapes-v2"), before)
    diff = diff_runs(before, after)
    gated = {(row.case, row.metric): row for row in diff.rows if row.family == GATED_FAMILY}
    assert diff.family_tests(GATED_FAMILY) == size > 10
    assert failed_by_change, "v2's RAS drops are real regressions: some change limit must fail"
    for key in failed_by_change:
        row = gated[key]
        assert row.significant and is_worse(row.better, row.delta), key
    for key, row in gated.items():
        limit = limits.lookup(row.key.model, row.metric, row.key.family)
        bound = limit.max_increase if row.better == "lower" else limit.max_decrease
        worse_by = row.delta if row.better == "lower" else -row.delta
        if row.significant and bound is not None and worse_by > bound:
            assert key in failed_by_change, key
        assert math.isclose(row.change.decided_at, 0.05 / size), key
