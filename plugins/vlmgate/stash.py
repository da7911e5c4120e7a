"""The keys of vlmgate's state in pytest's stash, typed, in a module of their own.

The hooks (``vlmgate.plugin``) write them and the gate fixture (``vlmgate.gate``) reads
them; both import the keys from here, so neither imports the other. Only pytest and the
standard library are imported at module level: the plugin loads this for every session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from vlmgate.cache import PruneResult
    from vlmgate.decision import Decision
    from vlmgate.progress_display import ProgressDisplay
    from vlmgate.report.baseline import Baseline
    from vlmgate.report.record import Completeness
    from vlmgate.session import GateSession
    from vlmgate.settings import Settings
    from vlmgate.suites.applicability import LeftOut
    from vlmgate.thresholds import Judgement

#: The run settings, built once at configure time.
SETTINGS: pytest.StashKey[Settings] = pytest.StashKey()
#: Loaded models, benchmarks and engines of this process.
SESSION: pytest.StashKey[GateSession] = pytest.StashKey()
#: The earlier release's run record (``--vlmgate-baseline``).
BASELINE: pytest.StashKey[Baseline] = pytest.StashKey()
#: A test item's judged metrics, for its run-record payload.
RESULTS: pytest.StashKey[list[Judgement]] = pytest.StashKey()
#: Fingerprints of the models and benchmarks a judged item used (``{"models": {spec: fp}, ...}``), and
#: the model's JSON ``ModelDescription`` (``{"model_descriptions": {spec: {...}}}``).
FINGERPRINTS: pytest.StashKey[dict[str, dict[str, Any]]] = pytest.StashKey()
#: The files the run wrote (run.json, report.html), for the terminal summary.
REPORT_FILES: pytest.StashKey[list[Path]] = pytest.StashKey()
#: Whether the record was complete, for the terminal summary.
REPORT_COMPLETENESS: pytest.StashKey[Completeness] = pytest.StashKey()
#: How this process shows its running case's progress (``--vlmgate-progress``).
PROGRESS: pytest.StashKey[ProgressDisplay] = pytest.StashKey()
#: Model x benchmark combinations no case was generated for, with how many cases each (collection).
LEFT_OUT: pytest.StashKey[dict[LeftOut, int]] = pytest.StashKey()
#: The run's decision (``vlmgate.decision.Decision``), on the process that saw every report.
DECISION: pytest.StashKey[Decision] = pytest.StashKey()
#: What the whole run selected before ``--vlmgate-shard`` split it: (vlmgate case node ids, tests).
RUN_SELECTION: pytest.StashKey[tuple[tuple[str, ...], int]] = pytest.StashKey()
#: Cache hits and misses added up over xdist workers (on the controller).
CACHE_COUNTS: pytest.StashKey[list[int]] = pytest.StashKey()
#: What pruning the cache removed at the end of the run.
CACHE_PRUNED: pytest.StashKey[PruneResult] = pytest.StashKey()
