"""Progressive Gaussian blur for the visual-dependence (decay) gate, spec §5.

Zhou et al. blur each image at 8 levels from a 1x1 kernel (the clean image) to 61x61 and
ask whether the model's answer survives: an answer that never changes was not read from
the image. The intermediate kernel sizes {1, 5, 9, 15, 21, 31, 45, 61} and the sigma rule
``sigma = 0.3·((k - 1)/2 - 1) + 0.8`` (OpenCV's default for a k-tap kernel) are
*reconstructed*: the paper gives only the end points.

The blur is the exact k x k kernel, not an infinite Gaussian: a normalised 1-D kernel of
exactly k taps applied along rows and columns (``scipy.ndimage.correlate1d``), border
mode ``'reflect'`` (edge pixel repeated: d c b a | a b c d, OpenCV's BORDER_REFLECT; note
``cv2.GaussianBlur`` defaults to BORDER_REFLECT_101 instead). Kernel sizes are in pixels
of the image as given, not rescaled: the decay curve is defined on the model's input.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from PIL import Image
from scipy import ndimage

from vlmgate.errors import ConfigError
from vlmgate.perturbations.base import PerturbationFamily, VariantContext
from vlmgate.records import Sample, Variant

#: Kernel side per level; level 0 (k = 1) is the clean image (reconstructed, spec §5).
KERNEL_SIZES: tuple[int, ...] = (1, 5, 9, 15, 21, 31, 45, 61)


def kernel_sigma(kernel_size: int) -> float:
    """OpenCV's default sigma for a ``kernel_size``-tap Gaussian (reconstructed, spec §5)."""
    return 0.3 * ((kernel_size - 1) / 2 - 1) + 0.8


def gaussian_taps(kernel_size: int) -> np.ndarray:
    """The normalised 1-D Gaussian of exactly ``kernel_size`` taps (odd), centred."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd integer, got {kernel_size}")
    offsets = np.arange(kernel_size) - (kernel_size - 1) / 2
    taps = np.exp(-(offsets ** 2) / (2.0 * kernel_sigma(kernel_size) ** 2))
    return taps / taps.sum()


def blur_exact(pixels: np.ndarray, kernel_size: int) -> np.ndarray:
    """Separable k x k Gaussian blur of a float H x W x C array, border mode 'reflect'."""
    taps = gaussian_taps(kernel_size)
    rows = ndimage.correlate1d(pixels, taps, axis=0, mode="reflect")
    return ndimage.correlate1d(rows, taps, axis=1, mode="reflect")


class BlurDecay(PerturbationFamily):
    name = "blur_decay"
    tags = ("decay",)
    description = "Progressive Gaussian blur, kernel 1 (clean) to 61 px, 8 levels (spec §5)"
    max_level: ClassVar[int] = len(KERNEL_SIZES) - 1

    def variants(self, sample: Sample, context: VariantContext) -> list[Variant]:
        """Levels 1-7, mildest first; level 0 is the engine's shared clean pass."""
        return [self.at_level(level) for level in range(1, self.max_level + 1)]

    def at_level(self, level: int, **choices: object) -> Variant:
        if choices:
            raise ConfigError(
                f"perturbation {self.name!r} takes no choices, got {sorted(choices)}; "
                f"its only magnitude is the level (0-{self.max_level})"
            )
        self.check_level(level)
        return Variant.of(self.name, intensity=self.intensity(level), level=level, kernel=KERNEL_SIZES[level])

    def kernel_of(self, variant: Variant) -> int:
        """The validated kernel size of ``variant``; a malformed variant names the fix."""
        kernel = variant.param_dict.get("kernel")
        if (variant.family != self.name or isinstance(kernel, bool) or not isinstance(kernel, int)
                or kernel < 1 or kernel % 2 == 0):
            raise ConfigError(
                f"perturbation {self.name!r} cannot apply {variant.label}: it needs family "
                f"{self.name!r} and a positive odd integer 'kernel'; build variants with "
                f"at_level(level) for level 0-{self.max_level}"
            )
        return kernel

    def apply(self, image: Image.Image, variant: Variant, rng: np.random.Generator) -> Image.Image:
        kernel = self.kernel_of(variant)
        rgb = image.convert("RGB")
        if kernel == 1:
            return rgb
        pixels = np.asarray(rgb, dtype=np.float32)
        blurred = blur_exact(pixels, kernel)
        return Image.fromarray(np.rint(np.clip(blurred, 0, 255)).astype(np.uint8))
