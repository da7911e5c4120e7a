"""The options in rotated order: MMBench's CircularEval as a perturbation family.

MMBench (Liu et al., 2023) passes a multiple-choice item only if the model answers it
right under every cyclic rotation of its options (ABCD, BCDA, CDAB, DABC): a model that
favours a position or a letter gets some rotation wrong even where it "knows" the
answer. Here the clean pass is the identity rotation and the default grid holds the
K − 1 others, so the flip-rate suite's IFR is the share of rotations that change the
chosen *content*, and ``circular_accuracy`` (``metrics.flips``) CircularEval's own figure.

The answer moves with its text: under shift ``s`` the option shown at position ``j`` is
the sample's option ``(j + s) mod K``, under the usual letters. The engine maps the
model's scores back into the sample's order (``shown_order``), so a prediction under a
rotation names the same option text as the clean one exactly when the model kept its
answer.

Yes/no items take no rotation: their prompt lists no options (it asks for "Yes or No"),
so a rotated item would be the very same input (``perturbations.prompt``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import numpy as np

from vlmgate.perturbations.base import VariantContext
from vlmgate.perturbations.prompt import PromptFamily, shows_labelled_options
from vlmgate.records import Sample, Variant


class OptionOrder(PromptFamily):
    """Rotate the options cyclically by ``shift`` positions.

    Params: ``shift`` (int). ``at_level(level)`` gives ``shift = level``; levels 1..3 are
    every rotation of a 4-option item (MMBench's), and a shift is taken modulo the
    item's option count, so on a K-option item a multiple of K shows the options as they
    are. The intensity is ``shift / max_level`` (at most 1): no rotation is "more" of a
    change than another; the level orders them only so that a search shrinks to shift 1.
    """

    name: ClassVar[str] = "option_order"
    description: ClassVar[str] = "options rotated cyclically (MMBench CircularEval), the answer moving with its text"
    max_level: ClassVar[int] = 3

    def variants(self, sample: Sample, context: VariantContext) -> list[Variant]:
        if not shows_labelled_options(sample):
            return []
        return [self._variant(shift) for shift in range(1, len(sample.options))]

    def at_level(self, level: int, **choices: object) -> Variant:
        self.check_level(level)
        self.reject_unknown_choices(choices)
        return self._variant(level)

    def _variant(self, shift: int) -> Variant:
        return Variant.of(self.name, min(shift, self.max_level) / self.max_level, shift=int(shift))

    def shown_order(self, sample: Sample, variant: Variant) -> tuple[int, ...] | None:
        (shift,) = self.params_of(variant, "shift")
        k = len(sample.options)
        if not shows_labelled_options(sample) or int(shift) % k == 0:
            return None
        return tuple((j + int(shift)) % k for j in range(k))

    def present(self, sample: Sample, variant: Variant, rng: np.random.Generator) -> Sample:
        order = self.shown_order(sample, variant)
        if order is None:
            return sample
        answer = None if sample.answer is None else order.index(sample.answer)
        return replace(sample, options=tuple(sample.options[i] for i in order), answer=answer)
