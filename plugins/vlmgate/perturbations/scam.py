"""A word written in the scene: a paired set's attack photo against its no-word twin.

Synthetic overlays (``textoverlay``) print text onto a picture; a real typographic attack is
a word *in* the scene, handwritten on a note stuck to the object, photographed with it. SCAM
(Westerhoff et al., 2025) pairs 1,162 such photos with the same photos with the word
removed (NoSCAM) and, optionally, with the word put back digitally (SynthSCAM). Loaded with
``scam:PATH`` (``benchmarks.scam``), an item's picture is its no-word photo and its
``attack`` twin the photo with the word; its two options are the object and the attack word.

This family shows the ``attack`` twin. Its clean input *is* the no-word twin, so a flip is
the word's doing and nothing else's: the control that the synthetic overlays need an empty
box for is built into the pair. The flip-rate suite gates its IFR (a flip away from the
object is a flip to the word, there being two options) and records ``follow_rate``. It has
no magnitude to search (``at_level`` has one level, and the search does not take the
``typographic`` tag), and no image-only form: ``apply`` refuses, since a photo of a word
cannot be made from the photo without it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from PIL import Image

from vlmgate.errors import ConfigError
from vlmgate.perturbations.base import TYPOGRAPHIC, PerturbationFamily, VariantContext
from vlmgate.records import Sample, Variant

#: The twin this family shows, and the metadata key naming the option its word names.
ATTACK = "attack"
ATTACK_WORD = "attack_word"


class PhotographedWord(PerturbationFamily):
    name: ClassVar[str] = "scam"
    description: ClassVar[str] = ("the item's photo with a handwritten attack word (a paired set's attack twin), "
                                  "judged against its no-word twin")
    tags: ClassVar[tuple[str, ...]] = (TYPOGRAPHIC,)
    needs_twins: ClassVar[tuple[str, ...]] = (ATTACK,)
    max_level: ClassVar[int] = 1

    def variants(self, sample: Sample, context: VariantContext) -> list[Variant]:
        if ATTACK not in dict(sample.twins):
            return []
        word = sample.meta_dict.get(ATTACK_WORD)
        named = {"label": sample.labels[sample.options.index(word)]} if word in sample.options else {}
        return [Variant.of(self.name, 1.0, form=ATTACK, **named)]

    def at_level(self, level: int, **choices: Any) -> Variant:
        self.check_level(level)
        self.reject_unknown_choices(choices)
        return Variant.of(self.name, float(level), form=ATTACK) if level else Variant.of(self.name)

    def present(self, sample: Sample, variant: Variant, rng: np.random.Generator) -> Sample:
        if not variant.param_dict.get("form"):
            return sample
        try:
            return sample.with_image(sample.twin(ATTACK))
        except KeyError as exc:
            raise ConfigError(f"{self.name}: {exc.args[0]}; load a paired set (scam:PATH) to gate this family") \
                from None

    def apply(self, image: Image.Image, variant: Variant, rng: np.random.Generator) -> Image.Image:
        raise ConfigError(f"{self.name}: the attack photo is a twin picture of the item (Sample.twins), not a change "
                          "of its image; it has no image-only form")
