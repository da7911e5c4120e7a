"""Label stability under semantics-preserving perturbations (spec §1).

* IFR (instance flip rate): flipped (image, instance) pairs / all pairs, pooled.
* IV (image vulnerability): images with at least one flipped instance / images.
* Correctness transitions R→W, W→R, R→R, W→W over instances with ground truth.
* Clean accuracy.

Each proportion carries a Wilson 95 % interval. Note that IFR pools instances that
share an image, so its Wilson interval (which assumes independent trials) is narrower
than a cluster-aware one would be; IV, with one trial per image, has no such caveat.

Details also carry what a release comparison needs: ``kind`` ("proportion"), ``better``
("lower" for flip rates, "higher" for accuracy) and ``units``, the 0/1 outcome of every
trial keyed by what identifies it across releases (``"sample|variant"`` for IFR, the
sample id for IV and accuracy), so that two runs can be compared with a paired test on
the same units instead of two independent intervals.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

from vlmgate.metrics.stats import wilson_interval
from vlmgate.records import MetricResult

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


def proportion(name: str, successes: int, n: int, **details: object) -> MetricResult:
    """A proportion with its Wilson interval (``nan`` value when ``n == 0``)."""
    low, high = wilson_interval(successes, n)
    value = successes / n if n else float("nan")
    return MetricResult(name, value, low, high, n, {"count": successes, "kind": "proportion", **details})


def _worst_samples(pairs: Sequence[FlipPair]) -> list[dict[str, object]]:
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
    return [
        {
            "sample": sample_id,
            "flips": flips,
            "of": len(group),
            "clean": group[0].clean_prediction,
            "flipped_by": [p.variant_label for p in group if p.flipped],
        }
        for flips, sample_id, group in ranked[:WORST]
        if flips
    ]


def instance_flip_rate(pairs: Sequence[FlipPair]) -> MetricResult:
    """IFR = #{flipped instances} / #{instances}, with the worst samples in details."""
    flips = sum(p.flipped for p in pairs)
    units = {f"{p.sample_id}|{p.variant_label}": int(p.flipped) for p in pairs}
    return proportion("ifr", flips, len(pairs), better="lower", units=units, worst=_worst_samples(pairs))


def image_vulnerability(pairs: Sequence[FlipPair]) -> MetricResult:
    """IV = #{images with >= 1 flipped instance} / #{images}."""
    any_flip: dict[str, bool] = {}
    for pair in pairs:
        any_flip[pair.sample_id] = any_flip.get(pair.sample_id, False) or pair.flipped
    units = {sample_id: int(flipped) for sample_id, flipped in any_flip.items()}
    return proportion("iv", sum(any_flip.values()), len(any_flip), better="lower", units=units,
                      worst=_worst_samples(pairs))


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

    With ``sample_ids`` the details carry per-sample ``units`` (1 = correct) for paired
    comparisons between releases.
    """
    judged = [(p, a) for p, a in zip(predictions, answers) if a is not None]
    extra: dict[str, object] = {}
    if sample_ids is not None:
        extra["units"] = {s: int(p == a) for s, p, a in zip(sample_ids, predictions, answers) if a is not None}
    return proportion(name, sum(p == a for p, a in judged), len(judged), better="higher", **extra)


def flip_rate_results(pairs: Sequence[FlipPair]) -> list[MetricResult]:
    """IFR (primary) and IV for one family, IFR's details carrying the transitions."""
    ifr = instance_flip_rate(pairs)
    ifr = MetricResult(ifr.name, ifr.value, ifr.ci_low, ifr.ci_high, ifr.n,
                       {**ifr.details, "transitions": correctness_transitions(pairs)})
    return [ifr, image_vulnerability(pairs)]
