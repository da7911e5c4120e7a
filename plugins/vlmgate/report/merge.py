"""``vlmgate merge``: the records of the N shards of a split run joined into the run's record.

A run split with ``--vlmgate-shard I/N`` (a CI matrix, a Slurm job array) leaves N partial
records, each marked with its shard and the identity of the whole run (``ShardMark``). One
decision needs one record, and a merge that silently joined the wrong records would state a
decision about a run that never happened, so before anything is written every shard is
checked, and the first problem is one ``RecordError`` naming the file, the field and the fix:

* each record is a shard's (an unsplit record has nothing to merge);
* all are of one run: the same ``count`` N and the same identity digest (vlmgate version,
  seed, models, benchmarks, thresholds, the options that decide a value, the baseline, the
  selection); a mismatch names the shard's file and the first identity field that differs;
* they cover the run exactly once: every index 1..N present (``shard 2/3 missing``), none
  twice (both files named);
* each shard ran to its end (``completeness``): a shard cut short is re-run, not merged;
* their cases are the run's: no case in two shards, none outside the run's case list, and
  every case of the run present; where two shards fingerprinted a model or benchmark, the
  fingerprints agree (the same spec must have read the same files).

The merged record is the one an unsplit run writes: no shard mark, cases in record order,
the run's completeness (every selected test ran), the models' descriptions chosen by the
collector's rule; only its environment block (never compared) says it was merged: the
slowest shard's session time and each shard's, dispatch counts added up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from vlmgate.dispatch import DispatchCounts
from vlmgate.errors import RecordError
from vlmgate.models.base import ModelDescription
from vlmgate.report.collect import first_descriptions
from vlmgate.report.junit import case_nodeid
from vlmgate.report.record import (
    SCHEMA_VERSION,
    CaseRecord,
    Completeness,
    Environment,
    RunRecord,
    ShardMark,
    load_record,
    sorted_cases,
)

#: The JUnit file ``vlmgate merge`` writes beside run.json and report.html.
JUNIT_FILE = "junit.xml"


@dataclass(frozen=True)
class ShardRecord:
    """One shard's record and the file it was read from (every message names the file)."""

    source: str
    record: RunRecord

    @property
    def mark(self) -> ShardMark:
        assert self.record.shard is not None  # load_shard refuses records without one
        return self.record.shard

    def named(self) -> str:
        """``out/2/run.json (shard 2/3)``."""
        return f"{self.source} ({self.mark.describe()})"


def load_shard(path: str) -> ShardRecord:
    """Read a shard's record; a record of an unsplit run is refused (nothing to merge)."""
    record = load_record(path)
    if record.shard is None:
        raise RecordError(f"{path}: not a shard's record (no shard mark: the run was not started with "
                          "--vlmgate-shard I/N); pass the run.json of each --vlmgate-shard job")
    return ShardRecord(path, record)


def _check_identity(first: ShardRecord, other: ShardRecord) -> None:
    """``other`` is of ``first``'s run: the same N and identity, else the first field that differs."""
    if other.mark.count != first.mark.count:
        raise RecordError(f"{other.named()}: shard.count is {other.mark.count}, but {first.named()} splits the run "
                          f"into {first.mark.count}; merge the shards of one split (the same N in --vlmgate-shard I/N)")
    if other.mark.digest == first.mark.digest:
        return
    mine, theirs = other.mark.identity, first.mark.identity
    differing = sorted(key for key in set(mine) | set(theirs) if mine.get(key) != theirs.get(key)) or ["digest"]
    field = differing[0]
    raise RecordError(f"{other.named()} is a shard of another run than {first.named()}: shard.identity.{field} is "
                      f"{_shown(mine.get(field))} there and {_shown(theirs.get(field))} here"
                      + (f" (also differing: {', '.join(differing[1:])})" if differing[1:] else "")
                      + "; merge the records of the N jobs of one run, started with the same arguments but the shard")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_cover(shards: Sequence[ShardRecord]) -> None:
    """Every index 1..N once."""
    count = shards[0].mark.count
    seen: dict[int, ShardRecord] = {}
    for shard in shards:
        if shard.mark.index in seen:
            raise RecordError(f"{seen[shard.mark.index].source} and {shard.source} are both shard "
                              f"{shard.mark.index}/{count}; pass each shard's record once")
        seen[shard.mark.index] = shard
    missing = [index for index in range(1, count + 1) if index not in seen]
    if missing:
        named = ", ".join(f"shard {index}/{count}" for index in missing)
        raise RecordError(f"{named} missing: pass the run.json of every --vlmgate-shard job "
                          f"({', '.join(f'{index}/{count}' for index in missing)} too), or re-run the job that "
                          "did not write one")


def _check_complete(shards: Sequence[ShardRecord]) -> None:
    for shard in shards:
        if not shard.record.completeness.complete:
            raise RecordError(f"{shard.named()}: {shard.record.completeness.describe()}; re-run that shard to the "
                              f"end (--vlmgate-shard {shard.mark.index}/{shard.mark.count}) and merge its new record")


def _check_cases(shards: Sequence[ShardRecord]) -> None:
    """The shards' cases are the run's, each once."""
    run = set(shards[0].mark.run_cases)
    holder: dict[str, ShardRecord] = {}
    for shard in shards:
        for case in shard.record.cases:
            nodeid = case_nodeid(case)
            if nodeid in holder:
                raise RecordError(f"case {nodeid} is in {holder[nodeid].named()} and in {shard.named()}: each "
                                  "case belongs to one shard; merge the records of one split run")
            if nodeid not in run:
                raise RecordError(f"{shard.named()}: case {nodeid} is not in the run's case list "
                                  "(shard.run_cases); the record was edited or is of another run")
            holder[nodeid] = shard
    absent = sorted(run - set(holder))
    if absent:
        raise RecordError(f"{len(absent)} case(s) of the run are in no shard's record, e.g. {absent[0]}; re-run "
                          "the shard that should hold it")


def _fingerprints(shards: Sequence[ShardRecord], table: str) -> dict[str, str | None]:
    """A table's fingerprints over the shards (a shard that judged no case of a spec has ``None``)."""
    merged: dict[str, str | None] = {}
    seen: dict[str, ShardRecord] = {}
    for shard in shards:
        for spec, fingerprint in getattr(shard.record, table).items():
            if fingerprint is not None and merged.get(spec) not in (None, fingerprint):
                raise RecordError(f"{shard.named()}: {table}[{spec!r}] has fingerprint {fingerprint}, but "
                                  f"{seen[spec].named()} read {merged[spec]}: the shards gated different files under "
                                  "one spec; re-run them on the same checkpoint and benchmark")
            if merged.get(spec) is None:
                merged[spec] = fingerprint
                if fingerprint is not None:
                    seen[spec] = shard
    return merged


def _environment(shards: Sequence[ShardRecord]) -> Environment:
    """Where the shards ran: the first shard's interpreter and packages, the slowest shard's session
    time (the run's wall time when they ran side by side), each shard's, and dispatch added up."""
    first = shards[0].record.environment
    dispatch: dict[str, DispatchCounts] = {}
    tests: dict[str, Any] = {}
    for shard in shards:
        environment = shard.record.environment
        for spec, counts in environment.dispatch.items():
            dispatch[spec] = dispatch[spec] + counts if spec in dispatch else counts
        tests.update(environment.timings.get("tests_s", {}))
    sessions = {shard.mark.describe(): shard.record.environment.timings.get("session_s") for shard in shards}
    started = sorted(s.record.environment.started for s in shards if s.record.environment.started)
    return Environment(
        python=first.python, platform=first.platform, packages=first.packages, workers=first.workers,
        timings={"session_s": max((s for s in sessions.values() if s is not None), default=0.0),
                 "shards_session_s": sessions, "tests_s": dict(sorted(tests.items()))},
        dispatch=dict(sorted(dispatch.items())), started=started[0] if started else None)


def merge_shards(shards: Sequence[ShardRecord]) -> RunRecord:
    """The run's record from its shards' (see the module docstring for what is checked first)."""
    if not shards:
        raise RecordError("no shard record given; pass the run.json of every --vlmgate-shard job")
    shards = sorted(shards, key=lambda shard: shard.mark.index)
    for other in shards[1:]:
        _check_identity(shards[0], other)
    _check_cover(shards)
    _check_complete(shards)
    _check_cases(shards)
    first = shards[0].record
    cases: list[CaseRecord] = [case for shard in shards for case in shard.record.cases]
    described: dict[tuple[str, str], ModelDescription] = {}
    for shard in shards:
        for spec, description in shard.record.model_descriptions.items():
            described.setdefault((spec, description.example_benchmark or ""), description)
    benchmarks = list(first.settings.get("benchmarks", first.benchmarks))
    return RunRecord(
        schema_version=SCHEMA_VERSION, vlmgate_version=first.vlmgate_version, seed=first.seed,
        settings=first.settings, models=_fingerprints(shards, "models"),
        benchmarks=_fingerprints(shards, "benchmarks"), cases=sorted_cases(cases),
        environment=_environment(shards),
        completeness=Completeness(True, None, shards[0].mark.run_selected, ()),
        model_descriptions=first_descriptions(described, benchmarks),
    )


def write_merged(record: RunRecord, out: Path, *, shard_folders: Sequence[Path]) -> list[Path]:
    """Write ``out/run.json``, ``out/junit.xml`` and ``out/report.html``; the report may embed the
    shards' own files (their minimal-failure PNGs) as well as ``out``'s (``report.local_files``)."""
    from vlmgate.report.html import REPORT_FILE, write_html
    from vlmgate.report.junit import write_junit
    from vlmgate.report.local_files import LocalFiles
    from vlmgate.report.record import write_record

    out.mkdir(parents=True, exist_ok=True)
    run = write_record(record, out)  # first: the record matters more than its renderings
    junit = write_junit(record, out / JUNIT_FILE)
    html = write_html(record, out / REPORT_FILE, files=LocalFiles((out, *shard_folders)), source=str(out))
    return [run, junit, html]
