"""A run diff as text (terminal), Markdown (pull-request comments) or JSON (tools).

Every format opens with the one line a release manager needs (``summary``): the gates
newly failing, by name, the gates fixed, and how many metrics without a limit changed
significantly; then the rows that explain it, then the rest.

* **text**: the summary, then the newly failing, still failing and fixed gates and the
  significant changes, each as a table; every other metric is counted in one line, and
  ``--all`` lists them too;
* **markdown**: the same summary as a heading and the failing gates in the open; fixed
  gates, significant changes and every metric in collapsed ``<details>`` sections, so a
  pull-request comment stays short (``OPEN_ROWS`` caps the rows in the open);
* **json**: everything: every row with both values, verdicts, limits, the paired change
  (values on the paired units, delta, raw and adjusted p) and status.

A row reads ``case | metric | before | verdict | after | verdict | change | pairs | p |
status``. ``change`` is ``after − before`` on the units both runs scored; where those
differ from the runs' whole sets (``MetricDiff.paired_units_differ``) the cell says so,
``-0.0117 (paired 0.0301→0.0184)``, with ``pairs`` ``35 of 40/45``, and a footnote says
why the change can disagree with the whole-set values. ``p`` is Bonferroni-adjusted over
its family (``report.multiplicity``): the gated changes, at the level the gate used, or the
recorded changes. The summary opens with both runs' decisions (GO / NO-GO / INCONCLUSIVE).
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Sequence

from vlmgate.metrics.paired import ALPHA
from vlmgate.report.diff import (
    FAIL,
    FIXED,
    IMPROVED,
    NEWLY_FAILING,
    NEWLY_INCONCLUSIVE,
    REGRESSED,
    STILL_FAILING,
    UNCHANGED,
    MetricDiff,
    RunDiff,
)
from vlmgate.report.multiplicity import GATED_FAMILY, METHOD, RECORDED_FAMILY

FORMATS = ("text", "json", "markdown")
COLUMNS = ("case", "metric", "before", "verdict", "after", "verdict", "change", "pairs", "p (adj.)", "status")
_STATUS_WORDS = {"not_significant": "n.s.", REGRESSED: "REGRESSED"}
#: What the change column means, said in every format.
CHANGE_MEANING = "change = after - before on the units both runs scored (paired)"
PAIRED_NOTE = ("(paired a→b): the runs scored different units; the change is measured on the units both scored, "
               "so it can differ from, even have the opposite sign of, the difference of the whole-set values")
#: Rows shown in the open part of a Markdown diff; more go into a collapsed section.
OPEN_ROWS = 30
#: Names listed in the summary per kind before "and N more".
_NAMED = 3


def _num(value: float | None, spec: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def label(row: MetricDiff) -> str:
    """``flip_rate textoverlay follow_rate``: suite, family and metric name one gate."""
    return f"{row.key.suite} {row.key.family} {row.metric}"


def names(rows: Sequence[MetricDiff]) -> str:
    """The first rows' labels "and N more": a summary line stays one line however much changed."""
    named = ", ".join(label(row) for row in rows[:_NAMED])
    return named + (f" and {len(rows) - _NAMED} more" if len(rows) > _NAMED else "")


def _counted(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def summary(diff: RunDiff) -> str:
    """``1 gate newly failing: <gate>; 0 fixed; 2 significant changes without a limit``, with
    the gates still failing and the gated metrics significantly worse when there are any."""
    parts = []
    if all(diff.decisions):
        parts.append(f"decision {diff.decisions[0]} -> {diff.decisions[1]}")
    for rows, one, many, always in (
            (diff.with_transition(NEWLY_FAILING), "gate newly failing", "gates newly failing", True),
            (diff.with_transition(NEWLY_INCONCLUSIVE), "gate newly inconclusive", "gates newly inconclusive",
             False),
            (diff.with_transition(FIXED), "fixed", "fixed", True),
            (diff.with_transition(STILL_FAILING), "still failing", "still failing", False),
            (diff.gated_regressions, "gated metric significantly worse", "gated metrics significantly worse",
             False)):
        if rows or always:
            parts.append(_counted(len(rows), one, many) + (f": {names(rows)}" if rows else ""))
    parts.append(_counted(len(diff.ungated_changes), "significant change without a limit",
                          "significant changes without a limit"))
    return "; ".join(parts)


def _change_cell(row: MetricDiff) -> str:
    change = row.change
    if change is None or math.isnan(change.delta):
        return "-"
    if row.paired_units_differ:
        return f"{change.delta:+.4f} (paired {change.before:.4f}→{change.after:.4f})"
    return f"{change.delta:+.4f}"


def _pairs_cell(row: MetricDiff) -> str:
    change = row.change
    if change is None or not change.tested:
        return "-"
    if row.paired_units_differ and row.before is not None and row.after is not None:
        return f"{change.n_pairs} of {len(row.before.units)}/{len(row.after.units)}"
    return str(change.n_pairs)


def row_cells(row: MetricDiff) -> tuple[str, ...]:
    before, after = row.verdicts
    return (
        row.case, row.metric,
        _num(row.before.value if row.before else None), before.upper() if before == FAIL else before,
        _num(row.after.value if row.after else None), after.upper() if after == FAIL else after,
        _change_cell(row), _pairs_cell(row), _num(row.p_adjusted, ".3g"),
        _STATUS_WORDS.get(row.status, row.status),
    )


def _method(diff: RunDiff) -> str:
    return (f"{CHANGE_MEANING}; p adjusted ({METHOD}, family-wise alpha {ALPHA:g}) over its family: "
            f"{_counted(diff.family_tests(GATED_FAMILY), 'gated change', 'gated changes')} (at the level the gate "
            f"used), {_counted(diff.family_tests(RECORDED_FAMILY), 'recorded change', 'recorded changes')}")


def _pairing_lines(diff: RunDiff) -> list[str]:
    lines = []
    for axis, pairs in (("model", diff.pairing.models), ("benchmark", diff.pairing.benchmarks)):
        for after, before in pairs.items():
            if after != before:
                lines.append(f"{axis} {before} (before) paired with {after} (after)")
    return lines


def sections(diff: RunDiff) -> list[tuple[str, list[MetricDiff]]]:
    """The rows worth reading, by kind, in reading order (a row appears once)."""
    changes = [row for row in diff.rows if row.status in (REGRESSED, IMPROVED) and row.transition == UNCHANGED]
    changes.sort(key=lambda row: (not row.gated, row.status != REGRESSED))
    return [("gates newly failing", diff.with_transition(NEWLY_FAILING)),
            ("gates still failing", diff.with_transition(STILL_FAILING)),
            ("gates fixed", diff.with_transition(FIXED)),
            ("significant changes (gated first)", changes)]


def _text_table(rows: Sequence[MetricDiff]) -> list[str]:
    cells = [COLUMNS, *(row_cells(row) for row in rows)]
    widths = [max(len(cell[i]) for cell in cells) for i in range(len(COLUMNS))]
    return ["  " + "  ".join(text.ljust(width) for text, width in zip(cell, widths)).rstrip() for cell in cells]


def format_text(diff: RunDiff, *, all_rows: bool = False) -> str:
    lines = [summary(diff), f"vlmgate diff: {diff.before_source} -> {diff.after_source}", *_pairing_lines(diff),
             _method(diff)]
    listed: list[MetricDiff] = []
    for title, rows in sections(diff):
        if rows:
            lines += ["", f"{title} ({len(rows)}):", *_text_table(rows)]
            listed += rows
    shown = {id(row) for row in listed}
    others = [row for row in diff.rows if id(row) not in shown]
    if all_rows:
        lines += ["", f"all metrics ({len(diff.rows)}):", *_text_table(diff.rows)]
        listed = list(diff.rows)
    elif others:
        lines += ["", f"{_counted(len(others), 'other metric', 'other metrics')}: no verdict change and no "
                      "significant change (--all lists them; --format json has every field)"]
    if any(row.paired_units_differ for row in listed):
        lines += ["", PAIRED_NOTE]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Escape what would break a Markdown table cell or start markup."""
    for char in "\\|`*_<>[]":
        text = text.replace(char, "\\" + char)
    return text


def _md_table(rows: Sequence[MetricDiff]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [_md(cell) for cell in row_cells(row)]
        for index in (3, 5, 9):  # verdicts and status: a failure or a regression stands out
            if cells[index] in ("FAIL", "REGRESSED"):
                cells[index] = f"**{cells[index]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _collapsed(title: str, rows: Sequence[MetricDiff]) -> list[str]:
    """A ``<details>`` section (a blank line after the summary, so GitHub renders the table)."""
    return ["", f"<details><summary>{_md(title)} ({len(rows)})</summary>", "", *_md_table(rows), "", "</details>"]


def format_markdown(diff: RunDiff) -> str:
    meta = [f"`{diff.before_source}` → `{diff.after_source}`" if "`" not in diff.before_source + diff.after_source
            else f"{_md(diff.before_source)} → {_md(diff.after_source)}", *map(_md, _pairing_lines(diff))]
    lines = [f"### {_md(summary(diff))}", "", " · ".join(meta), "", _md(_method(diff))]
    failing = [("Gates newly failing", diff.with_transition(NEWLY_FAILING)),
               ("Gates still failing", diff.with_transition(STILL_FAILING))]
    room = OPEN_ROWS
    for title, rows in failing:
        if not rows:
            continue
        shown, rest = rows[:room], rows[room:]
        room -= len(shown)
        if shown:
            lines += ["", f"**{title} ({len(rows)})**", "", *_md_table(shown)]
        if rest:
            lines += _collapsed(f"{title}: {len(rest)} more", rest)
    for title, rows in sections(diff)[2:]:
        if rows:
            lines += _collapsed(title[0].upper() + title[1:], rows)
    lines += _collapsed("All metrics by case", diff.rows)
    if any(row.paired_units_differ for row in diff.rows):
        lines += ["", _md(PAIRED_NOTE)]
    return "\n".join(lines) + "\n"


def _names_json(rows: Sequence[MetricDiff]) -> list[dict[str, str]]:
    return [{"case": row.case, "test": row.test, "metric": row.metric} for row in rows]


def _json_row(row: MetricDiff) -> dict[str, Any]:
    change = row.change
    before, after = row.verdicts
    return {
        "case": row.case, "test": row.test, "metric": row.metric, "better": row.better, "status": row.status,
        "model": row.key.model, "benchmark": row.key.benchmark, "family": row.key.family, "suite": row.key.suite,
        "gated": row.gated, "verdict_before": before, "verdict_after": after, "transition": row.transition,
        "limit_before": row.before.limit if row.before else None,
        "limit_after": row.after.limit if row.after else None,
        "before": row.before.value if row.before else None,
        "after": row.after.value if row.after else None,
        "change": None if change is None else {
            "test": change.test, "n_pairs": change.n_pairs, "n_clusters": change.n_clusters,
            "before": change.before, "after": change.after, "delta": change.delta, "rose": change.rose,
            "fell": change.fell, "p_value": change.p_value,
            "p_adjusted": None if math.isnan(row.p_adjusted) else row.p_adjusted,
            "significant": row.significant, "paired_units_differ": row.paired_units_differ,
            "family": row.family, "decided_at": getattr(change, "decided_at", None),
        },
    }


def format_json(diff: RunDiff) -> str:
    data = {
        "summary": summary(diff), "before": diff.before_source, "after": diff.after_source, "alpha": ALPHA,
        "change": CHANGE_MEANING, "decisions": {"before": diff.decisions[0], "after": diff.decisions[1]},
        "multiplicity": {"method": METHOD, "alpha": ALPHA, "tests": diff.tests,
                         "families": {family: diff.family_tests(family) for family in (GATED_FAMILY, RECORDED_FAMILY)}},
        "pairing": {"models": dict(diff.pairing.models), "benchmarks": dict(diff.pairing.benchmarks)},
        "counts": diff.counts(), "newly_failing": _names_json(diff.with_transition(NEWLY_FAILING)),
        "fixed": _names_json(diff.with_transition(FIXED)),
        "still_failing": _names_json(diff.with_transition(STILL_FAILING)),
        "gated_regressions": _names_json(diff.gated_regressions),
        "ungated_changes": _names_json(diff.ungated_changes),
        "rows": [_json_row(row) for row in diff.rows],
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


FORMATTERS: dict[str, Callable[..., str]] = {
    "text": format_text, "json": format_json, "markdown": format_markdown,
}
