"""The POPE suite: yes/no hallucination scores and drift to the prior (spec §1).

Reads the yes/no items of a benchmark (all of ``pope:PATH``; the yes/no subset of a
mixed one; a benchmark without any skips): items whose option texts are yes and no, in
whichever order and case their loader wrote them, which is also how each item's "yes"
is found (``metrics.pope.yes_no_columns``). Cases, ids ``{model}-{benchmark}-{family}``:

* ``clean``: ``pope_accuracy`` (primary), ``pope_precision``, ``pope_recall``,
  ``pope_f1``, ``pope_yes_rate`` of the clean predictions ("yes" is positive), with
  per-category values (``meta.category``: adversarial / popular / random) in the details;
* ``blank``: ``pope_margin_shift``, the mean change of ``s(Yes) − s(No)`` when the image
  is replaced by a white one — how far the model falls back on its prior answer when the
  evidence is gone (multi-instance families would average their instances per sample).

Nothing is gated by default: the metrics are recorded for reports and diffs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from vlmgate.cases import CLEAN_FAMILY
from vlmgate.errors import DataError, NotApplicable
from vlmgate.records import HIGHER, LOWER, MEAN, PROPORTION, MetricResult, MetricSpec, Sample
from vlmgate.suites.base import CaseContext, Suite
from vlmgate.suites.unanswered import UNANSWERED_RATE

if TYPE_CHECKING:
    from vlmgate.engine import Engine


def yes_no_samples(engine: "Engine") -> list[Sample]:
    """The answered items whose options are yes and no; a ``yesno`` item with other options is a ``DataError``."""
    from vlmgate.metrics.pope import yes_no_columns

    samples = []
    for sample in engine.samples():
        is_yes_no = yes_no_columns(sample.options) is not None
        if sample.kind == "yesno" and not is_yes_no:
            raise DataError(f"benchmark {engine.benchmark.spec}: yes/no sample {sample.id!r} has options "
                            f"{sample.options!r}; a yes/no item's options are Yes and No (in any order)")
        if is_yes_no and sample.answer is not None:
            samples.append(sample)
    if not samples:
        raise NotApplicable(f"benchmark {engine.benchmark.spec} has no answered yes/no items; the POPE suite "
                            "reads yes/no probes (e.g. pope:PATH)")
    return samples


class PopeSuite(Suite):
    name = "pope"
    description = "POPE yes/no probes: accuracy, precision, recall, F1, yes-rate; Yes-No margin shift on a blank image"
    metrics = (
        MetricSpec("pope_accuracy", "POPE yes/no accuracy on clean images", PROPORTION, HIGHER),
        MetricSpec("pope_precision", "POPE precision (yes = positive)", PROPORTION, HIGHER),
        MetricSpec("pope_recall", "POPE recall (yes = positive)", PROPORTION, HIGHER),
        MetricSpec("pope_f1", "POPE F1 (yes = positive)", MEAN, HIGHER),
        MetricSpec("pope_yes_rate", "share of POPE answers that are yes (a rise leans towards hallucinating)",
                   PROPORTION, LOWER),
        MetricSpec("pope_margin_shift", "mean change of s(Yes) - s(No) under a family (drift to the prior)", MEAN,
                   LOWER, lowest=float("-inf"), highest=float("inf")),
        UNANSWERED_RATE,
    )
    leading: ClassVar[tuple[str, ...]] = (CLEAN_FAMILY,)
    takes = frozenset({"blank"})
    judges_yes_no_items = True

    def requirements(self, family: str) -> frozenset[str]:
        """The margin shift reads option scores; the clean metrics only the answers."""
        return frozenset({"choices"}) if family == CLEAN_FAMILY else frozenset({"scores"})

    def evaluate(self, case: CaseContext) -> list[MetricResult]:
        from collections import defaultdict

        import numpy as np

        from vlmgate.metrics.pope import margin_shift, pope_metrics

        engine, family = case.engine, case.family
        samples = yes_no_samples(engine)
        clean = engine.clean()
        if family == CLEAN_FAMILY:
            results = pope_metrics([clean[s.id].prediction for s in samples], [s.answer for s in samples],
                                   options=[s.options for s in samples], rng=case.rng("bootstrap", "pope_f1"))
            by_category: dict[str, list[Sample]] = defaultdict(list)
            for sample in samples:
                by_category[str(sample.meta_dict.get("category", "all"))].append(sample)
            categories = {
                name: {r.name: r.value for r in pope_metrics([clean[s.id].prediction for s in group],
                                                             [s.answer for s in group],
                                                             options=[s.options for s in group], rng=None)}
                for name, group in sorted(by_category.items())
            }
            from dataclasses import replace

            return [replace(r, details={**r.details, "by_category": categories}) for r in results]
        observed = engine.family(family)
        kept = [s for s in samples if observed.perturbed[s.id]]
        perturbed = np.array([np.mean([obs.scores for obs in observed.perturbed[s.id]], axis=0) for s in kept])
        return [margin_shift(np.array([clean[s.id].scores for s in kept]), perturbed.reshape(len(kept), 2),
                             options=[s.options for s in kept], rng=case.rng("bootstrap", "pope_margin_shift", family),
                             sample_ids=[s.id for s in kept])]
