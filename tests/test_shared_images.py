"""Rows that share an image (or a declared ``cluster`` key) are one cluster in every clustered statistic.

A stub model that answers from the picture alone (it never reads the question) gives every
question about one image the same outcome, so a benchmark of 10 images asked 5 questions
each holds exactly the evidence of the 10 images asked once: its intervals must be the
10-image ones, not narrower by about √5 as 50 independent rows would make them.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
from PIL import Image

from vlmgate.benchmarks.base import load_benchmark
from vlmgate.benchmarks.image_groups import group_samples, image_groups
from vlmgate.cases import CaseKey
from vlmgate.engine import Engine
from vlmgate.errors import DataError
from vlmgate.metrics.clustered import HALL_T, KORN_GRAUBARD, Clustered, clustered_mean, proportion_interval
from vlmgate.metrics.shared_images import SHARED_IMAGES, cluster_by_image
from vlmgate.models.base import ScoreRequest
from vlmgate.records import LOWER, MEAN, PROPORTION, MetricResult, MetricSpec
from vlmgate.report.diff import compare_metric
from vlmgate.suites import get_suite
from vlmgate.testing import evaluate_case

COLOURS = ["red", "green", "blue", "yellow"]
#: The grey level of each of the 10 images; the stub predicts option round(level / 64).
LEVELS = (10, 70, 130, 200, 40, 100, 160, 220, 20, 90)
#: Images whose answer is the stub's prediction: 6 of 10 right.
RIGHT = frozenset({0, 1, 2, 3, 4, 5})


@dataclass
class PictureOnly:
    """Option i scores ``-|grey/64 - i|``: the answer depends on the picture, never on the question."""

    spec: str = "stub:picture-only"
    fingerprint: str = "stub-picture-only"

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        levels = [float(np.asarray(r.image.convert("L")).mean()) / 64.0 for r in requests]
        return [np.array([-abs(level - i) for i in range(len(r.continuations))]) for level, r in zip(levels, requests)]


def predicted(level: int) -> int:
    return int(np.argmin([abs(level / 64.0 - i) for i in range(len(COLOURS))]))


def write_manifest(folder: Path, rows: list[dict[str, Any]]) -> Path:
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def grey_benchmark(folder: Path, questions: int) -> Path:
    """The 10 grey images, each asked ``questions`` different questions with the same answer."""
    (folder / "images").mkdir(parents=True)
    rows = []
    for i, level in enumerate(LEVELS):
        Image.new("RGB", (32, 32), (level, level, level)).save(folder / "images" / f"img{i}.png")
        answer = predicted(level) if i in RIGHT else (predicted(level) + 1) % len(COLOURS)
        rows += [{"id": f"img{i}-q{k}", "image": f"images/img{i}.png", "question": f"Question {k} about the picture?",
                  "options": COLOURS, "answer": answer} for k in range(questions)]
    return write_manifest(folder, rows)


def case_results(manifest: Path, family: str) -> dict[str, MetricResult]:
    """The flip-rate case ``family`` on ``manifest`` as the session hands it on: clustered by image."""
    engine = Engine(PictureOnly(), load_benchmark(f"jsonl:{manifest}"))
    results = cluster_by_image(evaluate_case("flip_rate", engine, family), engine.samples,
                               get_suite("flip_rate").metric)
    return {result.name: result for result in results}


def width(result: MetricResult) -> float:
    return result.ci_high - result.ci_low


@pytest.fixture(scope="module")
def benchmarks(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Questions per image -> the manifest of the 10 grey images asked that many times."""
    return {k: grey_benchmark(tmp_path_factory.mktemp(f"asked{k}"), k) for k in (1, 5)}


def test_ten_images_asked_five_times_are_ten_clusters_with_the_ten_image_interval(benchmarks):
    once = case_results(benchmarks[1], "clean")["accuracy"]
    five = case_results(benchmarks[5], "clean")["accuracy"]
    assert (once.value, once.n, once.n_clusters) == (0.6, 10, 10)
    assert (five.value, five.n, five.count, five.n_clusters) == (0.6, 50, 30, 10)
    assert set(five.clusters.values()) == {f"img{i}-q0" for i in range(10)}
    assert five.clusters["img3-q4"] == "img3-q0"
    assert five.details[SHARED_IMAGES] == {"rows": 50, "images": 10, "rows_sharing": 50, "declared": 0,
                                           "reclustered": True}
    assert (once.details.get("interval"), five.details["interval"]) == (None, KORN_GRAUBARD)
    assert SHARED_IMAGES not in once.details
    # The 50 rows hold the evidence of the 10 images: the same cluster-robust variance, exactly.
    # Every image's 5 answers agree (ICC 1), a design effect of 5 x 10/9 (the G/(G-1) correction).
    images, rows = Clustered.of_units(five.units, five.clusters), Clustered.of_units(five.units)
    assert images.variance() == pytest.approx(Clustered.of_units(once.units).variance(), rel=1e-12)
    assert five.details["design_effect"] == pytest.approx(50 / 9)
    # Rows counted as images (what the gate judged before): a variance 49/9 times smaller.
    assert rows.variance() == pytest.approx(images.variance() * 9 / 49)
    before = proportion_interval(rows)
    print(f"\naccuracy, 10 images x 1: {once.value} [{once.ci_low:.4f}, {once.ci_high:.4f}], {once.n_clusters} clusters"
          f"\naccuracy, 10 images x 5: {five.value} [{five.ci_low:.4f}, {five.ci_high:.4f}], {five.n_clusters} clusters"
          f"\naccuracy, 50 rows as 50 images: [{before[0]:.4f}, {before[1]:.4f}]")
    # The interval is the 10-image one, widened only by the Korn-Graubard interval's corrections for
    # 10 clusters (Clopper-Pearson at the effective n, t on 9 degrees of freedom) where the 10
    # independent images get Wilson's; the rows-as-images interval is about sqrt(5) narrower.
    assert five.ci_low < once.ci_low and five.ci_high > once.ci_high
    assert width(five) / width(once) < 1.4
    assert (before[1] - before[0]) / width(once) < 0.55


def test_instances_nested_in_rows_nest_in_images(benchmarks):
    """IFR's units are instances of a row (``sample|variant``): the rows of one image become one cluster."""
    once = case_results(benchmarks[1], "rotation")
    five = case_results(benchmarks[5], "rotation")
    for name in ("ifr", "iv"):
        assert five[name].value == pytest.approx(once[name].value)
        assert (once[name].n_clusters, five[name].n_clusters) == (10, 10)
        assert five[name].n == 5 * once[name].n
        assert five[name].details[SHARED_IMAGES]["images"] == 10
    ifr = five["ifr"]
    assert {ifr.clusters[unit] for unit in ifr.units if unit.startswith("img7-q3|")} == {"img7-q0"}
    assert 0 < once["ifr"].value < 1  # the rotations flip some images, so the interval is not degenerate
    # Both are Korn-Graubard intervals over the same 10 images with the same variance; they differ
    # only by the t quantile on the instances' degrees of freedom (19 against 99).
    assert Clustered.of_units(ifr.units, ifr.clusters).variance() == pytest.approx(
        Clustered.of_units(once["ifr"].units, once["ifr"].clusters).variance(), rel=1e-12)
    assert five["ifr"].ci_low == pytest.approx(once["ifr"].ci_low, abs=0.03)
    assert five["ifr"].ci_high == pytest.approx(once["ifr"].ci_high, abs=0.03)
    print(f"\nifr, 10 images x 1: [{once['ifr'].ci_low:.4f}, {once['ifr'].ci_high:.4f}]; "
          f"10 images x 5: [{ifr.ci_low:.4f}, {ifr.ci_high:.4f}]")


def test_a_clustered_mean_of_repeated_rows_is_the_mean_of_the_images(benchmarks):
    """Five identical copies of each image's value give exactly the 10-image mean interval."""
    spec = MetricSpec("shift", "a per-row mean", MEAN, LOWER, lowest=-math.inf, highest=math.inf)
    rng = np.random.default_rng(3)
    per_image = {i: float(v) for i, v in enumerate(rng.lognormal(size=10))}
    five_rows = {f"img{i}-q{k}": per_image[i] for i in range(10) for k in range(5)}
    ten_rows = {f"img{i}-q0": per_image[i] for i in range(10)}
    before = clustered_mean("shift", five_rows, {}, better=LOWER)
    samples = load_benchmark(f"jsonl:{benchmarks[5]}").samples
    [after] = cluster_by_image([before], lambda: list(samples()), lambda name: spec)
    reference = clustered_mean("shift", ten_rows, {}, better=LOWER)
    assert (after.value, after.n, after.n_clusters) == (before.value, 50, 10)
    assert (after.ci_low, after.ci_high) == pytest.approx((reference.ci_low, reference.ci_high), rel=1e-12)
    assert width(before) < 0.5 * width(after)
    assert after.details["interval"] == HALL_T and after.kind == MEAN


def test_the_paired_test_between_releases_runs_over_images(benchmarks):
    """``vlmgate diff`` and the baseline gate read ``clusters``: a change is tested over the 10 images."""
    after = case_results(benchmarks[5], "clean")["accuracy"]
    before_units = {unit: 1 - outcome if unit.startswith(("img6-", "img7-")) else outcome
                    for unit, outcome in after.units.items()}
    before = MetricResult("accuracy", 0.6, 0, 1, 50, kind=PROPORTION, units=before_units, clusters=after.clusters)
    change = compare_metric(before, after, seed=0, key=CaseKey("m", "b", "clean", "flip_rate"))
    assert (change.n_pairs, change.n_clusters) == (50, 10)


# -- which rows share an image --------------------------------------------------------------------


def test_two_files_with_the_same_decoded_pixels_are_one_image(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, size=(12, 16, 3), dtype=np.uint8)
    (tmp_path / "images").mkdir()
    Image.fromarray(pixels).save(tmp_path / "images" / "a.png")
    Image.fromarray(pixels).save(tmp_path / "images" / "b.bmp")
    Image.fromarray(pixels).convert("RGBA").save(tmp_path / "images" / "c.png")  # opaque alpha: same picture
    changed = pixels.copy()
    changed[0, 0] ^= 1
    Image.fromarray(changed).save(tmp_path / "images" / "d.png")
    files = [tmp_path / "images" / name for name in ("a.png", "b.bmp", "c.png")]
    assert len({file.read_bytes() for file in files}) == 3
    rows = [{"id": name[0], "image": f"images/{name}", "question": "What?", "options": COLOURS, "answer": 0}
            for name in ("a.png", "b.bmp", "c.png", "d.png")]
    groups = group_samples(load_benchmark(f"jsonl:{write_manifest(tmp_path, rows)}").samples())
    assert groups.cluster_of == {"a": "a", "b": "a", "c": "a", "d": "d"}
    assert groups.summary() == {"rows": 4, "images": 2, "rows_sharing": 3, "declared": 0}


def test_a_declared_cluster_key_groups_rows_with_different_images_and_wins_over_pixels(tmp_path):
    (tmp_path / "images").mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(tmp_path / "images" / f"frame{i}.png")
    rows = [
        {"id": "f0", "image": "images/frame0.png", "cluster": "video-1"},
        {"id": "f1", "image": "images/frame1.png", "cluster": "video-1"},
        {"id": "f2", "image": "images/frame2.png", "cluster": 2},
        {"id": "f3", "image": "images/frame2.png", "cluster": "video-3"},  # same pixels as f2, another video
        {"id": "f4", "image": "images/frame3.png", "cluster": None},
        {"id": "f5", "image": "images/frame3.png"},
    ]
    manifest = write_manifest(tmp_path, [{**row, "question": "What?", "options": COLOURS, "answer": 0}
                                         for row in rows])
    samples = list(load_benchmark(f"jsonl:{manifest}").samples())
    assert [s.cluster for s in samples] == ["video-1", "video-1", "2", "video-3", None, None]
    groups = group_samples(samples)
    assert groups.cluster_of == {"f0": "f0", "f1": "f0", "f2": "f2", "f3": "f3", "f4": "f4", "f5": "f4"}
    assert groups.summary() == {"rows": 6, "images": 4, "rows_sharing": 4, "declared": 4}
    assert samples[0].with_image(samples[1].image).cluster == "video-1"


@pytest.mark.parametrize("value", [True, "", "  ", 1.5, ["a"], {"id": 1}])
def test_a_cluster_key_that_is_not_an_id_is_refused_naming_the_row(tmp_path, value):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    manifest = write_manifest(tmp_path, [{"id": "q1", "image": "a.png", "question": "What?", "options": COLOURS,
                                          "answer": 0, "cluster": value}])
    with pytest.raises(DataError, match=r"manifest\.jsonl:1 \(sample 'q1'\): cluster must be a non-empty string or "
                                        r"an integer .*; fix it or leave the key out"):
        load_benchmark(f"jsonl:{manifest}")


def _png_cell(colour: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def seed_tsv(path: Path) -> Path:
    """Four SEED-Bench rows: two store the same picture in cells of their own, one refers to row 1."""
    red, blue = _png_cell((200, 10, 10)), _png_cell((10, 10, 200))
    header = ["index", "image", "question", "A", "B", "answer", "video"]
    rows = [["1", red, "What colour?", "red", "blue", "A", "v1"],
            ["2", red, "Which side?", "left", "right", "B", "v2"],
            ["3", "1", "How many?", "one", "two", "A", "v2"],
            ["4", blue, "What colour?", "red", "blue", "B", ""]]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_table_rows_share_an_image_by_pixels_or_by_a_mapped_cluster_column(tmp_path):
    table = seed_tsv(tmp_path / "seed.tsv")
    by_pixels = group_samples(load_benchmark(f"seedbench:{table}").samples())
    assert by_pixels.cluster_of == {"1": "1", "2": "1", "3": "1", "4": "4"}
    declared = load_benchmark(f"seedbench:{table}?cluster=video")
    assert [s.cluster for s in declared.samples()] == ["v1", "v2", "v2", None]
    assert group_samples(declared.samples()).cluster_of == {"1": "1", "2": "2", "3": "2", "4": "4"}
    assert declared.fingerprint != load_benchmark(f"seedbench:{table}").fingerprint
    with pytest.raises(DataError, match=r"\?cluster=scene names no column of the table, which has index, image, "
                                        r"question, A, B, answer, video; map cluster to one of them"):
        load_benchmark(f"seedbench:{table}?cluster=scene")


def test_grouping_is_done_once_per_sample_set(benchmarks, monkeypatch):
    engine = Engine(PictureOnly(), load_benchmark(f"jsonl:{benchmarks[5]}"))
    first = image_groups(engine.samples())
    monkeypatch.setattr("vlmgate.benchmarks.image_groups.group_samples",
                        lambda samples: pytest.fail("the sample set was grouped twice"))
    assert image_groups(engine.samples()) is first


# -- what is left as it was -----------------------------------------------------------------------


def test_a_benchmark_without_shared_images_gives_the_same_results(tmp_path, benchmarks):
    """Not a copy: the very results the suite returned, so their records are bit-identical."""
    engine = Engine(PictureOnly(), load_benchmark(f"jsonl:{benchmarks[1]}"))
    for family in ("clean", "rotation"):
        results = evaluate_case("flip_rate", engine, family)
        handed_on = cluster_by_image(results, engine.samples, get_suite("flip_rate").metric)
        assert len(handed_on) == len(results) and all(a is b for a, b in zip(handed_on, results))
        assert any(result.units for result in results)


def test_the_bundled_benchmark_shares_no_image():
    """So every record of the bundled default is what it was before images were grouped."""
    groups = group_samples(load_benchmark("bundled:shapes").samples())
    assert len(groups.cluster_of) == 300 and not groups.shared


def test_a_result_that_cannot_be_reclustered_says_its_interval_treats_rows_as_independent(benchmarks):
    samples = load_benchmark(f"jsonl:{benchmarks[5]}").samples
    spec = MetricSpec("f1", "a ratio of counts", MEAN, LOWER)
    no_units = MetricResult("f1", 0.5, 0.4, 0.6, 50, {"interval": "percentile bootstrap over items"}, kind=MEAN)
    other_keys = MetricResult("f1", 0.5, 0.4, 0.6, 2, kind=MEAN, units={"item-1": 0.0, "item-2": 1.0})
    not_the_mean = MetricResult("f1", 0.9, 0.4, 0.6, 50, kind=MEAN,
                                units={f"img{i}-q{k}": float(i % 2) for i in range(10) for k in range(5)})
    for result in (no_units, other_keys, not_the_mean):
        [said] = cluster_by_image([result], lambda: list(samples()), lambda name: spec)
        assert (said.ci_low, said.ci_high, said.clusters, said.n_clusters) == (0.4, 0.6, {}, result.n)
        assert said.details[SHARED_IMAGES] == {"rows": 50, "images": 10, "rows_sharing": 50, "declared": 0,
                                               "reclustered": False, "note": said.details[SHARED_IMAGES]["note"]}
        assert "treats rows that share an image as independent" in said.details[SHARED_IMAGES]["note"]
        assert said.details.get("interval") == result.details.get("interval")
    per_case = MetricSpec("minimal_failure", "one outcome per case", MEAN, LOWER, unit="case")
    found = MetricResult("minimal_failure", 1.0, 1.0, 1.0, 1, {"searched": 3}, kind=MEAN)
    assert cluster_by_image([found], lambda: list(samples()), lambda name: per_case)[0] is found


def test_a_text_benchmark_leaves_the_results_as_they_are():
    from vlmgate.errors import NotApplicable

    result = MetricResult("rer", 0.5, 0.2, 0.8, 2, kind=PROPORTION, units={"t1": 1, "t2": 0})

    def text_items():
        raise NotApplicable("text-only")

    assert cluster_by_image([result], text_items, lambda name: pytest.fail("no spec is read"))[0] is result
