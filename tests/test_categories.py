"""Results split by the samples' category: hand-computed per-category figures, clustering kept,
and the split reaching run.json and the HTML report of a real run."""

from __future__ import annotations

import json
import shutil

import pytest
from scipy import stats

from vlmgate.metrics.categories import DETAILS_KEY, split_by_category
from vlmgate.metrics.clustered import clustered_proportion
from vlmgate.records import LOWER, MEAN, PROPORTION, MetricResult, MetricSpec

IFR = MetricSpec("ifr", "flip rate", PROPORTION, LOWER, unit="instance", cluster="sample")


def test_each_category_gets_its_own_proportion_and_wilson_interval():
    units = {"s1": 1, "s2": 0, "s3": 1, "s4": 1, "s5": 0}
    whole = MetricResult("iv", 0.6, 0.2, 0.9, 5, kind=PROPORTION, units=units)
    split = split_by_category(whole, IFR, {"s1": "a", "s2": "a", "s3": "b", "s4": "b", "s5": "b"})
    parts = split.details[DETAILS_KEY]
    assert set(parts) == {"a", "b"}
    assert parts["a"]["value"] == 0.5 and parts["a"]["n"] == 2
    assert parts["b"]["value"] == pytest.approx(2 / 3) and parts["b"]["n"] == 3
    wilson = stats.binomtest(2, 3).proportion_ci(method="wilson")
    assert (parts["b"]["ci_low"], parts["b"]["ci_high"]) == pytest.approx((wilson.low, wilson.high))
    assert (split.value, split.ci_low, split.ci_high) == (0.6, 0.2, 0.9)  # the gate's own figures untouched


def test_instances_of_one_image_stay_one_cluster_within_a_category():
    units = {"s1|t1": 1, "s1|t2": 1, "s2|t1": 0, "s2|t2": 0, "s3|t1": 1, "s3|t2": 0}
    clusters = {unit: unit.partition("|")[0] for unit in units}
    whole = clustered_proportion("ifr", units, clusters, better=LOWER)
    split = split_by_category(whole, IFR, {"s1": "x", "s2": "x", "s3": "y"})
    x = split.details[DETAILS_KEY]["x"]
    expected = clustered_proportion("ifr", {u: v for u, v in units.items() if u[:2] in ("s1", "s2")},
                                    {u: c for u, c in clusters.items() if c in ("s1", "s2")}, better=LOWER)
    assert (x["value"], x["ci_low"], x["ci_high"], x["n"], x["clusters"]) == (
        expected.value, expected.ci_low, expected.ci_high, 4, 2)


@pytest.mark.parametrize("categories", [
    {"s1": "a", "s2": "a"},  # one category: nothing to split
    {"s1": "a", "s2": None},  # a sample without one: a split would leave it out
    {},  # no pass over the samples yet
])
def test_no_split_where_it_would_say_nothing_or_leave_units_out(categories):
    whole = MetricResult("m", 0.5, 0.0, 1.0, 2, kind=MEAN, units={"s1": 1.0, "s2": 0.0})
    assert DETAILS_KEY not in split_by_category(whole, IFR, categories).details


def test_a_run_on_a_benchmark_with_categories_records_and_reports_them(suite_dir, tiny_llava_checkpoint, manifest):
    from support import gate_args

    folder = suite_dir.path / "animals"
    shutil.copytree(manifest.parent, folder)
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    for number, row in enumerate(rows):
        row["category"] = "left" if number % 2 else "right"
    (folder / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = gate_args(tiny_llava_checkpoint, folder / "manifest.jsonl", "-k", "clean or translation",
                     "-p", "no:xdist", "--vlmgate-report=reports")
    ran = suite_dir.runpytest_subprocess(*args)
    assert ran.ret == 0, ran.stdout.str()
    record = json.loads((suite_dir.path / "reports" / "run.json").read_text())
    metrics = {(case["key"]["family"], m["name"]): m for case in record["cases"] for m in case["metrics"]}
    accuracy = metrics[("clean", "accuracy")]["details"][DETAILS_KEY]
    assert sorted(accuracy) == ["left", "right"] and accuracy["left"]["n"] == 3 and accuracy["right"]["n"] == 4
    ifr = metrics[("translation", "ifr")]
    per = ifr["details"][DETAILS_KEY]
    assert sum(part["n"] for part in per.values()) == ifr["n"]
    html = (suite_dir.path / "reports" / "report.html").read_text()
    assert "By category" in html and "<td>left</td>" in html
