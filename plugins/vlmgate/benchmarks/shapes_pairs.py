"""The bundled ``shapes-pairs`` benchmark: two pictures of shapes, questions that need both.

The two-picture companion of ``bundled:shapes``, so that the suites that take items of
several pictures (``Sample.more_images``) have something real to judge offline. Each item
shows two 224 px pictures drawn exactly as ``shapes`` draws one (its backgrounds,
``place_shape`` and ``render``: 1-4 shapes per picture, each with its own quadrant, colour
and shape kind, kept clear of the borders and centre lines by the margins that let the
answer survive the suite's perturbations), and asks one of five questions whose answer
depends on both pictures:

* ``more``   "Which image has more shapes?"                          -> The first image / The second image (never a tie)
* ``both``   "Is there a red circle in both images?"                 -> Yes / No (``yesno``)
* ``total``  "How many shapes are there in the two images together?" -> four of 2-8, the answer among them
* ``which``  "Which image shows a triangle?"                         -> The first image / The second image (one has it)
* ``common`` "Which colour appears in both images?"                  -> one of four colours (exactly one is shared)

Every question places the pictures explicitly, in one form: ``"Image 1: <image 1> Image 2:
<image 2> Which image has more shapes?"`` (``PREFIX``; ``vlmgate.interleaving`` shows
picture k at ``<image k>``), so "the first image" is the one the prompt labels Image 1.
The negatives of ``both`` are adversarial: the asked shape is in one picture only, and the
other shows its colour on another shape kind, or its kind in another colour.

Answers are balanced as in ``shapes``: item ``i`` has type ``TYPES[i % 5]`` and, within its
type, answer slots cycle through seeded permutations (A-D for ``total`` and ``common``,
first/second for ``more`` and ``which``, Yes/No for ``both``), so any prefix of 4m items of a
type holds every answer slot equally often (the shipped 120 items: 24 per type). Each item is
drawn from its own generator ``rng_for(seed, "shapes-pairs", i)``; a split of ``n`` items is a
prefix of a split of ``n + k`` items with the same seed. A row's ``meta`` records each
picture's background and shapes (``pictures``, in image order) and what was asked, so every
answer can be recomputed from the row alone.

``python -m vlmgate.benchmarks.shapes_pairs --out DIR --n N --seed S`` writes a split
(``manifest.jsonl`` with ``images`` rows, ``jsonl``, and ``images/<id>-1.png``,
``images/<id>-2.png``); the shipped split ``fixtures/benchmarks/shapes-pairs``, which
``bundled:shapes-pairs`` loads, is ``--n 120 --seed 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    _balanced_slot,
    _colour_distractors,
    _options_with_answer,
    draw_background,
    item_stream,
    place_shape,
    render,
    split_command,
    write_items,
)
from vlmgate.errors import DataError
from vlmgate.records import Sample
from vlmgate.seeding import rng_for

EVAL_SEED = 0
EVAL_SIZE = 120

TYPES = ("more", "both", "total", "which", "common")
#: Where every question places its two pictures.
PREFIX = "Image 1: <image 1> Image 2: <image 2> "
#: The options of the questions that ask for one of the two pictures, in picture order.
WHICH_IMAGE = ("The first image", "The second image")
#: The options of ``total``: every possible number of shapes in two pictures of 1-4.
TOTALS = tuple(str(n) for n in range(2, 9))
#: The most shapes a picture holds (one per quadrant).
MAX_SHAPES = len(QUADRANTS)


@dataclass(frozen=True)
class PairItem:
    """One generated two-picture item, before it becomes a manifest row or a ``Sample``."""

    id: str
    images: tuple[Image.Image, Image.Image]
    question: str
    options: tuple[str, ...]
    answer: str  # label: "A".."D" for mcq, "Yes"/"No" for yesno
    kind: str
    meta: dict[str, Any]

    @property
    def answer_index(self) -> int:
        labels = self.options if self.kind == "yesno" else LABELS[:len(self.options)]
        return labels.index(self.answer)

    @property
    def image_names(self) -> tuple[str, ...]:
        return tuple(f"images/{self.id}-{k + 1}.png" for k in range(len(self.images)))

    def pictures(self) -> list[tuple[str, Image.Image]]:
        """The item's picture files, relative to the split's folder, with their pictures."""
        return list(zip(self.image_names, self.images))

    def manifest_row(self) -> dict[str, Any]:
        return {"id": self.id, "images": list(self.image_names), "question": self.question,
                "options": list(self.options), "answer": self.answer, "kind": self.kind, "meta": self.meta}

    def sample(self) -> Sample:
        return Sample(self.id, self.images[0], self.question, self.options, self.answer_index, self.kind, None,
                      tuple(sorted(self.meta.items())), more_images=tuple(self.images[1:]))


@dataclass(frozen=True)
class Picture:
    """One of an item's pictures: its shapes and background, drawn."""

    shapes: tuple[PlacedShape, ...]
    background: str
    image: Image.Image

    @property
    def colours(self) -> set[str]:
        return {s.colour for s in self.shapes}

    def as_json(self) -> dict[str, Any]:
        return {"background": self.background, "shapes": [s.as_json() for s in self.shapes]}


def _permuted(rng: np.random.Generator, values: Sequence[str]) -> list[str]:
    return [values[i] for i in rng.permutation(len(values))]


def _picture(rng: np.random.Generator, n: int, *, kind: str | None = None, colour: str | None = None,
             avoid_kinds: Sequence[str] = (), avoid_colours: Sequence[str] = ()) -> Picture:
    """A picture of ``n`` shapes of distinct kinds and colours, placed and drawn as ``shapes`` does.

    ``kind`` and ``colour``, when given, are one shape's (the same shape's when both are);
    no shape has a kind of ``avoid_kinds`` or a colour of ``avoid_colours``.
    """
    kinds = _permuted(rng, [s for s in SHAPES if s != kind and s not in avoid_kinds])
    colours = _permuted(rng, [c for c in COLOURS if c != colour and c not in avoid_colours])
    kinds = [kind, *kinds] if kind is not None else kinds
    colours = [colour, *colours] if colour is not None else colours
    if not 1 <= n <= min(len(kinds), len(colours), MAX_SHAPES):
        raise DataError(f"shapes-pairs benchmark: cannot draw {n} shapes from kinds {kinds} and colours {colours}; "
                        "generator bug")
    pairs = list(zip(kinds[:n], colours[:n]))
    pairs = [pairs[i] for i in rng.permutation(n)]  # the given shape is not always first
    quadrants = [QUADRANTS[i] for i in sorted(rng.permutation(len(QUADRANTS))[:n])]
    placed = tuple(place_shape(rng, s, c, q) for (s, c), q in zip(pairs, quadrants))
    background = BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))]
    return Picture(placed, background, render(placed, draw_background(rng, background)))


def _count(rng: np.random.Generator, most: int = MAX_SHAPES) -> int:
    return int(rng.integers(1, most + 1))


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _item(seed: int, index: int) -> PairItem:
    item_type = TYPES[index % len(TYPES)]
    k = index // len(TYPES)  # position within its type's stream
    rng = rng_for(seed, "shapes-pairs", index)
    item_id = f"shapes-pairs-{index + 1:05d}"
    meta: dict[str, Any] = {"type": item_type}

    if item_type == "both":
        is_yes = _balanced_slot(seed, "pairs-both", k, 2) == 0
        kind = SHAPES[int(rng.integers(0, len(SHAPES)))]
        colour = list(COLOURS)[int(rng.integers(0, len(COLOURS)))]
        if is_yes:
            pictures = [_picture(rng, _count(rng), kind=kind, colour=colour) for _ in range(2)]
            meta["negative"] = None
        else:
            holder = int(rng.integers(0, 2))
            if rng.integers(0, 2):  # the other picture shows the colour on another kind
                other = _picture(rng, _count(rng, len(SHAPES) - 1), colour=colour, avoid_kinds=[kind])
                meta["negative"] = "colour-share"
            else:  # or the kind in another colour
                other = _picture(rng, _count(rng), kind=kind, avoid_colours=[colour])
                meta["negative"] = "shape-share"
            held = _picture(rng, _count(rng), kind=kind, colour=colour)
            pictures = [held, other] if holder == 0 else [other, held]
        meta["asked"] = {"colour": colour, "shape": kind}
        question = f"Is there {_article(colour)} {colour} {kind} in both images?"
        return _finish(item_id, pictures, question, ("Yes", "No"), "Yes" if is_yes else "No", "yesno", meta)

    if item_type in ("more", "which"):
        slot = _balanced_slot(seed, f"pairs-{item_type}", k, 2)
        if item_type == "more":
            fewer, more = sorted(int(v) + 1 for v in rng.permutation(MAX_SHAPES)[:2])
            counts = (more, fewer) if slot == 0 else (fewer, more)
            pictures = [_picture(rng, n) for n in counts]
            question = "Which image has more shapes?"
        else:
            kind = SHAPES[int(rng.integers(0, len(SHAPES)))]
            shown = _picture(rng, _count(rng), kind=kind)
            other = _picture(rng, _count(rng, len(SHAPES) - 1), avoid_kinds=[kind])
            pictures = [shown, other] if slot == 0 else [other, shown]
            meta["asked"] = {"shape": kind}
            question = f"Which image shows {_article(kind)} {kind}?"
        return _finish(item_id, pictures, question, WHICH_IMAGE, LABELS[slot], "mcq", meta)

    slot = _balanced_slot(seed, f"pairs-{item_type}", k, 4)
    if item_type == "total":
        pictures = [_picture(rng, _count(rng)) for _ in range(2)]
        total = str(sum(len(p.shapes) for p in pictures))
        options = _options_with_answer(rng, total, [t for t in TOTALS if t != total], slot)
        question = "How many shapes are there in the two images together?"
    else:  # common: exactly one colour is in both pictures
        first = _picture(rng, _count(rng))
        colour = first.shapes[int(rng.integers(0, len(first.shapes)))].colour
        others = sorted(first.colours - {colour})
        second = _picture(rng, _count(rng, min(MAX_SHAPES, len(COLOURS) - len(others))), colour=colour,
                          avoid_colours=others)
        pictures = [first, second]
        present = [s.colour for p in pictures for s in p.shapes]
        options = _options_with_answer(rng, colour, _colour_distractors(rng, colour, present), slot)
        meta["asked"] = {"colour": colour}
        question = "Which colour appears in both images?"
    return _finish(item_id, pictures, question, options, LABELS[slot], "mcq", meta)


def _finish(item_id: str, pictures: Sequence[Picture], question: str, options: tuple[str, ...], answer: str,
            kind: str, meta: dict[str, Any]) -> PairItem:
    first, second = pictures
    meta = {**meta, "pictures": [p.as_json() for p in pictures]}
    return PairItem(item_id, (first.image, second.image), PREFIX + question, options, answer, kind, meta)


def generate(n: int, seed: int, start: int = 0) -> Iterator[PairItem]:
    """Items ``start .. start + n - 1`` of the stream for ``seed``."""
    return item_stream("shapes-pairs", _item, n, seed, start)


def write_split(out_dir: str | Path, n: int, seed: int) -> Path:
    """Write ``manifest.jsonl`` and ``images/<id>-1.png``, ``images/<id>-2.png``; returns the manifest path."""
    return write_items(out_dir, generate(n, seed))


def main(argv: Sequence[str] | None = None) -> int:
    return split_command(argv, prog="vlmgate.benchmarks.shapes_pairs",
                         description="Write a split of the two-picture shapes benchmark.", generate_items=generate,
                         size=EVAL_SIZE, seed=EVAL_SEED)


if __name__ == "__main__":
    raise SystemExit(main())
