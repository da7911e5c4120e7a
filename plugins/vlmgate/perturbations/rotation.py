"""Rotation with the canvas expanded to fit (spec §1, "rotation").

``expand=True`` keeps every source pixel (nothing is cut at the corners) and the new
corners are filled white, so the perturbation changes orientation and framing but not
content.
"""

from __future__ import annotations

from typing import ClassVar, Mapping

import numpy as np
from PIL import Image

from vlmgate.perturbations.base import GEOMETRIC, PerturbationFamily, VariantContext
from vlmgate.records import Sample, Variant

#: The paper's angle in degrees, applied in both directions.
DEFAULT_DEGREES = 30
WHITE = (255, 255, 255)


class Rotation(PerturbationFamily):
    """``PIL.Image.rotate(degrees, bicubic, expand=True, fillcolor=white)``.

    Positive degrees turn the content counter-clockwise (PIL's convention). The output
    size is PIL's: the rotated corners' bounding box, ``ceil(max) − floor(min)`` per axis.
    Params: ``degrees`` (int). ``at_level(level, sign=±1)`` gives ``degrees = sign·level``.
    """

    name: ClassVar[str] = "rotation"
    tags: ClassVar[tuple[str, ...]] = (GEOMETRIC,)
    choices: ClassVar[Mapping[str, tuple[object, ...]]] = {"sign": (1, -1)}
    description: ClassVar[str] = "rotate by ±30 degrees, expand=True, white fill, bicubic"
    max_level: ClassVar[int] = 90

    def variants(self, sample: Sample, context: VariantContext) -> list[Variant]:
        return [self.at_level(DEFAULT_DEGREES, sign=sign) for sign in (1, -1)]

    def at_level(self, level: int, sign: int = 1, **choices: object) -> Variant:
        self.check_level(level)
        self.reject_unknown_choices(choices)
        self.check_choice("sign", sign, (1, -1))
        return Variant.of(self.name, self.intensity(level), degrees=int(sign) * int(level))

    def apply(self, image: Image.Image, variant: Variant, rng: np.random.Generator) -> Image.Image:
        (degrees,) = self.params_of(variant, "degrees")
        rgb = image.convert("RGB")
        if degrees == 0:
            return rgb  # convert() already made a copy
        return rgb.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=WHITE)
