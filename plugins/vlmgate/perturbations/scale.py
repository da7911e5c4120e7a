"""Bicubic downscaling without resizing back (spec §1, "scale").

The image keeps its content and aspect but gets smaller, so the vision encoder sees the
same scene at a lower resolution (and, for patch-based encoders, on a different grid).
``scale_pad`` reuses the resize defined here.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from PIL import Image

from vlmgate.perturbations.base import GEOMETRIC, PerturbationFamily, VariantContext
from vlmgate.records import Sample, Variant

#: Largest searchable reduction in percent (factor 0.5).
MAX_REDUCTION_PERCENT = 50
#: The paper's factor 0.9, as a reduction in percent.
DEFAULT_REDUCTION_PERCENT = 10


def factor_for_reduction(percent: int) -> float:
    """``1 − percent/100``, computed as ``(100 − percent)/100`` so 10 gives exactly ``0.9``."""
    return (100 - int(percent)) / 100


def scaled_size(size: tuple[int, int], factor: float) -> tuple[int, int]:
    """``(round(W·f), round(H·f))`` with Python's ``round`` (half to even), at least 1 px."""
    width, height = size
    return max(1, round(width * factor)), max(1, round(height * factor))


def resize_by(image: Image.Image, factor: float) -> Image.Image:
    """A bicubic resize of ``image`` to ``scaled_size(image.size, factor)``, as a new RGB image.

    A size that does not change is returned as a copy (no resampling), so factor 1 is the
    identity exactly.
    """
    rgb = image.convert("RGB")
    size = scaled_size(rgb.size, factor)
    if size == rgb.size:
        return rgb  # convert() already made a copy
    return rgb.resize(size, Image.Resampling.BICUBIC)


class Scale(PerturbationFamily):
    """Resize by ``factor`` (bicubic); the result keeps the smaller size.

    Params: ``factor`` (float). ``at_level(level)`` gives ``factor = 1 − level/100``.
    """

    name: ClassVar[str] = "scale"
    tags: ClassVar[tuple[str, ...]] = (GEOMETRIC,)
    description: ClassVar[str] = "bicubic resize by factor 0.9, not resized back"
    max_level: ClassVar[int] = MAX_REDUCTION_PERCENT

    def variants(self, sample: Sample, context: VariantContext) -> list[Variant]:
        return [self.at_level(DEFAULT_REDUCTION_PERCENT)]

    def at_level(self, level: int, **choices: object) -> Variant:
        self.check_level(level)
        self.reject_unknown_choices(choices)
        return Variant.of(self.name, self.intensity(level), factor=factor_for_reduction(level))

    def apply(self, image: Image.Image, variant: Variant, rng: np.random.Generator) -> Image.Image:
        (factor,) = self.params_of(variant, "factor")
        return resize_by(image, float(factor))
