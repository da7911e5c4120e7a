"""The plumbing every corruption family shares: levels, variants, validation, apply.

A corruption is a severity table plus a function of (float pixels, one table row, a
generator). This base class turns that into a ``PerturbationFamily``: the default grid
is the five published severities, the searched magnitude is ``level`` in 0-50 with
``severity = level / 10`` (10 = severity 1 exactly, 50 = severity 5), and ``apply``
validates the variant, short-circuits severity 0 to the identity and converts pixels.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, ClassVar, NamedTuple

import numpy as np
from PIL import Image

from vlmgate.errors import ConfigError
from vlmgate.perturbations.base import PerturbationFamily, VariantContext
from vlmgate.perturbations.corruption.pixels import to_float, to_image
from vlmgate.perturbations.corruption.table import MAX_SEVERITY, SeverityTable
from vlmgate.records import Sample, Variant

#: Integer levels per unit of severity.
LEVELS_PER_SEVERITY = 10


class CorruptionFamily(PerturbationFamily):
    """Base class of the ImageNet-C families; subclasses set ``table`` and ``corrupt``."""

    tags: ClassVar[tuple[str, ...]] = ("corruption",)
    max_level: ClassVar[int] = MAX_SEVERITY * LEVELS_PER_SEVERITY
    table: ClassVar[SeverityTable[Any]]

    def variants(self, sample: Sample, context: VariantContext) -> list[Variant]:
        """The five published severities, mildest first."""
        return [self.at_level(severity * LEVELS_PER_SEVERITY) for severity in range(1, MAX_SEVERITY + 1)]

    def at_level(self, level: int, **choices: object) -> Variant:
        if choices:
            raise ConfigError(
                f"perturbation {self.name!r} takes no choices, got {sorted(choices)}; "
                "its only magnitude is the level (0-50, severity = level / 10)"
            )
        self.check_level(level)
        return Variant.of(self.name, intensity=self.intensity(level), severity=level / LEVELS_PER_SEVERITY)

    def severity_of(self, variant: Variant) -> float:
        """The validated severity of ``variant``; a malformed variant names the fix."""
        if variant.family != self.name:
            raise ConfigError(
                f"perturbation {self.name!r} was asked to apply a {variant.family!r} variant "
                f"({variant.label}); apply it with the family that made it"
            )
        severity = variant.param_dict.get("severity")
        if (isinstance(severity, bool) or not isinstance(severity, (int, float))
                or not math.isfinite(severity) or not 0 <= severity <= MAX_SEVERITY):
            raise ConfigError(
                f"perturbation {self.name!r}: variant {variant.label} needs a numeric 'severity' "
                f"in [0, {MAX_SEVERITY}]; build variants with at_level(level) for level 0-{self.max_level}"
            )
        return float(severity)

    def parameters(self, variant: Variant) -> NamedTuple:
        """The interpolated table row ``variant`` stands for."""
        return self.table.at(self.severity_of(variant))

    def apply(self, image: Image.Image, variant: Variant, rng: np.random.Generator) -> Image.Image:
        severity = self.severity_of(variant)
        if severity == 0:
            return image.convert("RGB")  # a copy: severity 0 is the identity by definition
        pixels = to_float(image)
        corrupted = self.corrupt(pixels, self.table.at(severity), rng)
        return to_image(corrupted)

    @abstractmethod
    def corrupt(self, pixels: np.ndarray, params: Any, rng: np.random.Generator) -> np.ndarray:
        """Corrupt float32 H x W x 3 ``pixels`` in [0, 1]; the result may leave [0, 1]."""
