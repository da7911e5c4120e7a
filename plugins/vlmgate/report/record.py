"""The run record: everything a gating run measured, as versioned JSON (``run.json``).

A run record is what a release keeps: ``vlmgate diff`` compares two of them, the HTML
report renders one, and ``--vlmgate-baseline`` gates a candidate against one. It holds

* ``schema_version`` and the ``vlmgate_version`` that wrote it;
* ``seed``, ``settings`` (what was asked for) and the ``models`` / ``benchmarks`` by spec
  with their content fingerprints (what was actually judged), and per model how it read
  its inputs (``model_descriptions``: adapter identity, prompt format, and the context
  rendered for a benchmark's first sample; absent from older records);
* one entry per case (``cases``, sorted by case id): its key (model, benchmark, family,
  suite), the pytest outcome, and per metric the value, 95 % interval, n, limit,
  verdict and message, plus the per-unit outcomes (``units``) that paired tests between
  releases need;
* ``completeness``: whether every test the run selected reported an outcome. A run cut
  short (Ctrl-C, ``-x`` / ``--maxfail``, collection errors) still writes its record, but
  marks it incomplete with the reason and the node ids of the selected tests that never
  ran, so a partial record is never read as a whole release (``vlmgate diff`` and
  ``--vlmgate-baseline`` refuse it). Deselected tests (``-k``, ``-m``) were not selected:
  a chosen subset run to its end is complete;
* an ``environment`` block (Python, platform, package versions, worker count, when the run
  started, timings, and per model how its batches were dispatched: backend, replicas, batches, batches
  retried after a replica died, replicas restarted),
  kept apart so that two runs of the same checkpoint compare equal without it
  (``RunRecord.comparable``).

Schema 2 added ``completeness``; the version was bumped so that a vlmgate that cannot see
the mark refuses a record that may be partial. Schema 1 records are still read: they carry
no mark, and read as complete (``Completeness()``), as their writers assumed. Schema 3
made verdicts three-way (``outcome``: pass, fail, inconclusive, recorded; each case's
``standing`` and tier ``effect``) and stores the change each gate judged with the level it
was decided at; older records read with outcomes derived from ``passed``. Schema 4 added
``shard``: the record of one job of a run split with ``--vlmgate-shard I/N`` says which
shard it is and carries the identity of the whole run (``ShardMark``); such a record holds
a part of the run, so ``vlmgate diff`` and ``--vlmgate-baseline`` refuse it (``refuse_shard``)
until ``vlmgate merge`` has joined the shards. The version was bumped so that a vlmgate that
cannot see the mark refuses a partial record rather than diffing it. A record that is no
shard writes no ``shard`` key, so its JSON and digest are those schema 3 wrote; older records
read as whole runs.

The JSON is deterministic: sorted keys, cases sorted by id, floats written as produced
(``repr``, so they read back bit-identical; a metric with nothing measured is ``NaN``).
Records are frozen dataclasses; reading validates every field and names the file and
key of anything wrong. It also refuses JSON nested deeper than any record (``MAX_DEPTH``),
and a proportion whose ``count`` or ``value`` contradicts the units it was computed from.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from vlmgate.cases import CaseKey
from vlmgate.decision import CASE_STANDINGS, ERROR
from vlmgate.dispatch import DispatchCounts
from vlmgate.errors import RecordError
from vlmgate.models.base import ModelDescription
from vlmgate.records import DIRECTIONS, FAIL, KINDS, LIMIT_KINDS, PASS, PROPORTION, RECORDED, WorstSample
from vlmgate.records import OUTCOMES as VERDICT_OUTCOMES

#: Bumped when a field changes meaning, is removed, or must not be ignored (2: ``completeness``;
#: 3: three-way verdicts, where ``passed`` is false for an inconclusive gate and ``outcome``
#: and the case's ``standing`` must be read).
SCHEMA_VERSION = 4
#: Versions this vlmgate reads; older ones are upgraded on reading (see the module docstring).
READABLE_VERSIONS = (1, 2, 3, 4)
RUN_FILE = "run.json"
OUTCOMES = ("passed", "failed", "skipped", "error")


@dataclass(frozen=True)
class MetricRecord:
    """One metric of one case, judged.

    ``units`` maps what identifies a trial across releases (``"sample|variant"``, a
    sample id) to its outcome (0/1 for a proportion, a real number for a mean); empty
    when the metric does not report per-unit outcomes; ``clusters`` maps a unit to the
    sample it nests in where units are instances, and ``n_clusters`` counts those samples
    (the independent draws the interval rests on; ``n`` when every unit is its own; ``None``
    in records written before it was stored). ``count`` is a proportion's successes,
    ``worst`` the samples it hurt most. ``details`` holds the metric's other extras
    (transitions, curves, per-severity figures) as produced.
    """

    name: str
    kind: str
    better: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    limit: str | None
    passed: bool
    message: str
    units: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    clusters: Mapping[str, str] = field(default_factory=dict)
    count: int | None = None
    worst: tuple[WorstSample, ...] = ()
    n_clusters: int | None = None
    #: The limit could not have failed at this run's n (``vlmgate.sensitivity``).
    inert: bool = False
    #: Which limits failed: ``value`` and / or ``change`` (``records.Verdict``); empty in a
    #: passing metric and in records written before it was stored.
    failed_limits: tuple[str, ...] = ()
    #: ``pass``, ``fail``, ``inconclusive`` or ``recorded`` (``records.OUTCOMES``); ``None`` in
    #: records written before verdicts were three-way (``verdict`` derives it from ``passed``).
    outcome: str | None = None
    #: The limit's tier and what the verdict did to the run under its policy (``vlmgate.decision``).
    tier: str | None = None
    effect: str | None = None
    #: For an inconclusive verdict, about how many independent units would decide it.
    needed_n: int | None = None
    #: The change bounds of the limit (``max_increase`` / ``max_decrease``), for the diff's
    #: family of gated changes; empty when the limit bounds no change.
    change_limits: Mapping[str, float] = field(default_factory=dict)
    #: The change since the baseline as the gate judged it (``delta``, ``p_value``,
    #: ``decided_at``, ``significant``, ``test``, ``baseline``: the baseline record's digest);
    #: ``None`` when no change was judged.
    change: Mapping[str, Any] | None = None

    @property
    def verdict(self) -> str:
        """The metric's outcome, derived for older records: ``recorded`` without a limit, else pass / fail."""
        if self.outcome is not None:
            return self.outcome
        if self.limit is None:
            return RECORDED
        return PASS if self.passed else FAIL


@dataclass(frozen=True)
class CaseRecord:
    """One gating test case: what it judged, how it ended, and its metrics.

    ``test`` is the test function's node id without parameters, so that two test
    functions judging the same case key stay apart. ``error`` is the failure text of a
    case that ended before any metric was judged.
    """

    id: str
    test: str
    key: CaseKey
    outcome: str
    metrics: tuple[MetricRecord, ...] = ()
    error: str | None = None
    #: How the case stands (``decision.case_standing``: fail, inconclusive, warned, pass,
    #: recorded); ``None`` in older records, where ``standing_or_derived`` derives it.
    standing: str | None = None

    def metric(self, name: str) -> MetricRecord | None:
        return next((m for m in self.metrics if m.name == name), None)

    @property
    def standing_or_derived(self) -> str:
        """The case's standing, or for a case that ended outside its gate ``error`` / ``skipped``."""
        if self.outcome == "error" or (self.outcome == "failed" and not self.metrics):
            return ERROR
        if self.outcome == "skipped":
            return "skipped"
        if self.standing is not None:
            return self.standing
        if self.outcome == "failed":
            return FAIL
        return PASS if any(m.verdict == PASS for m in self.metrics) else RECORDED


@dataclass(frozen=True)
class Environment:
    """Where and how fast a run happened: never part of a comparison."""

    python: str
    platform: str
    packages: Mapping[str, str] = field(default_factory=dict)
    workers: str | None = None
    timings: Mapping[str, Any] = field(default_factory=dict)
    #: Model spec -> how its batches were computed, added up over processes (none in older records).
    dispatch: Mapping[str, DispatchCounts] = field(default_factory=dict)
    #: When the run started, ISO 8601 in UTC (``None`` in older records): the report's date.
    started: str | None = None


@dataclass(frozen=True)
class Completeness:
    """Whether the run reported every test it selected (see the module docstring).

    ``selected`` counts the tests pytest selected (after ``-k`` / ``-m``), ``not_run``
    names, as node ids in collection order, those that never reported an outcome, and
    ``reason`` says why the run stopped (pytest's own words: ``stopping after 1
    failures``, ``1 error during collection``) whenever it is not complete.
    """

    complete: bool = True
    reason: str | None = None
    selected: int | None = None
    not_run: tuple[str, ...] = ()

    def describe(self) -> str:
        """``incomplete: N of M cases not run (reason)``, or ``complete``."""
        if self.complete:
            return "complete"
        of = f" of {self.selected}" if self.selected is not None else ""
        return f"incomplete: {len(self.not_run)}{of} cases not run ({self.reason})"


@dataclass(frozen=True)
class ShardMark:
    """What makes a record one shard of a split run (``--vlmgate-shard I/N``), and of which run.

    ``run_cases`` are the node ids of every vlmgate case of the *whole* run's selection
    (sorted), ``run_selected`` counts every test it selected (cases and other tests), so the
    merge can tell that the shards cover the run exactly once and write the completeness an
    unsplit run would have. ``identity`` is what must be equal across the shards of one run,
    by field (vlmgate version, seed, models, benchmarks, thresholds, the options that decide
    a result, the baseline, the selection: ``report.collect.shard_mark``), and ``digest`` its
    SHA-256: shards are of one run exactly when their digests agree, and where they do not, the
    fields say which setting differs.
    """

    index: int
    count: int
    run_cases: tuple[str, ...]
    run_selected: int
    identity: Mapping[str, Any]
    digest: str

    def describe(self) -> str:
        """``shard 2/3``."""
        return f"shard {self.index}/{self.count}"


def identity_digest(identity: Mapping[str, Any]) -> str:
    """SHA-256 of a shard's identity fields (canonical JSON: sorted keys)."""
    import hashlib

    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class RunRecord:
    schema_version: int
    vlmgate_version: str
    seed: int
    settings: Mapping[str, Any]
    models: Mapping[str, str | None]
    benchmarks: Mapping[str, str | None]
    cases: tuple[CaseRecord, ...]
    environment: Environment
    completeness: Completeness = Completeness()
    #: Model spec -> how it read its inputs (prompt format, an example context).
    model_descriptions: Mapping[str, ModelDescription] = field(default_factory=dict)
    #: Set in the record of one job of a split run (``--vlmgate-shard``); ``None`` for a whole run.
    shard: ShardMark | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["shard"] is None:  # a whole run's JSON (and digest) as before shards existed
            del data["shard"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1) + "\n"

    def comparable(self) -> dict[str, Any]:
        """The record without its environment block: equal for equal results."""
        data = self.to_dict()
        del data["environment"]
        return data

    @property
    def digest(self) -> str:
        """SHA-256 of the comparable part: names the release a later run's changes were judged against."""
        import hashlib

        return hashlib.sha256(json.dumps(self.comparable(), sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str, source: str = "<run record>") -> "RunRecord":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(f"{source}: not valid JSON ({exc}); is it a vlmgate run.json?") from None
        except RecursionError:  # JSON nested deeper than the parser's recursion limit
            raise _too_deep(source) from None
        if _depth(data) > MAX_DEPTH:
            raise _too_deep(source)
        record = _read_run(_Reader(source, ""), data)
        _check_proportions(record, source)
        return record


def refuse_shard(record: RunRecord, source: str) -> None:
    """Refuse a shard's record where a whole run is needed (``vlmgate diff``, ``--vlmgate-baseline``):
    it holds only its share of the cases, so everything else would read as removed, or go unjudged."""
    if record.shard is None:
        return
    from vlmgate.errors import RecordError

    raise RecordError(f"{source}: {record.shard.describe()} of a run split with --vlmgate-shard holds only its share "
                      f"of the cases; merge the {record.shard.count} shards' records first (vlmgate merge "
                      "SHARD_RUN_JSON... --out DIR) and pass DIR/run.json")


def case_to_dict(case: CaseRecord) -> dict[str, Any]:
    """One case entry as the record's JSON holds it (``case_from_dict`` reads it back)."""
    return asdict(case)


def case_from_dict(data: Any, source: str) -> CaseRecord:
    """Read one case entry (as ``case_to_dict`` writes it); ``source`` names it in errors."""
    return _read_case(_Reader(source, "case"), data)


def model_description_from_dict(data: Any, source: str) -> ModelDescription:
    """Read one model description (as ``ModelDescription.to_json`` writes it); ``source`` names it in errors."""
    return _read_model_description(_Reader(source, "model_description"), data)


def sorted_cases(cases: list[CaseRecord]) -> tuple[CaseRecord, ...]:
    """Cases in record order: by case id, then by test."""
    return tuple(sorted(cases, key=lambda c: (c.id, c.test)))


def load_record(path: str | Path) -> RunRecord:
    """Read a run record from ``path`` (a ``run.json`` or the folder holding one).

    Every way the file can be unreadable is a ``RecordError`` naming it and the fix, so
    the commands exit 2 with one line instead of a traceback.
    """
    path = Path(path)
    if path.is_dir() and not (path / RUN_FILE).exists():
        raise RecordError(f"{path} holds no {RUN_FILE}; pass the folder pytest --vlmgate-report DIR wrote, "
                          f"or its {RUN_FILE}")
    if path.is_dir():
        path = path / RUN_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RecordError(
            f"run record {path} does not exist; write one with pytest --vlmgate-report DIR "
            f"and pass DIR/{RUN_FILE}"
        ) from None
    except OSError as exc:
        raise RecordError(f"{path}: cannot read it ({exc.strerror or exc}); pass the {RUN_FILE} "
                          "pytest --vlmgate-report DIR wrote") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                          f"is it a vlmgate {RUN_FILE}?") from None
    return RunRecord.from_json(text, str(path))


def write_record(record: RunRecord, directory: str | Path) -> Path:
    """Write ``directory/run.json`` whole (a temporary file, then a rename): never half a record."""
    from vlmgate.outputs import write_text_atomic

    path = Path(directory) / RUN_FILE
    write_text_atomic(path, record.to_json())
    return path


# -- reading, with errors that name the file and the key --------------------------------
#: The deepest nesting a record may hold. A record's own nesting is about ten levels (cases,
#: metrics, details and their curves); deeper data would be copied and hashed by recursion
#: later (``asdict``, the digest) and end in a RecursionError, so it is refused on reading.
MAX_DEPTH = 100


def _too_deep(source: str) -> RecordError:
    return RecordError(f"{source}: not a vlmgate run record: nesting too deep (more than {MAX_DEPTH} levels of "
                       f"objects and lists); pass the {RUN_FILE} pytest --vlmgate-report DIR wrote")


def _depth(data: Any) -> int:
    """How deeply ``data``'s objects and lists nest (0 for a scalar), without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return depth
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _check_proportions(record: "RunRecord", source: str) -> None:
    """Refuse a proportion whose stored figures contradict its own units.

    The writer builds every proportion from its units (``metrics.flips.proportion``,
    ``metrics.clustered.clustered_proportion``, ...): where ``n`` counts the units, ``count``
    is their sum and ``value`` is ``count / n``. A record saying otherwise was edited or
    damaged, and ``vlmgate diff`` would pair one set of figures while printing another.
    """
    for case_index, case in enumerate(record.cases):
        for metric_index, metric in enumerate(case.metrics):
            if metric.kind != PROPORTION or metric.count is None or not metric.units or metric.n != len(metric.units) \
                    or metric.n == 0:
                continue
            total = sum(metric.units.values())
            if metric.count != total:
                problem = f"count {metric.count} is not the sum of its {metric.n} units ({total:g})"
            elif not math.isclose(metric.value, metric.count / metric.n, rel_tol=1e-9, abs_tol=1e-12):
                problem = f"value {metric.value!r} is not count / n = {metric.count} / {metric.n}"
            else:
                continue
            raise RecordError(
                f"{source}: case {case.id!r} (cases[{case_index}]), metric {metric.name!r} "
                f"(metrics[{metric_index}]): {problem}; vlmgate writes a proportion's count and value from its "
                "units, so the file was edited or damaged: restore it, or re-run the suite with pytest "
                "--vlmgate-report"
            )


class _Reader:
    """Where in which file a value was read from, for error messages."""

    def __init__(self, source: str, where: str):
        self.source = source
        self.where = where

    def at(self, key: str | int) -> "_Reader":
        step = f"[{key}]" if isinstance(key, int) else (f".{key}" if self.where else key)
        return _Reader(self.source, f"{self.where}{step}")

    def fail(self, problem: str) -> RecordError:
        where = self.where or "top level"
        return RecordError(
            f"{self.source}: {where}: {problem}; the file is not a vlmgate run record of schema "
            f"{SCHEMA_VERSION} (rewrite it with pytest --vlmgate-report)"
        )

    def field(self, data: Mapping[str, Any], key: str, types: type | tuple[type, ...], optional: bool = False) -> Any:
        if key not in data:
            if optional:
                return None
            raise self.at(key).fail("missing")
        value = data[key]
        if optional and value is None:
            return None
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.at(key).fail(f"{value!r} has the wrong type")
        if not isinstance(value, types):
            raise self.at(key).fail(f"{value!r} has the wrong type")
        return value

    def table(self, data: Any) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise self.fail(f"expected an object, got {type(data).__name__}")
        return data

    def choice(self, data: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
        value = self.field(data, key, str)
        if value not in allowed:
            raise self.at(key).fail(f"{value!r} is not one of {', '.join(allowed)}")
        return value


def _number(reader: _Reader, data: Mapping[str, Any], key: str) -> float:
    return float(reader.field(data, key, (int, float)))


def _failed_limits(reader: _Reader, data: Mapping[str, Any]) -> tuple[str, ...]:
    limits = reader.field(data, "failed_limits", list, optional=True) or []
    for index, limit in enumerate(limits):
        if limit not in LIMIT_KINDS:
            raise reader.at("failed_limits").at(str(index)).fail(
                f"{limit!r} is not one of {', '.join(LIMIT_KINDS)}")
    return tuple(limits)


def _read_metric(reader: _Reader, data: Any) -> MetricRecord:
    data = reader.table(data)
    units = reader.table(reader.field(data, "units", Mapping)) if "units" in data else {}
    for unit, outcome in units.items():
        if isinstance(outcome, bool) or not isinstance(outcome, (int, float)):
            raise reader.at("units").at(unit).fail(f"outcome {outcome!r} is not a number")
    return MetricRecord(
        name=reader.field(data, "name", str),
        kind=reader.choice(data, "kind", KINDS),
        better=reader.choice(data, "better", DIRECTIONS),
        value=_number(reader, data, "value"),
        ci_low=_number(reader, data, "ci_low"),
        ci_high=_number(reader, data, "ci_high"),
        n=reader.field(data, "n", int),
        limit=reader.field(data, "limit", str, optional=True),
        passed=reader.field(data, "passed", bool),
        message=reader.field(data, "message", str),
        units=dict(units),
        details=dict(reader.table(reader.field(data, "details", Mapping))) if "details" in data else {},
        clusters=_clusters(reader, data),
        count=reader.field(data, "count", int, optional=True),
        n_clusters=reader.field(data, "n_clusters", int, optional=True),
        inert=bool(reader.field(data, "inert", bool, optional=True)),
        failed_limits=_failed_limits(reader, data),
        outcome=reader.choice(data, "outcome", VERDICT_OUTCOMES) if data.get("outcome") is not None else None,
        tier=reader.field(data, "tier", str, optional=True),
        effect=reader.field(data, "effect", str, optional=True),
        needed_n=reader.field(data, "needed_n", int, optional=True),
        change_limits=_change_limits(reader, data),
        change=dict(reader.field(data, "change", Mapping, optional=True) or {}) or None,
        worst=tuple(_read_worst(reader.at("worst").at(i), w) for i, w in enumerate(reader.field(data, "worst", list)))
        if "worst" in data else (),
    )


def _change_limits(reader: _Reader, data: Mapping[str, Any]) -> dict[str, float]:
    limits = reader.table(reader.field(data, "change_limits", Mapping, optional=True) or {})
    for key, bound in limits.items():
        if key not in ("max_increase", "max_decrease") or isinstance(bound, bool) \
                or not isinstance(bound, (int, float)):
            raise reader.at("change_limits").at(key).fail(f"{key} = {bound!r} is not a change bound")
    return {key: float(bound) for key, bound in limits.items()}


def _clusters(reader: _Reader, data: Mapping[str, Any]) -> dict[str, str]:
    clusters = reader.table(reader.field(data, "clusters", Mapping)) if "clusters" in data else {}
    for unit, cluster in clusters.items():
        if not isinstance(cluster, str):
            raise reader.at("clusters").at(unit).fail(f"cluster {cluster!r} is not a sample id")
    return dict(clusters)


def _read_worst(reader: _Reader, data: Any) -> WorstSample:
    """A worst sample; the texts and ``flipped_to`` are absent from older records."""
    data = reader.table(data)
    return WorstSample(reader.field(data, "sample", str), reader.field(data, "flips", int),
                       reader.field(data, "of", int), reader.field(data, "clean", int, optional=True),
                       tuple(reader.field(data, "flipped_by", list)),
                       flipped_to=tuple(reader.field(data, "flipped_to", list, optional=True) or ()),
                       verb=reader.field(data, "verb", str, optional=True) or "flipped",
                       question=reader.field(data, "question", str, optional=True),
                       options=tuple(reader.field(data, "options", list, optional=True) or ()),
                       answer=reader.field(data, "answer", int, optional=True))


def _read_case(reader: _Reader, data: Any) -> CaseRecord:
    data = reader.table(data)
    key_reader = reader.at("key")
    key = key_reader.table(reader.field(data, "key", Mapping))
    metrics = reader.field(data, "metrics", list)
    return CaseRecord(
        id=reader.field(data, "id", str),
        test=reader.field(data, "test", str),
        key=CaseKey(*(key_reader.field(key, name, str) for name in ("model", "benchmark", "family", "suite"))),
        outcome=reader.choice(data, "outcome", OUTCOMES),
        metrics=tuple(_read_metric(reader.at("metrics").at(i), m) for i, m in enumerate(metrics)),
        error=reader.field(data, "error", str, optional=True),
        standing=reader.choice(data, "standing", CASE_STANDINGS) if data.get("standing") is not None else None,
    )


def _read_environment(reader: _Reader, data: Any) -> Environment:
    data = reader.table(data)
    return Environment(
        python=reader.field(data, "python", str),
        platform=reader.field(data, "platform", str),
        packages=dict(reader.field(data, "packages", Mapping)),
        workers=reader.field(data, "workers", str, optional=True),
        timings=dict(reader.field(data, "timings", Mapping)),
        dispatch=_read_dispatch(reader.at("dispatch"), data.get("dispatch", {})),
        started=reader.field(data, "started", str, optional=True),
    )


def _read_dispatch(reader: _Reader, data: Any) -> dict[str, DispatchCounts]:
    """The environment's dispatch counts (older records have none)."""
    counts = {}
    for spec, entry in reader.table(data).items():
        entry_reader = reader.at(spec)
        entry = entry_reader.table(entry)
        counts[spec] = DispatchCounts(entry_reader.field(entry, "backend", str),
                                      *(entry_reader.field(entry, name, int) for name in DispatchCounts.COUNTERS))
    return counts


def _node_ids(reader: _Reader, data: Any, key: str) -> list[str]:
    """The list of pytest node ids under ``key``, each checked to be text."""
    ids = reader.field(data, key, list)
    for index, nodeid in enumerate(ids):
        if not isinstance(nodeid, str):
            raise reader.at(key).at(index).fail(f"{nodeid!r} is not a node id")
    return ids


def _read_completeness(reader: _Reader, data: Any) -> Completeness:
    data = reader.table(data)
    not_run = _node_ids(reader, data, "not_run")
    completeness = Completeness(
        complete=reader.field(data, "complete", bool),
        reason=reader.field(data, "reason", str, optional=True),
        selected=reader.field(data, "selected", int, optional=True),
        not_run=tuple(not_run),
    )
    if not completeness.complete and completeness.reason is None:
        raise reader.fail("an incomplete record must give its reason")
    if completeness.complete and completeness.not_run:
        raise reader.fail("a complete record has no tests that were not run")
    return completeness


def _read_shard(reader: _Reader, data: Any) -> ShardMark:
    data = reader.table(data)
    cases = _node_ids(reader, data, "run_cases")
    identity = dict(reader.table(reader.field(data, "identity", Mapping)))
    mark = ShardMark(index=reader.field(data, "index", int), count=reader.field(data, "count", int),
                     run_cases=tuple(cases), run_selected=reader.field(data, "run_selected", int),
                     identity=identity, digest=reader.field(data, "digest", str))
    if not 1 <= mark.index <= mark.count:
        raise reader.at("index").fail(f"shard {mark.index} of {mark.count} is not one of 1..{mark.count}")
    if mark.digest != identity_digest(identity):
        raise reader.at("digest").fail("it is not the digest of the shard's identity (the file was edited)")
    return mark


def _read_run(reader: _Reader, data: Any) -> RunRecord:
    data = reader.table(data)
    version = reader.field(data, "schema_version", int)
    if version not in READABLE_VERSIONS:
        raise RecordError(
            f"{reader.source}: schema_version {version} is not one this vlmgate reads "
            f"({', '.join(map(str, READABLE_VERSIONS))}); read it with the vlmgate version that wrote it "
            f"({data.get('vlmgate_version', 'unknown')}) or re-run the suite with this one"
        )
    # Schema 1 predates the mark: such a record reads as complete, as its writer assumed.
    completeness = (Completeness() if version == 1 and "completeness" not in data
                    else _read_completeness(reader.at("completeness"), reader.field(data, "completeness", Mapping)))
    cases = reader.field(data, "cases", list)
    specs = {}
    for table in ("models", "benchmarks"):
        fingerprints = reader.at(table).table(reader.field(data, table, Mapping))
        for spec, fingerprint in fingerprints.items():
            if fingerprint is not None and not isinstance(fingerprint, str):
                raise reader.at(table).at(spec).fail(f"fingerprint {fingerprint!r} is not a string")
        specs[table] = dict(fingerprints)
    return RunRecord(
        schema_version=version,
        vlmgate_version=reader.field(data, "vlmgate_version", str),
        seed=reader.field(data, "seed", int),
        settings=dict(reader.at("settings").table(reader.field(data, "settings", Mapping))),
        models=specs["models"],
        benchmarks=specs["benchmarks"],
        cases=tuple(_read_case(reader.at("cases").at(i), c) for i, c in enumerate(cases)),
        environment=_read_environment(reader.at("environment"), reader.field(data, "environment", Mapping)),
        completeness=completeness,
        model_descriptions={spec: _read_model_description(reader.at("model_descriptions").at(spec), entry)
                            for spec, entry in reader.at("model_descriptions").table(
                                data.get("model_descriptions", {})).items()},
        shard=None if data.get("shard") is None else _read_shard(reader.at("shard"), data["shard"]),
    )


def _read_model_description(reader: _Reader, data: Any) -> ModelDescription:
    data = reader.table(data)
    identity = reader.field(data, "identity", Mapping, optional=True)
    return ModelDescription(
        prompt_format=reader.field(data, "prompt_format", str, optional=True),
        identity=None if identity is None else dict(identity),
        **{key: reader.field(data, key, str, optional=True)
           for key in ("example_benchmark", "example_sample", "example_prompt", "example_context")},
    )
