"""SEED-Bench / POPE / MMMU loaders on small files written in their published formats.

The files are built from the published schemas with the ``csv`` module and ``pyarrow``
(and ``datasets`` where installed), never with vlmgate's own code, so a loader that only
agreed with itself would fail here.
"""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmgate.benchmarks.base import benchmark_several_images, load_benchmark
from vlmgate.errors import DataError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


RED, GREEN, BLUE = _png((255, 0, 0)), _png((0, 255, 0)), _png((0, 0, 255), (16, 24))
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


# -- SEED-Bench (VLMEvalKit TSV) -------------------------------------------------------------

SEED_HEADER = ["index", "image", "question", "A", "B", "C", "D", "answer", "category"]


def _write_tsv(path: Path, rows: list[list[str]], header: list[str] = SEED_HEADER) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _seed_rows() -> list[list[str]]:
    b64 = lambda data: base64.b64encode(data).decode("ascii")  # noqa: E731
    return [
        ["101", b64(RED), "What colour dominates?", "red", "green", "blue", "yellow", "A", "Instance Attributes"],
        ["102", b64(GREEN), "How many objects?", "one", "two", "three", "four", "C", "Instances Counting"],
        ["103", "101", "Is the scene indoors?", "yes", "no", "", "", "B", "Scene Understanding"],
    ]


def test_seedbench_reads_vlmevalkit_tsv(tmp_path):
    path = _write_tsv(tmp_path / "SEEDBench_IMG.tsv", _seed_rows())
    bench = load_benchmark(f"seedbench:{path}")
    samples = list(bench.samples())
    assert [s.id for s in samples] == ["101", "102", "103"]
    assert samples[0].options == ("red", "green", "blue", "yellow") and samples[0].answer == 0
    assert samples[1].answer == 2 and samples[1].meta_dict == {"category": "Instances Counting"}
    assert samples[2].options == ("yes", "no") and samples[2].answer == 1  # empty C/D: two options
    assert samples[0].image.getpixel((0, 0)) == (255, 0, 0)
    assert samples[2].image.getpixel((0, 0)) == (255, 0, 0)  # image cell "101" refers to row 101
    assert len(bench) == 3 and len(bench.fingerprint) == 64


def test_seedbench_column_mapping(tmp_path):
    header = ["index", "img", "prompt", "A", "B", "C", "D", "gt", "category"]
    path = _write_tsv(tmp_path / "export.tsv", _seed_rows(), header)
    with pytest.raises(DataError,
                       match=r"missing column\(s\) for 'image' \(column 'image'\).*seedbench:.*\?image=COLUMN"):
        load_benchmark(f"seedbench:{path}")
    bench = load_benchmark(f"seedbench:{path}?image=img&question=prompt&answer=gt")
    assert [s.question for s in bench.samples()][0] == "What colour dominates?"
    with pytest.raises(DataError, match="unknown column field 'questoin' \\(did you mean 'question'\\?\\)"):
        load_benchmark(f"seedbench:{path}?questoin=prompt")


@pytest.mark.parametrize(("row", "column", "message"), [
    (1, 7, "answer 'E' is not one of the option letters A, B, C, D"),
    (0, 1, "not valid base64 image data"),
    (2, 1, "'999' is neither base64 image data nor the index of an earlier row"),
])
def test_seedbench_rejects_malformed_rows(tmp_path, row, column, message):
    rows = _seed_rows()
    rows[row][column] = {7: "E", 1: "@@not base64@@" * 8}.get(column) if row != 2 else "999"
    path = _write_tsv(tmp_path / "bad.tsv", rows)
    with pytest.raises(DataError) as info:
        bench = load_benchmark(f"seedbench:{path}")
        list(bench.samples())
    text = str(info.value)
    assert f"row {row + 1} (line {row + 2}), column '{SEED_HEADER[column]}'" in text and message in text


# -- POPE (lmms-lab parquet) ----------------------------------------------------------------

def _pope_table(answers=("yes", "no", "No"), categories=("adversarial", "popular", "random")):
    n = len(answers)
    return pa.table({
        "id": pa.array([str(i) for i in range(n)]),
        "question_id": pa.array([str(100 + i) for i in range(n)]),
        "question": pa.array([f"Is there a {o} in the image?" for o in ("dog", "cat", "car")[:n]]),
        "answer": pa.array(list(answers)),
        "image_source": pa.array([f"COCO_val2014_{i:012d}" for i in range(n)]),
        "image": pa.array([{"bytes": b, "path": None} for b in (RED, GREEN, BLUE)[:n]], type=IMAGE_TYPE),
        "category": pa.array(list(categories)),
    })


def test_pope_reads_lmms_lab_parquet(tmp_path):
    path = tmp_path / "pope.parquet"
    pq.write_table(_pope_table(), path)
    samples = list(load_benchmark(f"pope:{path}").samples())
    assert [s.id for s in samples] == ["100", "101", "102"]
    assert all(s.kind == "yesno" and s.options == ("Yes", "No") for s in samples)
    assert [s.answer for s in samples] == [0, 1, 1]
    assert [s.meta_dict["category"] for s in samples] == ["adversarial", "popular", "random"]
    assert samples[2].image.size == (16, 24) and samples[2].image.getpixel((0, 0)) == (0, 0, 255)


def test_pope_column_mapping_and_errors(tmp_path):
    path = tmp_path / "pope.parquet"
    pq.write_table(_pope_table().rename_columns(
        ["id", "question_id", "text", "label", "image_source", "image", "category"]), path)
    bench = load_benchmark(f"pope:{path}?question=text&answer=label")
    assert next(iter(bench.samples())).question == "Is there a dog in the image?"
    pq.write_table(_pope_table(answers=("yes", "maybe", "no")), path)
    with pytest.raises(DataError, match=r"pope.parquet: row 2, column 'answer': answer 'maybe' is not yes or no"):
        load_benchmark(f"pope:{path}")
    pq.write_table(_pope_table(categories=("adversarial", "popular", "randm")), path)
    with pytest.raises(DataError, match=r"row 3, column 'category': category 'randm' is not one of"):
        load_benchmark(f"pope:{path}")


def test_pope_broken_image_names_row_and_column(tmp_path):
    table = _pope_table()
    images = [{"bytes": RED, "path": None}, {"bytes": b"not a png", "path": None}, {"bytes": BLUE, "path": None}]
    table = table.set_column(table.column_names.index("image"), "image", pa.array(images, type=IMAGE_TYPE))
    path = tmp_path / "pope.parquet"
    pq.write_table(table, path)
    bench = load_benchmark(f"pope:{path}")
    with pytest.raises(DataError, match=r"row 2, column 'image': the image cannot be decoded"):
        list(bench.samples())


def test_parquet_needs_pyarrow_message(tmp_path, monkeypatch):
    import sys

    path = tmp_path / "pope.parquet"
    pq.write_table(_pope_table(), path)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import now raises ImportError
    with pytest.raises(DataError, match=r"needs the 'pyarrow.parquet' package.*pytest-vlmgate\[data\]"):
        load_benchmark(f"pope:{path}")


# -- MMMU (parquet) ---------------------------------------------------------------------------

def _mmmu_table(options=None, answers=None):
    options = options or ["['4', '5', '6']", "['<image 2>', '<image 3>']", "[]", "['x', 'y']"]
    answers = answers or ["B", "A", "12", "A"]
    image = lambda data: {"bytes": data, "path": None} if data else None  # noqa: E731
    columns = {
        "id": pa.array(["validation_Math_1", "validation_Art_2", "validation_Math_3", "validation_Bio_4"]),
        "question": pa.array(["<image 1> How many sides?", "Which painting matches <image 1>?",
                              "Compute the value.", "Which organ?"]),
        "options": pa.array(options),
        "explanation": pa.array(["", "", "", ""]),
        "answer": pa.array(answers),
        "subfield": pa.array(["Geometry", "Painting", "Algebra", "Anatomy"]),
        "question_type": pa.array(["multiple-choice", "multiple-choice", "open", "multiple-choice"]),
    }
    images = [[RED, GREEN, RED, None], [None, RED, None, None], [None, BLUE, None, None]]
    for k in range(1, 8):
        cells = images[k - 1] if k <= 3 else [None] * 4
        columns[f"image_{k}"] = pa.array([image(c) for c in cells], type=IMAGE_TYPE)
    return pa.table(columns)


def test_mmmu_reads_parquet_places_images_and_skips(tmp_path):
    path = tmp_path / "validation-00000-of-00001.parquet"
    pq.write_table(_mmmu_table(), path)
    with pytest.warns(UserWarning, match="skipped rows"):
        bench = load_benchmark(f"mmmu:{path}")
    assert bench.skipped == {"fewer than 2 options": 1, "no image": 1}
    first, second = bench.samples()
    # One picture: not split, its placeholder written inline.
    assert first.question == "[image 1] How many sides?" and first.options == ("4", "5", "6") and first.answer == 1
    assert first.more_images == ()
    # Several: each picture on its own, numbered in reference order, placed where the text refers to it.
    assert second.question == "Which painting matches <image 1>?"
    assert second.options == ("<image 2>", "<image 3>") and second.meta_dict["images"] == 3
    assert [image.size for image in second.images] == [(32, 24), (32, 24), (16, 24)]
    assert [image.getpixel((0, 0)) for image in second.images] == [(0, 255, 0), (255, 0, 0), (0, 0, 255)]


def test_mmmu_stitches_an_items_images_only_on_request(tmp_path):
    path = tmp_path / "validation-00000-of-00001.parquet"
    pq.write_table(_mmmu_table(), path)
    with pytest.warns(UserWarning, match="skipped rows"):
        stitched = load_benchmark(f"mmmu:{path}?stitch=1")
    with pytest.warns(UserWarning, match="skipped rows"):
        interleaved = load_benchmark(f"mmmu:{path}")
    assert stitched.fingerprint != interleaved.fingerprint  # the switch decides what the rows mean
    assert benchmark_several_images(f"mmmu:{path}") is True
    assert benchmark_several_images(f"mmmu:{path}?stitch=1") is False
    _, second = stitched.samples()
    assert second.question == "Which painting matches [image 1]?"
    assert second.options == ("[image 2]", "[image 3]") and second.more_images == ()
    # three panels side by side (32 + 32 + 16 px wide, 8 px gaps), in reference order
    assert second.image.size == (32 + 8 + 32 + 8 + 16, 24)
    assert second.image.getpixel((0, 0)) == (0, 255, 0) and second.image.getpixel((40, 0)) == (255, 0, 0)
    assert second.image.getpixel((80, 0)) == (0, 0, 255)
    with pytest.raises(DataError, match=r"\?stitch=maybe is not on or off; write \?stitch=1"):
        load_benchmark(f"mmmu:{path}?stitch=maybe")


def test_mmmu_items_reach_the_model_as_several_pictures(tmp_path):
    """The request an adapter receives for a three-picture MMMU item carries three pictures, in
    the item's order, and a prompt that places them: stitching would send one."""
    from vlmgate.batches import WorkItem, request, run_requests
    from vlmgate.interleaving import interleaved
    from vlmgate.records import CLEAN

    path = tmp_path / "validation-00000-of-00001.parquet"
    pq.write_table(_mmmu_table(), path)
    with pytest.warns(UserWarning, match="skipped rows"):
        _, item = load_benchmark(f"mmmu:{path}").samples()
    received = []

    class Recording:
        spec, fingerprint, takes_several_images = "fake:several", "x", True

        def score(self, requests):
            received.extend(requests)
            return [np.zeros(len(r.continuations)) for r in requests]

    run_requests(Recording(), "score", [request("score", WorkItem(item, CLEAN), 0)])
    (sent,) = received
    assert [image.getpixel((0, 0)) for image in sent.images] == [(0, 255, 0), (255, 0, 0), (0, 0, 255)]
    pieces = interleaved(sent.prompt, len(sent.images))
    assert [piece for piece in pieces if isinstance(piece, int)] == [0, 1, 2]
    assert "Which painting matches " in pieces[0] and pieces[1] == 0  # picture 1 sits where the question names it


@pytest.mark.parametrize(("options", "answers", "message"), [
    (["['4', '5'", "['a', 'b']", "[]", "['x', 'y']"], None, r"row 1, column 'options': .* is not a list written"),
    (None, ["B", "C", "", "A"], r"row 2, column 'answer': answer 'C' is not one of the option letters A, B"),
    (["['4', '<image 5>']", "['a', 'b']", "[]", "['x', 'y']"], None, r"row 1, column 'image_5': .*<image 5>"),
    (["['4', '5', ' 4']", "['a', 'b']", "[]", "['x', 'y']"], None,
     r"row 1, column 'options': option '4' repeats option A"),
])
def test_mmmu_rejects_malformed_rows(tmp_path, options, answers, message):
    path = tmp_path / "mmmu.parquet"
    pq.write_table(_mmmu_table(options, answers), path)
    with pytest.raises(DataError, match=message):
        load_benchmark(f"mmmu:{path}")


# -- datasets save_to_disk folders ------------------------------------------------------------

def test_datasets_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    pope = datasets.Dataset(_pope_table())
    pope.save_to_disk(str(tmp_path / "pope"))
    assert [s.answer for s in load_benchmark(f"pope:{tmp_path / 'pope'}").samples()] == [0, 1, 1]
    mmmu = datasets.DatasetDict({"dev": datasets.Dataset(_mmmu_table()), "validation": datasets.Dataset(_mmmu_table())})
    mmmu.save_to_disk(str(tmp_path / "mmmu"))
    with pytest.raises(DataError, match=r"splits dev, validation; choose one in the spec with \?split=NAME"):
        load_benchmark(f"mmmu:{tmp_path / 'mmmu'}")
    with pytest.warns(UserWarning):
        bench = load_benchmark(f"mmmu:{tmp_path / 'mmmu'}?split=validation")
    assert len(bench) == 2 and next(iter(bench.samples())).image.size == (32, 24)


def test_datasets_folder_without_datasets(tmp_path, monkeypatch):
    import sys

    (tmp_path / "folder").mkdir()
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DataError, match=r"needs the 'datasets' package.*pytest-vlmgate\[datasets\]"):
        load_benchmark(f"pope:{tmp_path / 'folder'}")


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unknown table format '.csv'"):
        load_benchmark(f"pope:{tmp_path / 'x.csv'}")
    with pytest.raises(DataError, match="does not exist"):
        load_benchmark(f"mmmu:{tmp_path / 'missing.parquet'}")


def test_engine_runs_on_a_loaded_benchmark(tmp_path):
    """A POPE parquet through the engine with the bundled model: clean pass, yes/no scores."""
    from vlmgate.engine import Engine
    from vlmgate.models.base import ModelOptions, load_model

    path = tmp_path / "pope.parquet"
    pq.write_table(_pope_table(), path)
    engine = Engine(load_model("bundled:shapes-v1", ModelOptions()), load_benchmark(f"pope:{path}"), limit=3)
    clean = engine.clean()
    assert set(clean) == {"100", "101", "102"}
    assert all(len(obs.scores) == 2 and np.isfinite(obs.scores).all() for obs in clean.values())


# -- decoding and malformed input -------------------------------------------------------------

def test_seedbench_non_utf8_tsv_names_line_and_byte(tmp_path):
    path = _write_tsv(tmp_path / "seed.tsv", _seed_rows())
    data = path.read_bytes()
    at = data.index(b"How many")
    path.write_bytes(data[:at] + b"\xe9" + data[at:])
    with pytest.raises(DataError) as info:
        load_benchmark(f"seedbench:{path}")
    assert f"{path}:3: byte {at} (0xe9)" in str(info.value) and "UTF-8" in str(info.value)


def test_seedbench_duplicate_options_name_row_and_option(tmp_path):
    rows = _seed_rows()
    rows[1][5] = "One"  # C duplicates A ("one")
    path = _write_tsv(tmp_path / "seed.tsv", rows)
    with pytest.raises(DataError, match=r"row 2 \(line 3\), column 'C': option 'One' repeats option A"):
        load_benchmark(f"seedbench:{path}")


def _sixteen_bit_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.array([[0, 511, 32768, 65535]], dtype=np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_pope_cells_decode_16_bit_and_refuse_beyond_the_budget(tmp_path):
    table = _pope_table()
    images = [{"bytes": _sixteen_bit_png(), "path": None}, {"bytes": _png((1, 2, 3), (300, 200)), "path": None},
              {"bytes": BLUE, "path": None}]
    table = table.set_column(table.column_names.index("image"), "image", pa.array(images, type=IMAGE_TYPE))
    path = tmp_path / "pope.parquet"
    pq.write_table(table, path)
    first = next(load_benchmark(f"pope:{path}").samples())
    assert [first.image.getpixel((x, 0)) for x in range(4)] == [(0,) * 3, (1,) * 3, (128,) * 3, (255,) * 3]
    from vlmgate.benchmarks.base import BenchmarkOptions

    bench = load_benchmark(f"pope:{path}", BenchmarkOptions(max_pixels=50_000))
    with pytest.raises(DataError, match=r"pope\.parquet: row 2, column 'image': .*300x200.*budget of 50,000"):
        list(bench.samples())


def test_image_struct_path_that_is_a_directory(tmp_path):
    table = _pope_table()
    (tmp_path / "imgs").mkdir()
    images = [{"bytes": None, "path": "imgs"}, {"bytes": RED, "path": None}, {"bytes": BLUE, "path": None}]
    table = table.set_column(table.column_names.index("image"), "image", pa.array(images, type=IMAGE_TYPE))
    path = tmp_path / "pope.parquet"
    pq.write_table(table, path)
    with pytest.raises(DataError, match=r"row 1, column 'image': .*imgs, which is a directory"):
        list(load_benchmark(f"pope:{path}").samples())


def test_split_on_a_single_file_is_refused(tmp_path):
    """``?split=`` picks a split of a datasets folder; on a file it would be ignored silently."""
    path = tmp_path / "pope.parquet"
    pq.write_table(_pope_table(), path)
    with pytest.raises(DataError, match=r"pope\.parquet is a file.*\?split=validation.*drop \?split"):
        load_benchmark(f"pope:{path}?split=validation")
