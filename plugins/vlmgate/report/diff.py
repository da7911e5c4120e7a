"""What changed between two runs: per case and metric, before / after / change, tested.

``diff_runs(before, after)`` pairs the cases of two run records (``report.pairing``),
and for every metric of a paired case tests the change on the units both runs share
(``metrics.paired``: exact McNemar for proportions, paired bootstrap for means). A
significant change is a *regression* when it goes the metric's worse way (flip rates up,
accuracy down; ``MetricSpec.better``) and an *improvement* otherwise. A metric with no
shared units to test (snapshot folders keep none) is *untested*, unless its gate's verdict
flipped: pass -> fail is then the regression, fail -> pass the improvement. A run compared
with itself has no discordant unit anywhere, hence no significant change.

Rendering the result as text, Markdown or JSON is ``report.diff_format``'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

from vlmgate.cases import CaseKey
from vlmgate.records import is_worse
from vlmgate.metrics.paired import PairedChange, compare_units
from vlmgate.report.pairing import CaseIndex, CasePairing
from vlmgate.report.record import CaseRecord, MetricRecord, RunRecord
from vlmgate.seeding import rng_for

REGRESSED = "regressed"
IMPROVED = "improved"
NOT_SIGNIFICANT = "not_significant"
UNTESTED = "untested"
ADDED = "added"
REMOVED = "removed"
STATUSES = (REGRESSED, IMPROVED, NOT_SIGNIFICANT, UNTESTED, ADDED, REMOVED)


@dataclass(frozen=True)
class MetricDiff:
    """One metric of one case in both runs (either side ``None`` when absent)."""

    case: str
    test: str
    key: CaseKey
    metric: str
    before: MetricRecord | None
    after: MetricRecord | None
    change: PairedChange | None

    @property
    def better(self) -> str:
        return (self.after or self.before).better  # type: ignore[union-attr]

    @property
    def status(self) -> str:
        if self.before is None:
            return ADDED
        if self.after is None or self.change is None:
            return REMOVED
        if not self.change.tested:
            return self._verdict_change()
        if not self.change.significant:
            return NOT_SIGNIFICANT
        return REGRESSED if is_worse(self.better, self.change.delta) else IMPROVED

    def _verdict_change(self) -> str:
        """Without units to test (snapshot folders), a gate that flipped is the change that counts."""
        if self.before is None or self.after is None:
            return UNTESTED
        if self.before.passed and not self.after.passed:
            return REGRESSED
        if self.after.passed and not self.before.passed:
            return IMPROVED
        return UNTESTED

    @property
    def delta(self) -> float:
        if self.change is not None:
            return self.change.delta
        return math.nan


@dataclass(frozen=True)
class RunDiff:
    before_source: str
    after_source: str
    pairing: CasePairing
    rows: tuple[MetricDiff, ...]

    def with_status(self, status: str) -> list[MetricDiff]:
        return [row for row in self.rows if row.status == status]

    @property
    def regressions(self) -> list[MetricDiff]:
        return self.with_status(REGRESSED)

    @property
    def compared(self) -> int:
        """Metrics present in both runs: with none, the diff says nothing about a regression."""
        return sum(row.before is not None and row.after is not None for row in self.rows)

    def counts(self) -> dict[str, int]:
        return {status: len(self.with_status(status)) for status in STATUSES}

    def by_case(self) -> Iterator[tuple[str, str, list[MetricDiff]]]:
        """``(case id, test, rows)`` in row order."""
        groups: dict[tuple[str, str], list[MetricDiff]] = {}
        for row in self.rows:
            groups.setdefault((row.case, row.test), []).append(row)
        for (case, test), rows in groups.items():
            yield case, test, rows


def change_rng(seed: int, key: CaseKey, metric: str):
    """The generator of one metric's paired test: the same in ``vlmgate diff`` and in baseline gates."""
    return rng_for(seed, "paired-change", key.model, key.benchmark, key.family, key.suite, metric)


def compare_metric(before: MetricRecord, after: MetricRecord, *, seed: int, key: CaseKey, where: str = ""
                   ) -> PairedChange:
    """The paired change of one metric between two records of the same case."""
    return compare_units(after.name, after.kind, before.units, after.units, rng=change_rng(seed, key, after.name),
                         before_value=before.value, after_value=after.value, where=where)


def _case_rows(before: CaseRecord | None, after: CaseRecord, seed: int) -> list[MetricDiff]:
    rows = []
    names = [m.name for m in after.metrics]
    if before is not None:
        names += [m.name for m in before.metrics if m.name not in names]
    for name in names:
        old = before.metric(name) if before is not None else None
        new = after.metric(name)
        change = compare_metric(old, new, seed=seed, key=after.key, where=f"case {after.id}") if old and new else None
        rows.append(MetricDiff(after.id, after.test, after.key, name, old, new, change))
    return rows


def nothing_paired(before: RunRecord, after: RunRecord, pairing: CasePairing) -> str:
    """Why no metric of ``after`` found its counterpart in ``before`` (for an error message)."""
    for side, record in (("before", before), ("after", after)):
        if not record.cases:
            return f"{side} holds no case"
    for axis, pairs, old, new in (("model", pairing.models, before.models, after.models),
                                  ("benchmark", pairing.benchmarks, before.benchmarks, after.benchmarks)):
        if not pairs:
            return f"no {axis} of {', '.join(sorted(new))} pairs with one of {', '.join(sorted(old))}"

    def families(record: RunRecord) -> str:
        return ", ".join(sorted({case.key.family for case in record.cases}))

    return ("no case has the same family, suite and test function on paired specs, nor a metric in common "
            f"(families before: {families(before)}; after: {families(after)})")


def diff_runs(before: RunRecord, after: RunRecord, *, before_source: str = "before",
              after_source: str = "after") -> RunDiff:
    """Every metric of every case of ``after`` against its counterpart in ``before``."""
    pairing = CasePairing.between(before.models, before.benchmarks, after.models, after.benchmarks)
    index = CaseIndex(before.cases)
    rows: list[MetricDiff] = []
    matched: set[tuple[str, str]] = set()
    for case in after.cases:
        counterpart = index.find(pairing.counterpart_key(case.key), case.test)
        if counterpart is not None:
            matched.add((counterpart.id, counterpart.test))
        rows.extend(_case_rows(counterpart, case, after.seed))
    for case in before.cases:
        if (case.id, case.test) not in matched:
            rows.extend(MetricDiff(case.id, case.test, case.key, m.name, m, None, None) for m in case.metrics)
    return RunDiff(before_source, after_source, pairing, tuple(rows))
