"""Frost: the image dimmed and a frost texture added, ``clip(a·x + b·frost)`` (ImageNet-C).

ImageNet-C draws one of its frost photographs with ``randint(5)`` (so frost1-frost5;
frost2 and frost3 are the same pixels, hence drawn twice as often; frost6 never) and
crops 224 x 224 px at a uniform corner. vlmgate ships no photographs, so it generates the
crop, seeded by the variant's generator, from the measured statistics of the photos'
crops (``FROST_PHOTOS``): the first draw picks a photo as the original does, the crop's
mean colour is that photo's mean plus its crop-to-crop spread, and the texture around it
has the photo's per-channel contrast (mean within-crop std). The texture's shape is a
plasma-fractal film (``fog.reference_plasma``) under dense branching ice needles, drawn
on the 224-px reference grid, standardised, scaled and resized to the image; its density
was tuned so that the SSIM of frosted photos to clean ones matches the original's too.

What the rows mean depends on these statistics: the photo crops average 0.63 (RGB 0.56,
0.65, 0.69), where vlmgate's first texture averaged 0.45 and degraded images 26-40 %
less than ImageNet-C (mean absolute change on 224-px scikit-image photos,
``perf/corruption_fidelity.py``); now within ~1 %. Like the original, severity 4
changes pixels less than severity 3 (same frost weight, darker image).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.filtering import gaussian_smooth
from vlmgate.perturbations.corruption.fog import reference_plasma
from vlmgate.perturbations.corruption.pixels import resize_layer
from vlmgate.perturbations.corruption.table import SeverityTable

RGB = tuple[float, float, float]


class FrostPhoto(NamedTuple):
    """Statistics of the 224 x 224 crops of one ImageNet-C frost photograph, RGB in [0, 1]."""

    name: str
    mean: RGB  #: mean over crops of the crop's mean
    spread: RGB  #: std over crops of the crop's mean
    contrast: RGB  #: mean over crops of the crop's std


#: Measured on the photographs of github.com/hendrycks/robustness (ImageNet-C/create_c,
#: commit 8190fe3), read as RGB as ``cv2.imread`` + ``[..., ::-1]`` does (PNG alpha, all
#: opaque, dropped), over *every* crop the published draw can make: corners
#: ``(0..H-225, 0..W-225)``, computed exactly with summed-area tables. Pooled over the five
#: drawn photos, equally weighted as ``randint(5)`` draws them: pixel mean (0.564, 0.646,
#: 0.693), pixel std (0.222, 0.168, 0.163), mean within-crop std (0.097, 0.091, 0.092).
FROST_PHOTOS = (
    FrostPhoto("frost1.png", (0.302, 0.579, 0.644), (0.060, 0.032, 0.025), (0.092, 0.056, 0.052)),  # 900x600
    FrostPhoto("frost2.png", (0.776, 0.793, 0.829), (0.021, 0.024, 0.025), (0.076, 0.078, 0.081)),  # 560x315
    FrostPhoto("frost3.png", (0.776, 0.793, 0.829), (0.021, 0.024, 0.025), (0.076, 0.078, 0.081)),  # = frost2
    FrostPhoto("frost4.jpg", (0.568, 0.626, 0.677), (0.025, 0.025, 0.026), (0.102, 0.102, 0.108)),  # 527x350
    FrostPhoto("frost5.jpg", (0.395, 0.440, 0.487), (0.047, 0.045, 0.043), (0.141, 0.139, 0.136)),  # 660x495
    FrostPhoto("frost6.jpg", (0.268, 0.348, 0.377), (0.034, 0.039, 0.040), (0.122, 0.148, 0.171)),  # 485x323
)
#: The published ``np.random.randint(5)`` draws only the first five photographs.
PHOTOS_DRAWN = 5
#: Needle clusters per 224² reference pixels, and their length range in reference pixels.
CLUSTERS_PER_REFERENCE_IMAGE = 400
NEEDLE_LENGTH = (6.0, 30.0)
#: Weight of the smooth film against the needles before standardising.
FILM_WEIGHT = 0.5


class FrostParams(NamedTuple):
    image_weight: float
    frost_weight: float


def ice_needles(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Branching needle strokes in [0, 1] on an H x W grid (reference pixels).

    Each cluster is a main stroke with six side branches at ±60° from points along it;
    all geometry is drawn up front so that only the rasterising loops in Python.
    """
    height, width = shape
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    clusters = max(1, round(CLUSTERS_PER_REFERENCE_IMAGE * height * width / 224 ** 2))
    starts = rng.uniform((0, 0), (width, height), size=(clusters, 2))
    angles = rng.uniform(0, 2 * math.pi, size=clusters)
    lengths = rng.uniform(*NEEDLE_LENGTH, size=clusters)
    shades = rng.integers(60, 256, size=clusters)
    ends = starts + lengths[:, np.newaxis] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    along = rng.uniform(0.15, 0.9, size=(clusters, 6))[..., np.newaxis]
    branch_starts = starts[:, np.newaxis] + along * (ends - starts)[:, np.newaxis]
    branch_angles = angles[:, np.newaxis] + rng.choice((-1, 1), size=(clusters, 6)) * (math.pi / 3)
    branch_lengths = rng.uniform(0.15, 0.4, size=(clusters, 6)) * lengths[:, np.newaxis]
    branch_ends = branch_starts + branch_lengths[..., np.newaxis] * np.stack(
        [np.cos(branch_angles), np.sin(branch_angles)], axis=-1)
    for start, end, b_starts, b_ends, shade in zip(starts.tolist(), ends.tolist(), branch_starts.tolist(),
                                                    branch_ends.tolist(), shades.tolist()):
        draw.line([tuple(start), tuple(end)], fill=shade, width=1)
        for b_start, b_end in zip(b_starts, b_ends):
            draw.line([tuple(b_start), tuple(b_end)], fill=shade, width=1)
    return np.asarray(canvas, dtype=np.float32) / np.float32(255.0)


def frost_texture(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """An H x W x 3 frost texture in [0, 1] standing for one crop of a frost photograph.

    The first draw picks the photograph, so a caller can tell which one a seed stands for.
    """
    photo = FROST_PHOTOS[int(rng.integers(PHOTOS_DRAWN))]
    crop_mean = np.asarray(photo.mean) + np.asarray(photo.spread) * rng.standard_normal()
    film = reference_plasma(shape, 1.6, rng)
    structure = FILM_WEIGHT * film + gaussian_smooth(ice_needles(film.shape, rng), 0.5)
    structure = (structure - structure.mean()) / max(float(structure.std()), 1e-6)
    texture = crop_mean.astype(np.float32) + np.asarray(photo.contrast, dtype=np.float32) * structure[..., np.newaxis]
    return resize_layer(np.clip(texture, 0.0, 1.0), shape)


class Frost(CorruptionFamily):
    name = "frost"
    description = "ImageNet-C frost: a texture with the published frost photos' statistics over the dimmed image"
    version = 2  # 1: a texture of mean 0.45, 28-40 % milder than the published photographs
    table = SeverityTable(
        identity=FrostParams(1.0, 0.0),
        rows=(FrostParams(1.0, 0.4), FrostParams(0.8, 0.6), FrostParams(0.7, 0.7),
              FrostParams(0.65, 0.7), FrostParams(0.6, 0.75)),
    )

    def corrupt(self, pixels: np.ndarray, params: FrostParams, rng: np.random.Generator) -> np.ndarray:
        frost = frost_texture(pixels.shape, rng)
        return np.float32(params.image_weight) * pixels + np.float32(params.frost_weight) * frost
