"""A previous release's run record as the reference of change limits.

With ``--vlmgate-baseline run.json``, a threshold that sets ``max_increase`` or
``max_decrease`` also judges how far a metric moved since the baseline release: the
case is paired with its counterpart in the baseline (``report.pairing``), the metric's
per-unit outcomes are paired by key, and the change is tested (``metrics.paired``): over
images where the units are instances nested in images (both runs' ``clusters``).
``Threshold.check_change`` then fails only a change that both exceeds the allowed delta
and is significant, so an unchanged checkpoint (no discordant unit) never fails.

Significant at the run's one multiplicity level (``report.multiplicity``): the run's gated
changes are counted when it is collected (``count_family``: every selected case's metrics
whose limit bounds a change and whose counterpart the baseline holds), and each change is
decided at ``alpha / m``, the level ``vlmgate diff`` reads back from the record.

A baseline marked incomplete (a run cut short) is refused: its missing cases would leave
their change limits silently unjudged; so is one shard's record of a split run, for the
same reason (``vlmgate merge`` joins the shards into a whole record first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

from vlmgate.cases import CaseKey
from vlmgate.errors import RecordError
from vlmgate.metrics.paired import PairedChange
from vlmgate.records import MetricResult
from vlmgate.report.diff import compare_metric
from vlmgate.report.multiplicity import level
from vlmgate.report.pairing import CaseIndex, CasePairing
from vlmgate.report.record import RunRecord, load_record, refuse_shard

if TYPE_CHECKING:
    from vlmgate.thresholds import ThresholdSet


class Baseline:
    """Finds a case's metric in the baseline record and tests the change to it."""

    def __init__(self, record: RunRecord, source: str, *, models: Sequence[str], benchmarks: Sequence[str],
                 seed: int):
        self.record = record
        self.source = source
        self.seed = seed
        self.pairing = CasePairing.between(record.models, record.benchmarks, models, benchmarks)
        self._index = CaseIndex(record.cases)
        self.digest = record.digest
        #: How many gated changes the run tests against this baseline (``count_family``).
        self.family_size = 1
        self.counted = 0
        self.unjudged: tuple[str, ...] = ()

    @property
    def decided_at(self) -> float:
        """The level each gated change is decided at: alpha over the family's size (Bonferroni)."""
        return level(self.family_size)

    def count_family(self, cases: Iterable[tuple[CaseKey, str, Sequence[str]]], thresholds: "ThresholdSet") -> int:
        """Count the run's gated changes: ``(key, test, declared metrics)`` of every selected case,
        each metric whose composed limit bounds its change and whose counterpart the baseline holds."""
        size = 0
        unjudged = []
        for key, test, metrics in cases:
            counterpart = self._index.find(self.pairing.counterpart_key(key), test)
            for metric in metrics:
                limit = thresholds.lookup(key.model, metric, key.family)
                if limit is None or not limit.judges:
                    continue
                if limit.gates_change and counterpart is not None and counterpart.metric(metric) is not None:
                    size += 1
                else:
                    why = "no change limit" if not limit.gates_change else "nothing to compare in the baseline"
                    unjudged.append(f"{key.suite} {key.family} {metric} ({why})")
        self.family_size = max(1, size)
        self.counted = size
        #: Gated metrics of the run whose change the baseline does not judge, and why.
        self.unjudged = tuple(unjudged)
        return size

    def describe_family(self) -> list[str]:
        """What the terminal says of a baseline run: the family, its level, and what it leaves unjudged."""
        lines = [f"{self.counted} gated changes against {self.source}, each decided at alpha / "
                 f"{self.family_size} = {self.decided_at:.3g} (Bonferroni; vlmgate diff uses the same level)"]
        if self.counted == 0:
            lines.append(f"WARNING: {self.source} pairs no gated metric of this run (its models "
                         f"{', '.join(self.record.models)} x benchmarks {', '.join(self.record.benchmarks)}), so no "
                         "change was judged: pass the record of the same benchmark's previous release")
        if self.record.seed != self.seed:
            lines.append(f"WARNING: {self.source} was recorded with seed {self.record.seed}, this run uses seed "
                         f"{self.seed}: units drawn from the seed (overlay labels, noise) differ, so fewer pair and "
                         f"the changes rest on less; rerun with --vlmgate-seed {self.record.seed}")
        if self.unjudged:
            lines.append(f"{len(self.unjudged)} gates judge no change since the baseline: {', '.join(self.unjudged)}")
        return lines

    @classmethod
    def load(cls, path: str, *, models: Sequence[str], benchmarks: Sequence[str], seed: int) -> "Baseline":
        record = load_record(path)
        refuse_shard(record, path)
        if not record.completeness.complete:
            raise RecordError(f"{path}: {record.completeness.describe()}; gate against a complete record "
                              "(re-run that release's suite to the end)")
        return cls(record, str(path), models=models, benchmarks=benchmarks, seed=seed)

    def change(self, key: CaseKey, test: str, result: MetricResult) -> PairedChange | None:
        """The paired change of ``result`` since the baseline (``None``: not in the baseline)."""
        case = self._index.find(self.pairing.counterpart_key(key), test)
        if case is None:
            return None
        before = case.metric(result.name)
        if before is None:
            return None
        return compare_metric(before, result, seed=self.seed, key=key, where=f"{self.source}: case {case.id}",
                              decide_at=self.decided_at)
