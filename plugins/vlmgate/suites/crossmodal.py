"""The cross-modal suite: the same item as text, as an image and mixed (spec §3, REST / REST+).

Cases: one per model × text benchmark × render style (``vlmgate.render.RENDER_STYLES``:
{sans, mono, oblique} × {200, 100, 50} DPI and ``coloured_dpi200``), ids
``{model}-{benchmark}-{style}``; each style is also a pytest marker. For every item of
the benchmark (the first ``--vlmgate-limit``) the model answers the text form once (it
does not depend on the style, so every case shares it) and the image and mixed forms
rendered in the case's style, and transcribes the image form (the OCR control).

Answering: a multiple-choice item is scored by option log-likelihood (no parsing); a
numeric item is answered by greedy generation of at most ``NUMERIC_TOKENS`` tokens and
``modalities.parse_integer``; an unparsable reply is wrong and listed in the details.
The OCR transcript is generated greedily with room for the reference's length.

Metrics (``metrics.crossmodal``), the primary first: ``rer`` (gate ``min``), ``cfr``
(gate ``max``), ``mmc``, ``accuracy_{text,image,mixed}``, ``cer`` and ``ocr_exact``, then
the same consistency metrics on the OCR-correct subset (``rer_ocr``, ...).

An image benchmark (``bundled:shapes``) has no text items to render: its cases are
skipped with the reason, not failed. Memoisation: one ``CrossModalObserver`` per engine
(i.e. per model × benchmark in a session) keeps every answer, so the ten style cases
score the text form once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable, Sequence
from weakref import WeakKeyDictionary

import numpy as np

from vlmgate.benchmarks.base import TextBenchmark, require_text_benchmark
from vlmgate.engine import Engine, observation_from_scores
from vlmgate.metrics.crossmodal import ItemOutcome, character_error_rate, crossmodal_results
from vlmgate.modalities import MODALITIES, continuations, full_text, item_form, ocr_form, parse_integer
from vlmgate.models.base import GenerateRequest, ScoreRequest, require_generation
from vlmgate.records import MetricResult, TextItem, Variant
from vlmgate.render import RENDER_STYLES, RenderStyle, get_style
from vlmgate.seeding import rng_for

#: Longest generated answer of a numeric item (an integer and a few words around it).
NUMERIC_TOKENS = 8
#: Tokens an OCR transcript may use beyond one per reference character (a byte-level
#: tokenizer needs at most one token per character, so the reference always fits).
OCR_SLACK = 8
#: Hard cap on an OCR transcript, whatever the reference length.
OCR_MAX_TOKENS = 512


@dataclass(frozen=True)
class Reply:
    """What the model gave for one form: the answer (``None`` = unparsable) and its text."""

    answer: int | None
    text: str = ""


class CrossModalObserver:
    """Answers and transcripts of one model on one text benchmark, each computed once."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.benchmark: TextBenchmark = require_text_benchmark(engine.benchmark)
        self._items: tuple[TextItem, ...] | None = None
        self._replies: dict[tuple[str, str, str], Reply] = {}
        self._transcripts: dict[tuple[str, str], str] = {}

    def items(self) -> tuple[TextItem, ...]:
        if self._items is None:
            chosen = []
            for item in self.benchmark.items():
                if self.engine.limit is not None and len(chosen) >= self.engine.limit:
                    break
                chosen.append(item)
            self._items = tuple(chosen)
        return self._items

    def _batched(self, todo: Sequence[TextItem], run: Callable[[Sequence[TextItem]], None]) -> None:
        size = self.engine.batch_size
        for start in range(0, len(todo), size):
            run(todo[start:start + size])

    def replies(self, modality: str, style: RenderStyle) -> dict[str, Reply]:
        """Every item's reply to its ``modality`` form (the text form ignores ``style``)."""
        style_key = "" if modality == "text" else style.name
        items = self.items()
        todo = [item for item in items if (item.id, modality, style_key) not in self._replies]
        model = self.engine.model

        def score(batch: Sequence[TextItem]) -> None:
            forms = [item_form(item, modality, style) for item in batch]
            scores = model.score([ScoreRequest(f.image, f.prompt, continuations(item)) for f, item in zip(forms, batch)])
            for item, row in zip(batch, scores):
                variant = Variant.of("crossmodal", modality=modality, style=style_key)
                observed = observation_from_scores(item.id, variant, np.asarray(row, dtype=np.float64), model.spec)
                self._replies[(item.id, modality, style_key)] = Reply(observed.prediction)

        def generate(batch: Sequence[TextItem]) -> None:
            forms = [item_form(item, modality, style) for item in batch]
            texts = require_generation(model, "a numeric cross-modal item").generate(
                [GenerateRequest(f.image, f.prompt, NUMERIC_TOKENS) for f in forms])
            for item, text in zip(batch, texts):
                self._replies[(item.id, modality, style_key)] = Reply(parse_integer(text), text)

        self._batched([item for item in todo if item.kind == "mcq"], score)
        self._batched([item for item in todo if item.kind != "mcq"], generate)
        return {item.id: self._replies[(item.id, modality, style_key)] for item in items}

    def transcripts(self, style: RenderStyle) -> dict[str, str]:
        """Every item's OCR transcript of its image form in ``style``."""
        items = self.items()
        todo = [item for item in items if (item.id, style.name) not in self._transcripts]
        model = require_generation(self.engine.model, "the cross-modal OCR control")

        def transcribe(batch: Sequence[TextItem]) -> None:
            requests = []
            for item in batch:
                form = ocr_form(item, style)
                budget = min(OCR_MAX_TOKENS, len(full_text(item)) + OCR_SLACK)
                requests.append(GenerateRequest(form.image, form.prompt, budget))
            for item, text in zip(batch, model.generate(requests)):
                self._transcripts[(item.id, style.name)] = text

        self._batched(todo, transcribe)
        return {item.id: self._transcripts[(item.id, style.name)] for item in items}

    def outcomes(self, style: RenderStyle) -> list[ItemOutcome]:
        replies = [self.replies(modality, style) for modality in MODALITIES]
        transcripts = self.transcripts(style)
        outcomes = []
        for item in self.items():
            forms = [by_item[item.id] for by_item in replies]
            outcomes.append(ItemOutcome(
                item.id, tuple(r.answer for r in forms), item.answer,
                character_error_rate(full_text(item), transcripts[item.id]), tuple(r.text for r in forms)))
        return outcomes


_OBSERVERS: "WeakKeyDictionary[Engine, CrossModalObserver]" = WeakKeyDictionary()


def observer_for(engine: Engine) -> CrossModalObserver:
    """The engine's observer (created on first use; dies with the engine)."""
    if engine not in _OBSERVERS:
        _OBSERVERS[engine] = CrossModalObserver(engine)
    return _OBSERVERS[engine]


class CrossModalSuite:
    name = "crossmodal"

    def families(self) -> list[str]:
        return list(RENDER_STYLES)

    def evaluate(self, engine: Engine, family: str) -> list[MetricResult]:
        style = get_style(family)
        observer = observer_for(engine)
        outcomes = observer.outcomes(style)
        results = crossmodal_results(outcomes, rng=rng_for(engine.seed, "bootstrap", "cer", family))
        shared = {"style": style.name, "style_description": style.description,
                  "kinds": dict(Counter(item.kind for item in observer.items())),
                  "dropped_by_loader": dict(observer.benchmark.dropped),
                  "scoring": "mcq: option log-likelihood; numeric: greedy generation, first integer parsed"}
        return [replace(result, details={**result.details, **shared}) for result in results]


SUITE = CrossModalSuite()
