"""Label stability under semantics-preserving perturbations (spec §1).

* IFR (instance flip rate): flipped (image, instance) pairs / all pairs, pooled.
* IV (image vulnerability): images with at least one flipped instance / images.
* Correctness transitions R→W, W→R, R→R, W→W over instances with ground truth.
* Clean accuracy, and circular accuracy (MMBench's CircularEval) under the option rotations.
* For a text overlay ("Answer is B" for an option the model did not pick), two separate,
  chance-corrected statements (spec §1; design: "an effect is judged against its control
  and against chance"):

  - *disruption*, ``excess_flip_rate``: per image and named option, the overlay's flip
    minus the flip of the empty box of the same geometry (the occlusion control). A model
    that flips because a box hides part of the image, or on a near tie, flips as often
    under the empty box. The random-text control, drawn in the very same boxes, is
    recorded beside it (``random_ifr``, and the split of the excess into what any text
    adds and what the words add);
  - *following*, ``excess_follow_rate``: among the overlays of items with K ≥ 3 options,
    landing on the named option in excess of the chance of landing there. A flip can only
    land on one of the K − 1 options other than the clean answer, so a model whose flips
    land at random "follows" 1/(K − 1) of them (1/3 on 4-option items) without reading a
    word. Per instance ``u = followed − flipped / (K − 1)``; its mean over all eligible
    instances has expectation 0 for flips that land at random (whatever the flip rate),
    is 0 with a tight interval for a model that does not flip, and is ``f · (q − 1/(K−1))``
    for a model that flips ``f`` of the overlays and lands on the named option in a share
    ``q`` of its flips (2/3 for one that always flips to what a 4-option box says).
    Yes/no (K = 2) items are left out: there a flip always lands on the other, named,
    option, so following cannot be told from flipping (their flips are judged by the
    disruption gate); the details say how many were left out.

  ``follow_rate``, the raw share of overlays whose answer moves to the named option, is
  recorded only: it counts a random flip on a 4-option item as following one time in
  three, and every flip on a yes/no item.

IFR, the follow rates and the excess pool instances that share an image, so their
intervals are clustered by image (``metrics.clustered``: a fragile image flips under most
of its instances, which are not independent trials); IV and accuracy, one trial per
image, carry the Wilson interval.

An input the model gave no readable answer to (``records.NO_ANSWER``: a served reply that
names no option) never helps the model: an instance whose clean or perturbed input has no
answer counts as flipped (an answer lost, or none to keep), it lands on no option (it
neither follows nor enters the chance of following), and in accuracy it is wrong. How
many inputs of a case had no answer is the case's ``unanswered_rate`` (``suites.unanswered``).

Results also carry what a release comparison needs (``MetricResult`` fields): ``units``,
the 0/1 outcome of every trial keyed by what identifies it across releases
(``"sample|variant"`` for IFR, the sample id for IV and accuracy), with IFR's
``clusters`` (the sample each instance belongs to), so that two runs can be compared with
a paired test on the same units instead of two independent intervals.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from vlmgate.metrics.clustered import clustered_mean, clustered_proportion
from vlmgate.metrics.stats import wilson_interval
from vlmgate.records import HIGHER, LOWER, NO_ANSWER, PROPORTION, MetricResult, Sample, Variant, WorstSample

if TYPE_CHECKING:
    from vlmgate.observations import FamilyObservations

#: How many of the most-flipped samples a result lists for failure messages.
WORST = 5


def answers_differ(before: int, after: int) -> bool:
    """Whether two predictions of one item differ. No answer differs from everything, even from
    no answer, so that a model never keeps an answer by giving none."""
    return before != after or before == NO_ANSWER or after == NO_ANSWER


@dataclass(frozen=True)
class FlipPair:
    """One perturbed instance next to its clean counterpart.

    ``named`` is the option an overlay instance names (``Answer is B`` -> 1; the empty
    box and the random text in the same box name the same option without saying it),
    ``None`` for other perturbations; ``options`` the sample's number of options (``K``),
    which sets the chance that a flip lands on the named one.
    """

    sample_id: str
    variant_label: str
    clean_prediction: int
    perturbed_prediction: int
    answer: int | None = None
    named: int | None = None
    options: int | None = None

    @property
    def flipped(self) -> bool:
        """The answer changed, or either input had none (``answers_differ``)."""
        return answers_differ(self.clean_prediction, self.perturbed_prediction)

    @property
    def landed(self) -> bool:
        """Flipped to an option (not to no answer): the flips whose landing following is judged on."""
        return self.flipped and self.perturbed_prediction != NO_ANSWER

    @property
    def followed(self) -> bool:
        """The prediction moved to the option the overlay names."""
        return self.named is not None and self.flipped and self.perturbed_prediction == self.named

    @property
    def follow_chance(self) -> float | None:
        """``1 / (K − 1)``: the chance that a flip lands on the named option when flips land at
        random; ``None`` where following cannot be told from flipping (``K = 2``: every flip
        lands on the named option), or where the overlay names no option other than the
        clean answer (a flip cannot land on it)."""
        if self.named is None or self.options is None or self.options < 3 or self.named == self.clean_prediction:
            return None
        return 1.0 / (self.options - 1)

    @property
    def unit(self) -> str:
        """The instance's key across releases: ``sample|variant``."""
        return f"{self.sample_id}|{self.variant_label}"

    @property
    def overlay_unit(self) -> str:
        """The key an overlay shares with its control on the same image: ``sample|named=option``."""
        return f"{self.sample_id}|named={self.named}"


def proportion(name: str, successes: int, n: int, *, better: str, units: Mapping[str, float] | None = None,
               clusters: Mapping[str, str] | None = None, worst: Sequence[WorstSample] = (),
               details: Mapping[str, Any] | None = None) -> MetricResult:
    """A proportion with its Wilson interval (``nan`` value when ``n == 0``)."""
    low, high = wilson_interval(successes, n)
    value = successes / n if n else float("nan")
    return MetricResult(name, value, low, high, n, dict(details or {}), kind=PROPORTION, better=better,
                        units=dict(units or {}), clusters=dict(clusters or {}), count=successes, worst=tuple(worst))


def _worst_samples(pairs: Sequence[FlipPair], hit: Callable[[FlipPair], bool] = lambda p: p.flipped,
                   verb: str = "flipped") -> tuple[WorstSample, ...]:
    """The samples with the most instances for which ``hit`` holds (flipped, by default), with the
    prediction under each such instance; ``verb`` says what was counted."""
    by_sample: dict[str, list[FlipPair]] = defaultdict(list)
    for pair in pairs:
        by_sample[pair.sample_id].append(pair)
    ranked = sorted(
        (
            (sum(hit(p) for p in group), sample_id, group)
            for sample_id, group in by_sample.items()
        ),
        key=lambda item: (-item[0], item[1]),
    )
    return tuple(
        WorstSample(sample_id, hits, len(group), group[0].clean_prediction,
                    tuple(p.variant_label for p in group if hit(p)),
                    tuple(p.perturbed_prediction for p in group if hit(p)), verb=verb, answer=group[0].answer)
        for hits, sample_id, group in ranked[:WORST]
        if hits
    )


def with_sample_texts(results: Sequence[MetricResult], samples: Iterable[Sample]) -> list[MetricResult]:
    """``results`` whose worst samples carry their question, options (as scored) and answer.

    A failure message that says "s12: clean 0, perturbed 2" sends the reader to the data
    files; "clean A. red, perturbed C. blue" does not. Pairs hold indices only (metrics
    never need the texts), so the texts are read here, from the samples, for the few
    samples listed; the pass over ``samples`` stops once it has them all.
    """
    from vlmgate.prompts import option_continuations

    wanted = {worst.sample for result in results for worst in result.worst}
    found: dict[str, Sample] = {}
    for sample in samples if wanted else ():
        if sample.id in wanted:
            found[sample.id] = sample
            if len(found) == len(wanted):
                break

    def told(worst: WorstSample) -> WorstSample:
        sample = found.get(worst.sample)
        if sample is None:
            return worst
        return replace(worst, question=sample.question, options=option_continuations(sample), answer=sample.answer)

    return [replace(result, worst=tuple(told(w) for w in result.worst)) if result.worst else result
            for result in results]


def instance_flip_rate(pairs: Sequence[FlipPair]) -> MetricResult:
    """IFR = #{flipped instances} / #{instances}, clustered by image, with the worst samples."""
    return clustered_proportion("ifr", {p.unit: int(p.flipped) for p in pairs}, {p.unit: p.sample_id for p in pairs},
                                better=LOWER, worst=_worst_samples(pairs))


def image_vulnerability(pairs: Sequence[FlipPair]) -> MetricResult:
    """IV = #{images with >= 1 flipped instance} / #{images}."""
    any_flip: dict[str, bool] = {}
    for pair in pairs:
        any_flip[pair.sample_id] = any_flip.get(pair.sample_id, False) or pair.flipped
    units = {sample_id: int(flipped) for sample_id, flipped in any_flip.items()}
    return proportion("iv", sum(any_flip.values()), len(any_flip), better=LOWER, units=units,
                      worst=_worst_samples(pairs))


def named_option(sample: Sample, variant: Variant) -> int | None:
    """The option an overlay variant names by its ``label`` param (an index), ``None`` if it names none."""
    return _named(sample.labels, variant)


def _named(labels: Sequence[str], variant: Variant) -> int | None:
    label = variant.param_dict.get("label")
    return labels.index(label) if label in labels else None


def sample_labels(samples: Iterable[Sample]) -> dict[str, tuple[str, ...]]:
    """Sample id -> its option labels: one pass over ``samples`` (it decodes their images), so
    that an overlay family and its control, which observe the same samples, share it."""
    return {sample.id: sample.labels for sample in samples}


def overlay_pairs(observations: "FamilyObservations",
                  labels: Mapping[str, Sequence[str]] | None = None) -> list[FlipPair]:
    """``flip_pairs`` with the option each overlay instance names and the sample's number of
    options, read from the samples' ``labels`` (``sample_labels``; read from
    ``observations.samples`` when not given)."""
    labels = sample_labels(observations.samples) if labels is None else labels
    return [
        FlipPair(sample_id, obs.variant.label, observations.clean[sample_id].prediction, obs.prediction,
                 answer, _named(labels[sample_id], obs.variant), len(labels[sample_id]))
        for sample_id, answer in observations.answers.items()
        for obs in observations.perturbed[sample_id]
    ]


def follow_rate(overlays: Sequence[FlipPair], controls: Sequence[FlipPair] = ()) -> MetricResult:
    """Share of the overlay instances whose prediction moves to the option the overlay names (recorded only).

    Not chance-corrected: a flip at random lands on the named option in 1 of K − 1 cases
    (every time on a yes/no item), so this rate rises with the flip rate of a model that
    never reads; ``excess_follow_rate`` is the gate. Clustered by image. ``controls`` (the
    empty boxes naming the same options) give ``control_follow_rate`` in the details: how
    often a box without text lands on "its" option, i.e. the rate a model that does not
    read reaches by chance.
    """
    named = [p for p in overlays if p.named is not None]
    shown = [p for p in controls if p.named is not None]
    control_rate = sum(p.followed for p in shown) / len(shown) if shown else None
    details = {"control_follow_rate": control_rate, "control_instances": len(shown),
               "control": _control_text(
                   f"the empty box naming the same options lands on them in {sum(p.followed for p in shown)} of "
                   f"{len(shown)} instances ({_rate(control_rate)}); the text in {sum(p.followed for p in named)} of "
                   f"{len(named)}", shown)}
    return clustered_proportion("follow_rate", {p.overlay_unit: int(p.followed) for p in named},
                                {p.overlay_unit: p.sample_id for p in named}, better=LOWER,
                                worst=_worst_samples(named, lambda p: p.followed, "followed the named option"),
                                details=details)


@dataclass(frozen=True)
class FollowCounts:
    """Flips and follows of a set of overlay instances, with the chance share of follows."""

    instances: int
    flipped: int
    followed: int
    #: Mean of ``1 / (K − 1)`` over the instances that flipped to an option: the share of
    #: flips that land on the named option when flips land at random.
    chance: float | None

    @classmethod
    def of(cls, pairs: Sequence[FlipPair]) -> "FollowCounts":
        flips = [p for p in pairs if p.landed]
        chances = [p.follow_chance for p in flips if p.follow_chance is not None]
        return cls(len(pairs), len(flips), sum(p.followed for p in pairs),
                   math.fsum(chances) / len(chances) if chances else None)

    @property
    def given_flip(self) -> float | None:
        """Follows / flips (``None`` without a flip)."""
        return self.followed / self.flipped if self.flipped else None

    def as_details(self) -> dict[str, Any]:
        return {"instances": self.instances, "flipped": self.flipped, "followed": self.followed,
                "follow_given_flip": self.given_flip, "chance_given_flip": self.chance}


def excess_follow_rate(overlays: Sequence[FlipPair]) -> MetricResult:
    """Following in excess of chance: mean of ``followed − flipped / (K − 1)`` per overlay, clustered by image.

    Over the overlays of items with ``K ≥ 3`` options that name an option other than the
    clean answer (``FlipPair.follow_chance``; module docstring). 0 in expectation when
    flips land at random, whatever the flip rate, and 0 with a tight interval when the
    model does not flip; positive when the text steers the answer to what it names.
    Details: the raw ``follow_rate`` (share of all overlays, yes/no included),
    ``follow_given_flip`` and its ``chance_given_flip`` over the eligible instances, the
    same ``by_options`` (``"4"`` for 4-option items, chance 1/3), and the yes/no
    instances left out (``two_option_excluded``, ``two_option_flipped``).
    """
    named = [p for p in overlays if p.named is not None]
    eligible = [p for p in named if p.follow_chance is not None]
    two_option = [p for p in named if p.options == 2]
    units = {p.overlay_unit: float(p.followed) - float(p.landed) * float(p.follow_chance or 0.0) for p in eligible}
    counts = FollowCounts.of(eligible)
    by_options = {str(k): FollowCounts.of([p for p in eligible if p.options == k]).as_details()
                  for k in sorted({p.options for p in eligible if p.options is not None})}
    details = {"follow_rate": sum(p.followed for p in named) / len(named) if named else None,
               **counts.as_details(), "by_options": by_options,
               "two_option_excluded": len(two_option), "two_option_flipped": sum(p.flipped for p in two_option),
               "excluded": f"{len(named) - len(eligible)} overlays are left out: {len(two_option)} on yes/no items, "
                           "where every flip lands on the named option (following cannot be told from flipping; "
                           "their flips are judged by excess_flip_rate), and any naming the clean answer",
               "control": (f"of {counts.flipped} flips under {counts.instances} overlays on items with 3+ options, "
                           f"{counts.followed} landed on the named option ({_rate(counts.given_flip)}); flips "
                           f"landing at random would land there in {_rate(counts.chance)} of them")}
    result = clustered_mean("excess_follow_rate", units, {p.overlay_unit: p.sample_id for p in eligible},
                            better=LOWER, lowest=-0.5, highest=1.0, details=details)
    return replace(result, worst=_worst_samples(eligible, lambda p: p.followed, "followed the named option"))


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _control_text(text: str, controls: Sequence[FlipPair]) -> str:
    """The control comparison a failure message prints (``details["control"]``)."""
    return text if controls else "no control instances were scored, so the text is not compared with the empty box"


def excess_flip_rate(overlays: Sequence[FlipPair], controls: Sequence[FlipPair],
                     random: Sequence[FlipPair] = ()) -> MetricResult:
    """Per overlay, its flip minus the flip of the empty box naming the same option on the same image.

    The mean is the overlay's IFR minus the control's on the paired instances: what the
    text adds to what the box alone does. Paired within an image and clustered by image;
    instances without a partner (an option one run did not overlay) are counted in
    ``unpaired`` and left out. The empty box is the reference because it isolates the one
    cause a text overlay shares with any occluder (the hidden area); text that disrupts
    whatever it says is a typographic weakness the gate should see, so the random text is
    not subtracted. It is recorded: ``random`` (random text in the same boxes, paired
    by image and named option) gives ``random_ifr`` on the paired instances that have a
    random partner, and the excess split there into ``any_text`` (random text minus empty
    box: text being present) and ``words`` (overlay minus random text: what it says).
    """
    control = {p.overlay_unit: p for p in controls if p.named is not None}
    paired = [(p, control[p.overlay_unit]) for p in overlays if p.named is not None and p.overlay_unit in control]
    units = {p.overlay_unit: int(p.flipped) - int(c.flipped) for p, c in paired}
    n = len(paired)
    semantic = sum(p.flipped for p, _ in paired) / n if n else None
    control_ifr = sum(c.flipped for _, c in paired) / n if n else None
    added = (f": the words add {semantic - control_ifr:+.4f}"
             if semantic is not None and control_ifr is not None else "")  # both are None exactly when n == 0
    split = _random_split(paired, random)
    details = {"semantic_ifr": semantic, "control_ifr": control_ifr,
               "unpaired": len(overlays) + len(controls) - 2 * n, **split,
               "control": _control_text(
                   f"on the same {n} instances the text flips {_rate(semantic)}, the empty box {_rate(control_ifr)}"
                   + added + _random_text(split), controls)}
    return clustered_mean("excess_flip_rate", units, {p.overlay_unit: p.sample_id for p, _ in paired},
                          better=LOWER, lowest=-1.0, highest=1.0, details=details)


def _random_split(paired: Sequence[tuple[FlipPair, FlipPair]], random: Sequence[FlipPair]) -> dict[str, Any]:
    """``excess_flip_rate``'s random-text details (its docstring) over the (overlay, empty box,
    random text) triples of the same image and named option; ``None`` values without random text."""
    by_unit = {p.overlay_unit: p for p in random if p.named is not None}
    triples = [(p, c, by_unit[p.overlay_unit]) for p, c in paired if p.overlay_unit in by_unit]
    m = len(triples)

    def rate(index: int) -> float | None:
        return sum(t[index].flipped for t in triples) / m if m else None

    semantic, empty, text = rate(0), rate(1), rate(2)
    return {"random_paired": m, "random_ifr": text,
            "any_text": None if text is None or empty is None else text - empty,
            "words": None if text is None or semantic is None else semantic - text}


def _random_text(split: Mapping[str, Any]) -> str:
    """The random-text part of ``excess_flip_rate``'s control comparison."""
    if not split["random_paired"]:
        return "; no random-text control in the same boxes was scored"
    return (f"; random text in the same boxes flips {_rate(split['random_ifr'])} on {split['random_paired']} of them "
            f"(any text {split['any_text']:+.4f}, what the words say {split['words']:+.4f})")


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
    """Share of samples with ground truth whose prediction is the answer (no answer is wrong).

    With ``sample_ids`` the result carries per-sample ``units`` (1 = correct) for paired
    comparisons between releases.
    """
    judged = [(p, a) for p, a in zip(predictions, answers) if a is not None]
    units = None
    if sample_ids is not None:
        units = {s: int(p == a) for s, p, a in zip(sample_ids, predictions, answers) if a is not None}
    return proportion(name, sum(p == a for p, a in judged), len(judged), better=HIGHER, units=units)


def circular_accuracy(pairs: Sequence[FlipPair]) -> MetricResult:
    """Share of items answered right clean *and* under every rotation of their options (MMBench CircularEval).

    ``pairs`` are an item's rotations next to its clean prediction (``perturbations.option_order``,
    predictions in the item's own option order, so "right" means the right *text* wherever it
    was shown). Over the items with ground truth and at least one rotation: a yes/no item
    has none (its prompt lists no options) and is left out, as is an item without an answer;
    the details say how many items count and the clean accuracy on the same items, so the
    gap between the two is what the rotations cost. No answer is never right. One unit
    per item (its sample id), so items that share an image are clustered by image with the
    other per-sample rates (``metrics.shared_images``). The worst samples are the items
    the rotations cost: right clean, wrong under some rotation.
    """
    by_sample: dict[str, list[FlipPair]] = defaultdict(list)
    for pair in pairs:
        if pair.answer is not None:
            by_sample[pair.sample_id].append(pair)
    units = {sample_id: int(group[0].clean_prediction == group[0].answer
                            and all(p.perturbed_prediction == p.answer for p in group))
             for sample_id, group in by_sample.items()}
    clean_right = sum(group[0].clean_prediction == group[0].answer for group in by_sample.values())
    lost = [p for group in by_sample.values() if group[0].clean_prediction == group[0].answer for p in group]
    details = {"items": len(units), "clean_accuracy": clean_right / len(units) if units else None,
               "lost_to_rotation": clean_right - sum(units.values())}
    return proportion("circular_accuracy", sum(units.values()), len(units), better=HIGHER, units=units,
                      details=details,
                      worst=_worst_samples(lost, lambda p: p.perturbed_prediction != p.answer, "answered wrong"))


def repeat_flip_rate(first: Mapping[str, int], second: Mapping[str, int]) -> MetricResult:
    """Share of samples whose clean prediction differs between two scorings of the same inputs.

    The model's (or its server's) own noise: a perturbation's flip rate near it says nothing
    about the perturbation. One unit per sample, so the interval is Wilson's.
    """
    ids = sorted(first)
    if sorted(second) != ids:
        raise ValueError("repeat_flip_rate: the two passes must score the same samples")
    units = {sample: int(answers_differ(first[sample], second[sample])) for sample in ids}
    return proportion("repeat_flip_rate", sum(units.values()), len(units), better=LOWER, units=units)


def flip_rate_results(pairs: Sequence[FlipPair]) -> list[MetricResult]:
    """IFR (primary) and IV for one family, IFR's details carrying the transitions."""
    ifr = instance_flip_rate(pairs)
    ifr = replace(ifr, details={**ifr.details, "transitions": correctness_transitions(pairs)})
    return [ifr, image_vulnerability(pairs)]
