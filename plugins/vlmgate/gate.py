"""Judging a case's results against its thresholds, and telling pytest about it.

``CaseGate`` is what a gating test receives as the ``vlmgate`` fixture: it evaluates
the case, records JUnit properties on the test item (pytest's ``user_properties``,
which also travel from xdist workers to the controller), and fails the test with a
message a release engineer can act on (``report.failure``): the metric, value, interval
and limit, how many instances and images it rests on, the transitions, the control, the
worst samples with their question and answers, and the commands that rerun the case
alone and search its family (``report.reproduce``).

Two optional references join the judgement: a baseline run (``--vlmgate-baseline``),
against which limits with ``max_increase`` / ``max_decrease`` judge the paired change,
and the case's stored snapshot (``--vlmgate-snapshot``), whose mismatch fails the case
with a diff. Both are recorded before anything fails, so the run record and JUnit
properties always hold every judged metric.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from vlmgate import stash
from vlmgate.cases import CaseKey
from vlmgate.decision import WARNED, case_standing
from vlmgate.errors import NotApplicable, VlmgateError
from vlmgate.records import FAIL, INCONCLUSIVE, RECORDED, VALUE_LIMIT, MetricResult, Verdict, worst_outcome
from vlmgate.report.junit import STANDING_PROPERTY, WARNING_PROPERTY
from vlmgate.session import GateSession
from vlmgate.thresholds import Judgement, Threshold

if TYPE_CHECKING:
    from vlmgate.report.baseline import Baseline
    from vlmgate.report.snapshot import CaseSnapshot


def properties(judgements: list[Judgement]) -> list[tuple[str, str]]:
    """JUnit properties of a case's judged metrics: those of their records (``report.junit``),
    so ``vlmgate merge`` writes the very properties a run writes here."""
    from vlmgate.report.collect import metric_record
    from vlmgate.report.junit import metric_properties

    return metric_properties([metric_record(j) for j in judgements])


class CaseGate:
    """The ``vlmgate`` fixture of one test item."""

    def __init__(self, session: GateSession, item: pytest.Item, case: CaseKey, *,
                 baseline: "Baseline | None" = None, snapshot: "CaseSnapshot | None" = None):
        self.session = session
        self.item = item
        self.case = case
        self.baseline = baseline
        self.snapshot = snapshot

    def evaluate(self) -> list[MetricResult]:
        # pytest.skip / fail are called outside the handler: inside it, the report would
        # carry "During handling of the above exception" and the message twice.
        try:
            results = self.session.evaluate(self.case)
        except NotApplicable as exc:
            skip, message = True, str(exc)
        except VlmgateError as exc:
            skip, message = False, f"{type(exc).__name__}: {exc}"
        else:
            self.item.stash[stash.FINGERPRINTS] = self.session.fingerprints(self.case)
            return results
        if skip:
            pytest.skip(message)
        pytest.fail(message, pytrace=False)

    def judge(self, results: list[MetricResult]) -> list[Judgement]:
        thresholds = self.session.thresholds
        judgements = []
        for result in results:
            threshold = thresholds.lookup(self.case.model, result.name, self.case.family)
            verdict = self._value_verdict(result, threshold)
            change, digest = None, None
            if threshold is not None and threshold.gates_change and self.baseline is not None:
                digest = self.baseline.digest
                change = self.baseline.change(self.case, self.item.nodeid.split("[", 1)[0], result)
                judged = threshold.check_change(change, f"baseline {self.baseline.source}")
                outcomes = [verdict.outcome] + ([judged.outcome] if change is not None and change.tested else [])
                verdict = Verdict(worst_outcome(outcomes), f"{verdict.message}; {judged.message}",
                                  inert=verdict.inert, failed_limits=verdict.failed_limits + judged.failed_limits,
                                  needed_n=verdict.needed_n)
            judgements.append(Judgement(result, threshold, verdict, change, thresholds.effect(verdict, threshold),
                                        digest if change is not None else None))
        return judgements

    def _value_verdict(self, result: MetricResult, threshold: "Threshold | None") -> Verdict:
        """The limit's verdict, saying when the gate could not have failed at this run's n.

        Under ``--vlmgate-strict`` (or ``strict = true`` in the threshold file) such an inert
        gate fails the case: a release gate that judges nothing must not read as a pass.
        """
        if threshold is None or not threshold.gates_value:
            return Verdict(RECORDED, "recorded; no limit set" if threshold is None else threshold.check(result).message)
        from vlmgate.sensitivity import sensitivity
        from vlmgate.suites import get_suite

        verdict = threshold.check(result)
        spec = get_suite(self.case.suite).metric(result.name)
        reach = sensitivity(threshold, result, spec.lowest, spec.highest)
        note = reach.describe(threshold)
        if not reach.inert:
            return replace(verdict, message=f"{verdict.message}; {note}" if note else verdict.message)
        if self.session.settings.strict or self.session.thresholds.strict:
            return Verdict(FAIL, f"{verdict.message}; {note} (an error under --vlmgate-strict)", inert=True,
                           failed_limits=(VALUE_LIMIT,))
        return replace(verdict, message=f"{verdict.message}; {note}", inert=True)

    def assert_within_thresholds(self, results: list[MetricResult]) -> None:
        """Record every result; fail the test when the case stands as failed or inconclusive.

        A case reads as its worst gate under its tier's policy (``decision.case_standing``):
        ``fail`` and ``inconclusive`` fail the test (an inconclusive gate is never a pass; the
        terminal shows it as INCONCLUSIVE, not FAILED), ``warned`` and ``recorded`` pass it
        and are shown as such, so a case that judged nothing never reads as passed.
        """
        judgements = self.judge(results)
        standing = case_standing((j.verdict.outcome, j.effect) for j in judgements)
        self.item.user_properties.extend(properties(judgements))
        self.item.user_properties.append((STANDING_PROPERTY, standing))
        self.item.stash[stash.RESULTS] = judgements
        snapshot_diff = self.snapshot.mismatch(self.case, judgements) if self.snapshot is not None else []
        case = self.case
        lines = self.failure_lines(judgements, standing) if standing in (FAIL, INCONCLUSIVE) else []
        if standing == WARNED:  # the test passes, so its evidence travels as a property to the summary
            self.item.user_properties.append((WARNING_PROPERTY, "\n".join(self.failure_lines(judgements, standing))))
        if snapshot_diff:
            if not lines:
                self.item.user_properties[-1] = (STANDING_PROPERTY, FAIL)
            lines.append(f"snapshot of {case.suite} case {case.family!r}: a decision changed since the stored one "
                         "(- stored, + received; accept with --vlmgate-snapshot --snapshot-update):")
            lines.extend(f"  {line}" for line in snapshot_diff)
        if lines:
            pytest.fail("\n".join(lines), pytrace=False)

    def failure_lines(self, judgements: list[Judgement], standing: str = FAIL) -> list[str]:
        """What a failed gate says (``report.failure``): each failed verdict with its counts and
        transitions, the case's control comparisons, the worst samples as texts, then the commands
        that rerun this case alone and search its family; nothing when every verdict passed."""
        from vlmgate.report.collect import settings_block
        from vlmgate.report.failure import control_line, evidence_lines, worst_blocks
        from vlmgate.report.reproduce import Reproduction
        from vlmgate.suites import get_suite

        failed = [j for j in judgements if not j.verdict.passed]
        if not failed:
            return []
        case, suite = self.case, get_suite(self.case.suite)
        word = {FAIL: "failed", INCONCLUSIVE: "INCONCLUSIVE", WARNED: "WARNED"}[standing]
        lines = [f"{case.suite} gate {word} for family {case.family!r} on {case.model} x {case.benchmark}:"]
        for j in failed:
            tier = f" [{j.threshold.tier}: {j.effect}]" if j.threshold is not None else ""
            lines.append(f"  {j.verdict.outcome.upper()}{tier}: {j.verdict.message}")
            lines.extend(f"    {line}" for line in evidence_lines(j.result, suite.metric(j.result.name).unit))
        lines.extend(f"  {line}" for j in judgements if (line := control_line(j.result)))
        lines.extend(worst_blocks([j.result for j in failed]))
        lines.extend(line for j in failed for line in j.result.details.get("explanation", []))
        settings = self.session.settings
        baseline = self.baseline.source if self.baseline is not None else None
        reproduce = Reproduction.of(self.item.nodeid, case, settings_block(settings, baseline), settings.seed)
        lines += ["rerun this case alone:", f"  {reproduce.rerun()}"]
        search = reproduce.search()
        if search is not None:
            lines += [f"search {reproduce.perturbation} for a minimal failing instance:", f"  {search}"]
        return lines
