"""The cross-modal suite: the same item as text, as an image and mixed (spec §3, REST / REST+).

Cases: one per model × text benchmark × render style (``vlmgate.render.RENDER_STYLES``:
{sans, mono, oblique} × {200, 100, 50} DPI and ``coloured_dpi200``), ids
``{model}-{benchmark}-{style}``; each style is also a pytest marker. For every item of
the benchmark (the first ``--vlmgate-limit``) the model answers the text form (it does
not depend on the style, so every case shares it), the image and mixed forms rendered
in the case's style, and transcribes the image form (the OCR control).

Every input goes through the engine like any other suite's: a form is a prepared
sample (its rendered page, its prompt and continuations used verbatim) under a clean
variant naming the form and style, so answers and transcripts are memoised, cached on
disk, cut into canonical batches and dispatched locally or to Ray, and a run's record is
the same cold or warm, with any number of workers. Forms are rendered as the engine
consumes them, a window at a time, not held all at once.

Answering: a multiple-choice item is scored by option log-likelihood (no parsing); a
numeric item is answered by greedy generation of at most ``NUMERIC_TOKENS`` tokens and
``modalities.parse_integer``; an unparsable reply is wrong and listed in the details.
The OCR transcript is generated greedily with room for the reference's length.

Metrics (``metrics.crossmodal``), the primary first: ``rer`` (gate ``min``), ``cfr``
(gate ``max``), ``mmc``, ``accuracy_{text,image,mixed}``, ``cer`` and ``ocr_exact``, then
the same consistency metrics on the OCR-correct subset (``rer_ocr``, ...).

An image benchmark (``bundled:shapes``) has no text items to render: the suite takes
text benchmarks only (``benchmark_kinds``), so it has no case there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Sequence

from vlmgate.records import HIGHER, LOWER, MEAN, PROPORTION, MetricResult, MetricSpec, Sample, TextItem, Variant
from vlmgate.render import RENDER_STYLES
from vlmgate.suites.base import CaseContext, Suite
from vlmgate.suites.unanswered import UNANSWERED_RATE

if TYPE_CHECKING:
    from vlmgate.engine import Engine
    from vlmgate.metrics.crossmodal import ItemOutcome
    from vlmgate.render import RenderStyle

#: Longest generated answer of a numeric item (an integer and a few words around it).
NUMERIC_TOKENS = 8
#: Tokens an OCR transcript may use beyond one per reference character (a byte-level
#: tokenizer needs at most one token per character, so the reference always fits).
OCR_SLACK = 8
#: Hard cap on an OCR transcript, whatever the reference length.
OCR_MAX_TOKENS = 512
#: The OCR control's form name (beside the three modalities).
OCR_FORM = "ocr"


def _consistency_specs(suffix: str, subset: str) -> tuple[MetricSpec, ...]:
    return (
        MetricSpec(f"rer{suffix}", f"cross-modal render-equivalence rate: share of items answered alike as text, "
                   f"image and mixed{subset}", PROPORTION, HIGHER, unit="item"),
        MetricSpec(f"cfr{suffix}", f"cross-modal failure rate: share of items right in some form and wrong in "
                   f"another (of N_c){subset}", PROPORTION, LOWER, unit="item"),
        MetricSpec(f"mmc{suffix}", f"cross-modal coverage: share of items right in at least one form{subset}",
                   PROPORTION, HIGHER, unit="item"),
        *(MetricSpec(f"accuracy_{form}{suffix}", f"accuracy on the {form} form of the cross-modal items{subset}",
                     PROPORTION, HIGHER, unit="item") for form in ("text", "image", "mixed")),
    )


def form_variant(form: str, style: str, max_new_tokens: int | None = None) -> Variant:
    """The clean variant naming a prepared form (the text form has no style)."""
    params: dict[str, Any] = {"form": form, "style": style}
    if max_new_tokens is not None:
        params["max_new_tokens"] = max_new_tokens
    return Variant.of("clean", **params)


def form_sample(item: TextItem, variant: Variant, image, prompt: str, options: tuple[str, ...]) -> Sample:
    """A form of ``item`` as the engine scores it: the page, the prompt and continuations verbatim.

    Its id names the form (``item#form.style``): within an engine a sample id names one
    content, and the forms of one item are different inputs.
    """
    from vlmgate.prompts import PREPARED

    params = variant.param_dict
    sample_id = f"{item.id}#{params['form']}.{params['style']}" if params["style"] else f"{item.id}#{params['form']}"
    return Sample(sample_id, image, prompt, options, item.answer if options else None, kind=PREPARED)


class CrossModalSuite(Suite):
    name = "crossmodal"
    description = ("cross-modal consistency: the same text item as text, image and mixed (RER, CFR, MMC, OCR CER), "
                   "per render style")
    metrics = (
        *_consistency_specs("", ""),
        MetricSpec("cer", "mean character error rate of the model's OCR transcription of the image form", MEAN,
                   LOWER, lowest=0.0, highest=float("inf"), unit="item"),
        MetricSpec("ocr_exact", "share of items whose rendering the model transcribes exactly (CER = 0)",
                   PROPORTION, HIGHER, unit="item"),
        *_consistency_specs("_ocr", " (OCR-correct subset, CER = 0)"),
        UNANSWERED_RATE,
    )
    leading = tuple(RENDER_STYLES)
    pseudo_markers = {name: f"cross-modal render style: {style.description}" for name, style in RENDER_STYLES.items()}
    requires = frozenset({"choices", "generate"})
    benchmark_kinds = frozenset({"text"})

    def evaluate(self, case: CaseContext) -> list[MetricResult]:
        from collections import Counter
        from dataclasses import replace

        from vlmgate.benchmarks.base import require_text_benchmark
        from vlmgate.metrics.crossmodal import crossmodal_results
        from vlmgate.render import get_style

        benchmark = require_text_benchmark(case.engine.benchmark)
        items = _first(benchmark.items(), case.options.limit)
        style = get_style(case.family)
        outcomes = item_outcomes(case.engine, items, style)
        results = crossmodal_results(outcomes, rng=case.rng("bootstrap", "cer", case.family))
        if any(answer is None for outcome in outcomes for answer in outcome.answers):
            results.append(unanswered_forms(outcomes))
        shared = {"style": style.name, "style_description": style.description,
                  "kinds": dict(Counter(item.kind for item in items)),
                  "dropped_by_loader": dict(benchmark.dropped),
                  "scoring": "mcq: option log-likelihood; numeric: greedy generation, first integer parsed"}
        return [replace(result, details={**result.details, **shared}) for result in results]


def unanswered_forms(outcomes: Sequence["ItemOutcome"]) -> MetricResult:
    """``unanswered_rate`` over every item's three forms: a reply without an integer, or an MCQ form
    with no answer, is unanswered (it is already wrong and agrees with nothing)."""
    from vlmgate.modalities import MODALITIES
    from vlmgate.suites.unanswered import Input, unanswered_result

    return unanswered_result([
        Input(f"{o.item_id}|{modality}", o.item_id, modality, o.answers[m] is not None,
              None if o.answers[m] is not None else "the reply holds no answer", o.replies[m])
        for o in outcomes for m, modality in enumerate(MODALITIES)])


def _first(items: Iterator[TextItem], limit: int | None) -> tuple[TextItem, ...]:
    chosen: list[TextItem] = []
    for item in items:
        if limit is not None and len(chosen) >= limit:
            break
        chosen.append(item)
    return tuple(chosen)


def item_outcomes(engine: "Engine", items: Sequence[TextItem], style: "RenderStyle") -> list["ItemOutcome"]:
    """Each item's answers in the three forms and its OCR transcript, all through the engine."""
    from vlmgate.metrics.crossmodal import ItemOutcome, character_error_rate
    from vlmgate.modalities import MODALITIES, full_text

    answers = {modality: _answers(engine, items, modality, style) for modality in MODALITIES}
    transcripts = _transcripts(engine, items, style)
    return [
        ItemOutcome(item.id, tuple(answers[m][item.id][0] for m in MODALITIES), item.answer,
                    character_error_rate(full_text(item), transcripts[item.id]),
                    tuple(answers[m][item.id][1] for m in MODALITIES))
        for item in items
    ]


def _answers(engine: "Engine", items: Sequence[TextItem], modality: str, style: "RenderStyle"
             ) -> dict[str, tuple[int | None, str]]:
    """Item id -> (answer, reply text) for the ``modality`` form; the text form ignores ``style``."""
    from vlmgate.modalities import continuations, item_form, parse_integer

    style_key = "" if modality == "text" else style.name
    mcq = [item for item in items if item.kind == "mcq"]
    numeric = [item for item in items if item.kind != "mcq"]

    def forms(chosen: Sequence[TextItem], variant: Variant, scored: bool) -> Iterator[tuple[Sample, Variant]]:
        for item in chosen:
            form = item_form(item, modality, style)
            yield form_sample(item, variant, form.image, form.prompt, continuations(item) if scored else ()), variant

    found: dict[str, tuple[int | None, str]] = {}
    scored = engine.observe(forms(mcq, form_variant(modality, style_key), True))
    # An MCQ form the model gave no answer to is unparsable like a reply without a number.
    found.update((item.id, (obs.prediction if obs.answered else None, "")) for item, obs in zip(mcq, scored))
    replies = engine.generate(forms(numeric, form_variant(modality, style_key, NUMERIC_TOKENS), False))
    found.update((item.id, (parse_integer(text), text)) for item, text in zip(numeric, replies))
    return found


def _transcripts(engine: "Engine", items: Sequence[TextItem], style: "RenderStyle") -> dict[str, str]:
    """Item id -> the model's transcript of the item's image form in ``style`` (the OCR control)."""
    from vlmgate.modalities import full_text, ocr_form

    def forms() -> Iterator[tuple[Sample, Variant]]:
        for item in items:
            form = ocr_form(item, style)
            variant = form_variant(OCR_FORM, style.name, min(OCR_MAX_TOKENS, len(full_text(item)) + OCR_SLACK))
            yield form_sample(item, variant, form.image, form.prompt, ()), variant

    return dict(zip((item.id for item in items), engine.generate(forms())))
