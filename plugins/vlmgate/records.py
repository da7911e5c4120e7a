"""The records that flow through vlmgate: samples, variants, observations, results.

They are frozen dataclasses so that a record can be hashed, cached and shared between
tests without one test mutating what another sees. Everything a report stores is
JSON-safe (params, details); images stay ``PIL.Image`` objects only inside ``Sample``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

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
    """

    id: str
    image: "Image"
    question: str
    options: tuple[str, ...]
    answer: int | None = None
    kind: str = "mcq"  # "mcq" | "yesno"
    hint: str | None = None
    meta: tuple[tuple[str, Any], ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        if self.kind == "yesno":
            return self.options
        return tuple(chr(ord("A") + i) for i in range(len(self.options)))

    @property
    def meta_dict(self) -> dict[str, Any]:
        return dict(self.meta)

    def with_image(self, image: "Image") -> "Sample":
        return Sample(self.id, image, self.question, self.options, self.answer,
                      self.kind, self.hint, self.meta)


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


CLEAN = Variant("clean")


@dataclass(frozen=True)
class Observation:
    """What a model did on one (sample, variant) input.

    ``scores`` are the summed option log-likelihoods in option order; ``prediction`` is
    their argmax (the first on ties, so a tie never depends on float noise ordering).
    """

    sample_id: str
    variant: Variant
    scores: tuple[float, ...]
    prediction: int

    @property
    def margin(self) -> float:
        """Best minus runner-up score: how close the prediction was to flipping."""
        ordered = sorted(self.scores, reverse=True)
        return ordered[0] - ordered[1] if len(ordered) > 1 else float("inf")


@dataclass(frozen=True)
class MetricResult:
    """A metric value with its 95 % interval, the count it rests on, and details.

    ``details`` carries JSON-safe extras (counts, worst samples) for messages and reports.
    """

    name: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    details: Mapping[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:  # details is a dict; identity is the scalar part
        return hash((self.name, self.value, self.ci_low, self.ci_high, self.n))


@dataclass(frozen=True)
class Verdict:
    """The outcome of judging one ``MetricResult`` against one threshold."""

    passed: bool
    message: str


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
