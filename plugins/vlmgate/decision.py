"""One release decision from many gates: GO, NO-GO or INCONCLUSIVE, and what each tier does.

A gate's verdict is three-way (``records.OUTCOMES``): PASS when its whole interval lies
within the limit, FAIL when it lies past it, INCONCLUSIVE when it straddles it. A release
manager needs one answer, so every gate belongs to a *tier* whose *policy* (declared in
the threshold file's ``[tiers]`` table, with shipped defaults) says what its failed and
inconclusive verdicts do to the run:

* ``no-go``: the run's decision is NO-GO;
* ``inconclusive``: the run cannot be GO; its decision is INCONCLUSIVE (unless another gate
  makes it NO-GO);
* ``warn``: shown in every output, the decision is unaffected.

The shipped tiers: ``critical`` (a failure is NO-GO, an inconclusive gate makes the run
INCONCLUSIVE), ``supporting`` (a failure is NO-GO; inconclusive only warns, since these
gates read the same behaviour as a critical one from another angle) and ``advisory``
(both only warn: diagnostics a team watches, not release criteria). A limit names its
tier (``tier = "advisory"``); a limit that names none is ``critical``.

The run's decision: NO-GO when any gate's policy says so, or any case failed or errored
outside a gate (a broken model load judges nothing and must not ship); else
INCONCLUSIVE when any gate's policy says so or the run did not finish (a partial green
run is not a pass); else GO. Each has its own exit code (``EXIT_CODES``): 0 GO, 1 NO-GO (as
pytest's "tests failed"), 10 INCONCLUSIVE, clear of pytest's own 2-6 (interrupted, internal
error, usage error, no tests, too many warnings), which vlmgate leaves as they are.

The pytest gate, the run record, the HTML report and ``vlmgate diff`` all read the decision
from here, so no two of them can state a different one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping

from vlmgate.records import FAIL, INCONCLUSIVE, PASS, RECORDED

GO = "GO"
NO_GO = "NO-GO"
UNDECIDED = "INCONCLUSIVE"
DECISIONS = (GO, NO_GO, UNDECIDED)
EXIT_CODES: Mapping[str, int] = {GO: 0, NO_GO: 1, UNDECIDED: 10}

#: What a failed or inconclusive verdict does to the run (a tier's policy).
BLOCKS = "no-go"
HOLDS = "inconclusive"
WARNS = "warn"
NOTHING = "none"
ON_FAIL = (BLOCKS, WARNS)
ON_INCONCLUSIVE = (BLOCKS, HOLDS, WARNS)

DEFAULT_TIER = "critical"

#: A case whose only failed or inconclusive gates warn.
WARNED = "warned"
CASE_STANDINGS = (FAIL, INCONCLUSIVE, WARNED, PASS, RECORDED)
#: A case that ended outside its gate (an error at set-up, a crash).
ERROR = "error"


@dataclass(frozen=True)
class TierPolicy:
    """What a tier's failed and inconclusive verdicts do to the run's decision."""

    name: str
    on_fail: str = BLOCKS
    on_inconclusive: str = HOLDS
    description: str = ""

    def effect(self, outcome: str) -> str:
        """``no-go``, ``inconclusive``, ``warn`` or ``none`` for a verdict's outcome."""
        if outcome == FAIL:
            return self.on_fail
        if outcome == INCONCLUSIVE:
            return self.on_inconclusive
        return NOTHING


DEFAULT_TIERS: Mapping[str, TierPolicy] = {
    "critical": TierPolicy("critical", BLOCKS, HOLDS, "release criteria: a failure stops the release, an "
                                                     "inconclusive gate keeps it from GO"),
    "supporting": TierPolicy("supporting", BLOCKS, WARNS, "the same behaviour from another angle: a failure stops "
                                                          "the release, an inconclusive gate warns"),
    "advisory": TierPolicy("advisory", WARNS, WARNS, "diagnostics: shown, never decide"),
}


def effect_of(outcome: str, policy: TierPolicy | None) -> str:
    """What one verdict does to the run; a failed metric without a tier (a broken gate) blocks."""
    if policy is None:
        return BLOCKS if outcome == FAIL else NOTHING
    return policy.effect(outcome)


def case_standing(outcomes: Iterable[tuple[str, str]]) -> str:
    """How a case reads, from its metrics' (outcome, effect) pairs.

    ``fail`` when a failure blocks the release, ``inconclusive`` when an inconclusive gate
    holds it, ``warned`` when some gate failed or was inconclusive under a warning policy,
    ``pass`` when it judged something and all passed, ``recorded`` when it judged nothing.
    """
    pairs = list(outcomes)
    effects = {effect for _, effect in pairs}
    if BLOCKS in effects:
        return FAIL
    if HOLDS in effects:
        return INCONCLUSIVE
    if WARNS in effects:
        return WARNED
    return PASS if any(outcome == PASS for outcome, _ in pairs) else RECORDED


@dataclass(frozen=True)
class Decision:
    """The run's decision and what it rests on: case standings counted, and why it is not GO."""

    verdict: str
    counts: Mapping[str, int]
    reasons: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def headline(self) -> str:
        """``NO-GO: 74 cases: 2 fail, 1 inconclusive, 55 pass, 16 recorded``."""
        counted = ", ".join(f"{self.counts[name]} {name}" for name in (*CASE_STANDINGS, ERROR)
                            if self.counts.get(name))
        total = sum(self.counts.values())
        return f"{self.verdict}: {total} cases" + (f": {counted}" if counted else "")


def decide(standings: Iterable[str], *, complete: bool = True, incomplete_reason: str = "") -> Decision:
    """The run's decision from its cases' standings (``case_standing``, or ``error``)."""
    counts = Counter(standings)
    reasons = []
    if counts[FAIL] or counts[ERROR]:
        if counts[FAIL]:
            reasons.append(f"{counts[FAIL]} case(s) failed a gate whose tier stops the release")
        if counts[ERROR]:
            reasons.append(f"{counts[ERROR]} case(s) ended in an error before judging")
        verdict = NO_GO
    elif counts[INCONCLUSIVE] or not complete:
        if counts[INCONCLUSIVE]:
            reasons.append(f"{counts[INCONCLUSIVE]} case(s) inconclusive in a tier that holds the release")
        if not complete:
            reasons.append(f"the run did not finish ({incomplete_reason or 'incomplete'})")
        verdict = UNDECIDED
    else:
        verdict = GO
    return Decision(verdict, {name: count for name, count in counts.items() if count}, tuple(reasons))
