"""A run record as one self-contained HTML file, laid out for a release decision.

``render_html(record, baseline=...)`` returns a single document with inline CSS and
plots embedded as base64 PNG, so it can be attached to a CI run or mailed as is: no
external stylesheet, script or image. Every text taken from the record (sample ids,
model specs, messages) is HTML-escaped: benchmark data is not trusted markup.

The reader's first question is "can this ship?", the second "what stops it?", so the
document goes, top to bottom (``report.verdicts`` decides the words):

1. **the decision banner** (the first thing on screen): GO / NO-GO / INCONCLUSIVE, the
   model(s) and benchmark(s) with the date as the title, the baseline, the case counts,
   and each failing gate with its one-line reason, linked to its failure below and to its
   minimal failing images where the search found some; a run cut short also gets its
   red ``incomplete: N of M cases not run (reason)`` line and the tests that never ran;
2. **failures**: per failing case, each failed verdict with its counts and transitions,
   the control comparison, the worst samples with their question and the correct, clean
   and perturbed answers as texts, and the commands that rerun the case alone and search
   its family (``report.failure``, ``report.reproduce``: the same words as the pytest
   failure message);
3. **changes since the baseline** when one is given: the diff's summary line, each
   significant regression by name, and every compared metric collapsed;
4. **all gates, collapsed by suite** (``<details>``): value, interval, ``n`` with the
   images it nests in (``130 (50 images)``), limit and standing, where ``recorded`` (no
   limit) and ``inert`` (a limit that could not fail at this n) are not a plain pass;
   the flip-rate plots sit in their suite, each bar with its limit marked;
5. minimal failing instances (the search's clean and perturbed images side by side,
   read from the PNGs the search wrote and embedded like the plots);
6. **skipped cases**, grouped by reason (never as failures);
7. the run: settings, fingerprints, prompt formats, the environment.

Images are embedded only from the folders ``report.local_files.LocalFiles`` allows (the
report's own folder); an image named elsewhere is left out and the report says so.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections import defaultdict
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any, Iterable, Sequence

from vlmgate.decision import GO
from vlmgate.metrics.paired import ALPHA
from vlmgate.report.charts import Bar, interval_bars, matplotlib_available
from vlmgate.report.diff import REGRESSED, RunDiff, diff_runs
from vlmgate.report.diff_format import CHANGE_MEANING, COLUMNS, label, names, row_cells, sections, summary
from vlmgate.report.failure import control_line, evidence_lines, perturbed_text
from vlmgate.report.local_files import LocalFiles
from vlmgate.report.multiplicity import GATED_FAMILY, METHOD, RECORDED_FAMILY
from vlmgate.report.pairing import function_name
from vlmgate.report.record import CaseRecord, MetricRecord, RunRecord
from vlmgate.report.reproduce import Reproduction
from vlmgate.report.verdicts import (
    FAILED,
    INERT,
    PASSED,
    RECORDED,
    UNDECIDED_GATE,
    FailingGate,
    RunVerdict,
    limit_bounds,
    skip_reason,
    standing,
    unit_of,
)

REPORT_FILE = "report.html"
#: Case families that are not perturbations and so have no flip rate.
_NOT_PERTURBED = ("clean",)
_POOLED = "any"
#: Failing gates named in the banner; more are counted and listed under Failures.
BANNER_GATES = 8

_CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 0 1.5em 2em; max-width: 1200px; color: #222;
       overflow-wrap: break-word; }
h1 { font-size: 1.35em; margin: 0.2em 0; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; max-width: 100%; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f3f3f3; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.pass { color: #1a7f37; } .fail, .regressed { color: #cf222e; font-weight: bold; }
.recorded { color: #666; font-style: italic; } .inert { color: #9a6700; font-weight: bold; }
.improved { color: #1a7f37; } .note { color: #666; font-style: italic; }
td span { white-space: nowrap; }
pre { background: #f6f8fa; padding: 0.5em; white-space: pre-wrap; overflow-wrap: anywhere; margin: 0.3em 0; }
code { font-size: 0.9em; overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; }
.pair { display: flex; flex-wrap: wrap; gap: 1em; } figure { margin: 0; } figcaption { font-size: 0.9em; color: #444; }
header.verdict { margin: 0 -1.5em 1em; padding: 0.8em 1.5em; border-bottom: 4px solid; }
header.verdict.fail { background: #ffebe9; border-color: #cf222e; }
header.verdict.pass { background: #dafbe1; border-color: #1a7f37; }
header.verdict.incomplete, header.verdict.inconclusive { background: #fff1e5; border-color: #bc4c00; }
header.verdict.no-go { background: #ffebe9; border-color: #cf222e; }
header.verdict.go { background: #dafbe1; border-color: #1a7f37; }
.stamp { display: inline-block; margin: 0; padding: 0.1em 0.6em; font-size: 1.6em; font-weight: bold; color: #fff;
         border-radius: 4px; }
.verdict.fail .stamp { background: #cf222e; } .verdict.pass .stamp { background: #1a7f37; }
.verdict.incomplete .stamp, .verdict.inconclusive .stamp { background: #bc4c00; }
.verdict.no-go .stamp { background: #cf222e; } .verdict.go .stamp { background: #1a7f37; }
span.inconclusive { color: #bc4c00; font-weight: bold; }
header.verdict ul { margin: 0.3em 0; padding-left: 1.3em; } header.verdict p { margin: 0.3em 0; }
.incomplete { background: #fff1e5; border: 2px solid #cf222e; padding: 0.5em 1em; font-weight: bold; color: #cf222e; }
details { margin: 0.4em 0; } summary { cursor: pointer; }
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(value: float | None, spec: str = ".4f") -> str:
    if value is None or math.isnan(value):
        return "-"
    return format(value, spec)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """A table from *already escaped* cells."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _anchor(prefix: str, case: CaseRecord) -> str:
    """A fragment id for a case: its test function and id (case ids repeat across suites)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"{prefix}-{function_name(case.test)}-{case.id}")


def _standing_cell(metric: MetricRecord) -> str:
    """The verdict cell: ``FAIL``, ``INCONCLUSIVE``, ``pass``, ``pass, inert`` or ``recorded``, each its own colour."""
    kind = standing(metric)
    if kind == FAILED:
        return '<span class="fail">FAIL</span>'
    if kind == UNDECIDED_GATE:
        return ('<span class="inconclusive" title="the interval straddles the limit: neither within nor past it">'
                "INCONCLUSIVE</span>")
    if kind == INERT:
        return ('<span class="inert" title="this limit could not have failed at this run\'s n">'
                "pass, inert</span>")
    if kind == RECORDED:
        return '<span class="recorded" title="no limit: recorded, not gated">recorded</span>'
    return '<span class="pass">pass</span>'


def _count(metric: MetricRecord) -> str:
    """The n cell: ``130 (50 images)`` when the units nest in fewer samples, else ``n``."""
    if metric.n_clusters is not None and metric.n_clusters < metric.n:
        return f"{metric.n} ({metric.n_clusters} images)"
    return str(metric.n)


def _models_and_benchmarks(record: RunRecord) -> str:
    models = ", ".join(record.models) or "no model"
    benchmarks = ", ".join(record.benchmarks) or "no benchmark"
    return f"{models} on {benchmarks}"


def _started(record: RunRecord) -> datetime | None:
    try:
        return datetime.fromisoformat(record.environment.started) if record.environment.started else None
    except ValueError:
        return None


def _minimal_instances(cases: Sequence[CaseRecord]) -> dict[tuple[str, str, str], CaseRecord]:
    """(model, benchmark, family) -> the search case that holds a minimal failing instance."""
    found = {}
    for case in cases:
        if any(dict(m.details).get("instance") for m in case.metrics):
            found[(case.key.model, case.key.benchmark, case.key.family.split(".")[0])] = case
    return found


# -- 1. the verdict ---------------------------------------------------------------------
def _incomplete_banner(record: RunRecord) -> str:
    """The mark of a run cut short, with the tests it never ran; empty for a complete run."""
    completeness = record.completeness
    if completeness.complete:
        return ""
    items = "".join(f"<li><code>{_e(nodeid)}</code></li>" for nodeid in completeness.not_run)
    listing = (f"<details><summary>{len(completeness.not_run)} test(s) not run</summary><ul>{items}</ul></details>"
               if items else "")
    return f'<p class="incomplete">{_e(completeness.describe())}</p>\n{listing}'


def _gate_item(gate: FailingGate, minimal: dict[tuple[str, str, str], CaseRecord]) -> str:
    key = gate.case.key
    found = minimal.get((key.model, key.benchmark, key.family.split(".")[0]))
    images = (f' · <a href="#{_anchor("minimal", found)}">minimal failing images</a>'
              if found is not None and found is not gate.case else "")
    return (f'<li><a href="#{_anchor("case", gate.case)}">{_e(gate.name)}</a>: {_e(gate.reason)}{images}</li>')


def _banner(record: RunRecord, verdict: RunVerdict, baseline_source: str | None, diff: RunDiff | None) -> str:
    started = _started(record)
    when = f" · {started:%Y-%m-%d %H:%M} UTC" if started is not None else ""
    facts = []
    if baseline_source:
        facts.append(f"baseline <code>{_e(baseline_source)}</code>")
    facts.append(f"{len(record.cases)} cases: {_e(verdict.describe_outcomes())}")
    if verdict.inert:
        facts.append(f'<span class="inert">{verdict.inert} inert gate{"s" if verdict.inert != 1 else ""}</span> '
                     "(could not fail at this n)")
    limit = record.settings.get("limit")
    facts.append(f"vlmgate {_e(record.vlmgate_version)}, seed {_e(record.seed)}"
                 + (f", first {_e(limit)} samples" if limit is not None else ""))
    parts = [f'<header id="verdict" class="verdict {verdict.verdict.lower()}">',
             f'<p class="stamp">{verdict.verdict}</p>',
             *(f"<p>{_e(reason)}</p>" for reason in (verdict.decision.reasons if verdict.decision else ())),
             f"<h1>{_e(_models_and_benchmarks(record))}{when}</h1>",
             f'<p>{" · ".join(facts)}</p>']
    if verdict.failing:
        minimal = _minimal_instances(record.cases)
        count = len(verdict.failing)
        undecided = sum(gate.metric is not None and gate.metric.verdict == UNDECIDED_GATE for gate in verdict.failing)
        what = f"{count - undecided} failing" + (f" and {undecided} inconclusive" if undecided else "")
        parts.append(f"<p><strong>{what} gate{'s' if count != 1 else ''}:</strong></p>")
        items = [_gate_item(gate, minimal) for gate in verdict.failing[:BANNER_GATES]]
        if count > BANNER_GATES:
            items.append(f'<li><a href="#failures">{count - BANNER_GATES} more under Failures</a></li>')
        parts.append(f"<ul>{''.join(items)}</ul>")
    elif verdict.verdict == GO:
        gated = sum(standing(m) != RECORDED for case in record.cases for m in case.metrics)
        parts.append(f"<p>Every gate passes ({gated} gated metrics).</p>")
    if diff is not None:
        regressed = [row for row in diff.rows if row.status == REGRESSED]
        parts.append(f'<p>Since the baseline: <a href="#changes">{_e(summary(diff))}</a>'
                     + (f"; {len(regressed)} significant regression{'s' if len(regressed) != 1 else ''}: "
                        + _e(names(regressed)) if regressed else "")
                     + "</p>")
    parts.append(_incomplete_banner(record))
    if record.shard is not None:  # a shard's verdict is its share's, never the run's
        parts.append(f'<p class="incomplete">{_e(record.shard.describe())}: this report covers this shard\'s cases '
                     "only; vlmgate merge joins the shards' records into the run's decision</p>")
    parts.append("</header>")
    return "\n".join(part for part in parts if part)


# -- 2. failures ------------------------------------------------------------------------
def _worst_table(metric: MetricRecord) -> str:
    """The samples a failed metric hurt most, as texts (``report.failure.perturbed_text``)."""
    if not metric.worst:
        return ""
    rows = []
    for worst in metric.worst:
        rows.append((f"<code>{_e(worst.sample)}</code>", _e(f"{worst.flips} of {worst.of} {worst.verb}"),
                     _e(worst.question or "-"), _e(worst.option(worst.answer) if worst.answer is not None else "-"),
                     _e(worst.option(worst.clean) if worst.clean is not None else "-"),
                     _e(perturbed_text(worst) or "-")))
    return (f"<p>Samples {_e(metric.name)} hurt most:</p>"
            + _table(("sample", "instances", "question", "correct", "clean", "perturbed"), rows))


def _reproduction(record: RunRecord, case: CaseRecord) -> Reproduction:
    return Reproduction.of(f"{case.test}[{case.id}]", case.key, record.settings, record.seed)


def _commands(record: RunRecord, case: CaseRecord) -> str:
    reproduce = _reproduction(record, case)
    parts = [f"<p>Rerun this case alone:</p><pre>{_e(reproduce.rerun())}</pre>"]
    search = reproduce.search() if case.key.suite != "search" else None
    if search is not None:
        parts.append(f"<p>Search {_e(reproduce.perturbation)} for a minimal failing instance:</p>"
                     f"<pre>{_e(search)}</pre>")
    return "".join(parts)


def _failures_section(record: RunRecord, verdict: RunVerdict) -> str:
    if not verdict.failing:
        return ""
    by_case: dict[int, list[FailingGate]] = defaultdict(list)
    cases: list[CaseRecord] = []
    for gate in verdict.failing:
        if id(gate.case) not in by_case:
            cases.append(gate.case)
        by_case[id(gate.case)].append(gate)
    parts = [f'<section id="failures">\n<h2>Failures ({len(verdict.failing)})</h2>']
    minimal = _minimal_instances(record.cases)
    for case in cases:
        key = case.key
        parts.append(f'<h3 id="{_anchor("case", case)}">{_e(key.suite)} {_e(key.family)} '
                     f"<small>(<code>{_e(case.id)}</code>, {_e(case.outcome)})</small></h3>")
        for gate in by_case[id(case)]:
            metric = gate.metric
            if metric is None:
                parts.append(f"<pre>{_e(case.error or case.outcome)}</pre>")
                continue
            # The metric's own explanation (which inputs got no answer and what the model said)
            # follows its counts, as in the terminal's failure message.
            evidence = evidence_lines(metric, unit_of(case, metric.name)) + [
                str(line) for line in dict(metric.details).get("explanation", [])]
            css = "inconclusive" if metric.verdict == UNDECIDED_GATE else "fail"
            parts.append(f'<p class="{css}">{_e(metric.message)}</p>'
                         + (f"<ul>{''.join(f'<li>{_e(line)}</li>' for line in evidence)}</ul>" if evidence else "")
                         + _worst_table(metric))
        controls = [line for metric in case.metrics if (line := control_line(metric))]
        if controls:
            parts.append(f"<ul>{''.join(f'<li>{_e(line)}</li>' for line in controls)}</ul>")
        found = minimal.get((key.model, key.benchmark, key.family.split(".")[0]))
        if found is not None:
            parts.append(f'<p><a href="#{_anchor("minimal", found)}">Minimal failing instance of '
                         f"{_e(key.family.split('.')[0])}, with its images</a></p>")
        parts.append(_commands(record, case))
    parts.append("</section>")
    return "\n".join(parts)


# -- 3. changes since the baseline ------------------------------------------------------
def _change_text(row) -> str:
    change = row.change
    values = f"{_num(row.before.value)} → {_num(row.after.value)}" if row.before and row.after else ""
    if change is None or not change.tested:
        return values
    paired = (f" (paired {change.before:.4f} → {change.after:.4f})" if row.paired_units_differ else "")
    images = f" in {change.n_clusters} images" if change.n_clusters is not None else ""
    return (f"{values}, change {change.delta:+.4f}{paired} on {change.n_pairs} paired units{images}, "
            f"{change.test} p = {change.p_value:.3g}, {METHOD}-adjusted p = {_num(row.p_adjusted, '.3g')} "
            f"({row.family})")


def _diff_section(diff: RunDiff) -> str:
    parts = ['<section id="changes">', "<h2>Changes since the baseline</h2>",
             f"<p>{_e(diff.before_source)} → {_e(diff.after_source)}</p>",
             f"<p><strong>{_e(summary(diff))}</strong></p>",
             f'<p class="note">{_e(CHANGE_MEANING)}; a change is significant when its p-value, adjusted with '
             f"{METHOD} over its family, is below {ALPHA:g}: the {diff.family_tests(GATED_FAMILY)} {GATED_FAMILY} "
             f"(metrics whose limit bounds their change, decided at the level the gate used) and the "
             f"{diff.family_tests(RECORDED_FAMILY)} {RECORDED_FAMILY}. A change limit fails a case exactly when "
             "its row here is significant and beyond the limit.</p>"]
    for title, rows in sections(diff):
        if not rows:
            continue
        items = "".join(f'<li class="{_e(row.status)}">{_e(label(row))}: {_e(_change_text(row))}</li>'
                        for row in rows)
        parts.append(f"<h3>{_e(title[0].upper() + title[1:])} ({len(rows)})</h3><ul>{items}</ul>")
    table_rows: list[list[str]] = []
    several = len({(row.key.model, row.key.benchmark) for row in diff.rows}) > 1
    for row in diff.rows:
        cells = [_e(cell) for cell in row_cells(row)]
        if not several:  # one model x benchmark: the suite and family say which case; else keep the case id
            cells[0] = _e(f"{row.key.suite} {row.key.family}")
        for index, verdict in ((3, row.verdicts[0]), (5, row.verdicts[1])):
            cells[index] = f'<span class="{_e(verdict)}">{cells[index]}</span>'
        cells[-1] = f'<span class="{_e(row.status)}">{cells[-1]}</span>'
        table_rows.append(cells)
    parts.append(f"<details><summary>All {len(diff.rows)} compared metrics</summary>"
                 + _table(COLUMNS, table_rows, numeric=(2, 4, 7, 8)) + "</details>")
    parts.append("</section>")
    return "\n".join(parts)


# -- 4. every gate, by suite ------------------------------------------------------------
def _flip_rate_bars(record: RunRecord) -> dict[tuple[str, str], list[tuple[Bar, MetricRecord]]]:
    """IFR bars (with their metrics) per (model, benchmark), families in case order with the
    pooled ``any`` last."""
    groups: dict[tuple[str, str], list[tuple[Bar, MetricRecord]]] = defaultdict(list)
    for case in sorted(record.cases, key=lambda c: c.key.family == _POOLED):
        metric = case.metric("ifr")
        if metric is None or case.key.family in _NOT_PERTURBED or math.isnan(metric.value):
            continue
        bar = Bar(case.key.family, metric.value, metric.ci_low, metric.ci_high, metric.passed,
                  limit_bounds(metric.limit), gated=metric.limit is not None)
        groups[(case.key.model, case.key.benchmark)].append((bar, metric))
    return groups


def _flip_rate_plots(record: RunRecord) -> str:
    groups = _flip_rate_bars(record)
    if not groups:
        return ""
    parts = ["<h3>Flip rate per family</h3>"]
    if not matplotlib_available():
        parts.append('<p class="note">Plots need matplotlib (pip install "pytest-vlmgate[report]"); '
                     "the table below has the same numbers.</p>")
    for (model, benchmark), rows in groups.items():
        title = f"{model} × {benchmark}"
        png = interval_bars(title, [bar for bar, _ in rows], "instance flip rate (95% CI); dashed: limit")
        parts.append(f"<h4>{_e(title)}</h4>")
        if png is not None:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f'<img alt="instance flip rate per family for {_e(title)}, limits marked" '
                         f'src="data:image/png;base64,{data}">')
        parts.append(_table(("family", "IFR", "95% CI", "limit", "verdict"),
                            ((_e(b.label), _num(b.value), f"[{_num(b.ci_low)}, {_num(b.ci_high)}]",
                              _e(metric.limit or "none"), _standing_cell(metric))
                             for b, metric in rows), numeric=(1, 2)))
    return "\n".join(parts)


def _suite_summary(suite: str, metrics: list[MetricRecord]) -> str:
    kinds: defaultdict[str, int] = defaultdict(int)
    for metric in metrics:
        kinds[standing(metric)] += 1
    gated = len(metrics) - kinds[RECORDED]
    parts = [f"{gated} gates: {kinds[PASSED] + kinds[INERT]} pass, {kinds[FAILED]} fail"]
    if kinds[INERT]:
        parts.append(f"{kinds[INERT]} inert")
    if kinds[RECORDED]:
        parts.append(f"{kinds[RECORDED]} recorded without a limit")
    return f"{suite} — " + "; ".join(parts)


def _gates_section(record: RunRecord) -> str:
    by_suite: dict[str, list[CaseRecord]] = defaultdict(list)
    for case in record.cases:
        if case.metrics:
            by_suite[case.key.suite].append(case)
    several = len(record.models) > 1 or len(record.benchmarks) > 1
    parts = ['<section id="gates">', "<h2>All gates by suite</h2>"]
    for suite, cases in by_suite.items():
        rows = []
        for case in cases:
            where = f"{case.key.model} × {case.key.benchmark}: " if several else ""
            # The case id (what -k and the JUnit name use) rides along as a tooltip.
            family = f'<span title="{_e(case.id)}">{_e(where + case.key.family)}</span>'
            if case.outcome in ("failed", "error"):
                family = f'<a href="#{_anchor("case", case)}">{family}</a>'
            for metric in case.metrics:
                rows.append((family, _e(metric.name), _num(metric.value),
                             f"[{_num(metric.ci_low)}, {_num(metric.ci_high)}]", _e(_count(metric)),
                             _e(metric.limit or "none"), _standing_cell(metric)))
        metrics = [metric for case in cases for metric in case.metrics]
        failed = any(standing(metric) == FAILED for metric in metrics)
        table = _table(("family", "metric", "value", "95% CI", "n", "limit", "verdict"), rows, numeric=(2, 3, 4))
        plots = _flip_rate_plots(record) if suite == "flip_rate" else ""
        flag = ' <span class="fail">(failing)</span>' if failed else ""
        parts.append(f'<details id="suite-{_e(suite)}"><summary>{_e(_suite_summary(suite, metrics))}{flag}</summary>'
                     f"\n{table}\n{_by_category_table(cases, several)}{plots}</details>")
    parts.append("</section>")
    return "\n".join(parts)


def _by_category_table(cases: Sequence[CaseRecord], several: bool) -> str:
    """Each metric split by its samples' category (``metrics.categories``), where the run recorded one."""
    from vlmgate.metrics.categories import DETAILS_KEY

    rows = []
    for case in cases:
        where = f"{case.key.model} × {case.key.benchmark}: " if several else ""
        for metric in case.metrics:
            for category, part in dict(metric.details).get(DETAILS_KEY, {}).items():
                rows.append((_e(where + case.key.family), _e(metric.name), _e(category), _num(part.get("value")),
                             f"[{_num(part.get('ci_low'))}, {_num(part.get('ci_high'))}]", _e(part.get("n"))))
    if not rows:
        return ""
    return ("<details><summary>By category (described, not gated)</summary>"
            + _table(("family", "metric", "category", "value", "95% CI", "n"), rows, numeric=(3, 4, 5))
            + "</details>\n")


# -- 5. minimal failing instances -------------------------------------------------------
def _embedded_png(name: Any, alt: str, files: LocalFiles) -> str:
    """An <img> carrying the PNG ``name``, or a note naming it when it is outside the report or unreadable."""
    path = files.locate(str(name))
    if path is None:
        return (f'<p class="note">image outside the report folder {_e(files.home or "(none)")}, not embedded: '
                f"<code>{_e(name)}</code></p>")
    try:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return f'<p class="note">image not found: <code>{_e(name)}</code></p>'
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _minimal_failures_section(cases: Sequence[CaseRecord], files: LocalFiles) -> str:
    """One block per minimal failing instance: what it is, both answers, both images."""
    parts = []
    for case in cases:
        for metric in case.metrics:
            instance = dict(metric.details).get("instance")
            if not instance:
                continue
            source = "stored counterexample, replayed" if instance.get("source") == "replay" else "searched"
            facts = [("sample", instance.get("sample")),
                     ("level", f"{instance.get('level')} of tolerance {instance.get('tolerance')}"),
                     ("intensity", _num(instance.get("intensity"))),
                     ("params", json.dumps(instance.get("params"), sort_keys=True)),
                     ("choices", json.dumps(instance.get("choices"), sort_keys=True)),
                     ("answer", f"{instance.get('clean_prediction')} clean, {instance.get('perturbed_prediction')} "
                                "perturbed"),
                     ("one level milder", instance.get("milder_prediction") or "identity"), ("found by", source)]
            parts.append(f'<h3 id="{_anchor("minimal", case)}">{_e(case.id)}</h3>'
                         + _table(("", "value"), ((_e(k), _e(v)) for k, v in facts)))
            images = instance.get("images")
            if images:
                sample = instance.get("sample")
                cells = (f"<figure>{_embedded_png(images[side], f'{side} image of {sample}', files)}"
                         f"<figcaption>{side}: answer {_e(instance.get(side + '_prediction'))}</figcaption></figure>"
                         for side in ("clean", "perturbed"))
                parts.append(f'<div class="pair">{"".join(cells)}</div>')
    if not parts:
        return ""
    return '<section id="minimal">\n<h2>Minimal failing instances</h2>\n' + "\n".join(parts) + "\n</section>"


# -- 6. skipped cases -------------------------------------------------------------------
def _skipped_section(cases: Sequence[CaseRecord]) -> str:
    groups: dict[str, list[CaseRecord]] = defaultdict(list)
    for case in cases:
        if case.outcome == "skipped":
            groups[skip_reason(case)].append(case)
    if not groups:
        return ""
    total = sum(len(group) for group in groups.values())
    parts = ['<section id="skipped">', f"<h2>Skipped cases ({total})</h2>",
             '<p class="note">Not run here, so neither passed nor failed; each reason says what would run them.</p>']
    for reason, group in groups.items():
        listing = "".join(f"<li><code>{_e(case.id)}</code> ({_e(case.key.suite)})</li>" for case in group)
        parts.append(f"<details><summary>{len(group)} case{'s' if len(group) != 1 else ''}: {_e(reason)}</summary>"
                     f"<ul>{listing}</ul></details>")
    parts.append("</section>")
    return "\n".join(parts)


# -- 7. the run -------------------------------------------------------------------------
def _run_section(record: RunRecord, source: str) -> str:
    settings = record.settings
    facts = [("record", source), ("vlmgate", record.vlmgate_version), ("record schema", record.schema_version),
             ("seed", record.seed), ("started", record.environment.started or "-"),
             ("completeness", record.completeness.describe())]
    facts += [(key, settings[key]) for key in sorted(settings) if key not in ("models", "benchmarks")]
    parts = ['<section id="run">', "<h2>Run</h2>", _table(("setting", "value"), ((_e(k), _e(v)) for k, v in facts))]
    for title, table in (("Models", record.models), ("Benchmarks", record.benchmarks)):
        parts.append(_table((title[:-1].lower(), "fingerprint"),
                            ((f"<code>{_e(spec)}</code>", f"<code>{_e(fp or '-')}</code>")
                             for spec, fp in table.items())))
    if record.model_descriptions:  # how each model was prompted: the format and one context as it read it
        parts.append("<details><summary>How each model was prompted</summary>" + _table(
            ("model", "prompt format", "example context (first sample)"), (
                (f"<code>{_e(spec)}</code>", _e(d.prompt_format or "-"),
                 f"<pre>{_e(d.example_context)}</pre>" if d.example_context is not None else "-")
                for spec, d in record.model_descriptions.items())) + "</details>")
    env = record.environment
    facts = [("python", env.python), ("platform", env.platform), ("workers", env.workers or "-")]
    facts += [(name, version) for name, version in sorted(env.packages.items())]
    session = env.timings.get("session_s")
    if isinstance(session, (int, float)):
        facts.append(("session time", f"{session:.1f} s"))
    parts.append("<details><summary>Environment</summary>"
                 + _table(("", "version / value"), ((_e(k), _e(v)) for k, v in facts)) + "</details>")
    parts.append("</section>")
    return "\n".join(parts)


def _title(record: RunRecord, verdict: RunVerdict) -> str:
    started = _started(record)
    date = f" · {started:%Y-%m-%d}" if started is not None else ""
    return f"{verdict.verdict} · {_models_and_benchmarks(record)}{date} · vlmgate"


def render_html(record: RunRecord, *, baseline: RunRecord | None = None, source: str = "run",
                baseline_source: str = "baseline",
                files: LocalFiles = LocalFiles()) -> str:  # noqa: B008 (a frozen dataclass: immutable)
    """The whole report as one HTML document (see module docstring); images only from ``files``."""
    verdict = RunVerdict.of(record)
    diff = (diff_runs(baseline, record, before_source=baseline_source, after_source=source)
            if baseline is not None else None)
    shown_baseline = baseline_source if baseline is not None else record.settings.get("baseline")
    sections = [_banner(record, verdict, shown_baseline, diff), _failures_section(record, verdict),
                _diff_section(diff) if diff is not None else "", _gates_section(record),
                _minimal_failures_section(record.cases, files), _skipped_section(record.cases),
                _run_section(record, source)]
    body = "\n".join(section for section in sections if section)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(_title(record, verdict))}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"{body}\n</body>\n</html>\n")


def write_html(record: RunRecord, path: str | Path, *, files: LocalFiles, baseline: RunRecord | None = None,
               source: str = "run", baseline_source: str = "baseline") -> Path:
    """Write the report to ``path`` whole (see ``outputs.write_text_atomic``)."""
    from vlmgate.outputs import write_text_atomic

    path = Path(path)
    write_text_atomic(path, render_html(record, baseline=baseline, source=source, baseline_source=baseline_source,
                                        files=files))
    return path
