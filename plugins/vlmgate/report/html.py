"""A run record as one self-contained HTML file: tables, plots, and the diff to a baseline.

``render_html(record, baseline=...)`` returns a single document with inline CSS and
plots embedded as base64 PNG, so it can be attached to a CI run or mailed as is: no
external stylesheet, script or image. Every text taken from the record (sample ids,
model specs, messages) is HTML-escaped: benchmark data is not trusted markup.

Sections: run summary (versions, seed, settings, models and benchmarks with their
fingerprints), gates (one row per case and metric), flip rate per family (IFR with its
95 % interval, one chart per model × benchmark), the diff to a baseline run when one is
given, failures (verdict messages, worst samples, errors), minimal failing instances (the
search's clean and perturbed images side by side, read from the PNGs the search wrote and
embedded like the plots), and the environment.

A record marked incomplete (a run cut short: Ctrl-C, ``-x``, collection errors) gets a
banner above every section, ``incomplete: N of M cases not run (reason)``, and the list
of the tests that never ran: a partial run must not read as a green release.

Images are embedded only from the folders ``report.local_files.LocalFiles`` allows (the
report's own folder); an image named elsewhere is left out and the report says so.
"""

from __future__ import annotations

import base64
import json
import math
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any, Iterable, Sequence

from vlmgate.report.charts import Bar, interval_bars, matplotlib_available
from vlmgate.report.diff import REGRESSED, RunDiff, diff_runs
from vlmgate.report.diff_format import COLUMNS, row_cells
from vlmgate.report.local_files import LocalFiles
from vlmgate.report.record import CaseRecord, RunRecord

REPORT_FILE = "report.html"
#: Case families that are not perturbations and so have no flip rate.
_NOT_PERTURBED = ("clean",)
_POOLED = "any"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1a7f37; } .fail, .regressed { color: #cf222e; font-weight: bold; }
.improved { color: #1a7f37; } .note { color: #666; font-style: italic; }
pre { background: #f6f8fa; padding: 0.5em; overflow-x: auto; white-space: pre-wrap; }
code { font-size: 0.9em; }
.pair { display: flex; gap: 1em; } figure { margin: 0; } figcaption { font-size: 0.9em; color: #444; }
.incomplete { background: #fff1e5; border: 2px solid #cf222e; padding: 0.5em 1em; font-weight: bold; color: #cf222e; }
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


def _verdict(passed: bool) -> str:
    return '<span class="pass">pass</span>' if passed else '<span class="fail">fail</span>'


def _incomplete_banner(record: RunRecord) -> str:
    """The mark of a run cut short, with the tests it never ran; empty for a complete run."""
    completeness = record.completeness
    if completeness.complete:
        return ""
    items = "".join(f"<li><code>{_e(nodeid)}</code></li>" for nodeid in completeness.not_run)
    listing = (f"<details><summary>{len(completeness.not_run)} test(s) not run</summary><ul>{items}</ul></details>"
               if items else "")
    return f'<p class="incomplete">{_e(completeness.describe())}</p>\n{listing}'


def _summary_section(record: RunRecord) -> str:
    outcomes: dict[str, int] = defaultdict(int)
    for case in record.cases:
        outcomes[case.outcome] += 1
    settings = record.settings
    facts = [("vlmgate", record.vlmgate_version), ("record schema", record.schema_version), ("seed", record.seed),
             ("cases", ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "none"),
             ("completeness", record.completeness.describe())]
    facts += [(key, settings[key]) for key in sorted(settings) if key not in ("models", "benchmarks")]
    parts = ["<h2>Run</h2>", _table(("setting", "value"), ((_e(k), _e(v)) for k, v in facts))]
    for title, table in (("Models", record.models), ("Benchmarks", record.benchmarks)):
        parts.append(_table((title[:-1].lower(), "fingerprint"),
                            ((f"<code>{_e(spec)}</code>", f"<code>{_e(fp or '-')}</code>")
                             for spec, fp in table.items())))
    return "\n".join(parts)


def _gates_section(record: RunRecord) -> str:
    rows = []
    for case in record.cases:
        if not case.metrics:
            rows.append((_e(case.id), _e(case.key.family), "-", "-", "-", "-", "-",
                         f'<span class="fail">{_e(case.outcome)}</span>'))
        for metric in case.metrics:
            rows.append((_e(case.id), _e(case.key.family), _e(metric.name), _num(metric.value),
                         f"[{_num(metric.ci_low)}, {_num(metric.ci_high)}]", _e(metric.n), _e(metric.limit or "none"),
                         _verdict(metric.passed)))
    header = ("case", "family", "metric", "value", "95% CI", "n", "limit", "verdict")
    return "<h2>Gates</h2>\n" + _table(header, rows, numeric=(3, 4, 5))


def _flip_rate_bars(record: RunRecord) -> dict[tuple[str, str], list[Bar]]:
    """IFR bars per (model, benchmark), families in case order with the pooled ``any`` last."""
    groups: dict[tuple[str, str], list[Bar]] = defaultdict(list)
    for case in sorted(record.cases, key=lambda c: c.key.family == _POOLED):
        metric = case.metric("ifr")
        if metric is None or case.key.family in _NOT_PERTURBED or math.isnan(metric.value):
            continue
        groups[(case.key.model, case.key.benchmark)].append(
            Bar(case.key.family, metric.value, metric.ci_low, metric.ci_high, metric.passed))
    return groups


def _flip_rate_section(record: RunRecord) -> str:
    groups = _flip_rate_bars(record)
    if not groups:
        return ""
    parts = ["<h2>Flip rate per family</h2>"]
    if not matplotlib_available():
        parts.append('<p class="note">Plots need matplotlib (pip install "pytest-vlmgate[report]"); '
                     "the table below has the same numbers.</p>")
    for (model, benchmark), bars in groups.items():
        title = f"{model} × {benchmark}"
        png = interval_bars(title, bars, "instance flip rate (95% CI)")
        parts.append(f"<h3>{_e(title)}</h3>")
        if png is not None:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f'<img alt="instance flip rate per family for {_e(title)}" '
                         f'src="data:image/png;base64,{data}">')
        parts.append(_table(("family", "IFR", "95% CI", "verdict"),
                            ((_e(b.label), _num(b.value), f"[{_num(b.ci_low)}, {_num(b.ci_high)}]", _verdict(b.passed))
                             for b in bars), numeric=(1, 2)))
    return "\n".join(parts)


def _diff_section(diff: RunDiff) -> str:
    header = ("case", *COLUMNS)
    rows = []
    for row in diff.rows:
        cells = [_e(c) for c in row_cells(row)]
        status = row.status
        cells[-1] = f'<span class="{_e(status)}">{cells[-1]}</span>'
        rows.append((_e(row.case), *cells))
    counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in diff.counts().items() if n)
    regressions = len(diff.with_status(REGRESSED))
    verdict = (f'<p class="fail">{regressions} significant regression(s)</p>' if regressions
               else '<p class="pass">no significant regression</p>')
    return (f"<h2>Changes since baseline</h2>\n"
            f"<p>{_e(diff.before_source)} → {_e(diff.after_source)}: {_e(counts)}</p>\n{verdict}\n"
            + _table(header, rows, numeric=(2, 3, 4, 5, 6)))


def _worst_list(details: dict[str, Any]) -> str:
    items = []
    for worst in details.get("worst", []) or []:
        flipped = ", ".join(str(v) for v in worst.get("flipped_by", []))
        items.append(f"<li><code>{_e(worst.get('sample'))}</code>: {_e(worst.get('flips'))}/{_e(worst.get('of'))} "
                     f"instances flipped ({_e(flipped)})</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _failures_section(cases: Sequence[CaseRecord]) -> str:
    parts = []
    for case in cases:
        failed = [m for m in case.metrics if not m.passed]
        if not failed and case.error is None:
            continue
        parts.append(f"<h3>{_e(case.id)} <small>({_e(case.test)})</small></h3>")
        for metric in failed:
            parts.append(f"<p>{_e(metric.message)}</p>" + _worst_list(dict(metric.details)))
        if case.error is not None:
            parts.append(f"<pre>{_e(case.error)}</pre>")
    return "<h2>Failures</h2>\n" + "\n".join(parts) if parts else ""


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
                     ("intensity", _num(instance.get("intensity"))), ("params", json.dumps(instance.get("params"), sort_keys=True)),
                     ("choices", json.dumps(instance.get("choices"), sort_keys=True)),
                     ("answer", f"{instance.get('clean_prediction')} clean, {instance.get('perturbed_prediction')} "
                                "perturbed"),
                     ("one level milder", instance.get("milder_prediction") or "identity"), ("found by", source)]
            parts.append(f"<h3>{_e(case.id)}</h3>"
                         + _table(("", "value"), ((_e(k), _e(v)) for k, v in facts)))
            images = instance.get("images")
            if images:
                sample = instance.get("sample")
                cells = (f"<figure>{_embedded_png(images[side], f'{side} image of {sample}', files)}"
                         f"<figcaption>{side}: answer {_e(instance.get(side + '_prediction'))}</figcaption></figure>"
                         for side in ("clean", "perturbed"))
                parts.append(f'<div class="pair">{"".join(cells)}</div>')
    return "<h2>Minimal failing instances</h2>\n" + "\n".join(parts) if parts else ""


def _environment_section(record: RunRecord) -> str:
    env = record.environment
    facts = [("python", env.python), ("platform", env.platform), ("workers", env.workers or "-")]
    facts += [(name, version) for name, version in sorted(env.packages.items())]
    session = env.timings.get("session_s")
    if isinstance(session, (int, float)):
        facts.append(("session time", f"{session:.1f} s"))
    return "<h2>Environment</h2>\n" + _table(("", "version / value"), ((_e(k), _e(v)) for k, v in facts))


def render_html(record: RunRecord, *, baseline: RunRecord | None = None, source: str = "run",
                baseline_source: str = "baseline", files: LocalFiles = LocalFiles()) -> str:
    """The whole report as one HTML document (see module docstring); images only from ``files``."""
    sections = [_summary_section(record), _gates_section(record), _flip_rate_section(record)]
    if baseline is not None:
        sections.append(_diff_section(diff_runs(baseline, record, before_source=baseline_source, after_source=source)))
    sections += [_failures_section(record.cases), _minimal_failures_section(record.cases, files),
                 _environment_section(record)]
    body = "\n".join(section for section in sections if section)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>vlmgate report: {_e(source)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<h1>vlmgate report: {_e(source)}</h1>\n{_incomplete_banner(record)}\n{body}\n</body>\n</html>\n")


def write_html(record: RunRecord, path: str | Path, *, files: LocalFiles, baseline: RunRecord | None = None,
               source: str = "run", baseline_source: str = "baseline") -> Path:
    """Write the report to ``path`` whole (see ``outputs.write_text_atomic``)."""
    from vlmgate.outputs import write_text_atomic

    path = Path(path)
    write_text_atomic(path, render_html(record, baseline=baseline, source=source, baseline_source=baseline_source,
                                        files=files))
    return path
