"""An all-white image of the same size (spec §1, POPE diagnostic "blank").

With nothing to see, a model that still answers "Yes, there is a dog" is answering from
the question alone: the blank variant measures that prior directly.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from PIL import Image

from vlmgate.perturbations.base import CONTROL, PerturbationFamily, VariantContext
from vlmgate.records import Sample, Variant


class Blank(PerturbationFamily):
    """Level 1 replaces every pixel with white (255, 255, 255); level 0 is the identity.

    Params: ``level`` (int, 0 or 1).
    """

    name: ClassVar[str] = "blank"
    description: ClassVar[str] = "all-white image of the same size (answer prior without the image)"
    max_level: ClassVar[int] = 1
    tags: ClassVar[tuple[str, ...]] = (CONTROL, "blank")

    def variants(self, sample: Sample, context: VariantContext) -> list[Variant]:
        return [self.at_level(1)]

    def at_level(self, level: int, **choices: object) -> Variant:
        self.check_level(level)
        self.reject_unknown_choices(choices)
        return Variant.of(self.name, self.intensity(level), level=int(level))

    def apply(self, image: Image.Image, variant: Variant, rng: np.random.Generator) -> Image.Image:
        (level,) = self.params_of(variant, "level")
        if int(level) == 0:
            return image.convert("RGB")  # a copy, even when already RGB
        return Image.new("RGB", image.size, (255, 255, 255))
