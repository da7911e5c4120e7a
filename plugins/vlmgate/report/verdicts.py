"""How a run record reads at a glance: its verdict, its failing gates, each metric's standing.

A release manager opens a report to answer one question, "can this ship?", and then
"what stops it?". The record holds every case and metric; this module reduces it to

* the run's decision (``vlmgate.decision``): ``NO-GO`` when a gate whose tier stops the
  release failed or a case errored, else ``INCONCLUSIVE`` when a gate whose tier holds the
  release straddled its limit or the run stopped early (a partial green run is not a
  pass), else ``GO``: the same decision the pytest run stated and exited with;
* the failing gates (values past their own limit first, then those failed only by their change
  since the baseline), each with a one-line reason: the value, interval and limit, and how
  much it rests on (``3 of 130 instances flipped, on 1 of 50 images``);
* each metric's standing: ``fail``, ``inconclusive`` (its interval straddles the limit),
  ``pass``, ``inert`` (passed, but its limit could not have failed at this n) or
  ``recorded`` (no limit: a measurement, not a gate), which a plain "pass" would blur;
* each skipped case's reason, as text: older records stored pytest's
  ``(file, line, reason)`` tuple as its ``repr``, which is unwrapped here.

The HTML report renders these; they are kept apart so the words mean the same in
every place that shows them.
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Mapping

from vlmgate.decision import CASE_STANDINGS, ERROR, Decision, decide
from vlmgate.records import CHANGE_LIMIT, FAIL, INCONCLUSIVE, PASS
from vlmgate.records import RECORDED as RECORDED_OUTCOME
from vlmgate.report.failure import count_line
from vlmgate.report.record import CaseRecord, MetricRecord, RunRecord

#: A metric's standing (``standing``).
FAILED, PASSED, INERT, RECORDED, UNDECIDED_GATE = FAIL, PASS, "inert", RECORDED_OUTCOME, INCONCLUSIVE
_BOUND = re.compile(r"\b(?:max|min) (-?(?:inf|[0-9.]+(?:e[-+]?[0-9]+)?))(?= |$|;)")
_SKIP_PREFIX = "Skipped: "


def standing(metric: MetricRecord) -> str:
    """``fail``, ``inconclusive``, ``pass``, ``inert`` or ``recorded`` (see the module docstring)."""
    outcome = metric.verdict
    return INERT if outcome == PASS and metric.inert else outcome


def limit_bounds(limit: str | None) -> tuple[float, ...]:
    """The value bounds in a limit's text (``Threshold.describe``: ``max 0.15 (interval); max increase
    0.02 vs baseline`` -> ``(0.15,)``); change bounds are not values and are left out."""
    return tuple(float(number) for number in _BOUND.findall(limit or ""))


def unit_of(case: CaseRecord, metric: str) -> str:
    """What one of the metric's units is (its suite's ``MetricSpec.unit``); ``unit`` for a suite
    this vlmgate does not know (a record written with a plugin not installed here)."""
    from vlmgate.errors import VlmgateError
    from vlmgate.suites import get_suite

    try:
        return get_suite(case.key.suite).metric(metric).unit
    except (VlmgateError, KeyError, LookupError):
        return "unit"


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


def reason(case: CaseRecord, metric: MetricRecord) -> str:
    """One line: ``follow_rate 0.0231 [0.0079, 0.0657], limit max 0 (strict) · 3 of 130 instances ...``."""
    line = (f"{metric.name} {_number(metric.value)} [{_number(metric.ci_low)}, {_number(metric.ci_high)}], "
            f"limit {metric.limit}")
    if metric.verdict == INCONCLUSIVE:
        needed = f", about {metric.needed_n} would decide it" if metric.needed_n else ""
        line += f" · INCONCLUSIVE: the interval straddles the limit{needed}"
    if metric.tier is not None and metric.verdict in (FAIL, INCONCLUSIVE):
        line += f" · {metric.tier} tier: {metric.effect}"
    if CHANGE_LIMIT in metric.failed_limits:
        line += " · changed beyond its limit since the baseline"
    if metric.change is not None:
        significant = "significant" if metric.change.get("significant") else "not significant"
        line += (f" · change {float(metric.change['delta']):+.4f}, p = {float(metric.change['p_value']):.3g} at "
                 f"level {float(metric.change['decided_at']):.3g} ({significant})")
    if metric.inert:
        line += " · inert: could not fail at this n (an error under --vlmgate-strict)"
    counted = count_line(metric, unit_of(case, metric.name))
    return f"{line} · {counted}" if counted else line


def skip_reason(case: CaseRecord) -> str:
    """Why a case was skipped, as text (see the module docstring)."""
    text = (case.error or "no reason given").strip()
    if text.startswith("(") and text.endswith(")"):
        try:
            parts = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parts = None
        if isinstance(parts, tuple) and len(parts) == 3 and isinstance(parts[2], str):
            text = parts[2].strip()
    return text.removeprefix(_SKIP_PREFIX)


@dataclass(frozen=True)
class FailingGate:
    """A case that failed, and the metric that failed it (``None``: it ended before any was judged)."""

    case: CaseRecord
    metric: MetricRecord | None

    @property
    def name(self) -> str:
        """``flip_rate textoverlay follow_rate``: suite, family and metric."""
        key = self.case.key
        return f"{key.suite} {key.family}" + (f" {self.metric.name}" if self.metric is not None else "")

    @property
    def only_changed(self) -> bool:
        """Failed by its change since the baseline alone: the value is within its own limit."""
        return self.metric is not None and self.metric.failed_limits == (CHANGE_LIMIT,)

    @property
    def reason(self) -> str:
        if self.metric is not None:
            return reason(self.case, self.metric)
        first = (self.case.error or self.case.outcome).strip().splitlines()
        return first[0] if first else self.case.outcome


def record_decision(record: RunRecord) -> Decision:
    """The run's decision from its cases' standings (``decision.decide``): the one the pytest run
    stated, recomputed from the record so every reader of it states the same."""
    standings = [case.standing_or_derived for case in record.cases]
    return decide([s for s in standings if s in (*CASE_STANDINGS, ERROR)], complete=record.completeness.complete,
                  incomplete_reason=record.completeness.reason or "")


@dataclass(frozen=True)
class RunVerdict:
    """The run at a glance (see the module docstring)."""

    verdict: str
    outcomes: Mapping[str, int]
    failing: tuple[FailingGate, ...]
    inert: int
    decision: Decision | None = None

    @classmethod
    def of(cls, record: RunRecord) -> "RunVerdict":
        decision = record_decision(record)
        outcomes = Counter(case.standing_or_derived for case in record.cases)
        failing = []
        for case in record.cases:
            if case.standing_or_derived not in (FAIL, INCONCLUSIVE, "warned", ERROR):
                continue
            failed = [metric for metric in case.metrics if metric.verdict in (FAIL, INCONCLUSIVE)]
            failing += [FailingGate(case, metric) for metric in failed] or [FailingGate(case, None)]
        inert = sum(metric.inert for case in record.cases for metric in case.metrics)
        # Failures first, then inconclusive gates; a value past its own limit before a gate failed
        # only by its change since the baseline (the order within each group is the record's).
        failing.sort(key=lambda gate: (gate.metric is not None and gate.metric.verdict == INCONCLUSIVE,
                                       gate.only_changed))
        return cls(decision.verdict, dict(outcomes), tuple(failing), inert, decision)

    def describe_outcomes(self) -> str:
        """``1 fail, 2 inconclusive, 55 pass, 16 recorded``: the cases by standing."""
        order = (*CASE_STANDINGS, ERROR, "skipped")
        return ", ".join(f"{self.outcomes[o]} {o}" for o in order if self.outcomes.get(o)) or "no cases"
