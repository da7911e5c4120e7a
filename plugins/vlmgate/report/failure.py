"""What a failed gate says, so that the engineer reading it can act without opening the data.

A value and a limit say *that* a gate failed. Acting on it needs how much it rests on
(``3 of 130 instances flipped, on 1 of 50 images``: one odd image or a broad failure?),
how answers moved (``R→W`` hurts accuracy, ``W→R`` does not), what the control did
(an overlay that flips as often as the empty box is not read), the samples it hurt most
with the question and the answers as texts, and the commands that run the case again and
search its family (``report.reproduce``). The pytest failure message (``vlmgate.gate``)
and the HTML report's failure section print the same lines from the same fields, which
a run's ``MetricResult`` and a record's ``MetricRecord`` both carry (``Judged``).
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

from vlmgate.records import PROPORTION, WorstSample

#: Worst samples a message lists per metric (a result keeps more for the report).
SHOWN_WORST = 3
#: Perturbed answers shown per worst sample.
SHOWN_ANSWERS = 3
#: ``details["transitions"]`` keys, as written and as shown.
_TRANSITIONS = (("R->W", "R→W"), ("W->R", "W→R"), ("R->R", "R→R"), ("W->W", "W→W"))


class Judged(Protocol):
    """The fields of a judged metric these lines read (``MetricResult`` and ``MetricRecord`` have them).

    Read-only properties: both are frozen dataclasses.
    """

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def n(self) -> int: ...
    @property
    def count(self) -> int | None: ...
    @property
    def units(self) -> Mapping[str, float]: ...
    @property
    def clusters(self) -> Mapping[str, str]: ...
    @property
    def details(self) -> Mapping[str, Any]: ...
    @property
    def worst(self) -> tuple[WorstSample, ...]: ...


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def count_line(metric: Judged, unit: str) -> str | None:
    """``3 of 130 instances flipped, on 1 of 50 images``: what a proportion counts, and over how many
    images it falls where its units nest in images; ``None`` for a mean or an uncounted value."""
    if metric.kind != PROPORTION or metric.count is None:
        return None
    verb = f" {metric.worst[0].verb}" if metric.worst else ""
    line = f"{metric.count} of {_plural(metric.n, unit)}{verb}"
    if metric.clusters:
        images = set(metric.clusters.values())
        hit = {metric.clusters[key] for key, outcome in metric.units.items() if outcome and key in metric.clusters}
        line += f", on {len(hit)} of {_plural(len(images), 'image')}"
    return line


def transitions_line(metric: Judged) -> str | None:
    """``transitions: R→W 3, W→R 0, R→R 101, W→W 26`` over instances with ground truth."""
    counts = metric.details.get("transitions")
    if not isinstance(counts, Mapping):
        return None
    return "transitions: " + ", ".join(f"{shown} {counts.get(key, 0)}" for key, shown in _TRANSITIONS)


def control_line(metric: Judged) -> str | None:
    """The comparison with the metric's control (``details["control"]``: an overlay's empty box)."""
    control = metric.details.get("control")
    return f"control ({metric.name}): {control}" if isinstance(control, str) else None


def worst_sample_lines(worst: WorstSample) -> list[str]:
    """One worst sample: its count, then the question, the correct, clean and perturbed answers as texts."""
    lines = [f"{worst.sample}: {worst.flips} of {_plural(worst.of, 'instance')} {worst.verb}"]
    if worst.question is not None:
        lines.append(f"  question: {worst.question}")
    if worst.answer is not None:
        lines.append(f"  correct: {worst.option(worst.answer)}")
    if worst.clean is not None:
        lines.append(f"  clean: {worst.option(worst.clean)}")
    perturbed = perturbed_text(worst)
    if perturbed is not None:
        lines.append(f"  {'perturbed' if worst.flipped_to else 'under'}: {perturbed}")
    return lines


def perturbed_text(worst: WorstSample) -> str | None:
    """The answers the sample moved to and under which variants (``None``: none recorded).

    A record written before the perturbed answers were kept has the variants alone.
    """
    if worst.flipped_to:
        moved = [f"{worst.option(to)} under {label}"
                 for to, label in zip(worst.flipped_to[:SHOWN_ANSWERS], worst.flipped_by)]
        return "; ".join(moved) + ("; ..." if len(worst.flipped_to) > SHOWN_ANSWERS else "")
    if worst.flipped_by:
        return ", ".join(worst.flipped_by[:SHOWN_ANSWERS]) + (", ..." if len(worst.flipped_by) > SHOWN_ANSWERS else "")
    return None


def worst_blocks(metrics: Sequence[Judged]) -> list[str]:
    """``worst samples (<metric>):`` and its samples, per metric; a list already shown is not repeated."""
    lines: list[str] = []
    shown: set[tuple[str, ...]] = set()
    for metric in metrics:
        samples = tuple(w.sample for w in metric.worst[:SHOWN_WORST])
        if not samples or samples in shown:
            continue
        shown.add(samples)
        lines.append(f"worst samples ({metric.name}):")
        lines.extend(f"  {line}" for worst in metric.worst[:SHOWN_WORST] for line in worst_sample_lines(worst))
    return lines


def evidence_lines(metric: Judged, unit: str) -> list[str]:
    """The counts and transitions that follow a failed metric's verdict."""
    return [line for line in (count_line(metric, unit), transitions_line(metric)) if line]
