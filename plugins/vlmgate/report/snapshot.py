"""Syrupy snapshots of each case's rounded summary: a reviewable release baseline.

With ``--vlmgate-snapshot``, every gating case compares its summary (per metric: value
and 95 % interval rounded to ``PRECISION`` decimals, n, limit and verdict) with the
snapshot stored for it; ``--vlmgate-snapshot --snapshot-update`` records the current
summaries as the new baseline, and a later run that differs fails the case with syrupy's
line diff of the two JSON documents.

Design choices:

* **Opt-in.** Without ``--vlmgate-snapshot`` nothing is compared, so a checkout without
  snapshots (or a candidate that is expected to move) never fails CI on them; the
  statistical gates (thresholds, ``--vlmgate-baseline``) are what gate a release.
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
  release before it recorded, and accepting the candidate (``--snapshot-update``) rewrites
  only the files it asserts.
* **Tolerant comparison.** Numbers match when they differ by at most one unit in the last
  rounded place (``TOLERANCE``), so float noise at a rounding boundary is not a change.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from syrupy.extensions.json import JSONSnapshotExtension
from syrupy.terminal import disable_color

from vlmgate.cases import CaseKey

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion
    from syrupy.location import PyTestLocation

    from vlmgate.thresholds import Judgement

#: Decimals that metric values and interval bounds are rounded to in a snapshot.
PRECISION = 3
#: Numbers within this distance match (one unit in the last rounded place).
TOLERANCE = 10.0 ** -PRECISION
SNAPSHOT_DIRNAME = "__vlmgate_snapshots__"


def _rounded(value: float) -> float:
    return value if math.isnan(value) or math.isinf(value) else round(value, PRECISION)


def case_summary(key: CaseKey, judgements: Sequence["Judgement"]) -> dict[str, Any]:
    """What a case's snapshot stores: rounded values, n, limit and verdict per metric."""
    return {
        "suite": key.suite,
        "family": key.family,
        "precision": PRECISION,
        "metrics": {
            j.result.name: {
                "value": _rounded(j.result.value),
                "ci": [_rounded(j.result.ci_low), _rounded(j.result.ci_high)],
                "n": j.result.n,
                "limit": j.threshold.describe() if j.threshold else None,
                "verdict": "pass" if j.verdict.passed else "fail",
            }
            for j in judgements
        },
    }


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
    """Readable JSON (sorted keys, 2-space indent) in ``__vlmgate_snapshots__``, compared with tolerance.

    ``case_name`` is the case's release-neutral name (``snapshot_case_name``); ``for_case``
    makes the subclass that carries it, since syrupy asks the extension class for names.
    """

    case_name: str | None = None

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
        try:
            return within_tolerance(json.loads(serialized_data), json.loads(snapshot_data))
        except (TypeError, ValueError):  # not JSON (e.g. a hand-edited file): compare the text
            return bool(serialized_data == snapshot_data)


class CaseSnapshot:
    """The stored snapshot of one case, or nothing when snapshots are off (``assertion=None``)."""

    def __init__(self, assertion: "SnapshotAssertion | None"):
        self.assertion = assertion

    def mismatch(self, key: CaseKey, judgements: Sequence["Judgement"]) -> list[str]:
        """Empty when the summary matches (or was recorded); else the lines of syrupy's diff."""
        if self.assertion is None:
            return []
        if self.assertion == case_summary(key, judgements):
            return []
        with disable_color():  # the lines go into a failure message and JUnit, not a terminal
            return [str(line) for line in self.assertion.get_assert_diff()]
