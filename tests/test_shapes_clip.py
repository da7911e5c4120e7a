"""The bundled CLIP ``shapes-clip`` and its classification split ``shapes-objects`` (spec §4).

The split regenerates byte for byte from its command; every answer is re-derived from the
row's recorded shape (and that shape's colour checked in the pixels); answer slots and
classes are balanced. The shipped checkpoint loads through ``bundled:shapes-clip`` (the
``clip:`` adapter), classifies the split zero-shot as the gate scores it, and the systematic
suite has a case for it on the split (one question for every item, so a model that never
reads questions may be gated on it).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from vlmgate.benchmarks import shapes_objects
from vlmgate.benchmarks.shapes import COLOURS, LABELS, SHAPES

SPLIT = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks" / "shapes-objects"
BENCHMARK = "bundled:shapes-objects"
MODEL = "bundled:shapes-clip"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [json.loads(line) for line in (SPLIT / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


def test_split_regenerates_byte_identically_from_its_command(tmp_path, rows):
    assert shapes_objects.main(["--out", str(tmp_path), "--n", "200", "--seed", "0"]) == 0
    assert (tmp_path / "manifest.jsonl").read_bytes() == (SPLIT / "manifest.jsonl").read_bytes()
    shipped = sorted(p.name for p in (SPLIT / "images").iterdir())
    assert shipped == sorted(p.name for p in (tmp_path / "images").iterdir()) and len(shipped) == len(rows) == 200
    for name in shipped:
        assert (tmp_path / "images" / name).read_bytes() == (SPLIT / "images" / name).read_bytes(), name


def test_answers_are_correct_by_construction(rows):
    for row in rows:
        meta = row["meta"]
        assert row["question"] == shapes_objects.QUESTION and row["kind"] == "mcq"
        (shape,) = meta["shapes"]  # exactly one shape
        colour, kind = shape["colour"], shape["shape"]
        options = row["options"]
        assert len(options) == len(set(options)) == 4
        assert options[LABELS.index(row["answer"])] == shapes_objects.object_text(colour, kind)
        parsed = {}
        for option in options:  # "a red circle" / "an orange cross"
            article, option_colour, option_shape = option.split(" ")
            assert article == ("an" if option_colour[0] in "aeiou" else "a")
            assert option_colour in COLOURS and option_shape in SHAPES
            parsed[option] = (option_colour, option_shape)
        negatives = meta["distractors"]
        assert set(negatives.values()) == set(options) - {shapes_objects.object_text(colour, kind)}
        other_colour, same_shape = parsed[negatives["same_shape"]]
        same_colour, other_shape = parsed[negatives["same_colour"]]
        colour_3, shape_3 = parsed[negatives["neither"]]
        assert same_shape == kind and other_colour != colour
        assert same_colour == colour and other_shape != kind
        assert colour_3 != colour and shape_3 != kind
        # the recorded shape is what the pixels show: its colour at and around its centre
        image = Image.open(SPLIT / row["image"]).convert("RGB")
        cx, cy = round(shape["cx"]), round(shape["cy"])
        for dx, dy in ((0, 0), (-2, 0), (2, 0), (0, -2), (0, 2)):
            assert image.getpixel((cx + dx, cy + dy)) == COLOURS[colour], (row["id"], dx, dy)


def test_answer_slots_and_classes_are_balanced(rows):
    answers = [row["answer"] for row in rows]
    for start in range(0, len(rows) - 3, 4):  # every block of four holds A-D once, as in shapes
        assert sorted(answers[start:start + 4]) == list(LABELS)
    assert Counter(answers) == {label: 50 for label in LABELS}
    classes = [(r["meta"]["shapes"][0]["colour"], r["meta"]["shapes"][0]["shape"]) for r in rows]
    n = len(shapes_objects.CLASSES)
    for start in range(0, len(rows) - n + 1, n):  # every block of 24 holds each class once
        assert sorted(classes[start:start + n]) == sorted(shapes_objects.CLASSES)


def test_the_shipped_clip_classifies_the_split_zero_shot():
    from vlmgate.benchmarks.base import load_benchmark
    from vlmgate.engine import Engine
    from vlmgate.models.base import ModelOptions, load_model

    model = load_model(MODEL, ModelOptions())
    assert model.identity.adapter == "clip" and not model.identity.initialised
    # every text ends with the EOS token CLIP pools at (without it, the letter is pooled: collapse)
    tokenizer = model.processor.tokenizer
    for text in ("A. a red circle", "D. an orange triangle"):
        ids = tokenizer(text)["input_ids"]
        assert ids.index(tokenizer.eos_token_id) == len(ids) - 1 > 3, ids
    engine = Engine(model, load_benchmark(BENCHMARK), limit=60)
    clean = engine.clean()
    samples = list(engine.samples())
    assert len(samples) == 60
    accuracy = sum(clean[s.id].prediction == s.answer for s in samples) / len(samples)
    assert accuracy >= 0.9, accuracy


def test_the_systematic_suite_has_a_case_for_the_clip_on_the_split():
    from vlmgate.benchmarks.base import benchmark_questions_vary
    from vlmgate.suites import get_suite
    from vlmgate.suites.applicability import why_not

    assert benchmark_questions_vary(BENCHMARK) is False
    assert why_not(get_suite("systematic"), "embedding_match", MODEL, BENCHMARK) is None
