"""Syrupy snapshots of each case's decisions: a reviewable release baseline for the next release.

With ``--vlmgate-snapshot``, every gating case compares what it decided with the snapshot
stored for it; ``--vlmgate-snapshot --snapshot-update`` records the current run as the new
baseline. A snapshot is a *snapshot of decisions*: per metric it stores the gate's verdict
(``pass``, ``fail``, ``inconclusive``; ``recorded`` for a metric no limit judges) and what a
later release is compared on: the value and its 95 % interval rounded to ``PRECISION``
decimals, ``n`` and ``n_clusters`` (the independent images the interval rests on) and the
limit's text. A later release fails a case's snapshot only where a **gated** metric (one whose
verdict is not ``recorded``, in the snapshot and in the run)

* **changed its verdict** (``pass -> fail``, ``pass -> inconclusive``, ``fail -> pass``, or a
  stored gate that is no longer reported), or
* **moved significantly**: its value lies outside the 95 % interval stored in the snapshot.
  The stored interval is the recorded release's own uncertainty, so a value inside it is not
  a move the data can tell from noise.

The failure names the metric and the reason(s) with both values and verdicts
(``SnapshotFinding``), then syrupy's diff of the two JSON documents as the detail.
Recorded-only metrics are stored for the reviewer and never fail a snapshot: a diagnostic
drift that moves ``0.002 -> 0.003`` under an unchanged verdict is not a release decision.
Nor does a metric gated on one side only (``recorded -> pass``): that changes with the limits
or with ``--vlmgate-baseline`` (a limit on the change alone records without one), not with
the release, and a newly gated metric is judged by its own verdict.
The comparison is the extension's ``matches`` (``compare_summaries``), so syrupy does the
reading, writing and reporting of files.

Format (``format`` 2)::

    {"format": 2, "suite": "flip_rate", "family": "rotation", "precision": 3,
     "metrics": {"ifr": {"verdict": "pass", "value": 0.05, "ci": [0.02, 0.1], "n": 56,
                         "n_clusters": 7, "limit": "max 0.15 (interval)"}}}

Files written before verdicts were three-way have no ``format`` (and no ``n_clusters``); they
are still read: a metric whose limit is absent or ``recorded ...`` counts as recorded, any
other as the stored ``pass`` / ``fail`` (an old ``pass`` under a limit the run now finds
inconclusive fails as a verdict change); a failing case says how to re-record.

Design choices:

* **Opt-in.** Without ``--vlmgate-snapshot`` nothing is compared, so a checkout without
  snapshots (or a candidate that is expected to move) never fails CI on them; the
  statistical gates (thresholds, ``--vlmgate-baseline``) are what gate a release, and the
  snapshot step says which decisions a candidate changes.
* **Own folder.** Files live in ``__vlmgate_snapshots__/<test file>/<test>[<case id>].json``
  beside the test file, not in syrupy's ``__snapshots__``: a run without the option does
  not assert them, and syrupy reports (and fails on) unasserted files it discovers in
  ``__snapshots__``.
* **Names that survive a release.** A snapshot is a release's baseline for the next one,
  so its name does not contain the model: ``<test>[<benchmark>-<family>].json`` when the
  run gates one model (release N+1, whatever its spec, is compared with release N's
  committed files), ``<test>[<name>-<benchmark>-<family>].json`` with
  ``--vlmgate-snapshot-name NAME`` (several lines of models kept apart in one repository),
  and the model's short name only when one run gates several models without a name.
  Characters are ``[A-Za-z0-9._-]`` only (``cases.safe_name``). The summary holds no paths
  or fingerprints, which change from release to release while the results may not.
* **Nothing deletes another release's snapshots.** Under ``--vlmgate-snapshot`` the plugin
  turns syrupy's cleanup of unused snapshots off and reports them as a warning: a candidate
  that runs fewer cases (``-m textoverlay``) or drops a family must not delete what the
  release before it recorded. Accepting the candidate (``--snapshot-update``) rewrites every
  file it asserts whose text differs (so the files then hold the accepted release's values,
  not the previous release's where the decisions agree) and only those.
* **Tolerance.** Stored numbers are rounded, so a value within one unit in the last rounded
  place (``TOLERANCE``) of the stored interval counts as inside it: float noise at a rounding
  boundary is not a move.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from syrupy.extensions.json import JSONSnapshotExtension
from syrupy.terminal import disable_color

from vlmgate.cases import CaseKey
from vlmgate.records import FAIL, PASS, RECORDED

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion
    from syrupy.location import PyTestLocation

    from vlmgate.thresholds import Judgement

#: Decimals that metric values and interval bounds are rounded to in a snapshot.
PRECISION = 3
#: Numbers within this distance match (one unit in the last rounded place).
TOLERANCE = 10.0 ** -PRECISION
#: The snapshot format this module writes; files without ``format`` predate it (format 1).
FORMAT = 2
SNAPSHOT_DIRNAME = "__vlmgate_snapshots__"
#: What a failing snapshot says when the stored file predates ``FORMAT``.
RERECORD = "re-record it with pytest --vlmgate-snapshot --snapshot-update"
#: The two reasons a snapshot fails (``SnapshotFinding.reason``).
VERDICT_CHANGED = "verdict changed"
VALUE_MOVED = "value moved"


def _rounded(value: float) -> float:
    return value if math.isnan(value) or math.isinf(value) else round(value, PRECISION)


def case_summary(key: CaseKey, judgements: Sequence["Judgement"]) -> dict[str, Any]:
    """What a case's snapshot stores: per metric its verdict, rounded value and interval, n, n_clusters, limit."""
    return {
        "format": FORMAT,
        "suite": key.suite,
        "family": key.family,
        "precision": PRECISION,
        "metrics": {
            j.result.name: {
                "verdict": j.verdict.outcome,
                "value": _rounded(j.result.value),
                "ci": [_rounded(j.result.ci_low), _rounded(j.result.ci_high)],
                "n": j.result.n,
                "n_clusters": j.result.n_clusters,
                "limit": j.threshold.describe() if j.threshold else None,
            }
            for j in judgements
        },
    }


def stored_verdict(entry: Mapping[str, Any], fmt: int = FORMAT) -> str:
    """A stored metric's verdict; in a format-1 file, ``recorded`` where no limit judged it."""
    verdict = entry.get("verdict")
    if fmt >= 2:
        return str(verdict)
    limit = entry.get("limit")
    if limit is None or str(limit).startswith("recorded"):
        return RECORDED
    return PASS if verdict == PASS else FAIL


def summary_format(summary: Mapping[str, Any]) -> int:
    """The format a summary was written in (1: before ``format`` was stored)."""
    fmt = summary.get("format", 1)
    return fmt if isinstance(fmt, int) and not isinstance(fmt, bool) else 1


@dataclass(frozen=True)
class SnapshotFinding:
    """Why one gated metric fails its snapshot: ``reason`` is ``VERDICT_CHANGED`` or ``VALUE_MOVED``."""

    metric: str
    reason: str
    stored: Mapping[str, Any] | None
    received: Mapping[str, Any] | None
    stored_verdict: str | None
    received_verdict: str | None

    def describe(self) -> str:
        stored, received = _show(self.stored), _show(self.received)
        if self.reason == VERDICT_CHANGED:
            was, now = self.stored_verdict or "absent", self.received_verdict or "absent"
            text = f"{self.metric}: verdict changed {was} -> {now} (stored {stored}; now {received})"
        else:
            text = (f"{self.metric}: value moved outside the stored 95% interval under an unchanged verdict "
                    f"{self.received_verdict} (stored {stored}; now {received})")
        before = (self.stored or {}).get("limit")
        after = (self.received or {}).get("limit")
        if self.stored is not None and self.received is not None and before != after:
            text += f"; the limit changed from {before!r} to {after!r}"
        return text


def _show(entry: Mapping[str, Any] | None) -> str:
    """``0.05 [0.02, 0.1], n 56 in 7 images, limit max 0.15 (interval)``: a stored or received metric."""
    if entry is None:
        return "not reported"
    try:
        low, high = entry["ci"]
        text = f"{entry['value']:g} [{low:g}, {high:g}], n {entry['n']}"
    except (KeyError, TypeError, ValueError):
        return json.dumps(entry, sort_keys=True)
    clusters = entry.get("n_clusters")
    if isinstance(clusters, int) and clusters != entry["n"]:
        text += f" in {clusters} images"
    return f"{text}, limit {entry.get('limit') or 'none'}"


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _inside(value: Any, interval: Any, tolerance: float) -> bool:
    """Whether ``value`` lies within the stored ``interval`` (widened by ``tolerance``); NaN only matches NaN."""
    value, (low, high) = _number(value), (_number(x) for x in interval)
    if math.isnan(value) or math.isnan(low) or math.isnan(high):
        return math.isnan(value) and (math.isnan(low) or math.isnan(high))
    slack = tolerance * (1 + 1e-9)
    return low - slack <= value <= high + slack


def compare_summaries(received: Mapping[str, Any], stored: Mapping[str, Any]) -> list[SnapshotFinding]:
    """Why ``received`` fails the ``stored`` snapshot: one finding per gated metric and reason; empty when it matches.

    Compared are the metrics the stored snapshot gates (verdict not ``recorded``): a verdict
    changed between ``pass``, ``fail`` and ``inconclusive``, or a stored gate no longer reported,
    is ``VERDICT_CHANGED``; the same verdict with a value outside the stored interval is
    ``VALUE_MOVED``. A recorded-only metric never fails, and neither does a metric that is
    gated on one side and recorded on the other: that is a change of the limits or of
    ``--vlmgate-baseline`` (a limit on the change alone records without a baseline), not of the
    release, and a newly gated metric fails, if it does, by its own verdict. Raises ``KeyError``
    / ``TypeError`` / ``ValueError`` for a stored file that is not a summary.
    """
    fmt = summary_format(stored)
    tolerance = 10.0 ** -int(stored.get("precision", PRECISION))
    before: Mapping[str, Any] = stored["metrics"]
    after: Mapping[str, Any] = received["metrics"]
    findings = []
    for name in sorted(before):
        old, new = before[name], after.get(name)
        was = stored_verdict(old, fmt)
        now = stored_verdict(new) if new is not None else None
        if was == RECORDED or now == RECORDED:
            continue  # recorded only (here or there): for the reviewer, never a failure
        if was != now:
            findings.append(SnapshotFinding(name, VERDICT_CHANGED, old, new, was, now))
        elif new is not None and not _inside(new["value"], old["ci"], tolerance):
            findings.append(SnapshotFinding(name, VALUE_MOVED, old, new, was, now))
    return findings


def within_tolerance(received: Any, stored: Any, tolerance: float = TOLERANCE) -> bool:
    """Structural equality, with floats equal when at most ``tolerance`` apart (NaN equals NaN)."""
    if isinstance(received, dict) and isinstance(stored, dict):
        return received.keys() == stored.keys() and all(
            within_tolerance(received[k], stored[k], tolerance) for k in received)
    if isinstance(received, list) and isinstance(stored, list):
        return len(received) == len(stored) and all(
            within_tolerance(a, b, tolerance) for a, b in zip(received, stored))
    numbers = (int, float)
    if (isinstance(received, numbers) and isinstance(stored, numbers)
            and not isinstance(received, bool) and not isinstance(stored, bool)
            and (isinstance(received, float) or isinstance(stored, float))):
        if math.isnan(received) or math.isnan(stored):
            return math.isnan(received) and math.isnan(stored)
        return abs(received - stored) <= tolerance * (1 + 1e-9)
    return type(received) is type(stored) and received == stored


def snapshot_case_name(key: CaseKey, *, models: Sequence[str], benchmark: str, name: str | None) -> str:
    """The release-neutral part of a case's snapshot name (see the module docstring).

    ``benchmark`` is the case's benchmark short name; ``models`` the run's model specs.
    """
    from vlmgate.cases import safe_name, short_names

    if name:
        prefix = safe_name(name)
    elif len(models) > 1:
        prefix = short_names(models)[key.model]
    else:
        prefix = ""
    return "-".join(part for part in (prefix, benchmark, safe_name(key.family)) if part)


class VlmgateSnapshotExtension(JSONSnapshotExtension):
    """Readable JSON (sorted keys, 2-space indent) in ``__vlmgate_snapshots__``, compared on decisions.

    ``case_name`` is the case's release-neutral name (``snapshot_case_name``); ``for_case``
    makes the subclass that carries it, since syrupy asks the extension class for names.
    ``matches`` keeps what it found on the instance (``findings``, ``stored_format``,
    ``unreadable``) for the failure message; with ``rewrite`` set (``--snapshot-update``) it
    matches only identical text, so an accepted run rewrites every file that differs.
    """

    case_name: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.findings: list[SnapshotFinding] = []
        self.stored_format: int | None = None
        self.unreadable: str | None = None
        self.rewrite = False

    @classmethod
    def for_case(cls, case_name: str) -> type["VlmgateSnapshotExtension"]:
        return type(cls.__name__, (cls,), {"case_name": case_name})

    @classmethod
    def dirname(cls, *, test_location: "PyTestLocation") -> str:
        # syrupy's single-file dirname reads the base class's ``snapshot_dirname``, so the folder is set here.
        return str(Path(test_location.filepath).parent / SNAPSHOT_DIRNAME / test_location.basename)

    @classmethod
    def get_snapshot_name(cls, *, test_location: "PyTestLocation", index: Any = 0) -> str:
        if cls.case_name is None:
            return super().get_snapshot_name(test_location=test_location, index=index)
        return f"{test_location.testname.split('[', 1)[0]}[{cls.case_name}]"

    @classmethod
    def matches_test_location(cls, *, test_location: "PyTestLocation", snapshot_location: str) -> bool:
        """Whether ``snapshot_location`` is this case's file.

        syrupy relates a parametrized test's file to its full test id, which holds the model;
        a release-neutral name leaves the model out, so syrupy's own check would warn "Can
        not relate snapshot location" on every snapshot written. Here the file is the case's
        when it is named as ``get_snapshot_name`` names it, in the test's own folder.
        """
        if cls.case_name is None:
            return super().matches_test_location(test_location=test_location, snapshot_location=snapshot_location)
        location = Path(snapshot_location)
        return (location.parent == Path(cls.dirname(test_location=test_location))
                and location.name == f"{cls.get_snapshot_name(test_location=test_location)}.{cls.file_extension}")

    def serialize(self, data: Any, **kwargs: Any) -> str:
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def matches(self, *, serialized_data: Any, snapshot_data: Any) -> bool:
        """Whether the received summary keeps the stored one's decisions (``compare_summaries``)."""
        self.findings, self.stored_format, self.unreadable = [], None, None
        if self.rewrite:
            return bool(serialized_data == snapshot_data)
        try:
            received, stored = json.loads(serialized_data), json.loads(snapshot_data)
            self.stored_format = summary_format(stored)
            self.findings = compare_summaries(received, stored)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # not a summary (e.g. a hand-edited file)
            self.unreadable = f"{type(exc).__name__}: {exc}"
            return bool(serialized_data == snapshot_data)
        return not self.findings


class CaseSnapshot:
    """The stored snapshot of one case, or nothing when snapshots are off (``assertion=None``)."""

    def __init__(self, assertion: "SnapshotAssertion | None"):
        self.assertion = assertion
        if assertion is not None and isinstance(assertion.extension, VlmgateSnapshotExtension):
            assertion.extension.rewrite = bool(assertion.update_snapshots)

    def mismatch(self, key: CaseKey, judgements: Sequence["Judgement"]) -> list[str]:
        """Empty when the decisions match the snapshot (or it was recorded); else the lines that say why.

        First one line per failing gated metric (which, and whether its verdict changed or its
        value left the stored interval, with both sides), then syrupy's diff of the two JSON
        documents (- stored, + received).
        """
        if self.assertion is None:
            return []
        if self.assertion == case_summary(key, judgements):
            return []
        extension = self.assertion.extension
        lines: list[str] = []
        if isinstance(extension, VlmgateSnapshotExtension):
            lines = [finding.describe() for finding in extension.findings]
            if extension.unreadable is not None:
                lines.append(f"the stored snapshot is not a vlmgate summary ({extension.unreadable}); {RERECORD}")
            elif extension.stored_format is not None and extension.stored_format < FORMAT:
                lines.append(f"the stored snapshot predates snapshot format {FORMAT} (no verdicts of recorded "
                             f"metrics, no n_clusters); {RERECORD}")
        with disable_color():  # the lines go into a failure message and JUnit, not a terminal
            diff = [str(line) for line in self.assertion.get_assert_diff()]
        if lines:
            lines.append("syrupy's diff of the summaries (- stored, + received):")
        return lines + diff
