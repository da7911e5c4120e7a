"""Downscale and paste onto the original-size canvas (spec §1, "scale_pad").

Unlike ``scale``, the input size is unchanged, so the model's preprocessing sees the
same grid; only the content shrinks and a plain black or white frame appears around it.
"""

from __future__ import annotations

from typing import ClassVar, Mapping

import numpy as np
from PIL import Image

from vlmgate.perturbations.base import GEOMETRIC, PerturbationFamily, VariantContext
from vlmgate.perturbations.scale import (
    DEFAULT_REDUCTION_PERCENT,
    MAX_REDUCTION_PERCENT,
    factor_for_reduction,
    resize_by,
)
from vlmgate.records import Sample, Variant

#: Background name -> RGB fill.
BACKGROUNDS = {"black": (0, 0, 0), "white": (255, 255, 255)}


class ScalePad(PerturbationFamily):
    """Resize by ``factor`` (bicubic, as ``scale``) and paste centred on a ``W×H`` canvas.

    The paste offset is ``((W − w) // 2, (H − h) // 2)``: floor division, so an odd
    leftover puts the extra background pixel on the right / bottom.
    Params: ``factor`` (float), ``background`` ("black" | "white").
    """

    name: ClassVar[str] = "scale_pad"
    tags: ClassVar[tuple[str, ...]] = (GEOMETRIC,)
    choices: ClassVar[Mapping[str, tuple[object, ...]]] = {"background": ("black", "white")}
    description: ClassVar[str] = "resize by 0.9, paste centred on an original-size black or white canvas"
    max_level: ClassVar[int] = MAX_REDUCTION_PERCENT

    def variants(self, sample: Sample, context: VariantContext) -> list[Variant]:
        return [self.at_level(DEFAULT_REDUCTION_PERCENT, background=name) for name in BACKGROUNDS]

    def at_level(self, level: int, background: str = "black", **choices: object) -> Variant:
        self.check_level(level)
        self.reject_unknown_choices(choices)
        self.check_choice("background", background, tuple(BACKGROUNDS))
        return Variant.of(self.name, self.intensity(level),
                          factor=factor_for_reduction(level), background=background)

    def apply(self, image: Image.Image, variant: Variant, rng: np.random.Generator) -> Image.Image:
        factor, background = self.params_of(variant, "factor", "background")
        self.check_choice("background", background, tuple(BACKGROUNDS))
        small = resize_by(image, float(factor))
        canvas = Image.new("RGB", image.size, BACKGROUNDS[background])
        canvas.paste(small, ((image.width - small.width) // 2, (image.height - small.height) // 2))
        return canvas
