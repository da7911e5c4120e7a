"""A run record's gates as the model card's ``model-index`` (``vlmgate export model-card``).

The Hugging Face Hub reads a model's evaluation results from the YAML front matter of its
README.md (``model-index``), shows them on the model page and in leaderboards, and rejects a
card whose block does not parse. So the block is built with ``huggingface_hub``'s own classes
(``EvalResult``, ``ModelCardData``, ``ModelCard``) and read back by them before it is written:
what is written is what the Hub reads.

One card describes one model, so the block holds one model's gates (the record's only
model, or the one named). Each gated metric is one result, grouped by the Hub per
benchmark (task and dataset):

* ``task``: ``visual-question-answering``, the Hub's task type closest to a VLM answering
  questions about images;
* ``dataset``: the benchmark spec as ``type`` and ``name``, its content fingerprint as
  ``revision`` (what the figures were measured on);
* ``metrics``: ``type`` ``vlmgate/<suite>/<metric>`` (the ``vlmgate/`` prefix is how a later
  export finds, and replaces, its own results in a card that holds others too), ``config``
  the perturbation family, ``value`` the estimate, ``args`` the 95 % interval, n, limit and
  verdict, and ``name`` all of it in one line for the model page, which shows ``name`` only.

The run's decision, version, seed and model fingerprint go in a ``vlmgate`` key of the same
front matter. Recorded metrics (no limit) are left out: a card states what was gated.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from vlmgate.errors import VlmgateError
from vlmgate.report.export import MetricRow, RecordFiles, finite, metric_rows, run_tags
from vlmgate.report.record import RunRecord

COMMAND = "vlmgate export model-card"
TASK_TYPE = "visual-question-answering"
TASK_NAME = "Visual Question Answering (robustness gates)"
#: Prefix of the metric types this command writes: the results it owns in a card.
METRIC_PREFIX = "vlmgate/"
#: A README.md that starts with a YAML front matter block (the Hub's own pattern, less its capture groups).
_FRONT_MATTER = re.compile(r"^\s*---[\r\n]+[\S\s]*?[\r\n]+---(\r\n|\n|$)")


def chosen_model(record: RunRecord, model: str | None, source: str) -> str:
    """The model whose card is written: ``model``, else the record's only one."""
    if model is not None:
        if model not in record.models:
            raise VlmgateError(f"{source} judged no model {model!r}; its models: {', '.join(record.models)}; "
                               "pass one of them as --model")
        return model
    if len(record.models) != 1:
        raise VlmgateError(f"{source} judged {len(record.models)} models ({', '.join(record.models)}); a model card "
                           "describes one: pass --model SPEC")
    return next(iter(record.models))


def eval_results(record: RunRecord, model: str) -> list[Any]:
    """``huggingface_hub.EvalResult`` for every gated metric of ``model``'s cases, in record order."""
    from huggingface_hub import EvalResult

    results = []
    for row in metric_rows(record):
        if not row.gated or row.case.key.model != model:
            continue
        case, metric = row.case, row.metric
        benchmark = case.key.benchmark
        results.append(EvalResult(
            task_type=TASK_TYPE, task_name=TASK_NAME, dataset_type=benchmark, dataset_name=benchmark,
            dataset_revision=record.benchmarks.get(benchmark), metric_type=f"{METRIC_PREFIX}{case.key.suite}/"
            f"{metric.name}", metric_value=finite(metric.value), metric_config=case.key.family,
            metric_name=describe(row),
            metric_args={"ci_low": finite(metric.ci_low), "ci_high": finite(metric.ci_high), "confidence": 0.95,
                         "n": metric.n, "limit": metric.limit, "verdict": metric.verdict},
        ))
    return results


def describe(row: MetricRow) -> str:
    """``flip_rate any ifr 0.0952 [0.0512, 0.1583] (95% CI, n=1050): pass, limit max 0.15 (interval)``."""
    metric = row.metric

    def number(value: float) -> str:
        return "nan" if math.isnan(value) else f"{value:.4g}"

    return (f"{row.case.key.suite} {row.case.key.family} {metric.name} {number(metric.value)} "
            f"[{number(metric.ci_low)}, {number(metric.ci_high)}] (95% CI, n={metric.n}): {metric.verdict}, "
            f"limit {metric.limit}")


def model_card(files: RecordFiles, *, model: str | None = None, card: str | None = None) -> str:
    """The card's text: ``card`` (an existing README.md's text) with its vlmgate results replaced
    and everything else kept, or a new card holding only the front matter.

    The text is parsed back with ``huggingface_hub.ModelCard`` before it is returned, so a block
    the Hub would not read is an error here, not on the model page.
    """
    from huggingface_hub import ModelCard, ModelCardData

    record = files.record
    spec = chosen_model(record, model, str(files.run_json))
    ours = eval_results(record, spec)
    if not ours:
        raise VlmgateError(f"{files.run_json} holds no gated metric of {spec} (every metric was recorded without a "
                           "limit); gate it with a threshold file (--vlmgate-thresholds) to state results on its card")
    labels = run_tags(record)
    provenance = {"decision": labels["decision"], "completeness": labels["completeness"],
                  "version": record.vlmgate_version, "seed": record.seed, "model": spec,
                  "model_fingerprint": record.models[spec], "benchmarks": dict(record.benchmarks)}
    existing = None
    if card is not None and _FRONT_MATTER.match(card):
        try:
            existing = ModelCard(card)
        except ValueError as exc:
            raise VlmgateError(f"the model card to update has front matter the Hub cannot read ({exc}); fix its "
                               "YAML block, or write to a new --out file") from None
    current = existing.data if existing is not None else ModelCardData()
    assert isinstance(current, ModelCardData)  # a ModelCard's data always is
    data = current.to_dict()
    kept = [result for result in current.eval_results or [] if not str(result.metric_type).startswith(METRIC_PREFIX)]
    data.pop("model-index", None)
    data.update(vlmgate=provenance)
    updated = ModelCardData(**{**data, "model_name": current.model_name or spec, "eval_results": kept + ours})
    if existing is not None:  # its text, key order and line endings kept
        existing.data = updated
        text = existing.content
    else:
        text = f"---\n{updated.to_yaml()}\n---\n{card or ''}"
    ModelCard(text)  # what the Hub does on upload: a block it cannot read raises ValueError here
    return text


def write_model_card(files: RecordFiles, out: str | Path | None, *, model: str | None = None) -> str:
    """The card for ``out`` (updated when it exists), written there; the text, for standard output."""
    card = None
    if out is not None and Path(out).exists():
        try:
            card = Path(out).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise VlmgateError(f"{out}: cannot read the model card to update ({exc}); pass a README.md or a new "
                               "file as --out") from None
    text = model_card(files, model=model, card=card)
    if out is not None:
        from vlmgate.outputs import write_text_atomic

        write_text_atomic(Path(out), text)
    return text
