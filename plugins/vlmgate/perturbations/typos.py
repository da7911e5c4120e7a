"""A few typos in the question: adjacent letters swapped, a letter dropped.

Real users mistype, and a model that reads "Waht colour is the cirlce?" as the question
it is keeps its answer; one whose answer rests on the exact surface form does not. The
edits are bounded (1 to 3, one per word, so a word stays recognisable) and touch only
the question: never the hint, never an option text, and never a question word that also
appears in an option (a typo in "red" of "Is the shape red?" with an option "red" would
change what is asked, not how it is spelt). Words shorter than ``MIN_LETTERS`` are left
alone too: dropping a letter of "is" or "the" leaves a word of another meaning or none.

The edits are drawn from the generator the engine passes (seeded by run seed, sample id
and variant: ``batches.perturbed``), so an instance is the same on every run, worker and
backend, and another variant of the same sample draws other edits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from vlmgate.perturbations.base import VariantContext
from vlmgate.perturbations.prompt import PromptFamily
from vlmgate.prompts import PREPARED
from vlmgate.records import Sample, Variant

#: A word: a run of ASCII letters (digits and punctuation are never edited).
WORD = re.compile(r"[A-Za-z]+")
#: Shortest word an edit may touch.
MIN_LETTERS = 4
SWAP = "swap"
DROP = "drop"


@dataclass(frozen=True)
class Edit:
    """One typo: ``kind`` (``swap`` letters ``at`` and ``at + 1``, or ``drop`` the letter ``at``),
    ``at`` an index into the question."""

    kind: str
    at: int

    def applied(self, text: str) -> str:
        if self.kind == SWAP:
            return text[:self.at] + text[self.at + 1] + text[self.at] + text[self.at + 2:]
        return text[:self.at] + text[self.at + 1:]


def editable_words(sample: Sample) -> list[tuple[int, str]]:
    """(start, word) of every question word an edit may touch (module docstring), in order."""
    protected = {word.lower() for text in sample.options for word in WORD.findall(text)}
    return [(match.start(), match.group()) for match in WORD.finditer(sample.question)
            if len(match.group()) >= MIN_LETTERS and match.group().lower() not in protected]


def draw_edits(sample: Sample, count: int, rng: np.random.Generator) -> list[Edit]:
    """Up to ``count`` edits in distinct editable words of the question (as many as there are
    words where fewer), each a swap of two different adjacent letters or a dropped letter."""
    words = editable_words(sample)
    chosen = sorted(rng.choice(len(words), size=min(count, len(words)), replace=False).tolist()) if words else []
    edits = []
    for index in chosen:
        start, word = words[index]
        swaps = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
        if swaps and rng.integers(2) == 0:
            edits.append(Edit(SWAP, start + swaps[int(rng.integers(len(swaps)))]))
        else:
            edits.append(Edit(DROP, start + int(rng.integers(len(word)))))
    return edits


def with_typos(question: str, edits: list[Edit]) -> str:
    """``question`` with ``edits`` applied, the rightmost first so earlier offsets stay valid."""
    for edit in sorted(edits, key=lambda e: e.at, reverse=True):
        question = edit.applied(question)
    return question


class Typos(PromptFamily):
    """``edits`` typos in the question (swap of adjacent letters or a dropped letter, one per word).

    Params: ``edits`` (int, 1..3). ``at_level(level)`` gives ``edits = level``; a question with
    fewer editable words than that gets one edit per editable word. The default grid holds
    one instance per edit count the question has words for; a prepared prompt (a cross-modal
    form, used verbatim) takes none.
    """

    name: ClassVar[str] = "typos"
    description: ClassVar[str] = "1-3 seeded typos in the question (adjacent letters swapped, a letter dropped)"
    max_level: ClassVar[int] = 3

    def variants(self, sample: Sample, context: VariantContext) -> list[Variant]:
        if sample.kind == PREPARED:
            return []
        words = len(editable_words(sample))
        return [self.at_level(edits) for edits in range(1, min(words, self.max_level) + 1)]

    def at_level(self, level: int, **choices: object) -> Variant:
        self.check_level(level)
        self.reject_unknown_choices(choices)
        return Variant.of(self.name, self.intensity(level), edits=int(level))

    def present(self, sample: Sample, variant: Variant, rng: np.random.Generator) -> Sample:
        (edits,) = self.params_of(variant, "edits")
        if sample.kind == PREPARED or int(edits) == 0:
            return sample
        return replace(sample, question=with_typos(sample.question, draw_edits(sample, int(edits), rng)))
