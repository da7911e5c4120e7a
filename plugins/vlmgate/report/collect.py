"""Building the run record from pytest's test reports, on the controller.

Under pytest-xdist the cases run in worker processes, and the only thing that reliably
reaches the controller is each test's report. So the process that ran a case turns its
judgements into a ``CaseRecord`` and attaches it, as a JSON string, to the test report
(``case_payload``; pytest serialises report attributes to the controller). The
controller (or the single process without xdist) collects those payloads in
``RunCollector`` and builds the ``RunRecord`` at session end. Nothing is read from
worker state, so the record is the same for any number of workers.

The dispatch counts of the models a process ran (``DispatchCounts``: batches sent,
retried after a replica died, replicas restarted) travel the same way: each payload
carries its process's counts so far, the collector keeps the latest per process and
model, and the record's environment block holds their sums.

Completeness is decided here too, from what the controller sees whatever the worker
count: the node ids pytest selected (``select``: the session's items, or each xdist
worker's collection), the tests that reported an outcome (a call report, or a setup
that did not pass), collection errors, and how pytest ended (``record(stopped=...,
interrupted=...)``). A selected test with no outcome was not run.

A job of a split run (``--vlmgate-shard I/N``) selects its share only, so its completeness
is its share's; what the whole run selected (``run_selection``, given by the plugin from
the selection before the split) goes into the record's ``ShardMark`` with the run's
identity (``shard_mark``), for ``vlmgate merge`` to check the shards against.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from vlmgate import __version__
from vlmgate.cases import CaseKey, case_id, short_names
from vlmgate.decision import case_standing
from vlmgate.dispatch import DispatchCounts
from vlmgate.models.base import ModelDescription
from vlmgate.records import FAIL, INCONCLUSIVE
from vlmgate.report.record import (
    SCHEMA_VERSION,
    CaseRecord,
    Completeness,
    Environment,
    MetricRecord,
    RunRecord,
    ShardMark,
    case_from_dict,
    case_to_dict,
    identity_digest,
    model_description_from_dict,
    sorted_cases,
)
from vlmgate.settings import Settings
from vlmgate.shards import Shard

if TYPE_CHECKING:
    from vlmgate.metrics.paired import PairedChange
    from vlmgate.thresholds import Judgement

#: Name of the test-report attribute that carries a case's record to the controller.
REPORT_ATTRIBUTE = "vlmgate_case_record"
#: Packages whose versions the environment block lists (when installed).
PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "scipy", "pillow", "pytest", "pytest-xdist",
            "syrupy", "matplotlib")


def metric_record(judgement: "Judgement") -> MetricRecord:
    """A judged metric result as stored in the record: its typed fields as they are."""
    result, threshold = judgement.result, judgement.threshold
    return MetricRecord(
        name=result.name, kind=result.kind, better=result.better,
        value=float(result.value), ci_low=float(result.ci_low), ci_high=float(result.ci_high), n=int(result.n),
        n_clusters=int(result.n_clusters), inert=judgement.verdict.inert,
        failed_limits=judgement.verdict.failed_limits,
        limit=threshold.describe() if threshold else None, passed=judgement.verdict.passed,
        message=judgement.verdict.message, units=dict(result.units), details=dict(result.details),
        clusters=dict(result.clusters), count=result.count, worst=tuple(result.worst),
        outcome=judgement.verdict.outcome, tier=threshold.tier if threshold else None, effect=judgement.effect,
        needed_n=judgement.verdict.needed_n,
        change_limits={key: float(bound) for key in ("max_increase", "max_decrease")
                       if threshold is not None and threshold.gates_change
                       and (bound := getattr(threshold, key)) is not None},
        change=judged_change(judgement.change, judgement.baseline_digest),
    )


def _standing(outcome: str, judgements: Sequence["Judgement"] | None) -> str | None:
    """The case's standing from its gates; a test that failed for another reason (its snapshot
    differs) stands as failed whatever its gates said."""
    if not judgements:
        return None
    standing = case_standing((j.verdict.outcome, j.effect) for j in judgements)
    return FAIL if outcome == "failed" and standing not in (FAIL, INCONCLUSIVE) else standing


def judged_change(change: "PairedChange | None", baseline: str | None) -> dict[str, Any] | None:
    """The change a gate judged, as the record stores it: with the level it was decided at
    (``report.multiplicity``) and the digest of the ``baseline`` record it was measured against."""
    if change is None or not change.tested:
        return None
    return {"delta": float(change.delta), "p_value": float(change.p_value), "decided_at": float(change.decided_at),
            "significant": bool(change.significant), "test": change.test, "n_pairs": int(change.n_pairs),
            "baseline": baseline}


def unparametrized_nodeid(nodeid: str, params_id: str | None) -> str:
    """The node id of the test function, without the parametrization suffix."""
    suffix = f"[{params_id}]" if params_id is not None else ""
    return nodeid[: -len(suffix)] if suffix and nodeid.endswith(suffix) else nodeid


def case_payload(*, settings: Settings, key: CaseKey, nodeid: str, params_id: str | None, outcome: str,
                 judgements: Sequence["Judgement"] | None, fingerprints: Mapping[str, Mapping[str, Any]],
                 error: str | None, dispatch: Mapping[str, DispatchCounts] | None = None) -> str:
    """The JSON string a test report carries for one case (see module docstring).

    ``dispatch``: this process's counts so far, by model spec.
    """
    record = CaseRecord(
        id=case_id(key, short_names(settings.models), short_names(settings.benchmarks)),
        test=unparametrized_nodeid(nodeid, params_id),
        key=key,
        outcome=outcome,
        metrics=tuple(metric_record(j) for j in judgements or ()),
        error=None if judgements else error,
        standing=_standing(outcome, judgements),
    )
    payload: dict[str, Any] = {"case": case_to_dict(record), "fingerprints": fingerprints}
    if dispatch:
        payload["dispatch"] = {"process": f"{socket.gethostname()}:{os.getpid()}",
                               "models": {spec: counts.to_json() for spec, counts in dispatch.items()}}
    return json.dumps(payload, sort_keys=True)


def _reason(report: Any) -> str:
    """What a report that did not pass says: a skip's reason alone (pytest keeps it with the file
    and line that raised it, which would make records differ between checkouts), else the text."""
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).strip()
    return report.longreprtext.strip()


def item_payload(item: Any, report: Any, key: CaseKey, *, settings: Settings,
                 judgements: Sequence["Judgement"] | None, fingerprints: Mapping[str, Mapping[str, Any]],
                 dispatch: Mapping[str, DispatchCounts] | None = None) -> str:
    """``case_payload`` for a test item's report of phase ``report.when``."""
    if report.when == "call":
        outcome = report.outcome
    else:  # setup did not pass, so there is no call phase
        outcome = "skipped" if report.skipped else "error"
    callspec = getattr(item, "callspec", None)
    error = None if report.passed else (_reason(report) or None)
    return case_payload(
        settings=settings, key=key, nodeid=item.nodeid, params_id=callspec.id if callspec else None,
        outcome=outcome, judgements=judgements,
        fingerprints=fingerprints if judgements else {},
        error=error, dispatch=dispatch,
    )


def file_sha256(path: Path) -> str | None:
    """SHA-256 of a file's bytes; ``None`` when it cannot be read (absent: e.g. no counterexample store)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def thresholds_sha256(settings: Settings) -> str | None:
    """One digest of every threshold layer's bytes, in order (the topmost file's alone without
    layers): a change in any layer (the shipped defaults included) changes what a run judges."""
    layers = settings.threshold_layers or (settings.thresholds,)
    digests = [file_sha256(path) for path in layers]
    if len(digests) == 1 or any(d is None for d in digests):
        return digests[-1] if len(digests) == 1 else None
    return hashlib.sha256("\x1f".join(str(d) for d in digests).encode("ascii")).hexdigest()


def settings_block(settings: Settings, baseline: str | None) -> dict[str, Any]:
    """What the run was asked to do, apart from the seed (kept at the top level)."""
    return {
        "models": list(settings.models), "benchmarks": list(settings.benchmarks),
        "thresholds": str(settings.thresholds), "thresholds_sha256": thresholds_sha256(settings),
        "threshold_layers": [{"path": str(path), "sha256": file_sha256(path)} for path in settings.threshold_layers],
        "limit": settings.limit, "batch_size": settings.batch_size, "device": settings.device,
        "dtype": settings.dtype, "trust_remote_code": settings.trust_remote_code, "baseline": baseline,
    }


#: The settings that decide what a case measures or how it is judged: equal across the shards
#: of one run. Left out: where and how the work ran (cache folder and cap, xdist devices, torch
#: threads, backend and replicas, progress display, PNG folder), which may differ from job to
#: job of a matrix without changing a value; and paths, whose files are compared by content.
IDENTITY_SETTINGS = ("models", "benchmarks", "limit", "batch_size", "device", "dtype", "device_map", "max_memory",
                     "quantize", "trust_remote_code", "allow_weight_keys", "strict", "repeat_clean", "search",
                     "search_budget", "cache_audit", "max_pixels", "prompt_format")


def run_identity(settings: Settings, *, baseline_digest: str | None, run_cases: Sequence[str],
                 run_selected: int) -> dict[str, Any]:
    """What must be equal across the shards of one run, by field (``ShardMark.identity``).

    The selection is in it (``selection``: a digest of the whole run's case ids and its test
    count): shards started with another ``-k`` or ``-m`` are of another run even when every
    setting agrees. The baseline is named by its record's digest, not its path.
    """
    selection = hashlib.sha256(json.dumps([list(run_cases), run_selected]).encode()).hexdigest()
    identity: dict[str, Any] = {"vlmgate_version": __version__, "seed": settings.seed,
                                "thresholds_sha256": thresholds_sha256(settings),
                                "counterexamples_sha256": file_sha256(settings.counterexamples),
                                "baseline": baseline_digest, "selection": selection}
    for name in IDENTITY_SETTINGS:
        value = getattr(settings, name)
        identity[name] = list(value) if isinstance(value, tuple) else value
    return identity


def shard_mark(settings: Settings, shard: Shard, *, baseline_digest: str | None, run_cases: Sequence[str],
               run_selected: int) -> ShardMark:
    """The mark of shard ``shard`` of the run whose whole selection is ``run_cases`` (see ``run_identity``)."""
    identity = run_identity(settings, baseline_digest=baseline_digest, run_cases=run_cases,
                            run_selected=run_selected)
    # JSON-shaped (lists, not tuples), as it reads back, so a record's digest checks on reading.
    identity = json.loads(json.dumps(identity, default=str))
    return ShardMark(shard.index, shard.count, tuple(sorted(run_cases)), run_selected, identity,
                     identity_digest(identity))


def first_descriptions(described: Mapping[tuple[str, str], ModelDescription],
                       benchmarks: Sequence[str]) -> dict[str, ModelDescription]:
    """Per model, the description rendered on the first benchmark (in ``benchmarks`` order) among
    ``described`` ((model, its example's benchmark) -> description): the same whichever process
    (or shard) reported first."""
    order = {spec: n for n, spec in enumerate(benchmarks)}
    chosen: dict[str, ModelDescription] = {}
    for (model, benchmark) in sorted(described, key=lambda k: (k[0], order.get(k[1], len(order)), k[1])):
        chosen.setdefault(model, described[(model, benchmark)])
    return chosen


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed versions, read from metadata (importing torch just to ask would cost seconds)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


class RunCollector:
    """Case payloads and timings seen on the controller, turned into a ``RunRecord``."""

    def __init__(self, settings: Settings, *, baseline: str | None = None, workers: str | None = None,
                 baseline_digest: str | None = None):
        self.settings = settings
        self.baseline = baseline
        self.baseline_digest = baseline_digest
        self.workers = workers
        #: The whole run's selection (vlmgate case node ids, tests selected) of a shard's run.
        self._run: tuple[tuple[str, ...], int] = ((), 0)
        self.started = time.perf_counter()
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._cases: dict[str, CaseRecord] = {}
        self._fingerprints: dict[str, dict[str, str]] = {"models": {}, "benchmarks": {}}
        self._descriptions: dict[tuple[str, str], ModelDescription] = {}  # (model, its example's benchmark)
        self._durations: dict[str, float] = {}
        self._selected: dict[str, None] = {}  # insertion-ordered set: collection order
        self._finished: set[str] = set()
        #: Cases whose xdist worker died while running them: node id -> what xdist said.
        self._crashed: dict[str, str] = {}
        self._collection_errors: list[str] = []
        self._dispatch: dict[tuple[str, str], DispatchCounts] = {}  # (process, model) -> latest counts

    def select(self, nodeids: Iterable[str]) -> None:
        """The tests pytest selected to run (called once, or once per xdist worker)."""
        self._selected.update(dict.fromkeys(nodeids))

    def run_selection(self, case_nodeids: Iterable[str], selected: int) -> None:
        """What the whole run selected before ``--vlmgate-shard`` split it (its ``ShardMark``)."""
        self._run = (tuple(sorted(case_nodeids)), selected)

    def collection_failed(self, nodeid: str) -> None:
        """A file or class failed to collect: the tests it holds are unknown, so the run is not whole."""
        self._collection_errors.append(nodeid)

    def add(self, report: Any) -> None:
        """Take one test report (any phase); only vlmgate cases carry a payload."""
        self._durations[report.nodeid] = self._durations.get(report.nodeid, 0.0) + report.duration
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self._finished.add(report.nodeid)
        elif report.failed and report.when not in ("setup", "teardown"):
            # xdist's report of a worker that died mid-case (phase "???"): the case never ended.
            lines = report.longreprtext.strip().splitlines()
            said = next((line.strip() for line in lines if "crashed" in line), f"worker crashed while running "
                                                                                f"{report.nodeid}")
            self._crashed[report.nodeid] = said
        payload = getattr(report, REPORT_ATTRIBUTE, None)
        if payload is None:
            return
        data = json.loads(payload)
        self._cases[report.nodeid] = case_from_dict(data["case"], f"test report of {report.nodeid}")
        for table in ("models", "benchmarks"):
            self._fingerprints[table].update(data["fingerprints"].get(table, {}))
        for spec, entry in data["fingerprints"].get("model_descriptions", {}).items():
            described = model_description_from_dict(entry, f"test report of {report.nodeid}")
            self._descriptions[(spec, described.example_benchmark or "")] = described
        dispatch = data.get("dispatch", {})
        for spec, counts in dispatch.get("models", {}).items():
            self._dispatch[(dispatch["process"], spec)] = DispatchCounts.from_json(counts)

    def dispatch(self) -> dict[str, DispatchCounts]:
        """Each model's dispatch counts, added up over the processes that ran it."""
        totals: dict[str, DispatchCounts] = {}
        for (_, spec), counts in sorted(self._dispatch.items()):
            totals[spec] = totals[spec] + counts if spec in totals else counts
        return totals

    def model_descriptions(self) -> dict[str, ModelDescription]:
        """Per model, the description rendered on the first benchmark (in settings order) of a judged
        case: the same whichever worker reported first."""
        return first_descriptions(self._descriptions, self.settings.benchmarks)

    def __len__(self) -> int:
        return len(self._cases)

    def completeness(self, *, stopped: str | None = None, interrupted: bool = False) -> Completeness:
        """Whether every selected test ran; see ``record``."""
        not_run = tuple(nodeid for nodeid in self._selected if nodeid not in self._finished)
        if not not_run and not self._collection_errors and not interrupted:
            return Completeness(True, None, len(self._selected), ())
        errors = self._collection_errors
        crashed = "; ".join(self._crashed[nodeid] for nodeid in sorted(self._crashed))
        reason = stopped or (f"{len(errors)} error(s) during collection: {', '.join(errors)}" if errors
                             else crashed or "pytest ended before running them")
        return Completeness(False, reason, len(self._selected), not_run)

    def record(self, *, stopped: str | None = None, interrupted: bool = False) -> RunRecord:
        """The run record. ``stopped``: why pytest stopped early, in its words (``None``: it did not);
        ``interrupted``: the session was cut short (Ctrl-C, ``pytest.exit``, collection errors), so
        the record is incomplete even when every selected test reported (it may not know them all).
        """
        def fingerprints(table: str, specs: Sequence[str]) -> dict[str, str | None]:
            return {spec: self._fingerprints[table].get(spec) for spec in specs}

        environment = Environment(
            python=platform.python_version(),
            platform=platform.platform(),
            packages=package_versions(),
            workers=self.workers,
            timings={"session_s": time.perf_counter() - self.started,
                     "tests_s": {nodeid: self._durations[nodeid] for nodeid in sorted(self._cases)}},
            dispatch=self.dispatch(),
            started=self.started_at,
        )
        return RunRecord(
            schema_version=SCHEMA_VERSION,
            vlmgate_version=__version__,
            seed=self.settings.seed,
            settings=settings_block(self.settings, self.baseline),
            models=fingerprints("models", self.settings.models),
            benchmarks=fingerprints("benchmarks", self.settings.benchmarks),
            model_descriptions=self.model_descriptions(),
            cases=sorted_cases(list(self._cases.values())),
            environment=environment,
            completeness=self.completeness(stopped=stopped, interrupted=interrupted),
            shard=None if self.settings.shard is None else shard_mark(
                self.settings, self.settings.shard, baseline_digest=self.baseline_digest, run_cases=self._run[0],
                run_selected=self._run[1]),
        )
