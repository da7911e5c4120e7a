"""Reference implementations of ImageNet-C's glass blur and frost, for fidelity tests only.

vlmgate replaces two published corruptions with faster or photo-free versions (a
vectorised shuffle, a generated frost texture). These references follow the published
algorithms (Hendrycks & Dietterich 2019, ``make_imagenet_c.py``) step by step, written
from their description, so a test can check that vlmgate's versions degrade an image as
much as the originals at every severity. They are slow and are not shipped.

The degradation measure is ``mean_abs_change``: the mean absolute difference, in uint8
levels, between the clean 224-px photo and the corrupted one after both are rounded to
uint8 the same way (vlmgate rounds where the published pipeline truncates when saving;
the saving convention is not part of either corruption, so it is held equal).

Frost needs the published frost photographs, which vlmgate does not ship and the tests
may not download. ``FROST_REFERENCE_CHANGE`` pins what the reference gives on the
fidelity photos, measured with the photographs (see ``measure_frost_reference``); a
checkout that has them can re-measure by pointing ``VLMGATE_FROST_PHOTOS`` at a folder
holding ``frost1.png`` ... ``frost6.jpg``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from skimage import data
from skimage.filters import gaussian

#: Side of the images the published code corrupts (a 256-resize centre-cropped to 224).
SIDE = 224
#: scikit-image photographs the fidelity figures are measured on (all ship offline).
FIDELITY_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")
#: The published frost photographs; ``np.random.randint(5)`` draws only the first five.
FROST_PHOTO_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
FROST_PHOTOS_DRAWN = 5
#: Environment variable naming a folder with the frost photographs (optional).
FROST_PHOTOS_ENV = "VLMGATE_FROST_PHOTOS"


class GlassRow(NamedTuple):
    sigma: float
    max_delta: int
    iterations: int


class FrostRow(NamedTuple):
    image_weight: float
    frost_weight: float


#: The published rows, severities 1-5.
GLASS_ROWS = (GlassRow(0.7, 1, 2), GlassRow(0.9, 2, 1), GlassRow(1.0, 2, 3), GlassRow(1.1, 3, 2), GlassRow(1.5, 4, 2))
FROST_ROWS = (FrostRow(1.0, 0.4), FrostRow(0.8, 0.6), FrostRow(0.7, 0.7), FrostRow(0.65, 0.7), FrostRow(0.6, 0.75))

#: Reference frost degradation per severity 1-5: ``mean_abs_change`` averaged over
#: ``FIDELITY_PHOTOS`` and the 5 x 10 x 10 crops of ``frost_crops(photos, per_axis=10)``,
#: measured by ``measure_frost_reference`` on the original photographs of
#: github.com/hendrycks/robustness (ImageNet-C/create_c, commit 8190fe3). Severity 4 is
#: milder than 3 by this measure in the original too: same frost weight, darker image.
FROST_REFERENCE_CHANGE = (61.08, 73.30, 79.85, 76.68, 80.22)


def fidelity_photo(name: str, side: int = SIDE) -> np.ndarray:
    """A scikit-image photo as uint8 RGB ``side`` x ``side``: centre square, box-resized."""
    image = Image.fromarray(getattr(data, name)()).convert("RGB")
    width, height = image.size
    crop = min(width, height)
    left, top = (width - crop) // 2, (height - crop) // 2
    square = image.crop((left, top, left + crop, top + crop))
    return np.asarray(square.resize((side, side), Image.Resampling.BOX))


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Round a float [0, 255] image to uint8 as vlmgate's ``to_image`` does."""
    return np.rint(np.clip(pixels, 0.0, 255.0)).astype(np.uint8)


def mean_abs_change(clean: np.ndarray, corrupted: np.ndarray) -> float:
    """Mean absolute difference in uint8 levels (both arguments uint8)."""
    return float(np.abs(clean.astype(np.int16) - corrupted.astype(np.int16)).mean())


def sequential_shuffle(x: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """The published shuffle pass over ``x`` in place: a sequential scan, bottom-right first.

    Rows and columns run from ``side - max_delta`` down to ``max_delta + 1``; the pixel at
    ``(h, w)`` takes offsets ``dy[i, j], dx[i, j]`` with ``(i, j) = (h, w) - max_delta - 1``
    (so the grids cover the scanned square in natural order) and "swaps" with the pixel at
    ``(h + dy, w + dx)``. The published swap is a tuple assignment between two numpy
    views of one array: the first store overwrites the pixel the second store reads, so
    the statement copies the neighbour into ``(h, w)`` and leaves the neighbour as it was
    (``test_published_swap_statement_copies`` checks this numpy behaviour). A neighbour
    below or to the right was already rewritten earlier in the scan, so a value can be
    carried several steps; this loop does what the statement does.
    """
    height, width = x.shape[:2]
    delta = (height - dy.shape[0]) // 2
    offsets = np.stack([dy, dx], axis=-1).tolist()
    for h in range(height - delta, delta, -1):
        for w in range(width - delta, delta, -1):
            oy, ox = offsets[h - delta - 1][w - delta - 1]
            x[h, w] = x[h + oy, w + ox]
    return x


def glass_blur_reference(image: np.ndarray, row: GlassRow, rng: np.random.Generator) -> np.ndarray:
    """Published glass blur of a uint8 224 x 224 x 3 image; float [0, 255] out.

    Blur with scikit-image's Gaussian, quantise by truncation to uint8, run
    ``iterations`` passes of ``sequential_shuffle`` with offsets uniform in
    ``[-max_delta, max_delta)`` (``randint``'s exclusive high), blur again. The offsets
    of a pass are drawn at once rather than per pixel: the same distribution, fewer calls.
    """
    delta = row.max_delta
    x = np.uint8(gaussian(image / 255.0, sigma=row.sigma, channel_axis=-1) * 255)
    scanned = (image.shape[0] - 2 * delta, image.shape[1] - 2 * delta)
    for _ in range(row.iterations):
        dy, dx = rng.integers(-delta, delta, size=(2, *scanned))
        sequential_shuffle(x, dy, dx)
    return np.clip(gaussian(x / 255.0, sigma=row.sigma, channel_axis=-1), 0, 1) * 255


def frost_reference(image: np.ndarray, row: FrostRow, crop: np.ndarray) -> np.ndarray:
    """Published frost: ``clip(a·x + b·crop, 0, 255)`` with a uint8 RGB photo crop."""
    return np.clip(row.image_weight * image.astype(np.float64) + row.frost_weight * crop, 0, 255)


def frost_photos(folder: str | os.PathLike[str]) -> list[np.ndarray]:
    """The six frost photographs as uint8 RGB (alpha dropped, as ``cv2.imread`` does)."""
    return [np.asarray(Image.open(Path(folder) / name).convert("RGB")) for name in FROST_PHOTO_FILES]


def frost_photo_folder() -> Path | None:
    """The folder named by ``VLMGATE_FROST_PHOTOS`` when it holds all six photos."""
    folder = os.environ.get(FROST_PHOTOS_ENV)
    if folder and all((Path(folder) / name).is_file() for name in FROST_PHOTO_FILES):
        return Path(folder)
    return None


def frost_crops(photos: list[np.ndarray], per_axis: int = 6) -> list[np.ndarray]:
    """Crops standing for the published draw, with its weights but without its noise.

    The published code draws a photo with ``randint(5)`` and a corner with
    ``randint(0, dim - 224)`` per axis; this takes every drawn photo with a
    ``per_axis`` x ``per_axis`` grid of corners spread evenly over those ranges, so a mean
    over the crops is the published expectation up to the grid's resolution.
    """
    crops = []
    for photo in photos[:FROST_PHOTOS_DRAWN]:
        tops = np.linspace(0, photo.shape[0] - SIDE - 1, per_axis).round().astype(int)
        lefts = np.linspace(0, photo.shape[1] - SIDE - 1, per_axis).round().astype(int)
        crops.extend(photo[top:top + SIDE, left:left + SIDE] for top in tops for left in lefts)
    return crops


def measure_frost_reference(photos: list[np.ndarray], per_axis: int = 6) -> tuple[float, ...]:
    """Mean ``mean_abs_change`` of published frost over ``FIDELITY_PHOTOS`` and ``frost_crops``."""
    clean = [fidelity_photo(name) for name in FIDELITY_PHOTOS]
    crops = frost_crops(photos, per_axis)
    return tuple(float(np.mean([mean_abs_change(image, to_uint8(frost_reference(image, row, crop)))
                                for image in clean for crop in crops]))
                 for row in FROST_ROWS)


def seeds_drawing_each_frost_photo(count: int) -> list[int]:
    """The first ``count`` seeds whose frost texture stands for each drawn photograph.

    vlmgate's frost texture picks the photograph it stands for with its first draw
    (``frost_texture``); taking equally many seeds for each, as the published
    ``randint(5)`` weighs them, removes the largest source of noise from a comparison:
    the gap between a bright and a dark photograph.
    """
    chosen: dict[int, list[int]] = {index: [] for index in range(FROST_PHOTOS_DRAWN)}
    seed = 0
    while min(map(len, chosen.values())) < count:
        index = int(np.random.default_rng(seed).integers(FROST_PHOTOS_DRAWN))
        if len(chosen[index]) < count:
            chosen[index].append(seed)
        seed += 1
    return sorted(seed for seeds in chosen.values() for seed in seeds)
