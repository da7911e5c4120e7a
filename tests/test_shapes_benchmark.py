"""The shapes benchmark: reproducible bytes, answers right by construction, balance, margins.

Answers are re-derived independently of the generator: from the question text and the
recorded geometry, and from the pixels themselves (connected components of saturated
pixels, counted and located with scipy).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from vlmgate.benchmarks import shapes
from vlmgate.fonts import load_font

SPLIT = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks" / "shapes"
SIZE = 224


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [json.loads(line) for line in (SPLIT / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


def shape_components(image: Image.Image, min_pixels: int = 1) -> tuple[np.ndarray, int]:
    """Label saturated pixels: every background channel is >= 190, every shape has one <= 45.

    8-connected, because a rasterised polygon's sharp tip can touch its body diagonally only.
    Components under ``min_pixels`` (stray pixels of a resampled tip) can be dropped.
    """
    pixels = np.asarray(image.convert("RGB"))
    labels, count = ndimage.label(pixels.min(axis=2) < 100, structure=np.ones((3, 3)))
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, range(1, count + 1))
    keep = np.concatenate([[False], sizes >= min_pixels])
    return ndimage.label(keep[labels], structure=np.ones((3, 3)))


def expected_answer(row: dict) -> str:
    """The answer text derived from the question wording and the recorded shapes only."""
    found = row["meta"]["shapes"]
    q = row["question"]
    if m := re.fullmatch(r"What colour is the (\w+)\?", q):
        matches = found if m[1] == "shape" else [s for s in found if s["shape"] == m[1]]
        assert len(matches) == 1
        return matches[0]["colour"]
    if m := re.fullmatch(r"What shape is the (\w+) object\?", q):
        (match,) = [s for s in found if s["colour"] == m[1]]
        return match["shape"]
    if m := re.fullmatch(r"Where is the (\w+) (\w+)\?", q):
        (match,) = [s for s in found if s["colour"] == m[1] and s["shape"] == m[2]]
        vertical = "top" if match["cy"] < SIZE / 2 else "bottom"
        horizontal = "left" if match["cx"] < SIZE / 2 else "right"
        return f"{vertical} {horizontal}"
    if q == "How many shapes are in the image?":
        return str(len(found))
    m = re.fullmatch(r"Is there a (\w+) (\w+) in the image\?", q)
    assert m, q
    return "Yes" if any(s["colour"] == m[1] and s["shape"] == m[2] for s in found) else "No"


def answer_text(row: dict) -> str:
    if row["kind"] == "yesno":
        return row["answer"]
    return row["options"]["ABCD".index(row["answer"])]


def test_cli_regenerates_the_shipped_split_byte_for_byte(tmp_path):
    assert shapes.main(["--out", str(tmp_path), "--n", "300", "--seed", "0"]) == 0
    assert (tmp_path / "manifest.jsonl").read_bytes() == (SPLIT / "manifest.jsonl").read_bytes()
    for name in ("shapes-00001.png", "shapes-00002.png", "shapes-00150.png", "shapes-00300.png"):
        assert (tmp_path / "images" / name).read_bytes() == (SPLIT / "images" / name).read_bytes()


def test_manifest_rows_follow_the_schema(rows):
    assert len(rows) == shapes.EVAL_SIZE
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert set(row) == {"id", "image", "question", "options", "answer", "kind", "meta"}
        assert row["image"] == f"images/{row['id']}.png" and (SPLIT / row["image"]).is_file()
        assert len(set(row["options"])) == len(row["options"])
        if row["kind"] == "yesno":
            assert row["options"] == ["Yes", "No"] and row["answer"] in ("Yes", "No")
        else:
            assert row["kind"] == "mcq" and len(row["options"]) == 4 and row["answer"] in "ABCD"
    assert (SPLIT / "manifest.jsonl").read_text().splitlines()[0] == json.dumps(rows[0], sort_keys=True)


def test_answers_are_correct_by_construction(rows):
    for row in rows:
        assert answer_text(row) == expected_answer(row), row["id"]


def test_recorded_shapes_match_the_pixels(rows):
    for row in rows[:120]:
        image = Image.open(SPLIT / row["image"])
        labels, count = shape_components(image)
        recorded = row["meta"]["shapes"]
        assert count == len(recorded), row["id"]  # an independent recount of the shapes
        pixels = np.asarray(image.convert("RGB"))
        for s in recorded:
            centre = pixels[round(s["cy"]), round(s["cx"])]
            assert tuple(centre) == shapes.COLOURS[s["colour"]], (row["id"], s)


def test_types_answer_slots_and_yes_no_are_balanced(rows):
    by_type = Counter(r["meta"]["type"] for r in rows)
    assert by_type == {t: 60 for t in shapes.TYPES}
    for t in ("colour", "shape", "position", "count"):
        assert Counter(r["answer"] for r in rows if r["meta"]["type"] == t) == {s: 15 for s in "ABCD"}
    assert Counter(r["answer"] for r in rows if r["kind"] == "yesno") == {"Yes": 30, "No": 30}
    counts = Counter(len(r["meta"]["shapes"]) for r in rows if r["meta"]["type"] == "count")
    assert counts == {1: 15, 2: 15, 3: 15, 4: 15}


def test_negatives_share_an_attribute_with_the_image(rows):
    for row in rows:
        if row["answer"] != "No":
            continue
        colour, kind = re.fullmatch(r"Is there a (\w+) (\w+) in the image\?", row["question"]).groups()
        found = row["meta"]["shapes"]
        assert any(s["colour"] == colour for s in found) or any(s["shape"] == kind for s in found)


def test_shapes_keep_clear_of_edges_centre_lines_and_the_overlay_box(rows):
    font = load_font("DejaVu Sans", 14)
    # The widest boxes the suite draws at 224 px: semantic ("Answer is Yes") and random (12 glyphs).
    boxes = []
    for text in ("Answer is Yes", "W" * 12):
        left, top, right, bottom = font.getbbox(text)
        w, h = right - left + 8, bottom - top + 8
        boxes.append(((SIZE - w) // 2, (SIZE - h) // 2, (SIZE - w) // 2 + w, (SIZE - h) // 2 + h))
    for row in rows:
        labels, count = shape_components(Image.open(SPLIT / row["image"]))
        for ys, xs in ndimage.find_objects(labels):
            assert xs.start >= shapes.EDGE_MARGIN and ys.start >= shapes.EDGE_MARGIN, row["id"]
            assert SIZE - xs.stop >= shapes.EDGE_MARGIN and SIZE - ys.stop >= shapes.EDGE_MARGIN, row["id"]
            for span in (xs, ys):  # clear of the centre line by the axis margin on either side
                assert (span.stop <= SIZE // 2 - shapes.AXIS_MARGIN + 1
                        or span.start >= SIZE // 2 + shapes.AXIS_MARGIN - 1)
            assert xs.stop - xs.start >= 24 and ys.stop - ys.start >= 24  # >= 21 px after a 0.9 resize
        for x0, y0, x1, y1 in boxes:
            assert not labels[y0:y1, x0:x1].any(), row["id"]


@pytest.mark.parametrize("degrees", [30, -30])
def test_quadrants_survive_rotation_and_shifts(rows, degrees):
    for row in rows[:60]:
        image = Image.open(SPLIT / row["image"]).convert("RGB")
        for variant in (image.rotate(degrees, Image.Resampling.BICUBIC, expand=True, fillcolor=(255, 255, 255)),
                        Image.fromarray(np.roll(np.asarray(image), 16 if degrees > 0 else -16, axis=1))):
            labels, count = shape_components(variant, min_pixels=20)
            assert count == len(row["meta"]["shapes"]), row["id"]
            centres = ndimage.center_of_mass(labels > 0, labels, range(1, count + 1))
            quadrants = sorted(f"{'top' if y < variant.height / 2 else 'bottom'} "
                               f"{'left' if x < variant.width / 2 else 'right'}" for y, x in centres)
            assert quadrants == sorted(s["quadrant"] for s in row["meta"]["shapes"]), row["id"]


def test_generation_is_deterministic_prefix_stable_and_seed_dependent():
    first = [shapes.png_bytes(item.image) for item in shapes.generate(6, seed=5)]
    again = [shapes.png_bytes(item.image) for item in shapes.generate(3, seed=5, start=3)]
    assert first[3:] == again
    other = [shapes.png_bytes(item.image) for item in shapes.generate(6, seed=6)]
    assert all(a != b for a, b in zip(first, other))


def test_items_become_samples_with_the_answer_index():
    for item in shapes.generate(10, seed=3):
        sample = item.sample()
        assert sample.labels[sample.answer] == item.answer
        assert sample.meta_dict["type"] == item.meta["type"]
