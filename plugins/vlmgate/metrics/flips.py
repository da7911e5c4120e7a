"""Label stability under semantics-preserving perturbations (spec §1).

* IFR (instance flip rate): flipped (image, instance) pairs / all pairs, pooled.
* IV (image vulnerability): images with at least one flipped instance / images.
* Correctness transitions R→W, W→R, R→R, W→W over instances with ground truth.
* Clean accuracy.

Each proportion carries a Wilson 95 % interval. Note that IFR pools instances that
share an image, so its Wilson interval (which assumes independent trials) is narrower
than a cluster-aware one would be; IV, with one trial per image, has no such caveat.

Results also carry what a release comparison needs (``MetricResult`` fields): ``units``,
the 0/1 outcome of every trial keyed by what identifies it across releases
(``"sample|variant"`` for IFR, the sample id for IV and accuracy), with IFR's
``clusters`` (the sample each instance belongs to), so that two runs can be compared with
a paired test on the same units instead of two independent intervals.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from vlmgate.metrics.stats import wilson_interval
from vlmgate.records import HIGHER, LOWER, PROPORTION, MetricResult, WorstSample

if TYPE_CHECKING:
    from vlmgate.engine import FamilyObservations

#: How many of the most-flipped samples a result lists for failure messages.
WORST = 5


@dataclass(frozen=True)
class FlipPair:
    """One perturbed instance next to its clean counterpart."""

    sample_id: str
    variant_label: str
    clean_prediction: int
    perturbed_prediction: int
    answer: int | None = None

    @property
    def flipped(self) -> bool:
        return self.perturbed_prediction != self.clean_prediction


def proportion(name: str, successes: int, n: int, *, better: str, units: Mapping[str, float] | None = None,
               clusters: Mapping[str, str] | None = None, worst: Sequence[WorstSample] = (),
               details: Mapping[str, Any] | None = None) -> MetricResult:
    """A proportion with its Wilson interval (``nan`` value when ``n == 0``)."""
    low, high = wilson_interval(successes, n)
    value = successes / n if n else float("nan")
    return MetricResult(name, value, low, high, n, dict(details or {}), kind=PROPORTION, better=better,
                        units=dict(units or {}), clusters=dict(clusters or {}), count=successes, worst=tuple(worst))


def _worst_samples(pairs: Sequence[FlipPair]) -> tuple[WorstSample, ...]:
    by_sample: dict[str, list[FlipPair]] = defaultdict(list)
    for pair in pairs:
        by_sample[pair.sample_id].append(pair)
    ranked = sorted(
        (
            (sum(p.flipped for p in group), sample_id, group)
            for sample_id, group in by_sample.items()
        ),
        key=lambda item: (-item[0], item[1]),
    )
    return tuple(
        WorstSample(sample_id, flips, len(group), group[0].clean_prediction,
                    tuple(p.variant_label for p in group if p.flipped))
        for flips, sample_id, group in ranked[:WORST]
        if flips
    )


def instance_flip_rate(pairs: Sequence[FlipPair]) -> MetricResult:
    """IFR = #{flipped instances} / #{instances}, with the worst samples."""
    flips = sum(p.flipped for p in pairs)
    units = {f"{p.sample_id}|{p.variant_label}": int(p.flipped) for p in pairs}
    clusters = {f"{p.sample_id}|{p.variant_label}": p.sample_id for p in pairs}
    return proportion("ifr", flips, len(pairs), better=LOWER, units=units, clusters=clusters,
                      worst=_worst_samples(pairs))


def image_vulnerability(pairs: Sequence[FlipPair]) -> MetricResult:
    """IV = #{images with >= 1 flipped instance} / #{images}."""
    any_flip: dict[str, bool] = {}
    for pair in pairs:
        any_flip[pair.sample_id] = any_flip.get(pair.sample_id, False) or pair.flipped
    units = {sample_id: int(flipped) for sample_id, flipped in any_flip.items()}
    return proportion("iv", sum(any_flip.values()), len(any_flip), better=LOWER, units=units,
                      worst=_worst_samples(pairs))


def flip_pairs(observations: "FamilyObservations") -> list[FlipPair]:
    """Every perturbed instance of a family next to its sample's clean prediction and answer."""
    return [
        FlipPair(sample_id, obs.variant.label, observations.clean[sample_id].prediction, obs.prediction, answer)
        for sample_id, answer in observations.answers.items()
        for obs in observations.perturbed[sample_id]
    ]


def correctness_transitions(pairs: Iterable[FlipPair]) -> dict[str, int]:
    """Counts of R→W, W→R, R→R, W→W over instances whose sample has ground truth."""
    counts = {"R->W": 0, "W->R": 0, "R->R": 0, "W->W": 0}
    for pair in pairs:
        if pair.answer is None:
            continue
        before = "R" if pair.clean_prediction == pair.answer else "W"
        after = "R" if pair.perturbed_prediction == pair.answer else "W"
        counts[f"{before}->{after}"] += 1
    return counts


def accuracy(predictions: Sequence[int], answers: Sequence[int | None], name: str = "accuracy",
             sample_ids: Sequence[str] | None = None) -> MetricResult:
    """Share of samples with ground truth whose prediction is the answer.

    With ``sample_ids`` the result carries per-sample ``units`` (1 = correct) for paired
    comparisons between releases.
    """
    judged = [(p, a) for p, a in zip(predictions, answers) if a is not None]
    units = None
    if sample_ids is not None:
        units = {s: int(p == a) for s, p, a in zip(sample_ids, predictions, answers) if a is not None}
    return proportion(name, sum(p == a for p, a in judged), len(judged), better=HIGHER, units=units)


def flip_rate_results(pairs: Sequence[FlipPair]) -> list[MetricResult]:
    """IFR (primary) and IV for one family, IFR's details carrying the transitions."""
    ifr = instance_flip_rate(pairs)
    ifr = replace(ifr, details={**ifr.details, "transitions": correctness_transitions(pairs)})
    return [ifr, image_vulnerability(pairs)]
