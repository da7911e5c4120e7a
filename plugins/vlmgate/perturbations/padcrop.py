"""Symmetric black padding or cropping (spec §1, "padcrop").

Padding adds context-free black margins; cropping removes the outermost pixels. Both
change the image size, so together they probe whether a model's answer depends on the
framing of otherwise identical content.
"""

from __future__ import annotations

from typing import ClassVar, Mapping

import numpy as np
from PIL import Image

from vlmgate.errors import DataError
from vlmgate.perturbations.base import GEOMETRIC, PerturbationFamily, VariantContext
from vlmgate.records import Sample, Variant

#: The paper's border widths: positive pads, negative crops, eight per image.
DEFAULT_BORDERS = (-16, -12, -8, -4, 4, 8, 12, 16)


class PadCrop(PerturbationFamily):
    """``n > 0``: a black border of ``n`` px on each side (size grows by ``2n``);
    ``n < 0``: crop ``|n|`` px from each side (size shrinks by ``2|n|``).

    Params: ``n`` (int). ``at_level(level, mode="pad"|"crop")`` gives ``n = ±level``.
    """

    name: ClassVar[str] = "padcrop"
    tags: ClassVar[tuple[str, ...]] = (GEOMETRIC,)
    choices: ClassVar[Mapping[str, tuple[object, ...]]] = {"mode": ("pad", "crop")}
    description: ClassVar[str] = "black border of n px each side (n > 0) or crop |n| px each side (n < 0)"
    max_level: ClassVar[int] = 32

    def variants(self, sample: Sample, context: VariantContext) -> list[Variant]:
        return [self.at_level(abs(n), mode="pad" if n > 0 else "crop") for n in DEFAULT_BORDERS]

    def at_level(self, level: int, mode: str = "pad", **choices: object) -> Variant:
        self.check_level(level)
        self.reject_unknown_choices(choices)
        self.check_choice("mode", mode, ("pad", "crop"))
        n = int(level) if mode == "pad" else -int(level)
        return Variant.of(self.name, self.intensity(level), n=n)

    def apply(self, image: Image.Image, variant: Variant, rng: np.random.Generator) -> Image.Image:
        (n,) = self.params_of(variant, "n")
        n = int(n)
        pixels = np.asarray(image.convert("RGB"))
        if n >= 0:
            return Image.fromarray(np.pad(pixels, ((n, n), (n, n), (0, 0)), constant_values=0))
        cut = -n
        height, width = pixels.shape[:2]
        if 2 * cut >= min(width, height):
            raise DataError(
                f"{self.name}: cannot crop {cut} px from each side of a {width}x{height} image "
                f"(variant {variant.label}); crop at most {(min(width, height) - 1) // 2} px "
                "or a larger image"
            )
        return Image.fromarray(pixels[cut:height - cut, cut:width - cut])
