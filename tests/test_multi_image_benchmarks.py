"""BLINK and MuirBench loaders on small parquet files written in their published layouts.

The files are built with ``pyarrow`` from the published schemas (BLINK-Benchmark/BLINK,
MUIRBENCH/MUIRBENCH), never with vlmgate's own code, so a loader that only agreed with
itself would fail here. Every picture is a flat colour, so its place in a sample's picture
list is read back from its pixels.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmgate.benchmarks.base import CATEGORY_KEY, benchmark_several_images, load_benchmark
from vlmgate.errors import DataError
from vlmgate.interleaving import interleaved

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
CORRUPT = b"\x89PNG\r\n\x1a\n not a png after all"


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (12, 8)) -> bytes:
    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    pixels[:, :] = colour
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _image(cell: tuple[int, int, int] | bytes | None) -> dict | None:
    if cell is None:
        return None
    data = cell if isinstance(cell, bytes) else _png(cell)
    return {"bytes": data, "path": None}


def _colours(sample) -> list[tuple[int, int, int]]:
    return [picture.getpixel((0, 0)) for picture in sample.images]


# -- BLINK ------------------------------------------------------------------------------------

BLINK_ROWS = [
    {"idx": "val_Jigsaw_1", "sub_task": "Jigsaw", "images": [RED, GREEN],
     "question": "Which image fills the missing part of the first image?",
     "choices": ["the second image", "none of them"], "answer": "(A)"},
    {"idx": "val_IQ_Test_1", "sub_task": "IQ_Test", "images": [RED, GREEN, BLUE, YELLOW],
     "question": "Which picture continues the pattern?",
     "choices": ["the second", "the third", "the fourth"], "answer": "(B)"},
]


def _blink_table(rows=BLINK_ROWS, *, question_column: str = "question") -> pa.Table:
    """BLINK's published columns, in its order (prompt and explanation included)."""
    def images(k: int) -> pa.Array:
        return pa.array([_image(row["images"][k - 1] if k <= len(row["images"]) else None) for row in rows],
                        type=IMAGE_TYPE)

    return pa.table({
        "idx": pa.array([row["idx"] for row in rows]),
        question_column: pa.array([row["question"] for row in rows]),
        "sub_task": pa.array([row["sub_task"] for row in rows]),
        **{f"image_{k}": images(k) for k in range(1, 5)},
        "choices": pa.array([row["choices"] for row in rows], type=pa.list_(pa.string())),
        "answer": pa.array([row["answer"] for row in rows]),
        "prompt": pa.array([f"{row['question']}\nSelect from the following choices." for row in rows]),
        "explanation": pa.array(["" for _ in rows]),
    })


def _write(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _with(rows: list[dict], index: int, **changes) -> list[dict]:
    return [{**row, **changes} if i == index else row for i, row in enumerate(rows)]


def test_blink_loads_pictures_in_column_order_answers_and_subtasks(tmp_path):
    path = _write(_blink_table(), tmp_path / "val-00000-of-00001.parquet")
    bench = load_benchmark(f"blink:{path}")
    jigsaw, iq = bench.samples()
    assert len(bench) == 2 and len(bench.fingerprint) == 64
    assert jigsaw.id == "val_Jigsaw_1" and len(jigsaw.images) == 2 and _colours(jigsaw) == [RED, GREEN]
    assert len(iq.images) == 4 and _colours(iq) == [RED, GREEN, BLUE, YELLOW]
    assert jigsaw.answer == 0 and iq.answer == 1  # "(A)", "(B)"
    assert iq.options == ("the second", "the third", "the fourth") and iq.kind == "mcq"
    assert jigsaw.meta_dict == {CATEGORY_KEY: "Jigsaw", "images": 2}
    assert iq.meta_dict[CATEGORY_KEY] == "IQ_Test"
    # BLINK's questions do not place their pictures: no markers, every picture before the text
    assert iq.question == "Which picture continues the pattern?"
    assert interleaved(iq.question, len(iq.images)) == (0, 1, 2, 3, iq.question)


def test_blink_folder_of_shards_and_renamed_column(tmp_path):
    folder = tmp_path / "BLINK"
    _write(_blink_table(BLINK_ROWS[:1], question_column="q"), folder / "Jigsaw-val-00000-of-00001.parquet")
    _write(_blink_table(BLINK_ROWS[1:], question_column="q"), folder / "IQ_Test-val-00000-of-00001.parquet")
    with pytest.raises(DataError, match=r"missing column\(s\) for 'question' \(column 'question'\)"):
        load_benchmark(f"blink:{folder}")
    bench = load_benchmark(f"blink:{folder}?question=q")
    samples = list(bench.samples())
    assert sorted(s.id for s in samples) == ["val_IQ_Test_1", "val_Jigsaw_1"]
    assert sorted(len(s.images) for s in samples) == [2, 4]


def test_blink_test_split_with_hidden_answers_is_refused_with_one_message(tmp_path):
    rows = _with(_with(BLINK_ROWS, 0, answer="hidden"), 1, answer="")
    path = _write(_blink_table(rows), tmp_path / "test-00000-of-00001.parquet")
    with pytest.raises(DataError, match=r"BLINK's test split has no public answers.*use the val split"):
        load_benchmark(f"blink:{path}")


@pytest.mark.parametrize(("change", "message"), [
    ({"answer": "(D)"}, r"row 2, column 'answer': answer '\(D\)' is not one of the option letters \(A\), \(B\), \(C\)"),
    ({"answer": "hidden"}, r"row 2, column 'answer': answer 'hidden' is not one of the option letters"),
    ({"choices": ["only one"]}, r"row 2, column 'choices': 1 choice\(s\); BLINK items are multiple choice"),
    ({"question": "Is <image 5> the odd one?"}, r"row 2, column 'question': .*<image 5> but the item has 4"),
    ({"question": "Which <image> is it?"}, r"row 2, column 'question': .*bare <image> token"),
    ({"images": [RED, None, BLUE]}, r"row 2, column 'image_3': holds a picture but column 'image_2'"),
    ({"images": []}, r"row 2, column 'image_1': the item has no picture"),
    ({"idx": "val_Jigsaw_1"}, r"row 2, column 'idx': id 'val_Jigsaw_1' repeats row 1"),
])
def test_blink_malformed_row_names_row_and_column(tmp_path, change, message):
    path = _write(_blink_table(_with(BLINK_ROWS, 1, **change)), tmp_path / "val.parquet")
    with pytest.raises(DataError, match=message):
        load_benchmark(f"blink:{path}")


def test_blink_keeps_markers_the_text_writes(tmp_path):
    rows = _with(BLINK_ROWS, 1, question="Does <image 3> or <image 2> continue <image 1>?")
    path = _write(_blink_table(rows), tmp_path / "val.parquet")
    sample = list(load_benchmark(f"blink:{path}").samples())[1]
    assert sample.question == "Does <image 3> or <image 2> continue <image 1>?"
    assert interleaved(sample.question, 4) == (3, "Does ", 2, " or ", 1, " continue ", 0, "?")


def test_blink_load_decodes_no_picture(tmp_path):
    path = _write(_blink_table(_with(BLINK_ROWS, 1, images=[RED, CORRUPT, BLUE])), tmp_path / "val.parquet")
    bench = load_benchmark(f"blink:{path}")  # the corrupt cell is not opened at load
    samples = bench.samples()
    assert _colours(next(samples)) == [RED, GREEN]
    with pytest.raises(DataError, match=r"val\.parquet: row 2, column 'image_2': the image cannot be decoded"):
        next(samples)


# -- MuirBench --------------------------------------------------------------------------------

MUIR_ROWS = [
    {"idx": "1", "task": "Image-Text Matching", "image_relation": "Independent", "image_type": "Photo",
     "question": "<image> <image> Which picture shows the colour of the first two?",
     "options": ["<image>", "<image>", "None of the choices provided"], "answer": "B",
     "images": [RED, GREEN, BLUE, YELLOW], "counterpart_idx": "2"},
    {"idx": "2", "task": "Image-Text Matching", "image_relation": "Independent", "image_type": "Photo",
     "question": "What differs between <image> and <image>?", "options": ["colour", "shape"], "answer": "A",
     "images": [GREEN, BLUE], "counterpart_idx": "1"},
    {"idx": "3", "task": "Counting", "image_relation": "Temporal", "image_type": "Photo",
     "question": "Which of the pictures is brighter?", "options": ["the first", "the second"], "answer": "B",
     "images": [BLUE, YELLOW], "counterpart_idx": "9"},
]


def _muir_table(rows=MUIR_ROWS) -> pa.Table:
    """MuirBench's published columns, in its order."""
    return pa.table({
        "idx": pa.array([row["idx"] for row in rows]),
        "task": pa.array([row["task"] for row in rows]),
        "image_relation": pa.array([row["image_relation"] for row in rows]),
        "image_type": pa.array([row["image_type"] for row in rows]),
        "question": pa.array([row["question"] for row in rows]),
        "options": pa.array([row["options"] for row in rows], type=pa.list_(pa.string())),
        "answer": pa.array([row["answer"] for row in rows]),
        "image_list": pa.array([[_image(c) for c in row["images"]] for row in rows], type=pa.list_(IMAGE_TYPE)),
        "counterpart_idx": pa.array([row["counterpart_idx"] for row in rows]),
    })


def test_muirbench_places_pictures_where_its_image_tokens_are(tmp_path):
    path = _write(_muir_table(), tmp_path / "data" / "test-00000-of-00001.parquet")
    bench = load_benchmark(f"muirbench:{path}")
    matching, differing, brighter = bench.samples()
    # the k-th <image> token over the question, then the options, is picture k of image_list
    assert matching.question == "<image 1> <image 2> Which picture shows the colour of the first two?"
    assert matching.options == ("<image 3>", "<image 4>", "None of the choices provided")
    assert _colours(matching) == [RED, GREEN, BLUE, YELLOW] and matching.answer == 1
    assert differing.question == "What differs between <image 1> and <image 2>?"
    assert _colours(differing) == [GREEN, BLUE] and differing.answer == 0
    assert interleaved(differing.question, 2) == ("What differs between ", 0, " and ", 1, "?")
    # fewer tokens than pictures: the unplaced pictures come before the text
    assert brighter.question == "Which of the pictures is brighter?"
    assert interleaved(brighter.question, 2) == (0, 1, brighter.question)
    assert matching.meta_dict == {CATEGORY_KEY: "Image-Text Matching", "image_relation": "Independent",
                                  "image_type": "Photo", "counterpart_idx": "2", "images": 4}
    assert brighter.meta_dict[CATEGORY_KEY] == "Counting"


def test_muirbench_counterparts_share_one_cluster(tmp_path):
    path = _write(_muir_table(), tmp_path / "test.parquet")
    matching, differing, brighter = load_benchmark(f"muirbench:{path}").samples()
    assert matching.cluster == differing.cluster == "1|2"
    assert brighter.cluster == "3|9"  # its counterpart is not in this table: still one key of the pair
    # a cluster the spec maps wins where its cell is not empty
    table = _muir_table().append_column("source", pa.array(["s", "", "s"]))
    _write(table, tmp_path / "mapped.parquet")
    matching, differing, brighter = load_benchmark(f"muirbench:{tmp_path / 'mapped.parquet'}?cluster=source").samples()
    assert (matching.cluster, differing.cluster, brighter.cluster) == ("s", "1|2", "s")


@pytest.mark.parametrize(("change", "message"), [
    ({"question": "Between <image>, <image> and <image>?"},
     r"row 2: the question and options hold 3 <image> tokens but the item has 2 picture\(s\)"),
    ({"options": ["<image>"]}, r"row 2, column 'options': 1 option\(s\); MuirBench items are multiple choice"),
    ({"answer": "C"}, r"row 2, column 'answer': answer 'C' is not one of the option letters A, B"),
    ({"images": []}, r"row 2, column 'image_list': the item has no picture"),
    ({"images": [RED, None]}, r"row 2, column 'image_list', picture 2: empty image"),
    ({"idx": "1"}, r"row 2, column 'idx': id '1' repeats row 1"),
])
def test_muirbench_malformed_row_names_the_row(tmp_path, change, message):
    path = _write(_muir_table(_with(MUIR_ROWS, 1, **change)), tmp_path / "test.parquet")
    with pytest.raises(DataError, match=message):
        load_benchmark(f"muirbench:{path}")


def test_muirbench_load_decodes_no_picture(tmp_path):
    path = _write(_muir_table(_with(MUIR_ROWS, 1, images=[GREEN, CORRUPT])), tmp_path / "test.parquet")
    bench = load_benchmark(f"muirbench:{path}")  # the corrupt picture is not opened at load
    samples = bench.samples()
    assert _colours(next(samples)) == [RED, GREEN, BLUE, YELLOW]
    with pytest.raises(DataError, match=r"row 2, column 'image_list', picture 2: the image cannot be decoded"):
        next(samples)


def test_one_picture_items_write_their_marker_inline(tmp_path):
    """An item of one picture is not split (``interleaving``): its place is written ``[image 1]``."""
    muir = _write(_muir_table(_with(MUIR_ROWS, 2, question="How bright is <image>?", images=[BLUE])),
                  tmp_path / "muir.parquet")
    brighter = list(load_benchmark(f"muirbench:{muir}").samples())[2]
    assert brighter.question == "How bright is [image 1]?" and _colours(brighter) == [BLUE]
    blink = _write(_blink_table(_with(BLINK_ROWS, 0, question="Is <image 1> whole?", images=[RED])),
                   tmp_path / "blink.parquet")
    jigsaw = next(iter(load_benchmark(f"blink:{blink}").samples()))
    assert jigsaw.question == "Is [image 1] whole?" and jigsaw.more_images == ()

# -- both -------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["blink", "muirbench"])
def test_declared_several_images_and_varied_questions(scheme):
    from vlmgate.benchmarks.base import benchmark_kind, benchmark_questions_vary

    assert benchmark_several_images(f"{scheme}:/x.parquet") is True
    assert benchmark_questions_vary(f"{scheme}:/x.parquet") is True
    assert benchmark_kind(f"{scheme}:/x.parquet") == "image"
