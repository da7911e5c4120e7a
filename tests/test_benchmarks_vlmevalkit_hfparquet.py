"""The generic ``vlmevalkit:`` and ``hfparquet:`` loaders on small files written in each layout.

The files are built with the ``csv`` module and ``pyarrow``, never with vlmgate's own code,
so a loader that only agreed with itself would fail here. Pixels, options and answers are
checked against what was written.
"""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import pytest
from PIL import Image

from vlmgate.benchmarks.base import benchmark_yes_no_items, load_benchmark
from vlmgate.errors import DataError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (20, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _b64(colour: tuple[int, int, int], size: tuple[int, int] = (20, 10)) -> str:
    return base64.b64encode(_png(colour, size)).decode("ascii")


# -- vlmevalkit: ------------------------------------------------------------------------------

MMBENCH_HEADER = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
                  "l2-category", "split"]


def _mmbench_rows() -> list[list[str]]:
    return [
        ["7", "What colour is it?", "Look closely.", "red", "green", "blue", "grey", "A", "attribute",
         _b64(RED), "MMBench", "fine-grained perception", "dev"],
        ["8", "Is it a photo?", "", "yes", "no", "", "", "B", "image_style", _b64(GREEN), "MMBench",
         "coarse perception", "dev"],
        ["9", "Which colour?", "", "green", "red", "", "", "A", "attribute", "8", "", "", "dev"],
    ]


def _write_tsv(path: Path, rows: list[list[str]], header: list[str] = MMBENCH_HEADER) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_vlmevalkit_reads_mmbench_style_tsv(tmp_path):
    path = _write_tsv(tmp_path / "MMBench_DEV_EN.tsv", _mmbench_rows())
    bench = load_benchmark(f"vlmevalkit:{path}")
    first, second, third = bench.samples()
    assert [first.id, second.id, third.id] == ["7", "8", "9"]
    assert first.options == ("red", "green", "blue", "grey") and first.answer == 0 and first.hint == "Look closely."
    assert second.options == ("yes", "no") and second.answer == 1 and second.hint is None  # empty C/D
    assert second.kind == "mcq" and third.answer == 0
    assert first.image.getpixel((0, 0)) == RED and first.image.size == (20, 10)
    assert third.image.getpixel((5, 5)) == GREEN  # the image cell "8" refers to row 8's image
    assert first.meta_dict == {"category": "attribute", "l2-category": "fine-grained perception",
                               "source": "MMBench", "split": "dev"}
    assert third.meta_dict == {"category": "attribute", "split": "dev"}  # empty cells left out
    assert len(bench) == 3 and len(bench.fingerprint) == 64


def test_vlmevalkit_column_mapping_and_meta(tmp_path):
    header = ["index", "prompt", "hint", "A", "B", "C", "D", "gt", "type", "image", "source", "l2-category",
              "split"]
    path = _write_tsv(tmp_path / "export.tsv", _mmbench_rows(), header)
    with pytest.raises(DataError, match=r"missing column\(s\) for 'question' \(column 'question'\).*\?question="):
        load_benchmark(f"vlmevalkit:{path}")
    first = next(load_benchmark(f"vlmevalkit:{path}?question=prompt&answer=gt").samples())
    assert first.question == "What colour is it?" and first.answer == 0 and first.meta_dict["type"] == "attribute"
    renamed = next(load_benchmark(f"vlmevalkit:{path}?question=prompt&answer=gt&category=type").samples())
    assert renamed.meta_dict["category"] == "attribute" and "type" not in renamed.meta_dict
    clash = _write_tsv(tmp_path / "clash.tsv", _mmbench_rows())
    with pytest.raises(DataError, match=r"clash.tsv: row 1 \(line 2\): column 'category' and the column mapped to "
                                        r"the field 'category' would both be meta 'category'"):
        load_benchmark(f"vlmevalkit:{clash}?category=source")


def test_vlmevalkit_parquet_and_yes_no_declaration(tmp_path):
    path = tmp_path / "mmstar.parquet"
    pq.write_table(pa.table({
        "index": pa.array([1, 2]), "question": pa.array(["Colour?", "Is it red?"]),
        "A": pa.array(["red", "Yes"]), "B": pa.array(["blue", "No"]), "C": pa.array(["green", None]),
        "answer": pa.array(["C", "A"]), "image": pa.array([_b64(GREEN), _b64(RED)]),
        "category": pa.array(["colour", "colour"]), "bench": pa.array(["MMStar", "MMStar"]),
    }), path)
    first, second = load_benchmark(f"vlmevalkit:{path}").samples()
    assert first.options == ("red", "blue", "green") and first.answer == 2 and first.image.getpixel((0, 0)) == GREEN
    assert second.options == ("Yes", "No") and second.answer == 0
    assert first.meta_dict == {"category": "colour", "bench": "MMStar"}
    assert benchmark_yes_no_items(f"vlmevalkit:{path}") is True
    assert benchmark_yes_no_items(f"vlmevalkit:{tmp_path / 'x.tsv'}") is None  # a TSV is not read at collection


def test_vlmevalkit_folder_of_tsv_shards(tmp_path):
    rows = _mmbench_rows()
    folder = tmp_path / "shards"
    folder.mkdir()
    _write_tsv(folder / "part-1.tsv", rows[:2])
    _write_tsv(folder / "part-0.tsv", [[*rows[2][:9], _b64(BLUE), *rows[2][10:]]])
    bench = load_benchmark(f"vlmevalkit:{folder}")
    assert [s.id for s in bench.samples()] == ["9", "7", "8"]  # sorted file names
    assert next(iter(bench.samples())).image.getpixel((0, 0)) == BLUE
    before = bench.fingerprint
    _write_tsv(folder / "part-1.tsv", rows[:1])
    assert load_benchmark(f"vlmevalkit:{folder}").fingerprint != before  # every shard counts
    bad = rows[:2]
    bad[1][7] = "E"
    _write_tsv(folder / "part-1.tsv", bad)
    with pytest.raises(DataError) as info:
        load_benchmark(f"vlmevalkit:{folder}")
    assert f"{folder / 'part-1.tsv'}: row 2 (line 3), column 'answer'" in str(info.value)


def _edit(rows: list[list[str]], row: int, column: str, value: str) -> list[list[str]]:
    rows[row][MMBENCH_HEADER.index(column)] = value
    return rows


@pytest.mark.parametrize(("row", "column", "value", "message"), [
    (0, "question", "", "empty cell; fill it or drop the row"),
    (0, "answer", "E", "answer 'E' is not one of the option letters A, B, C, D"),
    (2, "index", "7", "id '7' repeats row 1; ids must be unique"),
    (0, "C", "Red", "option 'Red' repeats option A"),
    (0, "image", "@@not base64@@" * 8, "not valid base64 image data"),
    (1, "D", "maybe", "option D follows the empty option C"),
    (2, "image", "42", "'42' is neither base64 image data nor the index of an earlier row"),
])
def test_vlmevalkit_rejects_malformed_rows(tmp_path, row, column, value, message):
    path = _write_tsv(tmp_path / "bad.tsv", _edit(_mmbench_rows(), row, column, value))
    with pytest.raises(DataError) as info:
        list(load_benchmark(f"vlmevalkit:{path}").samples())
    text = str(info.value)
    assert f"bad.tsv: row {row + 1} (line {row + 2}), column '{column}'" in text and message in text


def test_vlmevalkit_an_empty_answer_is_an_item_without_ground_truth(tmp_path):
    """A withheld test split (MMBench's test answers) loads: its items gate flip rates, and
    accuracy counts the answered ones only (``metrics.flips.accuracy``)."""
    rows = _edit(_edit(_mmbench_rows(), 0, "answer", ""), 2, "answer", " ")
    first, second, third = load_benchmark(f"vlmevalkit:{_write_tsv(tmp_path / 'test.tsv', rows)}").samples()
    assert (first.answer, second.answer, third.answer) == (None, 1, None)


# -- hfparquet: -------------------------------------------------------------------------------

def _image_structs(colours) -> pa.Array:
    return pa.array([{"bytes": _png(c), "path": None} for c in colours], type=IMAGE_TYPE)


def test_hfparquet_image_structs_list_options_index_answers(tmp_path):
    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.table({
        "question_id": pa.array(["q1", "q2", "q3"]),
        "image": _image_structs([RED, GREEN, BLUE]),
        "question": pa.array(["Colour?", "Shape?", "Is it blue?"]),
        "choices": pa.array([["red", "green"], ["circle", "square", "star"], ["no", "yes"]]),
        "answer": pa.array([0, 2, 1]),
        "hint": pa.array(["", "a hint", None]),
        "subject": pa.array(["colour", "shape", "colour"]),
        "grade": pa.array([3, 4, 5]),
        "image_2": _image_structs([RED, RED, RED]),
    }), path)
    with pytest.raises(DataError, match=r"the image is read from 'image', but image_2 hold images too, .*"
                                         r"name it: hfparquet:.*\?image=image"):
        load_benchmark(f"hfparquet:{path}")  # image_2 would go unseen without a word
    first, second, third = load_benchmark(f"hfparquet:{path}?image=image").samples()
    assert [first.id, second.id, third.id] == ["q1", "q2", "q3"]
    assert first.options == ("red", "green") and first.answer == 0 and first.image.getpixel((0, 0)) == RED
    assert second.options == ("circle", "square", "star") and second.answer == 2 and second.hint == "a hint"
    assert third.kind == "yesno" and third.options == ("Yes", "No") and third.answer == 0  # "yes" is option 1
    assert third.image.getpixel((0, 0)) == BLUE
    assert first.meta_dict == {"subject": "colour", "grade": "3"}  # image_2 (a struct) is not metadata
    assert benchmark_yes_no_items(f"hfparquet:{path}?image=image") is True


def test_hfparquet_raw_bytes_string_options_text_answers_row_ids(tmp_path):
    path = tmp_path / "export.parquet"
    pq.write_table(pa.table({
        "img": pa.array([_png(GREEN), _png(BLUE)], type=pa.binary()),
        "query": pa.array(["Colour?", "How many?"]),
        "options": pa.array(["['red', 'green']", "['1', '2', '3']"]),
        "label": pa.array(["green", "B"]),
        "context": pa.array(["ctx", ""]),
    }), path)
    first, second = load_benchmark(f"hfparquet:{path}").samples()
    assert [first.id, second.id] == ["1", "2"]  # no id column: row numbers
    assert first.question == "Colour?" and first.options == ("red", "green") and first.answer == 1
    assert first.hint == "ctx" and first.image.getpixel((0, 0)) == GREEN
    assert second.options == ("1", "2", "3") and second.answer == 1 and second.image.getpixel((0, 0)) == BLUE
    assert benchmark_yes_no_items(f"hfparquet:{path}") is False


def test_hfparquet_letter_columns_and_digit_answers(tmp_path):
    path = tmp_path / "mmbench.parquet"
    pq.write_table(pa.table({
        "index": pa.array([10, 11]), "image": _image_structs([RED, GREEN]),
        "question": pa.array(["Colour?", "Colour again?"]),
        "A": pa.array(["red", "blue"]), "B": pa.array(["green", "green"]), "C": pa.array(["blue", None]),
        "answer": pa.array(["A", "1"]), "l2-category": pa.array(["perception", "perception"]),
    }), path)
    first, second = load_benchmark(f"hfparquet:{path}").samples()
    assert first.options == ("red", "green", "blue") and first.answer == 0
    assert second.options == ("blue", "green") and second.answer == 1  # digits: a 0-based index
    assert first.meta_dict == {"l2-category": "perception"} and first.id == "10"


def test_hfparquet_ambiguous_and_missing_spellings(tmp_path):
    path = tmp_path / "two.parquet"
    pq.write_table(pa.table({
        "image": _image_structs([RED]), "question": pa.array(["Colour?"]), "prompt": pa.array(["Q: Colour?"]),
        "options": pa.array([["red", "blue"]]), "answer": pa.array(["A"]),
    }), path)
    with pytest.raises(DataError, match=r"columns 'question' and 'prompt' could each be the 'question'; "
                                        r"name one in the spec: hfparquet:.*two\.parquet\?question=question"):
        load_benchmark(f"hfparquet:{path}")
    assert next(load_benchmark(f"hfparquet:{path}?question=prompt").samples()).question == "Q: Colour?"
    pq.write_table(pa.table({"image": _image_structs([RED]), "question": pa.array(["Colour?"]),
                             "options": pa.array([["red", "blue"]]), "solution": pa.array(["A"])}), path)
    with pytest.raises(DataError, match=r"no column for 'answer': none of answer, label, .* is among the columns "
                                        r"\(image, question, options, solution\); .*\?answer=COLUMN"):
        load_benchmark(f"hfparquet:{path}")
    assert next(load_benchmark(f"hfparquet:{path}?answer=solution").samples()).answer == 0


def test_hfparquet_folder_of_parquet_shards(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for k, (colour, question) in enumerate([(RED, "first?"), (BLUE, "second?")]):
        pq.write_table(pa.table({
            "id": pa.array([f"s{k}"]), "image": _image_structs([colour]), "question": pa.array([question]),
            "options": pa.array([["x", "y"]]), "answer": pa.array([k]),
        }), folder / f"test-{k:05d}-of-00002.parquet")
    (folder / "README.md").write_text("not a shard")
    bench = load_benchmark(f"hfparquet:{folder}")
    first, second = bench.samples()
    assert [first.id, second.id] == ["s0", "s1"] and [first.answer, second.answer] == [0, 1]
    assert second.image.getpixel((0, 0)) == BLUE
    pq.write_table(pa.table({
        "id": pa.array(["s1", "s2"]), "image": _image_structs([RED, GREEN]), "question": pa.array(["a?", "b?"]),
        "options": pa.array([["x", "y"], ["x", "y"]]), "answer": pa.array([0, 5]),
    }), folder / "test-00001-of-00002.parquet")
    with pytest.raises(DataError, match=r"test-00001-of-00002\.parquet: row 2, column 'answer': answer index 5"):
        load_benchmark(f"hfparquet:{folder}")


def test_a_shard_folders_image_paths_are_read_from_the_folder(tmp_path):
    """An image struct that holds a relative path (no bytes) names a file beside the shards."""
    from PIL import Image

    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8), GREEN).save(folder / "images" / "g.png")
    for k in range(2):
        pq.write_table(pa.table({
            "id": pa.array([f"s{k}"]), "question": pa.array(["colour?"]), "options": pa.array([["x", "y"]]),
            "answer": pa.array([0]),
            "image": pa.array([{"bytes": None, "path": "images/g.png"}], type=IMAGE_TYPE),
        }), folder / f"test-{k:05d}-of-00002.parquet")
    assert [s.image.getpixel((0, 0)) for s in load_benchmark(f"hfparquet:{folder}").samples()] == [GREEN, GREEN]


def _hf_table(**changes) -> pa.Table:
    columns = {
        "id": pa.array(["a", "b"]), "image": _image_structs([RED, GREEN]), "question": pa.array(["Q1?", "Q2?"]),
        "options": pa.array([["red", "green"], ["1", "2", "3"]]), "answer": pa.array(["A", "B"]),
    }
    return pa.table({**columns, **changes})


def test_hfparquet_an_empty_answer_is_an_item_without_ground_truth(tmp_path):
    path = tmp_path / "test.parquet"
    pq.write_table(_hf_table(answer=pa.array([None, ""]), options=pa.array([["red", "green"], ["No", "Yes"]])), path)
    first, second = load_benchmark(f"hfparquet:{path}").samples()
    assert first.answer is None and first.kind == "mcq"
    assert second.answer is None and second.kind == "yesno" and second.options == ("Yes", "No")


@pytest.mark.parametrize(("changes", "where", "message"), [
    ({"question": pa.array(["Q1?", ""])}, "row 2, column 'question'", "empty cell; fill it or drop the row"),
    ({"answer": pa.array(["A", "tomato"])}, "row 2, column 'answer'", "answer 'tomato' is neither an option letter"),
    ({"answer": pa.array(["A", "1"])}, "row 2, column 'answer'",
     "answer '1' is the text of option A and also the 0-based index of option B; write the answer as a letter"),
    ({"id": pa.array(["a", "a"])}, "row 2, column 'id'", "id 'a' repeats row 1"),
    ({"options": pa.array([["red", " Red"], ["1", "2"]])}, "row 1, column 'options'", "option 'Red' repeats option A"),
    ({"options": pa.array([["red"], ["1", "2"]])}, "row 1, column 'options'", "needs at least two options"),
    ({"image": pa.array([{"bytes": _png(RED), "path": None}, None], type=IMAGE_TYPE)}, "row 2, column 'image'",
     "no image (empty cell)"),
])
def test_hfparquet_rejects_malformed_rows(tmp_path, changes, where, message):
    path = tmp_path / "bad.parquet"
    pq.write_table(_hf_table(**changes), path)
    with pytest.raises(DataError) as info:
        load_benchmark(f"hfparquet:{path}")
    assert f"bad.parquet: {where}" in str(info.value) and message in str(info.value)


def test_hfparquet_undecodable_image_names_row_and_column(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(_hf_table(image=pa.array([b"not a png", _png(GREEN)], type=pa.binary())), path)
    with pytest.raises(DataError, match=r"bad\.parquet: row 1, column 'image': the image cannot be decoded"):
        list(load_benchmark(f"hfparquet:{path}").samples())


# -- end to end -------------------------------------------------------------------------------

def test_flip_rate_suite_runs_on_a_vlmevalkit_file(suite_dir, tmp_path):
    """The flip-rate suite end to end on a VLMEvalKit TSV: every case records, none errs."""
    from support import outcomes

    header = ["index", "image", "question", "A", "B", "C", "D", "answer", "category"]
    options = ["red", "green", "blue", "yellow"]
    rows = [[str(i), _b64(colour, (64, 64)), "What colour is the shape?", *options, answer, "colour"]
            for i, (colour, answer) in enumerate([(RED, "A"), (GREEN, "B"), (BLUE, "C")])]
    path = _write_tsv(tmp_path / "colours.tsv", rows, header)
    result = suite_dir.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers",
                                           "--vlmgate-model=bundled:shapes-v1",
                                           f"--vlmgate-benchmark=vlmevalkit:{path}", "--vlmgate-thresholds=limits.toml")
    counts = outcomes(result)
    assert counts.get("recorded", 0) > 0 and set(counts) == {"recorded"}, result.stdout.str()[-3000:]


def test_shard_folders_must_agree(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    pq.write_table(_hf_table(), folder / "a.parquet")
    pq.write_table(_hf_table().drop_columns(["id"]), folder / "b.parquet")
    with pytest.raises(DataError, match=r"b\.parquet: columns image, question, options, answer differ from those "
                                        r"of the first shard a\.parquet"):
        load_benchmark(f"hfparquet:{folder}")
    with pytest.raises(DataError, match=r"\?split=test selects a split .* holds table shards; drop \?split"):
        load_benchmark(f"hfparquet:{folder}?split=test")
    (folder / "b.parquet").unlink()
    _write_tsv(folder / "c.tsv", _mmbench_rows())
    with pytest.raises(DataError, match=r"holds both \.tsv and \.parquet files"):
        load_benchmark(f"hfparquet:{folder}")
