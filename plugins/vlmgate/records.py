"""The records that flow through vlmgate: samples, variants, observations, results.

They are frozen dataclasses so that a record can be hashed, cached and shared between
tests without one test mutating what another sees. Everything a report stores is
JSON-safe (params, details); images stay ``PIL.Image`` objects only inside ``Sample``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

if TYPE_CHECKING:  # PIL is light, but the plugin module must not need it at import
    from PIL.Image import Image


def _freeze(mapping: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((mapping or {}).items()))


@dataclass(frozen=True)
class Sample:
    """One benchmark item. ``id`` is stable across releases: report diffs join on it.

    ``options`` are the answer texts; ``labels`` their letters (``A``, ``B``, ...) for
    multiple choice, or the option texts themselves for yes/no items. ``answer`` is the
    index of the correct option, or ``None`` when the benchmark has no ground truth.
    A ``prompt`` sample is an input prepared elsewhere (a cross-modal form): ``question``
    is the whole prompt and ``options`` the scored continuations, used verbatim.
    ``cluster`` is a key the benchmark declares for items that are not independent (a
    video or document id): samples sharing it are one cluster in every clustered statistic,
    as samples sharing an image are without it (``benchmarks.image_groups``).
    ``shown_labels`` replaces the letters of a multiple-choice item where a prompt-side
    perturbation shows other labels (``1``, ``2``, ...; ``perturbations.option_labels``); a
    benchmark leaves it empty, and the prompt and the scored continuations read ``labels``.
    ``twins`` are pictures of the same item in other forms, by name, from a paired set
    (``scam:``: the photo with its attack word, ``attack``, beside the no-word photo that is
    ``image``); a family that shows a twin declares it (``PerturbationFamily.needs_twins``).
    ``more_images`` are an interleaved item's second and later pictures (BLINK, MuirBench,
    MMMU): ``images`` is the whole ordered list, and the question places picture k where it
    writes ``<image k>`` (``vlmgate.interleaving``); an item with one picture leaves it empty.
    """

    id: str
    image: "Image"
    question: str
    options: tuple[str, ...]
    answer: int | None = None
    kind: str = "mcq"  # "mcq" | "yesno" | "prompt"
    hint: str | None = None
    meta: tuple[tuple[str, Any], ...] = ()
    cluster: str | None = None
    shown_labels: tuple[str, ...] = ()
    twins: tuple[tuple[str, "Image"], ...] = ()
    more_images: tuple["Image", ...] = ()

    def __post_init__(self) -> None:
        if self.shown_labels and len(self.shown_labels) != len(self.options):
            raise ValueError(f"sample {self.id!r}: {len(self.shown_labels)} shown labels for "
                             f"{len(self.options)} options; give one label per option")

    @property
    def labels(self) -> tuple[str, ...]:
        if self.shown_labels:
            return self.shown_labels
        if self.kind == "yesno":
            return self.options
        return tuple(chr(ord("A") + i) for i in range(len(self.options)))

    @property
    def meta_dict(self) -> dict[str, Any]:
        return dict(self.meta)

    def twin(self, name: str) -> "Image":
        """The picture of the same item in form ``name`` (``twins``), or a ``KeyError`` naming the forms it has."""
        for form, image in self.twins:
            if form == name:
                return image
        held = ", ".join(form for form, _ in self.twins) or "none"
        raise KeyError(f"sample {self.id!r} has no {name!r} twin (it has: {held})")

    @property
    def images(self) -> tuple["Image", ...]:
        """Every picture of the item, in order: ``image`` first, then ``more_images``."""
        return (self.image, *self.more_images)

    def with_image(self, image: "Image") -> "Sample":
        return replace(self, image=image)

    def with_images(self, images: "Sequence[Image]") -> "Sample":
        """The sample showing ``images`` (as many as it holds) in place of its own."""
        if len(images) != len(self.images):
            raise ValueError(f"sample {self.id!r}: {len(images)} images for an item of {len(self.images)}")
        return replace(self, image=images[0], more_images=tuple(images[1:]))


@dataclass(frozen=True)
class Variant:
    """One perturbation instance: a family, its JSON-safe parameters and an intensity.

    ``params`` is stored as a sorted tuple of pairs so that variants hash and compare by
    value; ``intensity`` is on the common [0, 1] scale (0 = identity).
    """

    family: str
    params: tuple[tuple[str, Any], ...] = ()
    intensity: float = 0.0

    @classmethod
    def of(cls, family: str, intensity: float = 0.0, **params: Any) -> "Variant":
        return cls(family, _freeze(params), float(intensity))

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def label(self) -> str:
        """A compact, stable description used in messages and cache keys."""
        return f"{self.family}({json.dumps(self.param_dict, sort_keys=True)})"


#: The family of unperturbed inputs: ``CLEAN`` itself, and clean variants whose params
#: name a prepared presentation (a cross-modal form), which the engine shows as they are.
CLEAN_FAMILY = "clean"
CLEAN = Variant(CLEAN_FAMILY)


#: The prediction of an input the model gave no readable answer to (a served reply that
#: names no option, a first token outside the options, an empty response): never an option.
NO_ANSWER = -1


@dataclass(frozen=True)
class Observation:
    """What a model did on one (sample, variant) input.

    ``scores`` are the summed option log-likelihoods in option order; ``prediction`` is
    their argmax (the first on ties, so a tie never depends on float noise ordering), or
    ``NO_ANSWER`` when the adapter could not read an answer (its scores are then all NaN).
    Metrics say how they count an unanswered input; none reads it as an option.
    """

    sample_id: str
    variant: Variant
    scores: tuple[float, ...]
    prediction: int

    @property
    def answered(self) -> bool:
        return self.prediction != NO_ANSWER

    @property
    def margin(self) -> float:
        """Best minus runner-up score: how close the prediction was to flipping (NaN unanswered)."""
        if not self.answered:
            return float("nan")
        ordered = sorted(self.scores, reverse=True)
        return ordered[0] - ordered[1] if len(ordered) > 1 else float("inf")


#: A metric's kind picks the paired test between releases: a ``proportion`` (a 0/1 outcome
#: per unit: flip rates, accuracy) is compared with an exact McNemar test, a ``mean`` (a
#: real-valued outcome per unit: drift, RAS) with a paired bootstrap; either, when its units
#: nest in samples (``MetricResult.clusters``), with a sign-flip test over the samples.
PROPORTION = "proportion"
MEAN = "mean"
KINDS = (PROPORTION, MEAN)
#: Which way a change of the metric is an improvement.
LOWER = "lower"
HIGHER = "higher"
DIRECTIONS = (LOWER, HIGHER)


def interval_text(low: float, high: float) -> str:
    """``[0, 1]``, ``[0, inf)``, ``(-inf, inf)``: an inclusive range as a reader writes it."""
    left = "(-inf" if math.isinf(low) else f"[{low:g}"
    right = "inf)" if math.isinf(high) else f"{high:g}]"
    return f"{left}, {right}"


def is_worse(better: str, delta: float) -> bool:
    """Whether a change by ``delta`` (after - before) goes the worse way."""
    return delta > 0 if better == LOWER else delta < 0


@dataclass(frozen=True)
class MetricSpec:
    """What a suite declares about one of its metrics: the contract its results honour.

    ``kind`` and ``better`` say how a change between releases is tested and read;
    ``lowest`` / ``highest`` bound the values the metric can take, so a threshold file
    cannot set a limit that could never pass or never fail; ``unit`` says what one outcome
    in a result's ``units`` is (an ``instance``: one perturbed copy of an image; a
    ``sample``; an ``item`` of a text benchmark; a ``case``), and ``cluster`` what such
    units nest in (``sample`` for the instances of one image; ``None`` when the units are
    independent), which intervals and paired tests must respect.
    """

    name: str
    description: str
    kind: str
    better: str
    lowest: float = 0.0
    highest: float = 1.0
    unit: str = "sample"
    cluster: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name!r}: kind {self.kind!r} must be one of {', '.join(KINDS)}")
        if self.better not in DIRECTIONS:
            raise ValueError(f"metric {self.name!r}: better {self.better!r} must be one of {', '.join(DIRECTIONS)}")
        if not self.lowest < self.highest:
            raise ValueError(f"metric {self.name!r}: lowest {self.lowest} must be below highest {self.highest}")

    def describe_range(self) -> str:
        """``[0, 1]``, ``[0, inf)``, ``(-inf, inf)``: the interval the metric lives in."""
        return interval_text(self.lowest, self.highest)


@dataclass(frozen=True)
class WorstSample:
    """One of the samples a perturbation hurt most: what a failure message lists first.

    ``flips`` of ``of`` instances changed the answer; ``clean`` is the clean prediction
    (option index, ``None`` when unknown); ``flipped_by`` the labels of the variants that
    changed it and ``flipped_to`` the prediction under each (same order; empty in records
    written before it was stored); ``verb`` says what ``flips`` counts where it is not a
    flip (``"followed the named option"`` for an overlay's follow rate).

    An index means nothing to the engineer reading a failure, so the suite that has the
    sample adds what was asked: ``question``, the ``options`` as the model scored them
    (``"B. green"``, ``"Yes"``) and the correct ``answer`` (an index; ``None`` without
    ground truth). ``option(i)`` is the text to print for an index.
    """

    sample: str
    flips: int
    of: int
    clean: int | None = None
    flipped_by: tuple[str, ...] = ()
    flipped_to: tuple[int, ...] = ()
    verb: str = "flipped"
    question: str | None = None
    options: tuple[str, ...] = ()
    answer: int | None = None

    def option(self, index: int | None) -> str:
        """The option text at ``index`` (``"B. green"``), the bare index where no text is known."""
        if index is None:
            return "?"
        if index == NO_ANSWER:
            return "no answer"
        return self.options[index] if 0 <= index < len(self.options) else f"option {index}"


@dataclass(frozen=True)
class MetricResult:
    """A metric value with its 95 % interval, the count it rests on, and what a comparison needs.

    ``kind`` and ``better`` come from the metric's ``MetricSpec`` (the suite declares them);
    ``units`` maps what identifies a trial across releases (``"sample|variant"``, a sample
    id) to its outcome (0/1 for a proportion, a number for a mean), so two runs can be
    compared with a paired test on the same units; ``clusters`` maps a unit to the sample
    it nests in where units are instances of one image (empty when every unit is its own
    cluster); ``count`` is a proportion's number of successes; ``worst`` the samples it hurt
    most. ``details`` carries the metric's other JSON-safe extras (transitions, curves,
    per-severity figures) for messages and reports.
    """

    name: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    details: Mapping[str, Any] = field(default_factory=dict)
    kind: str = MEAN
    better: str = LOWER
    units: Mapping[str, float] = field(default_factory=dict)
    clusters: Mapping[str, str] = field(default_factory=dict)
    count: int | None = None
    worst: tuple[WorstSample, ...] = ()

    def __hash__(self) -> int:  # details is a dict; identity is the scalar part
        return hash((self.name, self.value, self.ci_low, self.ci_high, self.n))

    @property
    def n_clusters(self) -> int:
        """Independent units the value rests on: distinct clusters, else ``n``."""
        return len(set(self.clusters.values())) if self.clusters else self.n


#: A judged metric's standing. ``PASS``: its whole 95 % interval lies within every limit;
#: ``FAIL``: past one (or, in strict mode, the value is); ``INCONCLUSIVE``: the interval
#: straddles a limit, so the run's data cannot say which side the model is on (evidence of
#: nothing, never a pass); ``RECORDED``: no limit judges it (none is set, or the one set
#: cannot fail): a measurement, not a gate.
PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
RECORDED = "recorded"
OUTCOMES = (PASS, FAIL, INCONCLUSIVE, RECORDED)
#: Worst first: a case stands as its worst metric does.
_SEVERITY = {FAIL: 0, INCONCLUSIVE: 1, PASS: 2, RECORDED: 3}


def worst_outcome(outcomes: "Iterable[str]") -> str:
    """The standing of several judged metrics together: fail > inconclusive > pass > recorded
    (``RECORDED`` when there are none: nothing was judged)."""
    return min(outcomes, key=_SEVERITY.__getitem__, default=RECORDED)


@dataclass(frozen=True)
class Verdict:
    """The outcome of judging one ``MetricResult`` against one threshold.

    ``outcome``: ``PASS``, ``FAIL``, ``INCONCLUSIVE`` or ``RECORDED`` (see ``OUTCOMES``).
    ``inert``: the limit could not have failed at this run's n whatever the model did
    (``vlmgate.sensitivity``); the verdict says so rather than read as a pass.
    ``failed_limits``: which of its limits failed, ``VALUE_LIMIT`` (the value's own bound)
    and / or ``CHANGE_LIMIT`` (its change since the baseline), so a report can tell a gate
    past its own limit from one failed by its change alone without reading the message.
    ``needed_n``: for an inconclusive verdict, about how many independent units (images
    where the units nest in images) would make the interval clear the limit at the observed
    value (``None``: not inconclusive, or the value sits on the limit and no n would).
    """

    outcome: str
    message: str
    inert: bool = False
    failed_limits: tuple[str, ...] = ()
    needed_n: int | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"verdict outcome {self.outcome!r} must be one of {', '.join(OUTCOMES)}")

    @property
    def passed(self) -> bool:
        """Nothing stands against the release: judged within its limits, or only recorded."""
        return self.outcome in (PASS, RECORDED)


#: The limits a verdict can fail (``Verdict.failed_limits``).
VALUE_LIMIT = "value"
CHANGE_LIMIT = "change"
LIMIT_KINDS = (VALUE_LIMIT, CHANGE_LIMIT)


@dataclass(frozen=True)
class TextItem:
    """A text-only benchmark item, the unit of the cross-modal suite (spec §3).

    The same content is shown as text, as an image and mixed, so the item keeps its
    parts apart: ``stem`` (the context or equations: rendered in the mixed form) and
    ``query`` (the question asked about it: text in the mixed form; empty when the stem
    is the whole question). ``kind`` is ``"mcq"`` (``options`` given, ``answer`` the
    correct option's index, judged by option log-likelihood) or ``"numeric"`` (no
    options, ``answer`` the integer value, judged by greedy generation and parsing).
    """

    id: str
    stem: str
    query: str
    options: tuple[str, ...]
    answer: int
    kind: str = "mcq"  # "mcq" | "numeric"
    meta: tuple[tuple[str, Any], ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(chr(ord("A") + i) for i in range(len(self.options)))
