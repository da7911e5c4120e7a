"""Run records (JSON round trip, validation, collection from reports) and the HTML report, on
hand-built records (snapshot summaries and their comparison: ``test_snapshots.py``)."""

from __future__ import annotations

import base64
import json
import math
import re
import sys
from dataclasses import replace
from types import SimpleNamespace

import pytest

from vlmgate.cases import CaseKey
from vlmgate.errors import RecordError
from vlmgate.gate import Judgement
from vlmgate.records import MetricResult, Verdict, WorstSample
from vlmgate.report.collect import REPORT_ATTRIBUTE, RunCollector, case_payload, metric_record
from vlmgate.report.html import render_html
from vlmgate.report.local_files import LocalFiles
from vlmgate.report.record import (
    SCHEMA_VERSION,
    CaseRecord,
    Completeness,
    Environment,
    MetricRecord,
    RunRecord,
    load_record,
    write_record,
)
from vlmgate.settings import Settings
from vlmgate.thresholds import Threshold

MODEL, BENCH = "hf:/runs/org:team/ckpt:v2", "jsonl:/data/manifest.jsonl"
XSS = "<script>alert('x')</script>"


def ifr_metric(value: float = 1 / 3, passed: bool = True, worst_sample: str = "s1") -> MetricRecord:
    return MetricRecord(
        name="ifr", kind="proportion", better="lower", value=value, ci_low=0.1 + 0.2, ci_high=0.7, n=3,
        limit="max 0.2 (interval)", passed=passed, message=f"ifr = {value:.4f} ...",
        units={"s1|translation({\"dx\": 4})": 1, "s2|translation({\"dx\": 4})": 0, "s3|translation({\"dx\": 4})": 0},
        details={"count": 1, "worst": [{"sample": worst_sample, "flips": 1, "of": 1, "clean": 0,
                                        "flipped_by": ["translation({\"dx\": 4})"]}]},
    )


def make_record(*, metric: MetricRecord | None = None, environment: Environment | None = None) -> RunRecord:
    nan_case = CaseRecord("m-b-any", "t.py::test_flip_rate", CaseKey(MODEL, BENCH, "any", "flip_rate"), "failed",
                          (MetricRecord("ifr", "proportion", "lower", math.nan, 0.0, 1.0, 0, "max 0.2 (interval)",
                                        False, "nothing was measured"),))
    judged = CaseRecord("m-b-translation", "t.py::test_flip_rate", CaseKey(MODEL, BENCH, "translation", "flip_rate"),
                        "passed", (metric or ifr_metric(),))
    errored = CaseRecord("m-b-clean", "t.py::test_flip_rate", CaseKey(MODEL, BENCH, "clean", "flip_rate"), "failed",
                         (), "ModelError: cannot load")
    return RunRecord(SCHEMA_VERSION, "0.1.0", 7, {"limit": None, "dtype": "float32"}, {MODEL: "abc"}, {BENCH: None},
                     (nan_case, errored, judged), environment or Environment("3.11.9", "Linux", {"torch": "2.13.0"},
                                                                               "2", {"session_s": 1.5}))


# -- the record -------------------------------------------------------------------------
def test_record_round_trips_through_json_bit_for_bit():
    record = make_record()
    text = record.to_json()
    again = RunRecord.from_json(text)
    assert again.to_json() == text
    assert again.cases[2].metrics[0].value == 1 / 3 and again.cases[2].metrics[0].ci_low == 0.1 + 0.2
    assert math.isnan(again.cases[0].metrics[0].value)
    assert again.cases[2] == record.cases[2] and again.environment == record.environment
    assert again.cases[1].error == "ModelError: cannot load" and again.benchmarks == {BENCH: None}


def test_record_json_is_deterministic_with_sorted_keys():
    text = make_record().to_json()
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert list(data["cases"][2]["metrics"][0]) == sorted(data["cases"][2]["metrics"][0])
    assert data["schema_version"] == SCHEMA_VERSION and data["cases"][2]["key"]["model"] == MODEL
    assert text == make_record().to_json()


def test_comparable_ignores_only_the_environment():
    one = make_record(environment=Environment("3.11.9", "Linux", {"torch": "2.13.0"}, None, {"session_s": 1.0}))
    two = make_record(environment=Environment("3.12.1", "Darwin", {}, "2", {"session_s": 9.0}))
    assert one.comparable() == two.comparable() and one != two
    assert "environment" not in one.comparable()
    assert make_record(metric=ifr_metric(0.5)).comparable() != one.comparable()


def test_write_and_load_by_file_or_folder(tmp_path):
    record = make_record()
    path = write_record(record, tmp_path / "out")
    assert path == tmp_path / "out" / "run.json"
    assert load_record(path).to_json() == load_record(tmp_path / "out").to_json() == record.to_json()


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d["cases"][2]["metrics"][0].pop("value"), "cases[2].metrics[0].value: missing"),
    (lambda d: d["cases"][2]["metrics"][0].update(kind="ratio"),
     "cases[2].metrics[0].kind: 'ratio' is not one of proportion, mean"),
    (lambda d: d["cases"][2]["metrics"][0]["units"].update(x="one"), "outcome 'one' is not a number"),
    (lambda d: d["cases"][0].update(outcome="flaky"), "cases[0].outcome: 'flaky' is not one of"),
    (lambda d: d["cases"][1]["key"].pop("suite"), "cases[1].key.suite: missing"),
    (lambda d: d.update(seed="0"), "seed: '0' has the wrong type"),
    (lambda d: d.update(schema_version=99), "schema_version 99 is not one this vlmgate reads (1, 2, 3, 4)"),
    (lambda d: d.pop("completeness"), "completeness: missing"),
    (lambda d: d["completeness"].update(not_run="t.py::x"), "completeness.not_run: 't.py::x' has the wrong type"),
    (lambda d: d["completeness"].update(complete=False, not_run=[]),
     "completeness: an incomplete record must give its reason"),
])
def test_reading_errors_name_the_file_and_key(tmp_path, edit, needle):
    data = json.loads(make_record().to_json())
    edit(data)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError) as info:
        load_record(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_unreadable_records_say_how_to_make_one(tmp_path):
    with pytest.raises(RecordError, match="does not exist; write one with pytest --vlmgate-report DIR"):
        load_record(tmp_path / "nothing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(RecordError, match=r"bad.json: not valid JSON"):
        load_record(tmp_path / "bad.json")
    (tmp_path / "latin1.json").write_bytes('{"seed": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(RecordError, match=r"latin1.json: not UTF-8 text \(byte 0xe9 at offset 13\); is it a vlmgate"):
        load_record(tmp_path / "latin1.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordError,
                       match=r"empty holds no run.json; pass the folder pytest --vlmgate-report DIR wrote"):
        load_record(tmp_path / "empty")
    (tmp_path / "odd" / "run.json").mkdir(parents=True)
    with pytest.raises(RecordError, match=r"odd/run.json: cannot read it \(.*\); pass the run.json"):
        load_record(tmp_path / "odd")


def test_an_incomplete_record_round_trips_and_a_schema_1_record_reads_as_complete():
    stopped = Completeness(False, "interrupted (KeyboardInterrupt)", 11, ("t.py::test_flip_rate[b]", "t.py::x[c]"))
    record = RunRecord(**{**make_record().__dict__, "completeness": stopped})
    again = RunRecord.from_json(record.to_json())
    assert again.completeness == stopped and not again.completeness.complete
    assert json.loads(record.to_json())["completeness"] == {
        "complete": False, "reason": "interrupted (KeyboardInterrupt)", "selected": 11,
        "not_run": ["t.py::test_flip_rate[b]", "t.py::x[c]"]}
    assert stopped.describe() == "incomplete: 2 of 11 cases not run (interrupted (KeyboardInterrupt))"
    assert "completeness" in record.comparable()  # a missing case is a different result
    old = json.loads(make_record().to_json())  # written before records said whether they were whole
    old["schema_version"] = 1
    del old["completeness"]
    read = RunRecord.from_json(json.dumps(old))
    assert read.schema_version == 1 and read.completeness == Completeness() and read.completeness.complete


# -- from judgements and test reports to the record -------------------------------------
def test_metric_record_keeps_the_typed_fields():
    units = {"s1|v": 1, "s2|v": 0}
    worst = (WorstSample("s1", 1, 1, 0, ("v",)),)
    result = MetricResult("ifr", 0.5, 0.1, 0.9, 2, {"transitions": {"R->W": 1}}, kind="proportion", better="lower",
                          units=units, clusters={"s1|v": "s1", "s2|v": "s2"}, count=1, worst=worst)
    limit = Threshold("ifr", "*", max=0.4, max_increase=0.02, tier="supporting")
    verdict = Verdict("inconclusive", "straddles", needed_n=31)
    record = metric_record(Judgement(result, limit, verdict, effect="warn"))
    assert (record.kind, record.better, record.units, record.count, record.worst) == (
        "proportion", "lower", units, 1, worst)
    assert record.clusters == {"s1|v": "s1", "s2|v": "s2"} and record.details == {"transitions": {"R->W": 1}}
    assert record.limit == "max 0.4 (interval); max increase 0.02 vs baseline"
    # The three-way verdict, its tier and effect, and the change bounds (for the diff's gated family).
    assert (record.outcome, record.passed, record.tier, record.effect, record.needed_n) == (
        "inconclusive", False, "supporting", "warn", 31)
    assert record.change_limits == {"max_increase": 0.02} and record.change is None
    # The record reads back what it wrote, typed fields included.
    cases = RunRecord.from_json(make_record(metric=record).to_json()).cases
    back = next(case for case in cases if case.id == "m-b-translation").metrics[0]
    assert back == record


def report_with(nodeid: str, payload: str | None, duration: float, when: str = "call",
                passed: bool = True) -> SimpleNamespace:
    report = SimpleNamespace(nodeid=nodeid, duration=duration, when=when, passed=passed, failed=not passed)
    if payload is not None:
        setattr(report, REPORT_ATTRIBUTE, payload)
    return report


def test_collector_builds_a_sorted_record_from_report_payloads():
    settings = Settings(models=(MODEL,), benchmarks=(BENCH,), seed=3)
    judged = Judgement(MetricResult("ifr", 0.25, 0.1, 0.5, 4, kind="proportion", count=1,
                                    units={"a": 1, "b": 0, "c": 0, "d": 0}),
                       None, Verdict("recorded", "recorded; no limit set"))
    payloads = {}
    for family in ("rotation", "any", "clean"):
        key = CaseKey(MODEL, BENCH, family, "flip_rate")
        params_id = f"hf_ckpt_v2-jsonl_data-{family}"
        payloads[family] = case_payload(
            settings=settings, key=key, nodeid=f"t.py::test_flip_rate[{params_id}]", params_id=params_id,
            outcome="passed", judgements=[judged], error=None,
            fingerprints={"models": {MODEL: "fp-model"}, "benchmarks": {BENCH: "fp-bench"}})
    collector = RunCollector(settings, workers="2")
    for family in ("rotation", "clean", "any"):  # arrival order is not record order
        nodeid = f"t.py::test_flip_rate[hf_ckpt_v2-jsonl_data-{family}]"
        collector.add(report_with(nodeid, None, 0.5, "setup"))
        collector.add(report_with(nodeid, payloads[family], 2.0))
        collector.add(report_with(nodeid, None, 0.25, "teardown"))
    collector.add(report_with("t.py::test_other", None, 9.0))  # not a vlmgate case
    record = collector.record()
    assert [case.id for case in record.cases] == [
        f"hf_ckpt_v2-jsonl_data-{family}" for family in ("any", "clean", "rotation")]
    assert {case.test for case in record.cases} == {"t.py::test_flip_rate"}
    assert record.models == {MODEL: "fp-model"} and record.benchmarks == {BENCH: "fp-bench"} and record.seed == 3
    assert record.cases[0].metrics[0].units == {"a": 1, "b": 0, "c": 0, "d": 0}
    assert {(case.standing, case.metrics[0].outcome, case.metrics[0].tier) for case in record.cases} == {
        ("recorded", "recorded", None)}  # no limit: judged nothing, recorded
    assert record.environment.workers == "2"
    assert set(record.environment.timings["tests_s"].values()) == {2.75}
    assert record.settings["models"] == [MODEL] and record.settings["baseline"] is None
    assert record.completeness == Completeness(True, None, 0, ())  # nothing was selected through pytest here


def test_collector_names_the_selected_tests_that_never_reported():
    collector = RunCollector(Settings(models=(MODEL,), benchmarks=(BENCH,)))
    selected = [f"t.py::test_flip_rate[{n}]" for n in "abcdef"]
    collector.select(selected[:4])
    collector.select(selected[2:])  # xdist: every worker reports what it collected
    collector.add(report_with(selected[0], None, 0.1))  # ran
    collector.add(report_with(selected[1], None, 0.1, "setup", passed=False))  # errored in setup: it ran
    collector.add(report_with(selected[2], None, 0.1, "setup"))  # set up, then interrupted in its call
    assert collector.record().completeness == Completeness(
        False, "pytest ended before running them", 6, tuple(selected[2:]))
    assert collector.record(stopped="stopping after 2 failures").completeness.reason == "stopping after 2 failures"
    for nodeid in selected[2:]:
        collector.add(report_with(nodeid, None, 0.1))
    assert collector.record(stopped="stopping after 1 failures").completeness == Completeness(True, None, 6, ())
    # Cut short before or after every selected test (Ctrl-C in collection, a last teardown): not whole.
    cut = collector.record(stopped="interrupted (KeyboardInterrupt)", interrupted=True).completeness
    assert cut == Completeness(False, "interrupted (KeyboardInterrupt)", 6, ())
    collector.collection_failed("t.py")
    assert collector.record().completeness == Completeness(False, "1 error(s) during collection: t.py", 6, ())


# -- HTML -------------------------------------------------------------------------------
def test_html_escapes_every_text_from_the_record():
    metric = ifr_metric(passed=False, worst_sample=XSS)
    metric = MetricRecord(**{**metric.__dict__, "message": f"failed on {XSS}", "limit": XSS})
    record = make_record(metric=metric)
    record = RunRecord(**{**record.__dict__, "models": {f"hf:/x/{XSS}": "fp"}})
    html = render_html(record, source=XSS)
    assert "<script" not in html  # no markup from the record, and no scripts of our own
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert html.count("&lt;script&gt;") >= 5  # title, heading, model, limit, message, worst sample


def test_html_is_self_contained_and_plots_with_matplotlib():
    pytest.importorskip("matplotlib")
    html = render_html(make_record())
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html)  # nothing loaded from elsewhere
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 1 and base64.b64decode(images[0]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "<style>" in html and "Flip rate per family" in html


def test_html_without_matplotlib_has_tables_only(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    html = render_html(make_record())
    assert "data:image/png" not in html and "Plots need matplotlib" in html
    assert "<td>translation</td>" in html  # the flip-rate table is still there


def test_html_shows_the_diff_to_a_baseline():
    before = make_record(metric=MetricRecord(**{**ifr_metric().__dict__, "units": {f"u{i}": 0 for i in range(10)}}))
    after = make_record(metric=MetricRecord(**{**ifr_metric().__dict__, "units": {f"u{i}": 1 for i in range(10)}}))
    html = render_html(after, baseline=before, baseline_source="v1/run.json")
    assert "Changes since the baseline" in html and "v1/run.json" in html
    assert "1 gated metric significantly worse: flip_rate translation ifr" in html
    assert '<li class="regressed">flip_rate translation ifr: 0.3333 → 0.3333, change +1.0000 on 10' in html
    assert '<span class="regressed">REGRESSED</span>' in html


def test_html_embeds_the_minimal_failing_instances_images(tmp_path):
    from PIL import Image

    clean, perturbed = tmp_path / "clean.png", tmp_path / "perturbed.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(clean)
    Image.new("RGB", (8, 8), (0, 0, 255)).save(perturbed)
    instance = {"sample": "shapes-00001", "family": "rotation", "level": 3, "tolerance": 30, "intensity": 0.1,
                "params": {"degrees": 3}, "choices": {"sign": -1}, "source": "search", "clean_prediction": "B",
                "perturbed_prediction": "D", "milder_prediction": "B",
                "images": {"clean": str(clean), "perturbed": str(perturbed)}}
    found = MetricRecord("minimal_failure", "proportion", "lower", 1.0, 1.0, 1.0, 4, "max 0 (strict)", False,
                         "search gate failed", details={"instance": instance})
    lost = MetricRecord(**{**found.__dict__, "details": {"instance": {
        **instance, "sample": XSS, "images": {"clean": str(tmp_path / "gone.png"), "perturbed": str(perturbed)}}}})
    record = make_record()
    cases = (CaseRecord("m-b-rotation", "t.py::test_minimal_failures", CaseKey(MODEL, BENCH, "rotation", "search"),
                        "failed", (found,)),
             CaseRecord("m-b-textoverlay", "t.py::test_minimal_failures",
                        CaseKey(MODEL, BENCH, "textoverlay", "search"), "failed", (lost,)))
    html = render_html(RunRecord(**{**record.__dict__, "cases": record.cases + cases}),
                       files=LocalFiles((tmp_path,)))

    section = html.split("<h2>Minimal failing instances</h2>")[1].split("<h2>")[0]
    embedded = re.findall(r'alt="(\w+) image of ([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', section)
    assert [(side, sample) for side, sample, _ in embedded] == [
        ("clean", "shapes-00001"), ("perturbed", "shapes-00001"),
        ("perturbed", "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;")]
    assert [base64.b64decode(data) for _, _, data in embedded[:2]] == [clean.read_bytes(), perturbed.read_bytes()]
    assert "<td>3 of tolerance 30</td>" in section and "<td>B clean, D perturbed</td>" in section
    assert f"image not found: <code>{tmp_path / 'gone.png'}</code>" in section  # named, the report still renders
    assert "<script" not in html


def test_html_embeds_only_files_under_the_report_folder(tmp_path):
    from PIL import Image

    folder, outside = tmp_path / "report", tmp_path / "elsewhere"
    (folder / "minimal_failures").mkdir(parents=True)
    outside.mkdir()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(folder / "minimal_failures" / "clean.png")
    Image.new("RGB", (4, 4), (0, 0, 255)).save(outside / "secret.png")
    (folder / "link.png").symlink_to(outside / "secret.png")
    names = {"relative": "minimal_failures/clean.png", "absolute": str(folder / "minimal_failures" / "clean.png"),
             "escape": "../elsewhere/secret.png", "elsewhere": str(outside / "secret.png"), "symlink": "link.png"}
    files = LocalFiles((folder,))
    assert files.locate(names["relative"]) == files.locate(names["absolute"]) == (
        folder / "minimal_failures" / "clean.png").resolve()
    assert [files.locate(names[k]) for k in ("escape", "elsewhere", "symlink")] == [None, None, None]
    cases = tuple(
        CaseRecord(f"m-b-{label}", "t.py::test_minimal_failures", CaseKey(MODEL, BENCH, label, "search"), "failed",
                   (MetricRecord("minimal_failure", "proportion", "lower", 1.0, 1.0, 1.0, 1, None, False, "found",
                                 details={"instance": {"sample": label,
                                                       "images": {"clean": name, "perturbed": name}}}),))
        for label, name in names.items())
    html = render_html(RunRecord(**{**make_record().__dict__, "cases": cases}), files=files)
    embedded = re.findall(r'alt="clean image of (\w+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert [label for label, _ in embedded] == ["relative", "absolute"]
    inside = (folder / "minimal_failures" / "clean.png").read_bytes()
    assert {base64.b64decode(data) for _, data in embedded} == {inside}
    for label in ("escape", "elsewhere", "symlink"):
        assert f"image outside the report folder {folder}, not embedded: <code>{names[label]}</code>" in html
    assert base64.b64encode((outside / "secret.png").read_bytes()).decode() not in html


def test_html_says_when_the_run_is_incomplete():
    whole = render_html(make_record())
    assert 'class="incomplete"' not in whole and "<td>complete</td>" in whole
    stopped = Completeness(False, "stopping after 1 failures", 11,
                           ("t.py::test_flip_rate[b]", "t.py::test_flip_rate[c]"))
    html = render_html(RunRecord(**{**make_record().__dict__, "completeness": stopped}))
    banner = html.split("<h2>")[0]  # before the first section
    assert '<p class="incomplete">incomplete: 2 of 11 cases not run (stopping after 1 failures)</p>' in banner
    assert "<li><code>t.py::test_flip_rate[b]</code></li>" in html


# -- clusters: how many independent images a value rests on ------------------------------
def clustered_ifr() -> MetricResult:
    units = {f"s{i}|shift={j}": int(i < 3) for i in range(10) for j in range(8)}
    return MetricResult("ifr", 0.3, 0.05, 0.65, 80, kind="proportion", better="lower", units=units,
                        clusters={key: key.split("|")[0] for key in units}, count=24)


def test_the_record_stores_n_clusters_next_to_n_and_old_records_still_read():
    record = metric_record(Judgement(clustered_ifr(), Threshold("ifr", "*", max=0.4), Verdict("pass", "fine")))
    assert (record.n, record.n_clusters) == (80, 10)
    written = json.loads(make_record(metric=record).to_json())
    stored = next(case for case in written["cases"] if case["id"] == "m-b-translation")["metrics"][0]
    assert (stored["n"], stored["n_clusters"]) == (80, 10)
    back = RunRecord.from_json(make_record(metric=record).to_json())
    assert next(c for c in back.cases if c.id == "m-b-translation").metrics[0].n_clusters == 10
    del stored["n_clusters"]  # a record written before clusters were counted
    old = RunRecord.from_json(json.dumps(written))
    assert next(c for c in old.cases if c.id == "m-b-translation").metrics[0].n_clusters is None


def test_html_shows_the_images_a_clustered_value_rests_on():
    record = metric_record(Judgement(clustered_ifr(), Threshold("ifr", "*", max=0.4), Verdict("pass", "fine")))
    html = render_html(make_record(metric=record))
    assert '<td class="num">80 (10 images)</td>' in html
    assert '<td class="num">0 </td>' not in html and '<td class="num">0</td>' in html  # unclustered: n alone


# -- the report as a release manager reads it ---------------------------------------------
SKIP_REASON = "benchmark b holds images; the cross-modal suite needs a text benchmark: --vlmgate-benchmark textqa:PATH"


def gate_metric(name: str, value: float, *, limit: str | None = "max 0.05 (interval)", passed: bool = True,
                inert: bool = False, units: dict[str, int] | None = None, clusters: dict[str, str] | None = None,
                details: dict | None = None, worst: tuple[WorstSample, ...] = ()) -> MetricRecord:
    units = units if units is not None else {f"s{i}": int(i < value * 50) for i in range(50)}
    return MetricRecord(name, "proportion", "lower", value, max(0.0, value - 0.02), value + 0.04, len(units), limit,
                        passed, f"{name} = {value:.4f} ... {'within' if passed else 'exceeds'} {limit}", units,
                        details or {}, clusters or {}, count=sum(units.values()), worst=worst,
                        n_clusters=len(set((clusters or units).values() if clusters else units)), inert=inert)


def release_record(*, failing: bool, started: str | None = "2025-11-29T03:12:44+00:00",
                   followed: set[int] = frozenset({0, 1, 2})) -> RunRecord:
    """A run of one model on one benchmark: an overlay case (failing or not), a translation case with
    a recorded metric and an inert gate, a clean case, and three skipped cross-modal cases."""
    overlay_units = {f"s{i}|named={j}": int(failing and i * 3 + j in followed) for i in range(50) for j in range(3)}
    overlay_clusters = {key: key.split("|")[0] for key in overlay_units}
    worst = (WorstSample("s0", 3, 3, 0, ('textoverlay({"label": "B"})', 'textoverlay({"label": "C"})',
                                         'textoverlay({"label": "D"})'), (1, 2, 3), "followed the named option",
                         "What colour is the shape?", ("A. red", "B. green", "C. blue", "D. yellow"), 0),) \
        if failing else ()
    follow = gate_metric("follow_rate", sum(overlay_units.values()) / 150, limit="max 0 (strict)", passed=not failing,
                         units=overlay_units, clusters=overlay_clusters, worst=worst,
                         details={"control": "the empty box naming the same options lands on them in 0 of 150"})
    key = lambda family, suite="flip_rate": CaseKey(MODEL, BENCH, family, suite)  # noqa: E731
    cases = [
        CaseRecord("m-b-textoverlay", "robustness_tests/test_flip_rate.py::test_flip_rate", key("textoverlay"),
                   "failed" if failing else "passed", (gate_metric("ifr", 0.02, limit="recorded (gated = false)"),
                                                       follow)),
        CaseRecord("m-b-translation", "robustness_tests/test_flip_rate.py::test_flip_rate", key("translation"),
                   "passed", (gate_metric("ifr", 0.09, limit="max 0.15 (interval)"),
                              gate_metric("iv", 0.2, limit="max 0.95 (interval)", inert=True))),
        CaseRecord("m-b-translation.ctx_mcq", "robustness_tests/test_drift.py::test_drift",
                   key("translation.ctx_mcq", "drift"), "passed", (gate_metric("drift_ratio_l2", 0.07, limit=None),)),
        CaseRecord("m-b-clean", "robustness_tests/test_flip_rate.py::test_flip_rate", key("clean"), "passed",
                   (gate_metric("accuracy", 0.8, limit="min 0.5 (interval)"),)),
        *(CaseRecord(f"m-b-{style}", "robustness_tests/test_cross_modal.py::test_cross_modal",
                     key(style, "crossmodal"), "skipped", (), f"Skipped: {SKIP_REASON}")
          for style in ("mono_dpi50", "mono_dpi100", "sans_dpi50")),
    ]
    record = make_record()
    return RunRecord(**{**record.__dict__, "cases": tuple(cases), "settings": {"limit": 50, "baseline": None},
                        "environment": Environment("3.11.9", "Linux", {}, None, {}, started=started)})


def section(html: str, anchor: str) -> str:
    """The HTML of ``<section id="anchor">`` (up to the next section)."""
    return html.split(f'<section id="{anchor}"')[1].split("<section ")[0]


def test_the_report_opens_with_its_verdict_naming_each_failing_gate():
    html = render_html(release_record(failing=True), source="reports/v2/run.json")
    body = html.split("<body>", 1)[1].lstrip()
    assert body.startswith('<header id="verdict" class="verdict no-go">')
    banner = body.split("</header>")[0]
    assert '<p class="stamp">NO-GO</p>' in banner
    assert "<p>1 case(s) failed a gate whose tier stops the release</p>" in banner
    assert f"<h1>{MODEL} on {BENCH} · 2025-11-29 03:12 UTC</h1>" in banner
    assert "<title>NO-GO · hf:/runs/org:team/ckpt:v2 on jsonl:/data/manifest.jsonl · 2025-11-29 · vlmgate</title>" \
        in html
    assert "<p><strong>1 failing gate:</strong></p>" in banner
    failing = re.findall(r'<li><a href="#(case-[^"]+)">([^<]+)</a>: ([^<]+)', banner)
    assert [(name, reason.split(" · ")[1]) for _, name, reason in failing] == [
        ("flip_rate textoverlay follow_rate", "3 of 150 instances followed the named option, on 1 of 50 images")]
    anchor = failing[0][0]
    assert f'id="{anchor}"' in section(html, "failures")  # the link leads to the case's failure
    # The cases by standing: the drift case judges nothing (recorded), never counted as a pass.
    assert "1 fail, 2 pass, 1 recorded, 3 skipped" in banner and "1 inert gate" in banner
    # Then the failures, the changes (none without a baseline), everything else, skipped cases, the run.
    order = [html.index(f'<section id="{name}"') for name in ("failures", "gates", "skipped", "run")]
    assert order == sorted(order)


def test_a_straddling_gate_makes_the_report_inconclusive_never_a_pass():
    """An inconclusive critical gate holds the release: the banner reads INCONCLUSIVE, names the gate
    with how many samples would decide it, and its cell reads INCONCLUSIVE, not pass."""
    raw = release_record(failing=False)
    straddling = replace(raw.cases[3].metrics[0], value=0.52, ci_low=0.41, ci_high=0.63, passed=False,
                         outcome="inconclusive", tier="critical", effect="inconclusive", needed_n=310,
                         message="accuracy = 0.5200 ... straddles min 0.5: inconclusive")
    cases = tuple(replace(case, outcome="failed", metrics=(straddling,), standing="inconclusive")
                  if case.id == "m-b-clean" else case for case in raw.cases)
    html = render_html(RunRecord(**{**raw.__dict__, "cases": cases}))
    banner = html.split("<body>", 1)[1].split("</header>")[0]
    assert '<header id="verdict" class="verdict inconclusive">' in banner
    assert '<p class="stamp">INCONCLUSIVE</p>' in banner and "Every gate passes" not in banner
    assert "<p>1 case(s) inconclusive in a tier that holds the release</p>" in banner
    assert "<p><strong>0 failing and 1 inconclusive gate:</strong></p>" in banner
    (reason,) = re.findall(r'<li><a href="#case-[^"]+">flip_rate clean accuracy</a>: ([^<]+)', banner)
    assert "INCONCLUSIVE: the interval straddles the limit, about 310 would decide it" in reason
    assert "critical tier: inconclusive" in reason
    assert "1 inconclusive, 2 pass, 1 recorded, 3 skipped" in banner
    row = next(r for r in section(html, "gates").split("<tr>") if "<td>accuracy</td>" in r)
    assert '<span class="inconclusive"' in row and ">INCONCLUSIVE<" in row and ">pass<" not in row
    assert '<p class="inconclusive">accuracy = 0.5200 ... straddles min 0.5: inconclusive</p>' in section(
        html, "failures")


def test_a_run_cut_short_is_inconclusive_with_its_reason():
    stopped = Completeness(False, "interrupted (KeyboardInterrupt)", 9, ("t.py::test_flip_rate[x]",))
    raw = release_record(failing=False)
    html = render_html(RunRecord(**{**raw.__dict__, "completeness": stopped}))
    banner = html.split("<body>", 1)[1].split("</header>")[0]
    assert '<p class="stamp">INCONCLUSIVE</p>' in banner and "Every gate passes" not in banner
    assert "<p>the run did not finish (interrupted (KeyboardInterrupt))</p>" in banner


def test_a_failure_shows_counts_control_worst_samples_as_texts_and_the_commands():
    failures = section(render_html(release_record(failing=True)), "failures")
    assert "3 of 150 instances followed the named option, on 1 of 50 images" in failures
    assert "control (follow_rate): the empty box naming the same options lands on them in 0 of 150" in failures
    assert "<td>What colour is the shape?</td><td>A. red</td><td>A. red</td>" in failures
    assert "B. green under textoverlay({&quot;label&quot;: &quot;B&quot;})" in failures
    assert ("pytest &#x27;robustness_tests/test_flip_rate.py::test_flip_rate[m-b-textoverlay]&#x27; "
            f"--vlmgate-model {MODEL} --vlmgate-benchmark {BENCH} --vlmgate-limit 50") in failures
    assert "-m &#x27;search and textoverlay&#x27; --vlmgate-search" in failures


def test_skipped_cases_are_listed_with_their_reason_never_as_failures():
    html = render_html(release_record(failing=False))
    assert '<header id="verdict" class="verdict go">' in html and '<p class="stamp">GO</p>' in html
    assert "Every gate passes" in html and "3 pass, 1 recorded, 3 skipped" in html
    assert '<section id="failures"' not in html and "Failures" not in html
    skipped = section(html, "skipped")
    assert "<h2>Skipped cases (3)</h2>" in skipped and skipped.count(SKIP_REASON) == 1  # grouped by reason
    assert "3 cases" in skipped and "m-b-mono_dpi100" in skipped and "Skipped: " not in skipped
    assert 'class="fail"' not in skipped
    # A record written before skip reasons were unwrapped holds pytest's tuple as text: only its reason is shown.
    raw = release_record(failing=False)
    tupled = tuple(CaseRecord(**{**c.__dict__, "error": repr(("/x/plugin.py", 12, f"Skipped: {SKIP_REASON}"))})
                   if c.outcome == "skipped" else c for c in raw.cases)
    skipped = section(render_html(RunRecord(**{**raw.__dict__, "cases": tupled})), "skipped")
    assert skipped.count(SKIP_REASON) == 1 and "plugin.py" not in skipped and "(&#x27;" not in skipped


def test_recorded_metrics_and_inert_gates_are_not_shown_as_a_plain_pass():
    gates = section(render_html(release_record(failing=False)), "gates")
    row = lambda metric: next(r for r in gates.split("<tr>") if f"<td>{metric}</td>" in r)  # noqa: E731
    assert '<span class="recorded"' in row("drift_ratio_l2") and ">recorded<" in row("drift_ratio_l2")
    assert '<span class="inert"' in row("iv") and "pass, inert" in row("iv")
    assert '<span class="pass">pass</span>' in row("accuracy")
    assert "<details" in gates and "<summary>flip_rate" in gates  # collapsed by suite
    assert "150 (50 images)" in gates


def test_the_changes_since_the_baseline_name_each_significant_regression():
    before = release_record(failing=False)
    spread = {i * 3 for i in range(30)}  # 30 images follow once each: significant over images
    after = release_record(failing=True, followed=spread)
    changes = section(render_html(after, baseline=before, baseline_source="v1/run.json"), "changes")
    assert "decision GO -&gt; NO-GO; 1 gate newly failing: flip_rate textoverlay follow_rate; 0 fixed" in changes
    regressions = re.findall(r'<li class="regressed">(.*?)</li>', changes)
    assert len(regressions) == 1 and "flip_rate textoverlay follow_rate" in regressions[0]
    assert "0.0000 → 0.2000" in regressions[0] and "Bonferroni-adjusted p" in regressions[0]
    assert "(recorded changes)" in regressions[0]  # no change limit in these records: not a gated change
    assert re.search(r"on \d+ paired units in 50 images, sign-flip", regressions[0])  # what the test rests on
    assert "<details" in changes  # every compared metric, collapsed


def test_the_flip_rate_table_and_bars_show_each_gate_s_own_standing(monkeypatch):
    """A gate bounded only by its change since the baseline has no line to draw, but it is a gate:
    failed, it is red and FAIL; a metric without a limit is "recorded", not "pass"."""
    pytest.importorskip("matplotlib")
    from vlmgate.report import charts

    changed = replace(ifr_metric(passed=False), limit="max increase 0.02 vs baseline")
    recorded = replace(ifr_metric(), limit=None)
    cases = tuple(CaseRecord(f"m-b-{family}", "t.py::test_flip_rate", CaseKey(MODEL, BENCH, family, "flip_rate"),
                             outcome, (metric,))
                  for family, outcome, metric in (("translation", "failed", changed), ("padcrop", "passed", recorded)))
    drawn = []
    monkeypatch.setattr(charts, "interval_figure", lambda title, bars, xlabel: drawn.extend(bars))
    html = render_html(RunRecord(**{**make_record().__dict__, "cases": cases}))
    table = html.split("Flip rate per family")[1].split("</table>")[0]
    rows = {row.split("</td>")[0].rsplit(">", 1)[-1]: row for row in table.split("<tr>")[2:]}
    assert "max increase 0.02 vs baseline" in rows["translation"] and ">FAIL<" in rows["translation"]
    assert ">recorded<" in rows["padcrop"] and ">pass<" not in rows["padcrop"]
    assert [(bar.label, bar.judged) for bar in drawn] == [("translation", True), ("padcrop", False)]


def test_every_plot_marks_the_limit_of_its_bars():
    pytest.importorskip("matplotlib")
    from vlmgate.report.charts import Bar, interval_figure

    figure = interval_figure("t", [Bar("translation", 0.09, 0.05, 0.12, True, (0.085,)),
                                   Bar("rotation", 0.2, 0.1, 0.3, True, (0.25,)),
                                   Bar("blank", 0.7, 0.6, 0.8, True)], "IFR")
    (axes,) = figure.axes
    (markers,) = axes.collections[-1:]
    segments = markers.get_segments()
    assert sorted(segment[0][0] for segment in segments) == [0.085, 0.25]  # one marker per limited bar
    assert all(segment[0][0] == segment[1][0] for segment in segments)  # vertical lines
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["limit"]


def test_the_verdict_lists_values_past_their_limit_before_gates_failed_only_by_their_change():
    from vlmgate.report.verdicts import RunVerdict

    changed = MetricRecord("ras", "mean", "higher", 0.8553, 0.79, 0.90, 250, "min 0.5 (interval); max decrease "
                           "0.05 vs baseline", False, "ras = 0.8553 [95% CI 0.7901, 0.9005] (n=250) within min 0.5 "
                           "(interval); max decrease 0.05 vs baseline; ras 0.9292 -> 0.8553 (-0.0739) exceeds "
                           "max_decrease 0.05 and is significant", failed_limits=("change",))
    past = MetricRecord("follow_rate", "proportion", "lower", 0.29, 0.21, 0.38, 130, "max 0.05 (interval)", False,
                        "follow_rate = 0.2923 [95% CI 0.2147, 0.3799] (n=130) exceeds max 0.05 (whole interval "
                        "above the limit, interval mode)", failed_limits=("value",))
    # Past its own limit and changed: a value failure first, whatever its message says.
    both = replace(past, name="excess_flip_rate", message=changed.message, failed_limits=("value", "change"))
    cases = (CaseRecord("m-b-blur", "t.py::test_ras", CaseKey(MODEL, BENCH, "gaussian_blur", "ras"), "failed",
                        (changed,)),
             CaseRecord("m-b-textoverlay", "t.py::test_flip_rate", CaseKey(MODEL, BENCH, "textoverlay", "flip_rate"),
                        "failed", (past,)),
             CaseRecord("m-b-rotation", "t.py::test_flip_rate", CaseKey(MODEL, BENCH, "rotation", "flip_rate"),
                        "failed", (both,)))
    record = RunRecord(**{**make_record().__dict__, "cases": cases})
    failing = RunVerdict.of(record).failing
    assert [gate.name for gate in failing] == ["flip_rate textoverlay follow_rate",
                                               "flip_rate rotation excess_flip_rate", "ras gaussian_blur ras"]
    assert [gate.only_changed for gate in failing] == [False, False, True]
    assert "changed beyond its limit since the baseline" in failing[2].reason
    assert "changed beyond its limit" not in failing[0].reason
    # The record keeps which limits failed; an unknown one is refused, naming the field.
    reread = {case.id: case.metrics[0].failed_limits
              for case in RunRecord.from_json(record.to_json(), "run.json").cases}
    assert reread == {"m-b-blur": ("change",), "m-b-textoverlay": ("value",), "m-b-rotation": ("value", "change")}
    data = json.loads(record.to_json())
    data["cases"][0]["metrics"][0]["failed_limits"] = ["drift"]
    with pytest.raises(RecordError, match=r"failed_limits.*'drift' is not one of value, change"):
        RunRecord.from_json(json.dumps(data), "run.json")


def test_the_banner_names_three_regressions_and_counts_the_rest():
    """The kept v1 and v2 main-job records differ in dozens of metrics; the first screen names a
    few and counts the rest ("and N more"), which are all listed under the changes below."""
    from support import kept_release

    html = render_html(kept_release("shapes-v2"), baseline=kept_release("shapes-v1"), baseline_source="v1/run.json")
    banner = html.split('<header id="verdict"', 1)[1].split("</header>", 1)[0]
    listed = re.search(r"; (\d+) significant regressions: (.*?)</p>", banner)
    assert listed is not None
    count, names = int(listed.group(1)), listed.group(2)
    assert count > 3 and names.endswith(f" and {count - 3} more") and names.count(", ") == 2
    assert len(re.findall(r'<li class="regressed">', section(html, "changes"))) == count
