"""The commands that reproduce one case: run it again alone, and search its family.

A failed gate is acted on by running that case again (after a fix, or to look at it
under a debugger) and by asking the minimal-failure search for the mildest input that
breaks it. Both need every setting that decides the case's values, which the engineer
reading a CI log does not have at hand; so the failure message and the HTML report print
the commands, built from the case's node id and the run's settings (the record's
``settings`` block, ``collect.settings_block``, so a report rendered later from
``run.json`` prints the same command the run did).

Only what changes a value is repeated: model and benchmark of the case, the threshold
file unless it is the default, the sample limit, the seed and dtype where not the
defaults, remote code, and the baseline. Worker counts, devices and cache folders do not
change results (a record does not depend on them), so they are left out.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Mapping

from vlmgate.cases import CaseKey
from vlmgate.options import flags
from vlmgate.settings import DEFAULT_DTYPE, DEFAULT_SEED, DEFAULT_THRESHOLDS, packaged_thresholds

#: The pytest option of the baseline run (``vlmgate.plugin``; not a settings key).
BASELINE_FLAG = "--vlmgate-baseline"
#: Joins a perturbation family and a qualifier in a case family (``padcrop.ctx_mcq``).
_QUALIFIED = "."


def _shown_path(path: str) -> str:
    """``path`` relative to the current folder when it lies under it (shorter to read and paste)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve())) if Path(path).is_absolute() else path
    except ValueError:
        return path


def _is_default_thresholds(path: str) -> bool:
    parts = PurePath(path).parts
    return path == str(packaged_thresholds()) or tuple(parts[-2:]) == PurePath(DEFAULT_THRESHOLDS).parts


def _searchable(family: str) -> bool:
    """Whether the minimal-failure search has a case for ``family`` (its perturbation families)."""
    from vlmgate.suites.minimal_failures import MinimalFailureSuite

    return family in MinimalFailureSuite().perturbation_families()


@dataclass(frozen=True)
class Reproduction:
    """The node id of one case, its family, and the options that decide its values."""

    nodeid: str
    family: str
    options: tuple[str, ...]

    @classmethod
    def of(cls, nodeid: str, key: CaseKey, settings: Mapping[str, Any], seed: int) -> "Reproduction":
        """From a case's node id and key and the run's settings block (``collect.settings_block``)."""
        flag = flags()
        options = [flag["models"], key.model, flag["benchmarks"], key.benchmark]
        thresholds = settings.get("thresholds")
        if thresholds and not _is_default_thresholds(str(thresholds)):
            options += [flag["thresholds"], _shown_path(str(thresholds))]
        if settings.get("limit") is not None:
            options += [flag["limit"], str(settings["limit"])]
        if seed != DEFAULT_SEED:
            options += [flag["seed"], str(seed)]
        if settings.get("dtype") not in (None, DEFAULT_DTYPE):
            options += [flag["dtype"], str(settings["dtype"])]
        if settings.get("trust_remote_code"):
            options.append(flag["trust_remote_code"])
        if settings.get("baseline"):
            options += [BASELINE_FLAG, _shown_path(str(settings["baseline"]))]
        return cls(nodeid, key.family, tuple(options))

    @property
    def perturbation(self) -> str:
        """The perturbation family of the case (``padcrop`` of a drift case ``padcrop.ctx_mcq``)."""
        return self.family.split(_QUALIFIED, 1)[0]

    def rerun(self) -> str:
        """``pytest '<node id>' <options>``: this case alone, as the run judged it."""
        return shlex.join(["pytest", self.nodeid, *self.options])

    def search(self) -> str | None:
        """``pytest <folder> -m 'search and <family>' --vlmgate-search <options>``: the minimal-failure
        search of this case's family, in the folder of its test file; ``None`` when the search has no
        case for the family (the clean pass, pooled rows, corruptions)."""
        family = self.perturbation
        if not _searchable(family):
            return None
        folder = str(PurePath(self.nodeid.split("::", 1)[0]).parent)
        return shlex.join(["pytest", folder, "-m", f"search and {family}", flags()["search"], *self.options])
