"""Glass blur: Gaussian blur, a local pixel shuffle repeated, then Gaussian blur again.

Parameters are ImageNet-C's (sigma, max_delta, iterations). The published shuffle is a
Python loop that scans the image from bottom-right to top-left (rows and columns
``side - max_delta`` down to ``max_delta + 1``) and at each pixel draws ``(dy, dx)``
uniform in ``[-max_delta, max_delta)`` (numpy's ``randint``, high exclusive) and "swaps"
with that neighbour. The swap is a tuple assignment between two views of one numpy array,
which copies the neighbour into the pixel and leaves the neighbour unchanged; neighbours
below or to the right were already rewritten in this scan, so a value can be carried
several steps (up to ~20 px in a pass at max_delta 4), and the offsets' negative mean
drifts the picture down-right by 0.5-0.85 px per pass. Both set how much the corruption
degrades an image (vlmgate's first version, an independent gather with symmetric
offsets, was 3-20 % milder at 224 px), so ``scan_shuffle`` computes the scan's exact
result without the loop: each pixel follows the chain of already rewritten neighbours to
the original value it ends on, by vectorised pointer chasing. Given the same offsets it
is bit-identical to the loop, and 15-90x faster than it (``perf/corruption_fidelity.py``).
The drift makes the published rows non-monotone: severity 3 (three passes) changes an
image more than severity 4 (two), and vlmgate keeps that, being the same algorithm.

The original also quantises the first blur to uint8 by truncation. Quantising by rounding
changes the mean absolute change on 224-px photos by under 0.1 %; truncating adds the
half-level darkening ``pixels`` avoids everywhere (+0.4-0.9 %), so neither is done. Sigma
and max_delta are pixels at 224 px and scale with the image; a shuffle distance that
rounds to 0 px (tiny images at low severity) leaves only the blur, as downsampling the
224-px result would.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.filtering import gaussian_smooth
from vlmgate.perturbations.corruption.pixels import pixel_scale
from vlmgate.perturbations.corruption.table import SeverityTable


class GlassBlurParams(NamedTuple):
    sigma: float  #: Gaussian blur before and after, pixels at 224 px
    max_delta: float  #: shuffle offsets are drawn from [-max_delta, max_delta), pixels at 224 px
    iterations: int  #: shuffle passes


def scan_shuffle(pixels: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """The published shuffle pass, vectorised: a new array, ``pixels`` is not modified.

    ``dy``/``dx`` hold the offsets of the scanned pixels, rows and columns
    ``max_delta + 1`` to ``side - max_delta`` in natural order, where ``max_delta`` is
    half the border that ``dy`` leaves out. The scan gives pixel ``p`` the current value
    of ``q = p + offset``: ``q``'s own new value when the scan has already passed ``q``
    (``q`` is scanned and comes after ``p`` in row-major order), else its original value.
    So each pixel reads from the end of a chain of such "carrying" links.
    """
    height, width = pixels.shape[:2]
    delta = (height - dy.shape[0]) // 2
    inner = (slice(delta + 1, height - delta + 1), slice(delta + 1, width - delta + 1))
    rows = np.arange(delta + 1, height - delta + 1)[:, np.newaxis]
    cols = np.arange(delta + 1, width - delta + 1)[np.newaxis, :]
    from_rows, from_cols = rows + dy, cols + dx
    reads = np.arange(height * width).reshape(height, width)  # unscanned pixels keep their own value
    reads[inner] = from_rows * width + from_cols
    carried = np.zeros((height, width), dtype=bool)
    after = (dy > 0) | ((dy == 0) & (dx > 0))  # after p in row-major order ...
    scanned = (from_rows <= height - delta) & (from_cols > delta) & (from_cols <= width - delta)  # ... and scanned
    carried[inner] = after & scanned
    link, carries = reads.ravel(), carried.ravel()
    source = link.copy()
    pending = np.flatnonzero(carries)
    while pending.size:  # once per link of the longest chain: ~10 times at 224 px
        via = source[pending]
        source[pending] = link[via]
        pending = pending[carries[via]]
    return pixels.reshape(height * width, -1)[source].reshape(pixels.shape)


def shuffle_pass(pixels: np.ndarray, max_delta: int, rng: np.random.Generator) -> np.ndarray:
    """One published shuffle pass with offsets drawn from ``[-max_delta, max_delta)``."""
    height, width = pixels.shape[:2]
    if min(height, width) <= 2 * max_delta:
        return pixels  # the scan's range is empty
    dy, dx = rng.integers(-max_delta, max_delta, size=(2, height - 2 * max_delta, width - 2 * max_delta))
    return scan_shuffle(pixels, dy, dx)


class GlassBlur(CorruptionFamily):
    name = "glass_blur"
    description = "ImageNet-C glass blur: blur, the published sequential pixel shuffle (vectorised), blur"
    version = 2  # 1: an independent random gather per pixel, 4-20 % milder than the published scan
    table = SeverityTable(
        identity=GlassBlurParams(0.0, 0.0, 0),
        rows=(GlassBlurParams(0.7, 1, 2), GlassBlurParams(0.9, 2, 1), GlassBlurParams(1.0, 2, 3),
              GlassBlurParams(1.1, 3, 2), GlassBlurParams(1.5, 4, 2)),
        integer_fields=("iterations",),
    )

    def corrupt(self, pixels: np.ndarray, params: GlassBlurParams, rng: np.random.Generator) -> np.ndarray:
        scale = pixel_scale(pixels.shape)
        sigma = params.sigma * scale
        max_delta = int(np.floor(params.max_delta * scale + 0.5))
        out = gaussian_smooth(pixels, sigma)
        if max_delta > 0:
            for _ in range(params.iterations):
                out = shuffle_pass(out, max_delta, rng)
        return gaussian_smooth(out, sigma)
