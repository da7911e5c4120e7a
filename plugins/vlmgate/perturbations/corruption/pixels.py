"""Pixel conversion and resolution scaling shared by the corruptions.

Corruptions compute on float32 RGB in [0, 1] (the published code's ``x / 255``) and end
in uint8 by rounding to nearest; the published code truncates (``np.uint8``), which
darkens every image by half a level on average for no reason.

The tables were tuned on 224 x 224 images. Two rules carry them to any size:

* parameters measured in pixels on the image itself (blur radii and sigmas, shuffle
  distances) are multiplied by ``pixel_scale = min(H, W) / 224``, so a corruption covers
  the same fraction of the picture at every resolution;
* texture layers (snow, frost, fog, spatter, elastic displacement fields) are synthesised
  on a *reference grid* whose shorter side is 224 px and resized to the image, so their
  statistics (how much is covered, how large a flake is) are exactly the published ones.
Per-pixel noise (Gaussian, shot, impulse, speckle) is defined per pixel and not scaled.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Side, in pixels, of the images the ImageNet-C tables were tuned on.
REFERENCE_SIDE = 224


def to_float(image: Image.Image) -> np.ndarray:
    """``image`` as a float32 H x W x 3 array in [0, 1] (any mode is converted to RGB)."""
    return np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255.0)


def to_image(pixels: np.ndarray) -> Image.Image:
    """Clip a float [0, 1] H x W x 3 array and round it to a uint8 RGB image."""
    rounded = np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
    return Image.fromarray(rounded)


def pixel_scale(shape: tuple[int, ...]) -> float:
    """How many of this image's pixels one pixel of a 224-px table image spans."""
    return min(shape[0], shape[1]) / REFERENCE_SIDE


def reference_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The (H, W) grid with shorter side 224 and the aspect ratio of ``shape``."""
    scale = pixel_scale(shape)
    return max(1, round(shape[0] / scale)), max(1, round(shape[1] / scale))


def resize_layer(layer: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Bilinearly resize a float H' x W' (or H' x W' x C) layer to ``shape[:2]``.

    Pillow's float ("F") resampling keeps full precision and antialiases when shrinking,
    so a reference-grid texture keeps its mean when drawn on a small image.
    """
    height, width = shape[0], shape[1]
    if layer.shape[:2] == (height, width):
        return layer.astype(np.float32, copy=False)
    if layer.ndim == 3:
        return np.stack([resize_layer(layer[..., c], shape) for c in range(layer.shape[2])], axis=-1)
    resized = Image.fromarray(np.ascontiguousarray(layer, dtype=np.float32)).resize(
        (width, height), Image.Resampling.BILINEAR)
    return np.array(resized, dtype=np.float32)


def luminance(pixels: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma (OpenCV's RGB2GRAY weights), H x W x 1."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (pixels @ weights)[..., np.newaxis]
