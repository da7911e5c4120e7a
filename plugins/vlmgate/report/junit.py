"""The JUnit properties of a gating case, and a JUnit XML file written from a run record.

A CI dashboard reads a case's figures from its JUnit properties (``vlmgate.ifr.value``,
``vlmgate.standing``, ...). They are written in two places: by the gate, onto the test item
as the case ends (``vlmgate.gate``, for pytest's ``--junitxml``), and by ``vlmgate merge``,
which has no test items, only the shards' run records (``write_junit``). Both build them
here from the stored form of a judged metric (``MetricRecord``: the gate turns its live
judgements into records first), so a merged run's JUnit file carries exactly the properties
an unsplit run's would.

Only the standard library is imported at module level: the plugin reads the property names.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from vlmgate.report.record import CaseRecord, MetricRecord, RunRecord

#: The JUnit property that marks a gating case's reports.
CASE_PROPERTY = "vlmgate.case"
#: The JUnit property that says how the whole case stands (``decision.case_standing``).
STANDING_PROPERTY = "vlmgate.standing"
#: The JUnit property holding a WARNED case's message (the test passes, so pytest shows none).
WARNING_PROPERTY = "vlmgate.warning"


def fmt(value: float) -> str:
    """A figure as a property holds it: six significant digits."""
    return f"{value:.6g}"


def metric_properties(metrics: Sequence["MetricRecord"]) -> list[tuple[str, str]]:
    """JUnit properties: the primary metric unprefixed, every metric by name.

    ``n`` counts the units a value pools (instances), ``n_clusters`` the independent
    samples they nest in, which is what its interval rests on (equal when units are samples).
    ``passed`` is written only for a metric a limit judged; ``outcome`` says ``recorded`` otherwise.
    ``count`` (a proportion's events: flips, unanswered inputs) and ``explanation`` (the lines a
    metric adds to its evidence: which inputs got no answer and what the model said) are written
    where the metric has them, so a CI dashboard reads them without parsing the value times n.
    """
    from vlmgate.records import RECORDED

    props: list[tuple[str, str]] = []
    for index, m in enumerate(metrics):
        fields = [("metric", m.name), ("value", fmt(m.value)), ("ci_low", fmt(m.ci_low)), ("ci_high", fmt(m.ci_high)),
                  ("threshold", "none" if m.limit is None else m.limit), ("n", str(m.n)),
                  ("n_clusters", str(m.n if m.n_clusters is None else m.n_clusters)), ("outcome", m.verdict),
                  ("effect", m.effect or "none"), ("tier", m.tier or "none"), ("inert", str(m.inert).lower())]
        if m.verdict != RECORDED:  # a metric no limit judged has not "passed" anything
            fields.insert(7, ("passed", str(m.passed).lower()))
        if index == 0:
            props.extend((f"vlmgate.{k}", v) for k, v in fields)
        props.extend((f"vlmgate.{m.name}.{k}", v) for k, v in fields if k != "metric")
        if m.count is not None:
            props.append((f"vlmgate.{m.name}.count", str(m.count)))
        explanation = m.details.get("explanation")
        if explanation:
            props.append((f"vlmgate.{m.name}.explanation", "\n".join(map(str, explanation))))
        if m.change is not None:
            props.extend([(f"vlmgate.{m.name}.baseline_delta", fmt(float(m.change["delta"]))),
                          (f"vlmgate.{m.name}.baseline_p", fmt(float(m.change["p_value"]))),
                          (f"vlmgate.{m.name}.baseline_alpha", fmt(float(m.change["decided_at"]))),
                          (f"vlmgate.{m.name}.baseline_significant", str(bool(m.change["significant"])).lower())])
    return props


def case_properties(case: "CaseRecord") -> list[tuple[str, str]]:
    """A recorded case's properties in the order the plugin attaches them: the mark, each metric,
    the standing (absent where the case ended before its gate judged). A WARNED case's message
    (``WARNING_PROPERTY``) is the gate's rendering of live results and is not in the record."""
    props = [(CASE_PROPERTY, "true"), *metric_properties(case.metrics)]
    if case.standing is not None:
        props.append((STANDING_PROPERTY, case.standing))
    return props


def case_nodeid(case: "CaseRecord") -> str:
    """The node id of a recorded case's test item: its test function and its case id."""
    return f"{case.test}[{case.id}]"


def _classname_and_name(nodeid: str) -> tuple[str, str]:
    """How pytest's ``--junitxml`` splits a node id: dotted module (and class) path, and test name."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def _outcome_element(testcase: ET.Element, case: "CaseRecord") -> str | None:
    """The failure, error or skip element of a case, as pytest writes it; returns which."""
    from vlmgate.decision import ERROR
    from vlmgate.records import FAIL, INCONCLUSIVE
    from vlmgate.report.verdicts import reason, skip_reason

    standing = case.standing_or_derived
    if standing == "skipped":
        ET.SubElement(testcase, "skipped", type="pytest.skip", message=skip_reason(case)).text = skip_reason(case)
        return "skipped"
    if standing == ERROR:
        text = (case.error or case.outcome).strip()
        tag = "failure" if case.outcome == "failed" else "error"
        ET.SubElement(testcase, tag, message=text.splitlines()[0] if text else tag).text = text
        return "failures" if tag == "failure" else "errors"
    if case.outcome != "failed":
        return None
    lines = [reason(case, m) for m in case.metrics if m.verdict in (FAIL, INCONCLUSIVE)] or [case.error or standing]
    ET.SubElement(testcase, "failure", message=lines[0]).text = "\n".join(lines)
    return "failures"


def junit_xml(record: "RunRecord") -> str:
    """The record's cases as a JUnit XML document: one testcase per case, in record order."""
    suite = ET.Element("testsuite", name="pytest")
    counts = {"errors": 0, "failures": 0, "skipped": 0}
    durations = record.environment.timings.get("tests_s", {})
    total = 0.0
    for case in record.cases:
        nodeid = case_nodeid(case)
        classname, name = _classname_and_name(nodeid)
        seconds = float(durations.get(nodeid, 0.0))
        total += seconds
        testcase = ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{seconds:.3f}")
        properties = ET.SubElement(testcase, "properties")
        for key, value in case_properties(case):
            ET.SubElement(properties, "property", name=key, value=value)
        which = _outcome_element(testcase, case)
        if which is not None:
            counts[which] += 1
    suite.set("errors", str(counts["errors"]))
    suite.set("failures", str(counts["failures"]))
    suite.set("skipped", str(counts["skipped"]))
    suite.set("tests", str(len(record.cases)))
    suite.set("time", f"{total:.3f}")
    if record.environment.started:
        suite.set("timestamp", record.environment.started)
    root = ET.Element("testsuites", name="pytest tests")
    root.append(suite)
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(record: "RunRecord", path: str | Path) -> Path:
    """Write ``junit_xml(record)`` to ``path`` whole (``outputs.write_text_atomic``)."""
    from vlmgate.outputs import write_text_atomic

    path = Path(path)
    write_text_atomic(path, junit_xml(record))
    return path
