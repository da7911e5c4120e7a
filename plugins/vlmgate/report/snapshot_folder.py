"""Read a folder of ``--vlmgate-snapshot`` files as a run record, so two can be diffed.

A snapshot (``report.snapshot``) keeps what a release manager reviews: per metric the
verdict (``pass``, ``fail``, ``inconclusive``, ``recorded``), the rounded value and
interval, n, n_clusters and limit. It keeps no per-unit outcomes, so a diff of two
snapshot folders can show what moved but cannot test whether a move is significant:
every change is *untested*, and ``vlmgate diff --fail-on regression`` counts a gate whose
verdict went from pass to fail as the regression (see ``report.diff.MetricDiff.status``).
Diff run records (``--vlmgate-report``) for paired tests.

Files written before snapshot format 2 (no ``format`` key) are read too: they stored only
``pass`` / ``fail``, so a metric whose limit is absent or ``recorded ...`` reads as
recorded (``report.snapshot.stored_verdict``), and ``n_clusters`` is unknown (``None``).

Layout read: ``<folder>/**/<test file stem>/<test>[<case name>].json``, whatever the
folders are called: a ``__vlmgate_snapshots__`` folder, a folder holding them (e.g.
``robustness_tests``), or a copy renamed after its release (``snapshots-v41``). A folder is
recognised by its files (named so, and holding a vlmgate summary), not by its name. The
case name is ``[{name}-]{benchmark}-{family}`` (``report.snapshot.snapshot_case_name``);
since names may contain ``-``, the part before ``-{family}`` is kept whole as the case's
model and the benchmark is left empty. With one model × benchmark per folder (a release's
snapshots) the two folders' prefixes pair like two single-model runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

from vlmgate.cases import CaseKey, safe_name
from vlmgate.errors import RecordError
from vlmgate.records import LOWER, MEAN, OUTCOMES, PASS, RECORDED, MetricSpec
from vlmgate.report.record import RUN_FILE, SCHEMA_VERSION, CaseRecord, Environment, MetricRecord, RunRecord
from vlmgate.report.snapshot import RERECORD, SNAPSHOT_DIRNAME, stored_verdict, summary_format

_NAME = re.compile(r"^(?P<test>[^\[]+)\[(?P<case>.+)\]\.json$")


def _is_snapshot(file: Path) -> bool:
    """Whether ``file`` is named and filled like a vlmgate snapshot."""
    if _NAME.match(file.name) is None:
        return False
    try:
        summary = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and {"suite", "family", "metrics", "precision"} <= summary.keys()


def _snapshot_files(root: Path) -> list[Path]:
    """Files named like snapshots in the folders under ``root`` that hold at least one snapshot
    (a damaged one among them is then read, and refused by name, rather than skipped)."""
    named = [file for file in sorted(root.rglob("*.json")) if _NAME.match(file.name)]
    folders = {file.parent for file in named if _is_snapshot(file)}
    return [file for file in named if file.parent in folders]


def is_snapshot_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder of snapshots (however it is named) rather than a run record's."""
    path = Path(path)
    return path.is_dir() and not (path / RUN_FILE).exists() and bool(_snapshot_files(path))


def load_snapshot_folder(path: str | Path) -> RunRecord:
    """Every snapshot file under ``path`` as one case of a run record (no units, no environment)."""
    root = Path(path)
    cases = [_case_from_file(file) for file in _snapshot_files(root)]
    if not cases:
        raise RecordError(f"{root}: no snapshot files (<test file>/<test>[<case id>].json under {SNAPSHOT_DIRNAME}/); "
                          "record them with pytest --vlmgate-snapshot --snapshot-update")
    prefixes = sorted({case.key.model for case in cases})
    return RunRecord(
        schema_version=SCHEMA_VERSION, vlmgate_version="", seed=0,
        settings={"snapshots": str(root)},
        models={prefix: None for prefix in prefixes}, benchmarks={"": None},
        cases=tuple(sorted(cases, key=lambda c: (c.id, c.test))),
        environment=Environment(python="", platform=""),
    )


def _case_from_file(file: Path) -> CaseRecord:
    match = _NAME.match(file.name)
    if match is None:
        raise RecordError(f"{file}: not a vlmgate snapshot name '<test>[<case id>].json'; "
                          f"remove it from {file.parent} or point vlmgate diff at the snapshot folder itself")
    try:
        summary = json.loads(file.read_text(encoding="utf-8"))
        family, suite, metrics = summary["family"], summary["suite"], summary["metrics"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"{file}: not a vlmgate snapshot ({type(exc).__name__}: {exc}); {RERECORD}") from None
    case_id, suffix = match["case"], f"-{safe_name(family)}"
    prefix = case_id[: -len(suffix)] if case_id.endswith(suffix) else case_id
    test = f"{file.parent.name}.py::{match['test']}"
    fmt = summary_format(summary)
    records = tuple(_metric(file, name, entry, fmt) for name, entry in metrics.items())
    outcome = "passed" if all(m.passed for m in records) else "failed"
    return CaseRecord(case_id, test, CaseKey(prefix, "", family, suite), outcome, records)


def _declared_metrics() -> Mapping[str, MetricSpec]:
    """The installed suites' metric declarations: a snapshot keeps values, not kinds or directions
    (a metric of a suite not installed here reads as a mean where lower is better)."""
    from vlmgate.suites import declared_metrics

    return declared_metrics()


def _metric(file: Path, name: str, entry: Mapping[str, Any], fmt: int) -> MetricRecord:
    try:
        low, high = (float(x) for x in entry["ci"])
        value, limit = float(entry["value"]), entry.get("limit")
        if "verdict" not in entry:
            raise KeyError("verdict")
        outcome = stored_verdict(entry, fmt)
        n = int(entry["n"])
        clusters = entry.get("n_clusters")
        n_clusters = int(clusters) if clusters is not None else None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RecordError(f"{file}: metric {name!r} lacks value / ci / n / verdict ({exc}); {RERECORD}") from None
    if outcome not in OUTCOMES:
        raise RecordError(f"{file}: metric {name!r} has verdict {outcome!r}, not one of {', '.join(OUTCOMES)}; "
                          f"{RERECORD}")
    details: dict[str, Any] = {}
    spec = _declared_metrics().get(name)
    return MetricRecord(
        name=name, kind=spec.kind if spec else MEAN, better=spec.better if spec else LOWER,
        value=value, ci_low=low, ci_high=high, n=n,
        limit=limit, passed=outcome in (PASS, RECORDED), message="", units={}, details=details,
        n_clusters=n_clusters, outcome=outcome,
    )
