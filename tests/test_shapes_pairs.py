"""Items of several pictures: ``jsonl:`` rows with ``images``, and the bundled ``shapes-pairs`` benchmark.

The benchmark's answers are re-derived independently of the generator, from the question
text and each picture's recorded shapes (``meta.pictures``), and the recorded shapes are
checked against the pixels (connected components of saturated pixels, as for ``shapes``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from vlmgate.benchmarks import shapes, shapes_pairs
from vlmgate.benchmarks.base import benchmark_several_images, load_benchmark
from vlmgate.errors import DataError
from vlmgate.interleaving import image_order

SPLIT = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks" / "shapes-pairs"
SIZE = 224
COLOURS = {"a.png": (200, 10, 10), "b.png": (10, 200, 10), "c.png": (10, 10, 200)}


# --------------------------------------------------------------------------- jsonl rows with images


def make_manifest(tmp_path: Path, rows: list) -> Path:
    (tmp_path / "img").mkdir(exist_ok=True)
    for k, (name, colour) in enumerate(COLOURS.items()):
        Image.new("RGB", (16 + k, 12), colour).save(tmp_path / "img" / name)
    path = tmp_path / "manifest.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def row(**over) -> dict:
    base = {"id": "q1", "image": "img/a.png", "question": "What?", "options": ["red", "green", "blue"], "answer": "B"}
    base.update(over)
    return {key: value for key, value in base.items() if value is not DROP}


DROP = object()


def pair(**over) -> dict:
    return row(**{"id": "p1", "image": DROP, "images": ["img/b.png", "img/a.png", "img/c.png"],
                  "question": "Left <image 1>, right <image 3>. Which is red?", **over})


def test_images_rows_load_every_picture_in_order(tmp_path):
    path = make_manifest(tmp_path, [row(), pair(meta={"type": "pair"})])
    bench = load_benchmark(f"jsonl:{path}")
    single, several = list(bench.samples())
    assert single.more_images == () and len(single.images) == 1
    assert [im.size for im in several.images] == [(17, 12), (16, 12), (18, 12)]
    assert [im.getpixel((3, 3)) for im in several.images] == [COLOURS["b.png"], COLOURS["a.png"], COLOURS["c.png"]]
    assert several.image is several.images[0] and all(im.mode == "RGB" for im in several.images)
    assert several.meta_dict == {"type": "pair"}  # "images" is a known key, not metadata
    assert image_order(several.question, len(several.images)) == (1, 0, 2)  # unplaced picture 2 leads
    before = bench.fingerprint
    Image.new("RGB", (18, 12), (10, 10, 201)).save(tmp_path / "img" / "c.png")  # only the third picture changes
    assert load_benchmark(f"jsonl:{path}").fingerprint != before


@pytest.mark.parametrize("bad, needles", [
    (pair(image="img/a.png"), ["both 'image' and 'images'", "keep one"]),
    (pair(images=DROP), ["missing key 'image' (or 'images')", "give 'image' (one path) or 'images'"]),
    (pair(images=[]), ["'images' is an empty list", "two or more"]),
    (pair(images=["img/a.png"]), ["'images' lists one path", "\"image\": \"img/a.png\""]),
    (pair(images=["img/a.png", 7]), ["'images'[1] is 7, not a path", "non-empty string"]),
    (pair(images=["img/a.png", " "]), ["'images'[1] is ' ', not a path"]),
    (pair(images="img/a.png"), ["'images' must be a list of two or more image paths"]),
    (pair(images=["img/a.png", "img/nope.png"], question="Q?"), ["image 2 of sample 'p1' ('images'[1]) not found",
                                                  "nope.png", "fix the 'images'[1] path"]),
    (pair(images=["img", "img/a.png"], question="Q?"), ["image 1 of sample 'p1' ('images'[0])", "is a directory"]),
    (pair(question="<image 1> or <image 4>?"), ["question names <image 4>", "lists 3 pictures",
                                                "<image 1> to <image 3>"]),
    (pair(options=["<image 1>", "<image 0>", "neither"]), ["options[1] names <image 0>", "lists 3 pictures"]),
])
def test_malformed_images_rows_name_line_and_key(tmp_path, bad, needles):
    path = make_manifest(tmp_path, [row(), bad])
    with pytest.raises(DataError) as info:
        load_benchmark(f"jsonl:{path}")
    message = str(info.value)
    assert f"{path}:2" in message, message
    for needle in needles:
        assert needle in message, message


def test_a_manifest_without_images_loads_as_before(tmp_path):
    rows = [row(), row(id="q2", image="img/b.png", question="Is <image 2> here?", category="x"),
            row(id="q3", kind="yesno", options=["Yes", "No"], answer="no")]
    path = make_manifest(tmp_path, rows)
    bench = load_benchmark(f"jsonl:{path}")
    samples = list(bench.samples())
    assert [s.more_images for s in samples] == [(), (), ()]
    assert [s.image.getpixel((0, 0)) for s in samples] == [COLOURS["a.png"], COLOURS["b.png"], COLOURS["a.png"]]
    assert samples[1].question == "Is <image 2> here?"  # a one-picture row's text is not checked or changed
    assert [s.meta_dict for s in samples] == [{}, {"category": "x"}, {}]
    assert [s.answer for s in samples] == [1, 1, 1] and samples[2].options == ("Yes", "No")
    assert [r.image_paths for r in bench.rows] == [(tmp_path / "img" / n,) for n in ("a.png", "b.png", "a.png")]
    expected = hashlib.sha256(path.read_bytes())  # the fingerprint's recipe is unchanged
    for name in ("a.png", "b.png", "a.png"):
        expected.update((tmp_path / "img" / name).read_bytes())
    assert bench.fingerprint == expected.hexdigest()
    with pytest.raises(DataError, match=r"manifest\.jsonl:2: image of sample 'q2' not found .*fix the 'image' path"):
        load_benchmark(f"jsonl:{make_manifest(tmp_path, [row(), row(id='q2', image='img/none.png')])}")


def test_several_images_is_declared_from_the_manifest_text(tmp_path):
    with_pairs = make_manifest(tmp_path, [row(), pair()])
    assert benchmark_several_images(f"jsonl:{with_pairs}") is True
    (tmp_path / "single").mkdir()
    single = make_manifest(tmp_path / "single", [row(), row(id="q2")])
    assert benchmark_several_images(f"jsonl:{single}") is False
    assert benchmark_several_images(f"jsonl:{tmp_path / 'missing.jsonl'}") is None  # the load reports it
    assert benchmark_several_images("bundled:shapes-pairs") is True
    assert benchmark_several_images("bundled:shapes") is False
    assert benchmark_several_images("bundled:shapes-text") is False
    assert benchmark_several_images("bundled:no-such-split") is None


# --------------------------------------------------------------------------- the shapes-pairs generator


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [json.loads(line) for line in (SPLIT / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


def test_cli_regenerates_the_shipped_split_byte_for_byte(tmp_path):
    assert shapes_pairs.main(["--out", str(tmp_path), "--n", "120", "--seed", "0"]) == 0
    assert (tmp_path / "manifest.jsonl").read_bytes() == (SPLIT / "manifest.jsonl").read_bytes()
    shipped = sorted(p.name for p in (SPLIT / "images").iterdir())
    assert shipped == sorted(p.name for p in (tmp_path / "images").iterdir()) and len(shipped) == 240
    for name in shipped:
        assert (tmp_path / "images" / name).read_bytes() == (SPLIT / "images" / name).read_bytes(), name
    assert sorted(p.name for p in SPLIT.iterdir()) == ["images", "manifest.jsonl"]


def test_manifest_rows_follow_the_schema(rows):
    assert len(rows) == shapes_pairs.EVAL_SIZE and len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) == {"id", "images", "question", "options", "answer", "kind", "meta"}
        assert r["images"] == [f"images/{r['id']}-1.png", f"images/{r['id']}-2.png"]
        assert r["question"].startswith("Image 1: <image 1> Image 2: <image 2> ")
        assert len(set(r["options"])) == len(r["options"]) and len(r["meta"]["pictures"]) == 2
        if r["kind"] == "yesno":
            assert r["options"] == ["Yes", "No"] and r["answer"] in ("Yes", "No")
        else:
            assert r["kind"] == "mcq" and r["answer"] in "ABCD"[:len(r["options"])]


def answer_text(r: dict) -> str:
    return r["answer"] if r["kind"] == "yesno" else r["options"]["ABCD".index(r["answer"])]


def expected_answer(r: dict) -> str:
    """The answer text from the question's wording and the recorded shapes of each picture only."""
    first, second = ([(s["colour"], s["shape"]) for s in p["shapes"]] for p in r["meta"]["pictures"])
    q = r["question"].removeprefix("Image 1: <image 1> Image 2: <image 2> ")
    if q == "Which image has more shapes?":
        assert len(first) != len(second), r["id"]  # never a tie
        return "The first image" if len(first) > len(second) else "The second image"
    if q == "How many shapes are there in the two images together?":
        return str(len(first) + len(second))
    if m := re.fullmatch(r"Is there an? (\w+) (\w+) in both images\?", q):
        return "Yes" if (m[1], m[2]) in first and (m[1], m[2]) in second else "No"
    if m := re.fullmatch(r"Which image shows an? (\w+)\?", q):
        has = [any(kind == m[1] for _, kind in picture) for picture in (first, second)]
        assert has.count(True) == 1, r["id"]  # exactly one picture shows it
        return "The first image" if has[0] else "The second image"
    assert q == "Which colour appears in both images?", q
    (shared,) = {c for c, _ in first} & {c for c, _ in second}  # exactly one colour is shared
    return shared


def test_answers_are_correct_by_construction(rows):
    for r in rows:
        assert answer_text(r) == expected_answer(r), r["id"]


def test_every_picture_is_a_shapes_picture(rows):
    """Each picture's shapes have their own quadrant, colour and kind, and match its pixels."""
    for r in rows:
        for k, picture in enumerate(r["meta"]["pictures"]):
            found = picture["shapes"]
            assert 1 <= len(found) <= 4 and picture["background"] in shapes.BACKGROUNDS
            for key in ("quadrant", "colour", "shape"):
                assert len({s[key] for s in found}) == len(found), (r["id"], key)
            image = Image.open(SPLIT / r["images"][k])
            assert image.size == (SIZE, SIZE)
            pixels = np.asarray(image.convert("RGB"))
            labels, count = ndimage.label(pixels.min(axis=2) < 100, structure=np.ones((3, 3)))
            assert count == len(found), (r["id"], k)  # an independent recount of the shapes
            for s in found:
                assert tuple(pixels[round(s["cy"]), round(s["cx"])]) == shapes.COLOURS[s["colour"]], (r["id"], s)
            for ys, xs in ndimage.find_objects(labels):
                assert min(xs.start, ys.start, SIZE - xs.stop, SIZE - ys.stop) >= shapes.EDGE_MARGIN, r["id"]


def test_types_answer_slots_and_yes_no_are_balanced(rows):
    assert Counter(r["meta"]["type"] for r in rows) == {t: 24 for t in shapes_pairs.TYPES}
    for t in ("total", "common"):
        assert Counter(r["answer"] for r in rows if r["meta"]["type"] == t) == {s: 6 for s in "ABCD"}
    for t in ("more", "which"):
        assert Counter(r["answer"] for r in rows if r["meta"]["type"] == t) == {"A": 12, "B": 12}
        assert all(r["options"] == ["The first image", "The second image"] for r in rows if r["meta"]["type"] == t)
    assert Counter(r["answer"] for r in rows if r["kind"] == "yesno") == {"Yes": 12, "No": 12}


def test_negatives_are_in_one_picture_and_share_an_attribute_with_the_other(rows):
    for r in rows:
        if r["answer"] != "No":
            continue
        asked = (r["meta"]["asked"]["colour"], r["meta"]["asked"]["shape"])
        pictures = [[(s["colour"], s["shape"]) for s in p["shapes"]] for p in r["meta"]["pictures"]]
        holds = [asked in p for p in pictures]
        assert holds.count(True) == 1, r["id"]
        other = pictures[holds.index(False)]
        assert any(c == asked[0] for c, _ in other) or any(k == asked[1] for _, k in other), r["id"]


def test_a_split_of_n_is_a_prefix_of_a_split_of_n_plus_k():
    short, longer = list(shapes_pairs.generate(7, seed=3)), list(shapes_pairs.generate(12, seed=3))
    for a, b in zip(short, longer):
        assert a.manifest_row() == b.manifest_row()
        assert [shapes.png_bytes(im) for im in a.images] == [shapes.png_bytes(im) for im in b.images]
    tail = list(shapes_pairs.generate(5, seed=3, start=7))
    assert [t.manifest_row() for t in tail] == [b.manifest_row() for b in longer[7:]]
    assert next(shapes_pairs.generate(1, seed=4)).manifest_row() != longer[0].manifest_row()


def test_bundled_shapes_pairs_loads_as_two_picture_samples(rows):
    bench = load_benchmark("bundled:shapes-pairs")
    samples = list(bench.samples())
    assert len(samples) == len(rows) == 120
    for sample, r in zip(samples, rows):
        assert sample.id == r["id"] and len(sample.images) == 2
        assert all(im.size == (SIZE, SIZE) and im.mode == "RGB" for im in sample.images)
        assert image_order(sample.question, 2) == (0, 1)
        assert sample.answer is not None and sample.options[sample.answer] == answer_text(r)
    generated = next(shapes_pairs.generate(1, seed=0)).sample()
    assert generated.question == samples[0].question and generated.answer == samples[0].answer
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(generated.images, samples[0].images))
