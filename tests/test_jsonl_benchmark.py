"""The ``jsonl:`` manifest loader: valid rows, answers in every accepted form, clear errors."""

import json

import pytest
from PIL import Image

from vlmgate.benchmarks.base import MAX_SIDE, load_benchmark
from vlmgate.errors import DataError


def make_manifest(tmp_path, rows, images=("a.png",), size=(16, 12)):
    (tmp_path / "img").mkdir(exist_ok=True)
    for name in images:
        Image.new("RGB", size, (10, 20, 30)).save(tmp_path / "img" / name)
    path = tmp_path / "manifest.jsonl"
    path.write_text("\n".join(json.dumps(r) if not isinstance(r, str) else r for r in rows) + "\n")
    return path


def row(**over):
    base = {"id": "q1", "image": "img/a.png", "question": "What?", "options": ["red", "green", "blue"], "answer": "B"}
    base.update(over)
    return base


def test_loads_rows_lazily_with_answer_forms(tmp_path):
    path = make_manifest(tmp_path, [
        row(), row(id="q2", answer="blue"), row(id="q3", answer=0), row(id="q4", answer=None),
        row(id="q5", kind="yesno", options=["Yes", "No"], answer="no", meta={"type": "yesno"}),
    ])
    bench = load_benchmark(f"jsonl:{path}")
    samples = list(bench.samples())
    assert [s.answer for s in samples] == [1, 2, 0, None, 1]
    assert samples[4].labels == ("Yes", "No") and samples[4].meta_dict == {"type": "yesno"}
    assert samples[0].labels == ("A", "B", "C")
    assert samples[0].image.size == (16, 12) and samples[0].image.mode == "RGB"
    assert len(bench) == 5 and len(bench.fingerprint) == 64


def test_fingerprint_tracks_image_bytes(tmp_path):
    path = make_manifest(tmp_path, [row()])
    before = load_benchmark(f"jsonl:{path}").fingerprint
    Image.new("RGB", (16, 12), (10, 20, 31)).save(tmp_path / "img" / "a.png")
    assert load_benchmark(f"jsonl:{path}").fingerprint != before


def test_large_images_are_capped(tmp_path):
    path = make_manifest(tmp_path, [row()], size=(2048, 1000))
    sample = next(load_benchmark(f"jsonl:{path}").samples())
    assert sample.image.size == (MAX_SIDE, 500)


def test_missing_image_names_sample_and_path(tmp_path):
    path = make_manifest(tmp_path, [row(), row(id="q7", image="img/missing.png")])
    with pytest.raises(DataError) as info:
        load_benchmark(f"jsonl:{path}")
    message = str(info.value)
    assert "'q7'" in message and "missing.png" in message and f"{path}:2" in message


def test_corrupt_image_names_sample_and_file(tmp_path):
    path = make_manifest(tmp_path, [row()])
    (tmp_path / "img" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    bench = load_benchmark(f"jsonl:{path}")
    with pytest.raises(DataError, match=r"sample 'q1' at .*a\.png cannot be decoded"):
        list(bench.samples())


@pytest.mark.parametrize("bad,needle", [
    ("{not json", "not valid JSON"),
    (row(id="q1"), "repeats line 1"),
    ({"id": "x", "image": "img/a.png"}, "missing key(s) question, options"),
    (row(id="x", options=["only"]), "at least two strings"),
    (row(id="x", answer="E"), "neither an option letter"),
    (row(id="x", answer=7), "outside 0..2"),
    (row(id="x", kind="open"), "kind 'open'"),
])
def test_malformed_rows_name_line(tmp_path, bad, needle):
    path = make_manifest(tmp_path, [row(), bad])
    with pytest.raises(DataError) as info:
        load_benchmark(f"jsonl:{path}")
    assert needle in str(info.value) and f"{path}:2" in str(info.value)


def test_missing_manifest_and_bad_spec(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_benchmark(f"jsonl:{tmp_path / 'none.jsonl'}")
    with pytest.raises(DataError, match="has no scheme"):
        load_benchmark("manifest.jsonl")
    with pytest.raises(DataError, match="unknown benchmark 'jsnl'"):
        load_benchmark("jsnl:x")
