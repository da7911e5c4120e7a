"""The bundled ``shapes`` benchmark: a seeded generator of coloured shapes with questions.

It exists so that the suite runs offline on something real: a benchmark whose answers are
correct by construction, small enough to ship, and that the bundled checkpoints were
trained on (with another seed). Five question types, each with a fixed answer set:

* ``colour``   "What colour is the circle?"              -> one of six colours
* ``shape``    "What shape is the red object?"           -> circle / square / triangle / cross
* ``position`` "Where is the blue square?"               -> top left / top right / bottom left / bottom right
* ``count``    "How many shapes are in the image?"       -> 1 / 2 / 3 / 4
* ``yesno``    "Is there a red circle in the image?"     -> Yes / No (POPE-style, adversarial negatives)

Every shape of an image has its own quadrant, colour and shape kind, so each question has
exactly one answer. Shapes are placed so that the answer survives the suite's
semantics-preserving perturbations (spec §1): they sit >= ``EDGE_MARGIN`` px from the
image border (cyclic shifts and pad/crop of 16 px keep them whole and in their quadrant),
>= ``AXIS_MARGIN`` px from the centre lines (the centred "Answer is X" box never covers
them, and a 16 px shift never moves them across the vertical centre line), with their
centre near the quadrant's diagonal (a ±30° rotation about the image centre keeps the
centre in its quadrant) and with a size that stays recognisable after a 0.9 resize.

Answer letters are balanced exactly: item ``i`` has type ``TYPES[i % 5]`` and, within its
type, answer slots cycle through seeded permutations of A–D (Yes/No likewise), so any
prefix of 20 items of a type holds every answer slot equally often. Each item is drawn
from its own generator ``rng_for(seed, "shapes", i)``; a split of ``n`` items is a prefix
of a split of ``n + k`` items with the same seed.

``python -m vlmgate.benchmarks.shapes --out DIR --n N --seed S`` writes a split; the
shipped evaluation split is ``fixtures/benchmarks/shapes`` = ``--n 300 --seed 0``.
Training data must come from another seed than ``EVAL_SEED``.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence, TypeVar

import numpy as np
from PIL import Image, ImageDraw

from vlmgate.errors import DataError
from vlmgate.records import Sample
from vlmgate.seeding import rng_for

IMAGE_SIZE = 224
#: Minimum distance (px) from any shape pixel to the image border.
EDGE_MARGIN = 24
#: Minimum distance (px) from any shape pixel to the horizontal and vertical centre lines.
AXIS_MARGIN = 20
#: Half-extent (circumradius, px) of a shape: 36-48 px across, 32-43 px after a 0.9 resize.
SIZE_RANGE = (18, 24)
#: Polar angle of a shape centre about the image centre, measured from the nearer axis
#: toward the quadrant diagonal: a ±30° rotation moves it to [8°, 82°], still inside.
ANGLE_RANGE_DEG = (38.0, 52.0)
#: Largest rotation (degrees) a shape is drawn with, about its own centre.
SHAPE_TILT_DEG = 15.0

EVAL_SEED = 0
EVAL_SIZE = 300

TYPES = ("colour", "shape", "position", "count", "yesno")
LABELS = ("A", "B", "C", "D")

#: Saturated colours, far from the pale backgrounds (every background channel >= 200).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 30, 30),
    "green": (25, 145, 45),
    "blue": (30, 70, 215),
    "yellow": (235, 190, 0),
    "purple": (130, 40, 165),
    "orange": (240, 120, 10),
}
SHAPES = ("circle", "square", "triangle", "cross")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
COUNTS = ("1", "2", "3", "4")
BACKGROUNDS = ("plain", "gradient", "stripes", "checks")

#: Unit vectors (x right, y down) from the image centre to each quadrant.
_QUADRANT_SIGNS = {"top left": (-1, -1), "top right": (1, -1),
                   "bottom left": (-1, 1), "bottom right": (1, 1)}

#: PNG options fixed so that image bytes are reproducible.
PNG_OPTIONS: dict[str, Any] = {"format": "PNG", "optimize": False, "compress_level": 9}


@dataclass(frozen=True)
class PlacedShape:
    """One drawn shape: what it is, where it is, and the geometry it was drawn with."""

    shape: str
    colour: str
    quadrant: str
    cx: float
    cy: float
    size: float
    tilt: float

    def as_json(self) -> dict[str, Any]:
        return {"shape": self.shape, "colour": self.colour, "quadrant": self.quadrant,
                "cx": round(self.cx, 3), "cy": round(self.cy, 3),
                "size": round(self.size, 3), "tilt": round(self.tilt, 3)}


@dataclass(frozen=True)
class ShapesItem:
    """One generated benchmark item, before it becomes a manifest row or a ``Sample``."""

    id: str
    image: Image.Image
    question: str
    options: tuple[str, ...]
    answer: str  # label: "A".."D" for mcq, "Yes"/"No" for yesno
    kind: str
    meta: dict[str, Any]

    @property
    def answer_index(self) -> int:
        labels = self.options if self.kind == "yesno" else LABELS[:len(self.options)]
        return labels.index(self.answer)

    def pictures(self) -> list[tuple[str, Image.Image]]:
        """The item's picture files, relative to the split's folder, with their pictures."""
        return [(f"images/{self.id}.png", self.image)]

    def manifest_row(self) -> dict[str, Any]:
        return {"id": self.id, "image": f"images/{self.id}.png", "question": self.question,
                "options": list(self.options), "answer": self.answer, "kind": self.kind,
                "meta": self.meta}

    def sample(self) -> Sample:
        return Sample(self.id, self.image, self.question, self.options, self.answer_index,
                      self.kind, None, tuple(sorted(self.meta.items())))


# --------------------------------------------------------------------------- drawing


def _shape_polygon(shape: str, cx: float, cy: float, size: float, tilt: float) -> list[tuple[float, float]]:
    """Vertices of ``shape`` with circumradius ``size``, rotated by ``tilt`` degrees."""
    if shape == "square":
        base: list[tuple[float, float]] = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        scale = size / math.sqrt(2)
    elif shape == "triangle":
        base = [(math.cos(math.radians(a)), math.sin(math.radians(a))) for a in (-90, 30, 150)]
        scale = size
    elif shape == "cross":
        w = 0.38  # half arm width relative to the half arm length
        base = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w),
                (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w)]
        scale = size / math.hypot(1, w)
    else:
        raise DataError(f"shapes benchmark: no polygon for shape {shape!r}; known: {', '.join(SHAPES)}")
    c, s = math.cos(math.radians(tilt)), math.sin(math.radians(tilt))
    return [(cx + scale * (x * c - y * s), cy + scale * (x * s + y * c)) for x, y in base]


def draw_shape(draw: ImageDraw.ImageDraw, placed: PlacedShape, fill: tuple[int, int, int]) -> None:
    if placed.shape == "circle":
        r = placed.size * 0.9  # a circle fills its circumcircle; shrink it to a comparable area
        draw.ellipse([placed.cx - r, placed.cy - r, placed.cx + r, placed.cy + r], fill=fill)
    else:
        draw.polygon(_shape_polygon(placed.shape, placed.cx, placed.cy, placed.size, placed.tilt), fill=fill)


def _light_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(205, 251, size=3).astype(np.float64)


def draw_background(rng: np.random.Generator, kind: str, size: int = IMAGE_SIZE) -> Image.Image:
    """A pale background: plain, a linear gradient, faint stripes or faint checks.

    Textures are periodic or smooth (no pixel noise), so PNGs stay small.
    """
    base = _light_colour(rng)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    if kind == "plain":
        pixels = np.broadcast_to(base, (size, size, 3))
    elif kind == "gradient":
        other = _light_colour(rng)
        angle = rng.uniform(0, 2 * math.pi)
        t = (xs * math.cos(angle) + ys * math.sin(angle)) / size
        t = (t - t.min()) / (t.max() - t.min())
        pixels = base + t[..., None] * (other - base)
    elif kind == "stripes":
        period = int(rng.integers(8, 17))
        depth = float(rng.integers(6, 13))
        direction = int(rng.integers(0, 3))
        coord = (xs, ys, xs + ys)[direction]
        band = (np.floor(coord / period) % 2)[..., None]
        pixels = base - depth * band
    elif kind == "checks":
        period = int(rng.integers(10, 21))
        depth = float(rng.integers(5, 11))
        band = ((np.floor(xs / period) + np.floor(ys / period)) % 2)[..., None]
        pixels = base - depth * band
    else:
        raise DataError(f"shapes benchmark: unknown background {kind!r}; known: {', '.join(BACKGROUNDS)}")
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def place_shape(rng: np.random.Generator, shape: str, colour: str, quadrant: str,
                image_size: int = IMAGE_SIZE) -> PlacedShape:
    """Draw a size, a polar angle near the quadrant diagonal and a radius within the margins."""
    size = float(rng.uniform(*SIZE_RANGE))
    angle = math.radians(float(rng.uniform(*ANGLE_RANGE_DEG)))
    if rng.integers(0, 2):  # measured from either axis: mirror about the diagonal
        angle = math.pi / 2 - angle
    half = image_size / 2
    along_x, along_y = math.cos(angle), math.sin(angle)
    r_min = (AXIS_MARGIN + size) / min(along_x, along_y)
    r_max = (half - EDGE_MARGIN - size) / max(along_x, along_y)
    if r_min > r_max:
        raise DataError(f"shapes benchmark: image size {image_size} too small for the margins")
    radius = float(rng.uniform(r_min, r_max))
    sx, sy = _QUADRANT_SIGNS[quadrant]
    tilt = float(rng.uniform(-SHAPE_TILT_DEG, SHAPE_TILT_DEG))
    return PlacedShape(shape, colour, quadrant, half + sx * radius * along_x,
                       half + sy * radius * along_y, size, tilt)


def render(shapes: Sequence[PlacedShape], background: Image.Image) -> Image.Image:
    image = background.copy()
    draw = ImageDraw.Draw(image)
    for placed in shapes:
        draw_shape(draw, placed, COLOURS[placed.colour])
    return image


# --------------------------------------------------------------------------- questions


def _balanced_slot(seed: int, purpose: str, k: int, n_slots: int) -> int:
    """Slot of the ``k``-th item of a stream: blocks of ``n_slots`` items use each slot once."""
    block = rng_for(seed, "shapes-slots", purpose, k // n_slots).permutation(n_slots)
    return int(block[k % n_slots])


def _options_with_answer(rng: np.random.Generator, answer: str, distractors: Sequence[str],
                         slot: int) -> tuple[str, ...]:
    others = [distractors[i] for i in rng.permutation(len(distractors))][:3]
    others.insert(slot, answer)
    return tuple(others)


def _colour_distractors(rng: np.random.Generator, answer: str, present: Sequence[str]) -> list[str]:
    """Colours present elsewhere in the image first (they are the tempting ones), then others."""
    in_image = [c for c in present if c != answer]
    absent = [c for c in COLOURS if c != answer and c not in in_image]
    absent = [absent[i] for i in rng.permutation(len(absent))]
    return (in_image + absent)[:3]


def _item(seed: int, index: int) -> ShapesItem:
    item_type = TYPES[index % len(TYPES)]
    k = index // len(TYPES)  # position within its type's stream
    rng = rng_for(seed, "shapes", index)
    item_id = f"shapes-{index + 1:05d}"

    if item_type == "count":
        n_shapes = 1 + _balanced_slot(seed, "count-value", k, 4)
    else:
        n_shapes = int(rng.integers(1, 5))
    quadrants = [QUADRANTS[i] for i in sorted(rng.permutation(4)[:n_shapes])]
    kinds = [SHAPES[i] for i in rng.permutation(len(SHAPES))[:n_shapes]]
    colour_names = list(COLOURS)
    colours = [colour_names[i] for i in rng.permutation(len(colour_names))[:n_shapes]]
    placed = [place_shape(rng, s, c, q) for s, c, q in zip(kinds, colours, quadrants)]
    background_kind = BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))]
    image = render(placed, draw_background(rng, background_kind))
    target = int(rng.integers(0, n_shapes))
    shape = placed[target]
    meta: dict[str, Any] = {"type": item_type, "background": background_kind,
                            "shapes": [p.as_json() for p in placed], "target": target}

    if item_type == "yesno":
        is_yes = _balanced_slot(seed, "yesno", k, 2) == 0
        if is_yes:
            colour, kind_name = shape.colour, shape.shape
            meta["negative"] = None
        else:
            colour, kind_name, negative = _adversarial_negative(rng, placed, target)
            meta["negative"] = negative
        question = f"Is there a {colour} {kind_name} in the image?"
        meta["asked"] = {"colour": colour, "shape": kind_name}
        return ShapesItem(item_id, image, question, ("Yes", "No"), "Yes" if is_yes else "No", "yesno", meta)

    slot = _balanced_slot(seed, item_type, k, 4)
    if item_type == "colour":
        subject = "shape" if n_shapes == 1 else shape.shape
        question = f"What colour is the {subject}?"
        options = _options_with_answer(rng, shape.colour, _colour_distractors(rng, shape.colour, colours), slot)
    elif item_type == "shape":
        question = f"What shape is the {shape.colour} object?"
        options = _options_with_answer(rng, shape.shape, [s for s in SHAPES if s != shape.shape], slot)
    elif item_type == "position":
        question = f"Where is the {shape.colour} {shape.shape}?"
        options = _options_with_answer(rng, shape.quadrant, [q for q in QUADRANTS if q != shape.quadrant], slot)
    else:
        question = "How many shapes are in the image?"
        options = _options_with_answer(rng, str(n_shapes), [c for c in COUNTS if c != str(n_shapes)], slot)
    return ShapesItem(item_id, image, question, options, LABELS[slot], "mcq", meta)


def _adversarial_negative(rng: np.random.Generator, placed: Sequence[PlacedShape],
                          target: int) -> tuple[str, str, str]:
    """A (colour, shape) pair absent from the image that shares an attribute with the target.

    With several shapes, half the negatives bind the target's colour to another shape's
    kind (or the reverse): both words occur in the image, only their pairing is wrong.
    Otherwise one attribute of the target is swapped for a value absent from the image.
    """
    shape = placed[target]
    others = [p for i, p in enumerate(placed) if i != target]
    present = {(p.colour, p.shape) for p in placed}
    if others and rng.integers(0, 2):
        other = others[int(rng.integers(0, len(others)))]
        pair = (shape.colour, other.shape) if rng.integers(0, 2) else (other.colour, shape.shape)
        kind = "co-occurring"
    elif rng.integers(0, 2):
        absent = [s for s in SHAPES if s not in {p.shape for p in placed}]
        if not absent:  # all four kinds present: swap in another shape's kind instead
            absent = [p.shape for p in others]
        pair = (shape.colour, absent[int(rng.integers(0, len(absent)))])
        kind = "shape-swap"
    else:
        absent = [c for c in COLOURS if c not in {p.colour for p in placed}]
        pair = (absent[int(rng.integers(0, len(absent)))], shape.shape)
        kind = "colour-swap"
    if pair in present:
        raise DataError(f"shapes benchmark: negative {pair} is present; generator bug")
    return pair[0], pair[1], kind


_Item = TypeVar("_Item")


def item_stream(benchmark: str, make: Callable[[int, int], _Item], n: int, seed: int, start: int = 0
                ) -> Iterator[_Item]:
    """Items ``start .. start + n - 1`` of a generated benchmark's stream for ``seed``: item ``i`` is
    ``make(seed, i)``, drawn from its own generator, so a split of ``n`` is a prefix of one of ``n + k``."""
    if n < 0 or start < 0:
        raise DataError(f"{benchmark} benchmark: n={n} and start={start} must be >= 0")
    for index in range(start, start + n):
        yield make(int(seed), index)


def generate(n: int, seed: int, start: int = 0) -> Iterator[ShapesItem]:
    """Items ``start .. start + n - 1`` of the stream for ``seed``."""
    return item_stream("shapes", _item, n, seed, start)


def png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, **PNG_OPTIONS)
    return buffer.getvalue()


class GeneratedItem(Protocol):
    """What a generated split's item writes: its picture files and its manifest row."""

    def pictures(self) -> list[tuple[str, Image.Image]]: ...

    def manifest_row(self) -> dict[str, Any]: ...


def write_items(out_dir: str | Path, items: Iterable[GeneratedItem]) -> Path:
    """Write ``manifest.jsonl`` and every item's picture files under ``out_dir``; returns the manifest.

    The one writer of every generated split (``shapes``, ``shapes-pairs``, ``shapes-objects``):
    PNG bytes fixed by ``png_bytes``, rows as sorted-key JSON lines, so a split regenerates byte
    for byte from its command.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.jsonl"
    with manifest.open("w", encoding="utf-8", newline="\n") as handle:
        for item in items:
            for name, image in item.pictures():
                (out / name).write_bytes(png_bytes(image))
            handle.write(json.dumps(item.manifest_row(), sort_keys=True) + "\n")
    return manifest


def split_command(argv: Sequence[str] | None, *, prog: str, description: str,
                  generate_items: Callable[[int, int], Iterable[GeneratedItem]], size: int, seed: int) -> int:
    """``python -m PROG --out DIR --n N --seed S``: write a generated split (``write_items``)."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description)
    parser.add_argument("--out", required=True, help="output folder (manifest.jsonl + images/)")
    parser.add_argument("--n", type=int, default=size, help=f"number of items (default {size})")
    parser.add_argument("--seed", type=int, default=seed, help=f"seed (default {seed}, the shipped split)")
    args = parser.parse_args(argv)
    manifest = write_items(args.out, generate_items(args.n, args.seed))
    print(f"wrote {args.n} items to {manifest}")
    return 0


def write_split(out_dir: str | Path, n: int, seed: int) -> Path:
    """Write ``manifest.jsonl`` and ``images/<id>.png``; returns the manifest path."""
    return write_items(out_dir, generate(n, seed))


def main(argv: Sequence[str] | None = None) -> int:
    return split_command(argv, prog="vlmgate.benchmarks.shapes", description="Write a split of the synthetic shapes "
                         "benchmark.", generate_items=generate, size=EVAL_SIZE, seed=EVAL_SEED)


if __name__ == "__main__":
    raise SystemExit(main())
