"""The flip-rate suite: clean accuracy, IFR/IV per family, and the pooled "any" row.

Cases: ``clean`` (accuracy of unperturbed predictions), one per perturbation family
whose ``suites`` include ``flip_rate``, and ``any`` (IFR pooled over every instance of
every non-diagnostic family, IV over the union), as in spec §1's summary table.
"""

from __future__ import annotations

from vlmgate.cases import CLEAN_FAMILY
from vlmgate.engine import Engine
from vlmgate.metrics.flips import accuracy, flip_rate_results
from vlmgate.perturbations.base import family_names, get_family
from vlmgate.records import MetricResult

ANY_FAMILY = "any"


class FlipRateSuite:
    name = "flip_rate"

    def perturbation_families(self) -> list[str]:
        return [name for name in family_names() if self.name in get_family(name).suites]

    def families(self) -> list[str]:
        return [CLEAN_FAMILY, *self.perturbation_families(), ANY_FAMILY]

    def evaluate(self, engine: Engine, family: str) -> list[MetricResult]:
        if family == CLEAN_FAMILY:
            clean = engine.clean()
            samples = engine.samples()
            return [accuracy([clean[s.id].prediction for s in samples], [s.answer for s in samples],
                             sample_ids=[s.id for s in samples])]
        if family == ANY_FAMILY:
            names = [n for n in self.perturbation_families() if not get_family(n).diagnostic]
        else:
            names = [family]
        pairs = [pair for name in names for pair in engine.family(name).flip_pairs()]
        return flip_rate_results(pairs)


SUITE = FlipRateSuite()
