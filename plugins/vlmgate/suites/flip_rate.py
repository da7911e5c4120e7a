"""The flip-rate suite: clean accuracy, IFR/IV per family, and the pooled "any" row.

Cases: ``clean`` (accuracy of unperturbed predictions), one per perturbation family
tagged ``geometric``, ``textoverlay`` or ``control``, and ``any`` (IFR pooled over every
instance of every family that is not a control, IV over the union), as in spec §1's
summary table.
"""

from __future__ import annotations

from typing import ClassVar

from vlmgate.cases import CLEAN_FAMILY
from vlmgate.perturbations.base import CONTROL, GEOMETRIC, TEXTOVERLAY
from vlmgate.records import HIGHER, LOWER, PROPORTION, MetricResult, MetricSpec
from vlmgate.suites.base import CaseContext, Suite

ANY_FAMILY = "any"


class FlipRateSuite(Suite):
    name = "flip_rate"
    description = "label stability: instance flip rate (IFR) and image vulnerability (IV)"
    metrics = (
        MetricSpec("ifr", "instance flip rate under a perturbation family", PROPORTION, LOWER,
                   unit="instance", cluster="sample"),
        MetricSpec("iv", "image vulnerability (share of images with any flip)", PROPORTION, LOWER),
        MetricSpec("accuracy", "clean accuracy on the benchmark", PROPORTION, HIGHER),
    )
    takes = frozenset({GEOMETRIC, TEXTOVERLAY, CONTROL})
    leading: ClassVar[tuple[str, ...]] = (CLEAN_FAMILY,)
    trailing: ClassVar[tuple[str, ...]] = (ANY_FAMILY,)

    def evaluate(self, case: CaseContext) -> list[MetricResult]:
        from vlmgate.metrics.flips import accuracy, flip_pairs, flip_rate_results
        from vlmgate.perturbations.base import get_family

        engine = case.engine
        if case.family == CLEAN_FAMILY:
            clean = engine.clean()
            samples = engine.samples()
            return [accuracy([clean[s.id].prediction for s in samples], [s.answer for s in samples],
                             sample_ids=[s.id for s in samples])]
        if case.family == ANY_FAMILY:
            names = [name for name in self.perturbation_families() if not get_family(name).diagnostic]
        else:
            names = [case.family]
        pairs = [pair for name in names for pair in flip_pairs(engine.family(name))]
        return flip_rate_results(pairs)

