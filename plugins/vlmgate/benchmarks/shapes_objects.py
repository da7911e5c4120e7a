"""The bundled ``shapes-objects`` benchmark: one shape per image, one question, four object names.

A classification split for CLIP-style dual encoders (``clip:PATH``, ``bundled:shapes-clip``)
and the systematic suite (spec §4): zero-shot accuracy against systematic accuracy needs
items whose options name classes, and a dual encoder never reads the question, so every
item asks the same one, ``"Which object is in the image?"``, and the applicability layer
(``suites.applicability``) lets a model that ignores questions be gated on it.

Each image is drawn exactly as ``shapes`` draws one (``draw_background`` with one of its
four background kinds, ``place_shape`` in a random quadrant with its margins, size and tilt,
``render``), with exactly ONE shape, so the image shows one of 24 classes (six colours ×
four shape kinds). The four options name objects as ``"a {colour} {shape}"`` (``"an
orange ..."`` before a vowel): the answer, and three hard distractors, one with the same
shape in another colour, one with the same colour on another shape, one differing in both.
A dual encoder that knows only the colour, or only the shape, is thus right half the time,
not always.

Balance: the answer slot of item ``i`` is ``_balanced_slot(seed, "objects", i, 4)`` as in
``shapes`` (blocks of four items hold each of A-D once), and the class of item ``i`` is drawn
the same way over the 24 classes (blocks of 24 items hold every class once). Each item is
drawn from its own generator ``rng_for(seed, "shapes-objects", i)``, so a split of ``n``
items is a prefix of a split of ``n + k`` items with the same seed. A row's ``meta`` records
the shape (``shapes``, as ``shapes`` records them), the background and each distractor's
kind (``distractors``: ``same_shape``, ``same_colour``, ``neither``), so every answer can be
recomputed from the row alone.

``python -m vlmgate.benchmarks.shapes_objects --out DIR --n N --seed S`` writes a split
(``manifest.jsonl`` + ``images/<id>.png``); the shipped split ``fixtures/benchmarks/shapes-objects``,
which ``bundled:shapes-objects`` loads, is ``--n 200 --seed 0``. Training data (for
``fixtures/models/train_clip.py``) comes from another seed than ``EVAL_SEED``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image

from vlmgate.benchmarks.shapes import (
    BACKGROUNDS,
    COLOURS,
    LABELS,
    QUADRANTS,
    SHAPES,
    PlacedShape,
    ShapesItem,
    _balanced_slot,
    _options_with_answer,
    draw_background,
    item_stream,
    place_shape,
    render,
    split_command,
    write_items,
)
from vlmgate.seeding import rng_for

EVAL_SEED = 0
EVAL_SIZE = 200

#: The one question every item asks.
QUESTION = "Which object is in the image?"
#: The 24 classes, (colour, shape), colour-major.
CLASSES: tuple[tuple[str, str], ...] = tuple((colour, shape) for colour in COLOURS for shape in SHAPES)
#: What each distractor shares with the answer, in the order ``meta["distractors"]`` lists them.
DISTRACTOR_KINDS = ("same_shape", "same_colour", "neither")


def object_text(colour: str, shape: str) -> str:
    """The option naming a ``colour`` ``shape``: ``"a red circle"``, ``"an orange cross"``."""
    return f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {shape}"


def draw_object(rng: np.random.Generator, colour: str, shape: str) -> tuple[PlacedShape, str, Image.Image]:
    """One ``colour`` ``shape`` in a random quadrant on a random background, drawn as ``shapes`` draws.

    Returns the placed shape, the background kind and the 224 px image. The training script
    of ``bundled:shapes-clip`` draws its pictures with this too, from other generators.
    """
    quadrant = QUADRANTS[int(rng.integers(0, len(QUADRANTS)))]
    placed = place_shape(rng, shape, colour, quadrant)
    background = BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))]
    return placed, background, render([placed], draw_background(rng, background))


def _other(rng: np.random.Generator, values: Sequence[str], than: str) -> str:
    rest = [v for v in values if v != than]
    return rest[int(rng.integers(0, len(rest)))]


def distractors(rng: np.random.Generator, colour: str, shape: str) -> dict[str, tuple[str, str]]:
    """The three hard negatives of a ``colour`` ``shape``, by ``DISTRACTOR_KINDS``, as (colour, shape)."""
    colours = list(COLOURS)
    return {"same_shape": (_other(rng, colours, colour), shape),
            "same_colour": (colour, _other(rng, SHAPES, shape)),
            "neither": (_other(rng, colours, colour), _other(rng, SHAPES, shape))}


def _balanced_class(seed: int, index: int) -> tuple[str, str]:
    return CLASSES[_balanced_slot(seed, "objects-class", index, len(CLASSES))]


def _item(seed: int, index: int) -> ShapesItem:
    rng = rng_for(seed, "shapes-objects", index)
    colour, shape = _balanced_class(seed, index)
    placed, background, image = draw_object(rng, colour, shape)
    negatives = distractors(rng, colour, shape)
    slot = _balanced_slot(seed, "objects", index, len(LABELS))
    options = _options_with_answer(rng, object_text(colour, shape),
                                   [object_text(*negatives[kind]) for kind in DISTRACTOR_KINDS], slot)
    meta: dict[str, Any] = {"type": "object", "background": background, "shapes": [placed.as_json()],
                            "distractors": {kind: object_text(*negatives[kind]) for kind in DISTRACTOR_KINDS}}
    return ShapesItem(f"shapes-objects-{index + 1:05d}", image, QUESTION, options, LABELS[slot], "mcq", meta)


def generate(n: int, seed: int, start: int = 0) -> Iterator[ShapesItem]:
    """Items ``start .. start + n - 1`` of the stream for ``seed``."""
    return item_stream("shapes-objects", _item, n, seed, start)


def write_split(out_dir: str | Path, n: int, seed: int) -> Path:
    """Write ``manifest.jsonl`` and ``images/<id>.png``; returns the manifest path."""
    return write_items(out_dir, generate(n, seed))


def main(argv: Sequence[str] | None = None) -> int:
    return split_command(argv, prog="vlmgate.benchmarks.shapes_objects",
                         description="Write a split of the one-shape classification benchmark.",
                         generate_items=generate, size=EVAL_SIZE, seed=EVAL_SEED)


if __name__ == "__main__":
    raise SystemExit(main())
