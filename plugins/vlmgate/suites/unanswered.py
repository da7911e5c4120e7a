"""Inputs a model gave no readable answer to: counted per case, listed, and gated.

A served model's reply that names no option, a first token whose top log-probs hold none
of the options, and a response with no choices are no answer (``records.NO_ANSWER``,
``models.served.tiers``), never option A. Every metric counts one against the model (a
flip, a wrong answer; ``metrics.flips``), so a few cannot make a bad model pass; but a case
whose inputs mostly got no answer measures the reply format (a prompt the model does not
follow, a chat template, ``answer_tokens`` too short), not the model's robustness, and its
other gates are no evidence either way.

So every suite that judges answers declares ``UNANSWERED_RATE`` among its metrics, and
``Suite.run`` adds it to the case's results: the share of the distinct inputs the case read
(``Engine.reading``: clean, perturbed and control inputs alike, whichever case scored them)
that got no answer, clustered by image, with the count and the first inputs listed with
why and what the server said. It is added where an input can go unanswered: for an adapter
that reads answers from replies (``scoring`` other than ``exact``), or when one did. An
``hf:`` model's option log-likelihoods always name an option, so its cases do not carry it.
A suite that parses generated replies itself (the cross-modal suite's numeric answers)
returns its own ``unanswered_result`` over them, and ``Suite.run`` then adds none.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Mapping, Sequence

from vlmgate.records import LOWER, PROPORTION, MetricResult, MetricSpec

if TYPE_CHECKING:
    from vlmgate.records import Observation, Variant

UNANSWERED_RATE = MetricSpec(
    "unanswered_rate", "share of the case's inputs the model gave no readable answer to (a reply naming no "
    "option, no option among the top log-probs, an empty response); each counts against the model in every "
    "other metric", PROPORTION, LOWER, unit="input", cluster="sample")

#: Inputs without an answer a result lists (the count goes on past it).
LISTED = 5


def may_go_unanswered(model: object, observations: Mapping[tuple[str, "Variant"], "Observation"]) -> bool:
    """Whether a case's results carry ``unanswered_rate`` (see the module docstring)."""
    return (getattr(model, "scoring", "exact") != "exact"
            or any(not o.answered for o in observations.values()))


@dataclass(frozen=True)
class Input:
    """One input of a case: its unit key, the image it shows, and whether it got an answer."""

    unit: str
    sample: str
    variant: str
    answered: bool
    #: Why it got none and what the model said, where known (``None``: read from the cache).
    why: str | None = None
    said: str | None = None


def unanswered_rate(observations: Mapping[tuple[str, "Variant"], "Observation"], model: object) -> MetricResult:
    """The share of ``observations`` without an answer (``unanswered_result``).

    ``model``'s ``unread(sample_id, variant_label)`` (the served adapter's) says why and what
    the server said; an input read from the observation cache has no reply to show.
    """
    unread = getattr(model, "unread", None)
    inputs = []
    for o in sorted(observations.values(), key=lambda o: (o.sample_id, o.variant.label)):
        said = unread(o.sample_id, o.variant.label) if callable(unread) and not o.answered else None
        inputs.append(Input(f"{o.sample_id}|{o.variant.label}", o.sample_id, o.variant.label, o.answered,
                            None if said is None else said.why, None if said is None else said.said))
    result = unanswered_result(inputs)
    reasoned = getattr(model, "reasoning_chars", None)
    if not callable(reasoned):
        return result
    chars = [c for o in observations.values() if (c := reasoned(o.sample_id, o.variant.label))]
    # The served adapter cuts a reasoning span off each reply before reading it: how many of the
    # case's replies reasoned, and for how long, is part of what the case measured.
    reasoning = {"delimiters": getattr(model, "reasoning_delimiters", None), "stripped": len(chars),
                 "inputs": len(inputs), "mean_chars": sum(chars) / len(chars) if chars else 0.0,
                 "max_chars": max(chars, default=0)}
    explanation = list(result.details.get("explanation", []))
    if chars:
        explanation.append(f"{len(chars)} of {len(inputs)} replies reasoned before answering "
                           f"({reasoning['delimiters']}, mean {reasoning['mean_chars']:.0f} characters, at most "
                           f"{reasoning['max_chars']}); the reasoning was cut off before the reply was read")
    return replace(result, details={**result.details, "reasoning": reasoning, "explanation": explanation})


def unanswered_result(inputs: Sequence[Input]) -> MetricResult:
    """``unanswered_rate`` over ``inputs``, clustered by sample, with the count and the first listed."""
    from vlmgate.metrics.clustered import clustered_proportion

    missing = [i for i in inputs if not i.answered]
    listed = [{"sample": i.sample, "variant": i.variant, "why": i.why, "said": i.said} for i in missing[:LISTED]]
    explanation = []
    if missing:
        explanation.append(f"{len(missing)} of {len(inputs)} inputs got no readable answer; each counts against "
                           "the model (a wrong answer, a changed one). The first:")
        explanation.extend(f"  sample {e['sample']!r} under {e['variant']}: "
                           + (f"{e['why']} ({e['said']!r})" if e["why"] else "no answer (read from the cache)")
                           for e in listed)
        explanation.append("check the prompt format and the chat template the model is given, and the reply "
                           "length (answer_tokens= on a served model) for replies cut short")
    return clustered_proportion(
        UNANSWERED_RATE.name, {i.unit: int(not i.answered) for i in inputs}, {i.unit: i.sample for i in inputs},
        better=LOWER, details={"unanswered": len(missing), "inputs": len(inputs), "examples": listed,
                               "explanation": explanation})


__all__ = ["LISTED", "UNANSWERED_RATE", "Input", "may_go_unanswered", "unanswered_rate", "unanswered_result"]
