"""One gating run split over N jobs (``--vlmgate-shard I/N``): which job runs which case.

A big checkpoint is gated by a CI matrix or a Slurm job array: N jobs, each started with
the same arguments and its own ``I/N``, each running a share of the selection and writing
a partial run record that ``vlmgate merge`` joins into one decision (``report.merge``).
For that the jobs must agree on the split without talking to each other, so the split is
a function of the selection alone:

* the vlmgate cases' node ids are **sorted and dealt round-robin** (the k-th id, from 0,
  goes to shard ``k mod N + 1``). Sorting makes the split independent of the order pytest
  happens to collect in, of plugins that reorder items, and of xdist (every worker
  computes the same split from the same ids); N jobs with the same arguments therefore
  cover the selection exactly once, and their sizes differ by at most one case.
* Why not a balance by estimated cost: no estimate made before the run is right. A case's
  cost depends on the observation cache (a hit costs nothing) and on what its process
  computed before it (an engine memoises the clean pass and every perturbed pass of a
  model x benchmark, shared by all the cases of that process). The flip-rate suite's
  ``any`` case, the costliest, computes every family's grid: whichever shard holds it does
  that work however the rest is dealt, and its other flip-rate cases then come from the
  memo. An estimate would move cases for a gain it cannot promise, while dealing by sorted
  id is simple to state, to check and to reproduce by hand.
* A test that is not a vlmgate case (a plain test beside the suites) runs in shard 1 only:
  it is cheap, and running it N times would report its outcome N times.

Only the standard library is imported: settings validate the option with ``Shard.parse``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from vlmgate.errors import ConfigError

#: ``I/N``, both whole numbers.
_PATTERN = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
OPTION = "--vlmgate-shard"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based, as ``SLURM_ARRAY_TASK_ID`` and a matrix list it)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"2/3"`` -> ``Shard(2, 3)``; anything else is one ``ConfigError`` saying what to pass."""
        match = _PATTERN.fullmatch(text)
        if match is None:
            raise ConfigError(f"{OPTION} must be I/N, two whole numbers (shard I of N), got {text!r}; "
                              f"pass e.g. {OPTION} 1/3")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or not 1 <= index <= count:
            raise ConfigError(f"{OPTION} {text}: I must lie in 1..N and N be at least 1, got I = {index}, N = {count}; "
                              f"pass e.g. {OPTION} 1/{max(count, 1)}")
        return cls(index, count)

    def describe(self) -> str:
        """``2/3``."""
        return f"{self.index}/{self.count}"

    def owns(self, case_ids: Iterable[str]) -> set[str]:
        """The ids (of the whole selection's ``case_ids``) this shard runs."""
        return {case for case, shard in assign(case_ids, self.count).items() if shard == self.index}


def assign(case_ids: Iterable[str], count: int) -> dict[str, int]:
    """Each distinct id -> its shard in 1..``count``: sorted ids dealt round-robin (module docstring)."""
    return {case: position % count + 1 for position, case in enumerate(sorted(set(case_ids)))}
