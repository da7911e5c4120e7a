"""Power of every release gate against the number of images it judges.

For each gate with a shipped limit: the probability that a model twice over the limit FAILS
(power) and that a well-behaved model PASSES (not INCONCLUSIVE) at 50-300 images, the same
for ``shapes-v1``'s measured values, and the smallest image count at which both reach 0.8.
The models, the meaning of "twice over", the data structure per gate and the modelling
assumptions are those of ``tests/test_power.py`` (its docstring), whose ``DEFAULT_IMAGES``
this table justifies; every verdict is ``Threshold.check`` with the shipped limit. Seeded:
the same command prints the same table. Usage::

    python perf/gate_power.py [--runs 2000] [--seed 20240611]

Columns: ``P(fail|twice)`` and ``P(pass|well)`` at each n, ``P(pass|v1)`` at ``shapes-v1``'s
value, ``n*`` the smallest n of the search grid (20-300, then 350-2000 in steps of 50 beyond
the bundled benchmark's 300) where both estimates reach 0.8 plus two Monte Carlo standard
errors (0.818 at 2,000 runs), so that the table *shows* >= 0.8 rather than an estimate that
sampling noise put there; ``n*(v1)`` the same with ``shapes-v1`` as the well-behaved model.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_power import (  # a test module, importable once tests/ is on the path
    BENCHMARK_SIZE,
    DEFAULT_IMAGES,
    GATES,
    GRID,
    REQUIRED,
    SEARCH_GRID,
    SEED,
    Gate,
    limit_of,
    limit_text,
    rates,
)

#: Beyond the bundled benchmark: how many images a gate would need where 300 do not do.
BEYOND = tuple(range(BENCHMARK_SIZE + 50, 2001, 50))


class Cells:
    """P(FAIL) and P(PASS) per (role, n), each computed once."""

    def __init__(self, gate: Gate, runs: int, seed: int) -> None:
        self.gate, self.runs, self.seed = gate, runs, seed
        self.cache: dict[tuple[str, int], tuple[float, float]] = {}

    def fail(self, role: str, images: int) -> float:
        return self._get(role, images)[0]

    def passes(self, role: str, images: int) -> float:
        return self._get(role, images)[1]

    def _get(self, role: str, images: int) -> tuple[float, float]:
        if (role, images) not in self.cache:
            self.cache[(role, images)] = rates(self.gate, role, images, self.runs, self.seed)
        return self.cache[(role, images)]

    @property
    def clears(self) -> float:
        """What an estimate must reach to show >= 0.8: 0.8 plus two Monte Carlo standard errors."""
        return REQUIRED + 2 * math.sqrt(REQUIRED * (1 - REQUIRED) / self.runs)

    def smallest(self, well: str) -> int | None:
        """The smallest n where power and P(pass | ``well``) both clear 0.8 (None: not up to 2000)."""
        return next((n for n in (*SEARCH_GRID, *BEYOND)
                     if self.fail("twice", n) >= self.clears and self.passes(well, n) >= self.clears), None)


def shown(n: int | None) -> str:
    if n is None:
        return f">{BEYOND[-1]}"
    return f"{n}" if n <= BENCHMARK_SIZE else f"{n} (>{BENCHMARK_SIZE})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="seeded runs per cell (default 2000)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"gate power: {args.runs} runs per cell, seed {args.seed}; limits from the shipped thresholds, "
          f"verdicts by Threshold.check; 'twice' and 'well' as in tests/test_power.py\n")
    columns = "".join(f"{n:>6}" for n in GRID)
    header = f"{'gate':<20}{'tier':<11}{'limit':<9}{'model':<23}{'value':>7}  {'n =':<14}{columns}"
    print(header)
    print("-" * len(header))
    summary = []
    for gate in GATES.values():
        cells = Cells(gate, args.runs, args.seed)
        limit = limit_of(gate)
        lines = (("twice", "P(fail|twice)", cells.fail), ("well", "P(pass|well)", cells.passes),
                 ("shapes_v1", "P(pass|v1)", cells.passes))
        for i, (role, label, read) in enumerate(lines):
            model = getattr(gate, role)
            lead = (f"{gate.name:<20}{limit.tier:<11}{limit_text(limit):<9}" if i == 0 else " " * 40)
            print(f"{lead}{role:<23}{model.value:>7.3f}  {label:<14}" + "".join(f"{read(role, n):>6.2f}" for n in GRID))
        best, best_v1 = cells.smallest("well"), cells.smallest("shapes_v1")
        summary.append((gate, limit, best, best_v1))
        print(" " * 40 + f"{gate.structure}; n* {shown(best)}, n*(v1) {shown(best_v1)}")
    clears = Cells(next(iter(GATES.values())), args.runs, args.seed).clears
    print(f"\nsmallest adequate n: power and P(pass | well-behaved) both >= 0.8, shown by estimates >= {clears:.3f} "
          f"(0.8 plus two Monte Carlo standard errors at {args.runs} runs); search grid "
          f"{', '.join(map(str, SEARCH_GRID))}, then {BEYOND[0]}-{BEYOND[-1]} by 50:")
    print(f"{'gate':<20}{'tier':<11}{'n*':>12}{'n*(v1)':>12}{'DEFAULT_IMAGES':>16}")
    for gate, limit, best, best_v1 in summary:
        print(f"{gate.name:<20}{limit.tier:<11}{shown(best):>12}{shown(best_v1):>12}{DEFAULT_IMAGES[gate.name]:>16}")
    print("\nmodels (tests/test_power.py):")
    for gate in GATES.values():
        print(f"  {gate.name}: twice {gate.twice.value:g}, {gate.twice.says}; well {gate.well.value:g}, "
              f"{gate.well.says}; shapes-v1 {gate.shapes_v1.value:g}, {gate.shapes_v1.says}")
    critical = [best for gate, limit, best, _ in summary if limit.tier == "critical"]
    every = [best for _, _, best, _ in summary]
    print(f"\nthe main job needs {shown(max(critical, key=lambda n: n or 10 ** 9))} images for every critical gate, "
          f"{shown(max(every, key=lambda n: n or 10 ** 9))} for every gate above "
          f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
