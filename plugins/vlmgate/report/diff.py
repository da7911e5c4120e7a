"""What changed between two runs: per case and metric, both verdicts and the paired change.

``diff_runs(before, after)`` pairs the cases of two run records (``report.pairing``), and
for every metric of a paired case

* reads both **verdicts**: ``pass`` / ``fail`` for a *gated* metric (one with a limit),
  ``recorded`` for one without. A gate that passed (or did not exist) before and fails
  now is *newly failing*, one that failed and passes now is *fixed*; this is what a
  release manager asks first, and it does not depend on any test: a gate that fails v2
  is named as such even when its change from v1 rests on one image and is not
  significant;
* tests the **change** on the units both runs share (``metrics.paired``: a sign-flip test
  over images where the units are instances nested in images, as the records'
  ``clusters`` say; else exact McNemar for proportions, paired bootstrap for means). The
  change is ``after − before`` *on those paired units*: where each run scored its own
  set (RAS over the samples each run answered right) the paired means differ from the
  whole-set values, and the change can even have the other sign than the difference of
  the values; ``MetricDiff.paired_units_differ`` says when, and the formats show both;
* decides each change at its family's level (``report.multiplicity``): a metric whose limit
  bounds its change belongs to the run's *gated changes*, decided at alpha over their
  number (Bonferroni) or, where the later run was gated against this very record, at the
  level its gate used (read back from the record), so the diff and the pytest gate reach
  the same p-value and the same decision; the other metrics form the *recorded changes*,
  adjusted the same way among themselves. A change is *significant* when its adjusted
  p-value is below alpha: a record compared with itself, or two equally good checkpoints,
  show no significant change however many metrics they hold.

A significant change is a *regression* when it goes the metric's worse way (flip rates up,
accuracy down; ``MetricSpec.better``) and an *improvement* otherwise. A metric with no
shared units to test (snapshot folders keep none) is *untested*, unless its gate's verdict
flipped: pass -> fail is then the regression, fail -> pass the improvement.

What ``--fail-on`` counts (``RunDiff.regressions``): by default the *gated* metrics that
are newly failing or significantly worse; with ``all_metrics`` every significantly worse
metric too. A metric without a limit measured on a few samples is something to look at,
not a reason to stop a release.

Rendering the result as text, Markdown or JSON is ``report.diff_format``'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterator

from vlmgate.cases import CaseKey
from vlmgate.metrics.paired import ALPHA, PairedChange, compare_units
from vlmgate.records import MetricResult, is_worse
from vlmgate.report.multiplicity import GATED_FAMILY, RECORDED_FAMILY, adjusted_p, level
from vlmgate.report.pairing import CaseIndex, CasePairing
from vlmgate.report.record import CaseRecord, MetricRecord, RunRecord
from vlmgate.report.verdicts import FAILED, INERT, PASSED, UNDECIDED_GATE, record_decision, standing
from vlmgate.seeding import rng_for

REGRESSED = "regressed"
IMPROVED = "improved"
NOT_SIGNIFICANT = "not_significant"
UNTESTED = "untested"
ADDED = "added"
REMOVED = "removed"
STATUSES = (REGRESSED, IMPROVED, NOT_SIGNIFICANT, UNTESTED, ADDED, REMOVED)
#: A metric's verdict on one side of a diff: the words of ``report.verdicts`` (an inert gate
#: that passed reads "pass" here), or ``-`` when the metric is absent.
PASS, FAIL, ABSENT = PASSED, FAILED, "-"
#: How a gate's verdict moved between the runs.
NEWLY_FAILING, FIXED, STILL_FAILING, UNCHANGED = "newly_failing", "fixed", "still_failing", "unchanged"
#: A gate whose interval now straddles its limit (and did not before): neither fixed nor failing.
NEWLY_INCONCLUSIVE = "newly_inconclusive"


def verdict_of(metric: MetricRecord | None) -> str:
    """``pass`` / ``fail`` for a gated metric, ``recorded`` without a limit, ``-`` when absent."""
    if metric is None:
        return ABSENT
    kind = standing(metric)
    return PASS if kind == INERT else kind


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
    #: The change's p-value adjusted over its family (``report.multiplicity``); NaN when untested.
    p_adjusted: float = math.nan
    #: ``gated changes`` or ``recorded changes``: the family the change was adjusted in.
    family: str = RECORDED_FAMILY

    @property
    def better(self) -> str:
        return (self.after or self.before).better  # type: ignore[union-attr]

    @property
    def gated(self) -> bool:
        """The metric has a limit (in the later run, else the earlier): its verdict is a release gate."""
        return (self.after or self.before).limit is not None  # type: ignore[union-attr]

    @property
    def verdicts(self) -> tuple[str, str]:
        return verdict_of(self.before), verdict_of(self.after)

    @property
    def transition(self) -> str:
        """``newly_failing``, ``newly_inconclusive``, ``fixed``, ``still_failing`` or ``unchanged``,
        from the two verdicts."""
        before, after = self.verdicts
        if after == FAIL:
            return STILL_FAILING if before == FAIL else NEWLY_FAILING
        if after == UNDECIDED_GATE and before != UNDECIDED_GATE:
            return NEWLY_INCONCLUSIVE
        return FIXED if before == FAIL and after == PASS else UNCHANGED

    @property
    def significant(self) -> bool:
        """The paired change is significant at its family's level (its adjusted p-value is below alpha)."""
        return self.change is not None and self.change.significant

    @property
    def paired_units_differ(self) -> bool:
        """The runs scored different units, so the paired change is not the change of the whole-set values."""
        if self.change is None or not self.change.tested or self.before is None or self.after is None:
            return False
        return not (self.change.n_pairs == len(self.before.units) == len(self.after.units))

    @property
    def status(self) -> str:
        if self.before is None:
            return ADDED
        if self.after is None or self.change is None:
            return REMOVED
        if not self.change.tested:
            return self._verdict_change()
        if not self.significant:
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
    #: Each run's decision (``vlmgate.decision``: GO / NO-GO / INCONCLUSIVE), before and after.
    decisions: tuple[str, str] = ("", "")

    def with_status(self, status: str) -> list[MetricDiff]:
        return [row for row in self.rows if row.status == status]

    def with_transition(self, transition: str) -> list[MetricDiff]:
        return [row for row in self.rows if row.transition == transition]

    def regressions(self, *, all_metrics: bool = False) -> list[MetricDiff]:
        """What ``--fail-on`` counts: gated metrics newly failing or significantly worse; with
        ``all_metrics``, every significantly worse metric too (see the module docstring)."""
        return [row for row in self.rows
                if row.transition == NEWLY_FAILING or (row.status == REGRESSED and (row.gated or all_metrics))]

    @property
    def gated_regressions(self) -> list[MetricDiff]:
        """Gated metrics significantly worse whose verdict did not flip (those that did are newly failing)."""
        return [row for row in self.rows if row.gated and row.status == REGRESSED and row.transition != NEWLY_FAILING]

    @property
    def ungated_changes(self) -> list[MetricDiff]:
        """Metrics without a limit whose change is significant, either way."""
        return [row for row in self.rows if not row.gated and row.status in (REGRESSED, IMPROVED)]

    @property
    def tests(self) -> int:
        """Paired tests the diff ran, in both families."""
        return sum(not math.isnan(row.p_adjusted) for row in self.rows)

    def family_tests(self, family: str) -> int:
        """Paired tests of one family (``gated changes`` or ``recorded changes``)."""
        return sum(not math.isnan(row.p_adjusted) and row.family == family for row in self.rows)

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


def compare_metric(before: MetricRecord, after: MetricRecord | MetricResult, *, seed: int, key: CaseKey,
                   where: str = "", decide_at: float = ALPHA) -> PairedChange:
    """The paired change of one metric between two records of the same case (``after`` may be a
    result just computed: the baseline gate and the diff test a change the same way, at the
    same level ``decide_at``, so they reach the same p-value and the same decision)."""
    return compare_units(after.name, after.kind, before.units, after.units, rng=change_rng(seed, key, after.name),
                         clusters={**before.clusters, **after.clusters}, before_value=before.value,
                         after_value=after.value, where=where, decide_at=decide_at)


def _pending_rows(before: CaseRecord | None, after: CaseRecord) -> list[MetricDiff]:
    """The case's metrics in both runs, their changes not yet tested (``diff_runs`` tests them)."""
    names = [m.name for m in after.metrics]
    if before is not None:
        names += [m.name for m in before.metrics if m.name not in names]
    return [MetricDiff(after.id, after.test, after.key, name, before.metric(name) if before is not None else None,
                       after.metric(name), None) for name in names]


def _family(row: MetricDiff) -> str:
    """A metric whose limit (in the later run) bounds its change is one of the run's gated changes."""
    return GATED_FAMILY if row.after is not None and row.after.change_limits else RECORDED_FAMILY


def _testable(row: MetricDiff) -> bool:
    return row.before is not None and row.after is not None and bool(set(row.before.units) & set(row.after.units))


def nothing_paired(before: RunRecord, after: RunRecord, pairing: CasePairing) -> str:
    """Why no metric of ``after`` found its counterpart in ``before`` (for an error message)."""
    for side, record in (("before", before), ("after", after)):
        if not record.cases:
            return f"{side} holds no case"
    for axis, pairs, old, new in (("model", pairing.models, before.models, after.models),
                                  ("benchmark", pairing.benchmarks, before.benchmarks, after.benchmarks)):
        if not pairs:
            hint = ("; benchmarks pair by spec or name: give the same benchmark the same name with ?name=NAME "
                    "after its spec" if axis == "benchmark" else "")
            return f"no {axis} of {', '.join(sorted(new))} pairs with one of {', '.join(sorted(old))}{hint}"

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
        rows.extend(_pending_rows(counterpart, case))
    for case in before.cases:
        if (case.id, case.test) not in matched:
            rows.extend(MetricDiff(case.id, case.test, case.key, m.name, m, None, None) for m in case.metrics)
    return RunDiff(before_source, after_source, pairing, tested(rows, seed=after.seed, baseline=before.digest),
                   (record_decision(before).verdict, record_decision(after).verdict))


def tested(rows: list[MetricDiff], *, seed: int, baseline: str) -> tuple[MetricDiff, ...]:
    """``rows`` with their changes tested, each at its family's level (``report.multiplicity``).

    A gated change that the later run's gate already judged against this very record
    (``baseline``: its digest) is decided at the level that gate used, so both reach the
    same p-value and the same decision; the others at alpha over their family's size.
    """
    sizes = {family: sum(_testable(row) and _family(row) == family for row in rows)
             for family in (GATED_FAMILY, RECORDED_FAMILY)}
    done = []
    for row in rows:
        family = _family(row)
        if row.before is None or row.after is None:
            done.append(replace(row, family=family))
            continue
        judged = row.after.change
        decide_at = (float(judged["decided_at"]) if family == GATED_FAMILY and judged is not None
                     and judged.get("baseline") == baseline else level(sizes[family]))
        change = compare_metric(row.before, row.after, seed=seed, key=row.key, where=f"case {row.case}",
                                decide_at=decide_at)
        p_adjusted = adjusted_p(change.p_value, decide_at) if change.tested else math.nan
        done.append(replace(row, change=change, p_adjusted=p_adjusted, family=family))
    return tuple(done)
