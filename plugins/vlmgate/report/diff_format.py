"""A run diff as text (terminal), Markdown (pull requests, release notes) or JSON (tools).

All three show, per case, one row per metric: before, after, change, the paired test's
p-value and number of pairs, and the status (regressed / improved / not significant /
untested / added / removed), then a summary line with the counts per status.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

from vlmgate.report.diff import REGRESSED, MetricDiff, RunDiff
from vlmgate.metrics.paired import ALPHA

FORMATS = ("text", "json", "markdown")
_STATUS_WORDS = {"not_significant": "n.s."}
COLUMNS = ("metric", "before", "after", "change", "p", "pairs", "test", "status")


def _num(value: float | None, spec: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def row_cells(row: MetricDiff) -> tuple[str, ...]:
    change = row.change
    tested = change is not None and change.tested
    return (
        row.metric,
        _num(row.before.value if row.before else None),
        _num(row.after.value if row.after else None),
        _num(change.delta, "+.4f") if change is not None else "-",
        _num(change.p_value, ".3g") if tested else "-",
        str(change.n_pairs) if tested else "-",
        change.test if tested else "-",
        _STATUS_WORDS.get(row.status, row.status).upper() if row.status == REGRESSED
        else _STATUS_WORDS.get(row.status, row.status),
    )


def _summary(diff: RunDiff) -> str:
    counts = diff.counts()
    parts = [f"{count} {_STATUS_WORDS.get(status, status.replace('_', ' '))}"
             for status, count in counts.items() if count]
    return f"{len(diff.rows)} metric(s): " + (", ".join(parts) or "none") + f" (paired tests, alpha {ALPHA:g})"


def _pairing_lines(diff: RunDiff) -> list[str]:
    lines = []
    for axis, pairs in (("model", diff.pairing.models), ("benchmark", diff.pairing.benchmarks)):
        for after, before in pairs.items():
            if after != before:
                lines.append(f"{axis} {before} (before) paired with {after} (after)")
    return lines


def format_text(diff: RunDiff) -> str:
    lines = [f"vlmgate diff: {diff.before_source} -> {diff.after_source}", *_pairing_lines(diff)]
    for case, test, rows in diff.by_case():
        cells = [COLUMNS, *(row_cells(row) for row in rows)]
        widths = [max(len(cell[i]) for cell in cells) for i in range(len(COLUMNS))]
        lines.append("")
        lines.append(f"{case}  ({test})")
        for cell in cells:
            lines.append("  " + "  ".join(text.ljust(width) for text, width in zip(cell, widths)).rstrip())
    lines.append("")
    lines.append(_summary(diff))
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Escape what would break a Markdown table cell or start markup."""
    for char in "\\|`*_<>[]":
        text = text.replace(char, "\\" + char)
    return text


def format_markdown(diff: RunDiff) -> str:
    lines = [f"## vlmgate diff: {_md(diff.before_source)} → {_md(diff.after_source)}"]
    pairing = [f"- {_md(line)}" for line in _pairing_lines(diff)]
    if pairing:
        lines += ["", *pairing]
    for case, test, rows in diff.by_case():
        lines += ["", f"### {_md(case)}", "", f"`{test}`" if "`" not in test else _md(test), "",
                  "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for row in rows:
            cells = [_md(cell) for cell in row_cells(row)]
            if row.status == REGRESSED:
                cells[-1] = f"**{cells[-1]}**"
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", _md(_summary(diff))]
    return "\n".join(lines) + "\n"


def _json_row(row: MetricDiff) -> dict[str, Any]:
    change = row.change
    return {
        "case": row.case, "test": row.test, "metric": row.metric, "better": row.better, "status": row.status,
        "model": row.key.model, "benchmark": row.key.benchmark, "family": row.key.family, "suite": row.key.suite,
        "before": row.before.value if row.before else None,
        "after": row.after.value if row.after else None,
        "change": None if change is None else {
            "test": change.test, "n_pairs": change.n_pairs, "before": change.before, "after": change.after,
            "delta": change.delta, "rose": change.rose, "fell": change.fell, "p_value": change.p_value,
            "significant": change.significant,
        },
    }


def format_json(diff: RunDiff) -> str:
    data = {
        "before": diff.before_source, "after": diff.after_source, "alpha": ALPHA,
        "pairing": {"models": dict(diff.pairing.models), "benchmarks": dict(diff.pairing.benchmarks)},
        "counts": diff.counts(), "rows": [_json_row(row) for row in diff.rows],
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


FORMATTERS: dict[str, Callable[[RunDiff], str]] = {
    "text": format_text, "json": format_json, "markdown": format_markdown,
}
