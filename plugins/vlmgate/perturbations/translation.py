"""Cyclic horizontal translation (spec §1, "translation").

The content is rolled sideways with wrap-around instead of shifted onto a fill colour:
no pixel is lost or invented, so a changed answer can only come from *where* things
are, which is the instability the source paper isolates.
"""

from __future__ import annotations

from typing import ClassVar, Mapping

import numpy as np
from PIL import Image

from vlmgate.perturbations.base import GEOMETRIC, PerturbationFamily, VariantContext
from vlmgate.records import Sample, Variant

#: The paper's shifts in pixels, eight per image.
DEFAULT_SHIFTS = (-16, -12, -8, -4, 4, 8, 12, 16)


class Translation(PerturbationFamily):
    """Roll the image by ``dx`` pixels along its width (positive = content moves right).

    Params: ``dx`` (int). ``at_level(level, direction=±1)`` gives ``dx = direction·level``.
    """

    name: ClassVar[str] = "translation"
    tags: ClassVar[tuple[str, ...]] = (GEOMETRIC,)
    choices: ClassVar[Mapping[str, tuple[object, ...]]] = {"direction": (1, -1)}
    description: ClassVar[str] = "cyclic horizontal shift by dx px (wrap-around, no fill)"
    max_level: ClassVar[int] = 32

    def variants(self, sample: Sample, context: VariantContext) -> list[Variant]:
        return [self.at_level(abs(dx), direction=1 if dx > 0 else -1) for dx in DEFAULT_SHIFTS]

    def at_level(self, level: int, direction: int = 1, **choices: object) -> Variant:
        self.check_level(level)
        self.reject_unknown_choices(choices)
        self.check_choice("direction", direction, (1, -1))
        return Variant.of(self.name, self.intensity(level), dx=int(direction) * int(level))

    def apply(self, image: Image.Image, variant: Variant, rng: np.random.Generator) -> Image.Image:
        (dx,) = self.params_of(variant, "dx")
        pixels = np.asarray(image.convert("RGB"))
        return Image.fromarray(np.roll(pixels, int(dx), axis=1))
