"""The options under other labels: 1/2/3/4 or a/b/c/d instead of A/B/C/D.

The letters are arbitrary: a model that answers by content gives the same option
whatever it is called, one that has learnt a prior over letters (or over the token "A")
does not. The options keep their order, so a prediction indexes the same option as the
clean one; the continuations the model is scored on carry the *shown* label
(``"2. green"``, ``prompts.option_continuations`` reads ``Sample.labels``), since scoring
``"B. green"`` after a prompt that never says "B" would measure the scorer, not the model.

Yes/no items show no labels (their continuations are the bare words), so they take no
variant (``perturbations.prompt``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar, Mapping

import numpy as np

from vlmgate.perturbations.base import VariantContext
from vlmgate.perturbations.prompt import PromptFamily, shows_labelled_options
from vlmgate.records import Sample, Variant

#: The label styles a variant may show; ``letters`` is the benchmark's own (the identity, level 0).
LETTERS = "letters"
DIGITS = "digits"
LOWERCASE = "lowercase"
STYLES = (DIGITS, LOWERCASE)


def labels_in(style: str, count: int) -> tuple[str, ...]:
    """The ``count`` labels of ``style`` (``digits``: 1, 2, ...; ``lowercase``: a, b, ...)."""
    if style == DIGITS:
        return tuple(str(i + 1) for i in range(count))
    return tuple(chr(ord("a") + i) for i in range(count))


class OptionLabels(PromptFamily):
    """Show the options under the labels of ``style``, in their own order.

    Params: ``style`` (``digits`` or ``lowercase``; ``letters`` at level 0, the identity).
    ``at_level(1, style="digits")``; the search's default choice is digits, the change
    furthest from the letters (no shared glyph).
    """

    name: ClassVar[str] = "option_labels"
    description: ClassVar[str] = "option labels shown as 1/2/3/4 or a/b/c/d, order unchanged"
    max_level: ClassVar[int] = 1
    choices: ClassVar[Mapping[str, tuple[object, ...]]] = {"style": STYLES}

    def variants(self, sample: Sample, context: VariantContext) -> list[Variant]:
        if not shows_labelled_options(sample):
            return []
        return [self.at_level(1, style=style) for style in STYLES]

    def at_level(self, level: int, style: str = DIGITS, **choices: object) -> Variant:
        self.check_level(level)
        self.reject_unknown_choices(choices)
        self.check_choice("style", style, STYLES)
        return Variant.of(self.name, self.intensity(level), style=style if level else LETTERS)

    def present(self, sample: Sample, variant: Variant, rng: np.random.Generator) -> Sample:
        (style,) = self.params_of(variant, "style")
        if style == LETTERS or not shows_labelled_options(sample):
            return sample
        if style not in STYLES:
            self.check_choice("style", style, (LETTERS, *STYLES))
        return replace(sample, shown_labels=labels_in(style, len(sample.options)))
