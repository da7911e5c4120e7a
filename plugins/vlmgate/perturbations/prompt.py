"""What the prompt-side families share: the image stays as it is, the prompt changes.

The image families ask whether the answer survives a change of the picture; these ask
the other half of the question MMBench's CircularEval made standard: does it survive a
change of *how the question is put* that keeps its content (the options in another
order, other option labels, a few typos in the question)? A model that answers by
content keeps its answer; one that answers by position, by letter or by surface form
does not.

They change only what ``present`` returns (``perturbations.base``): ``apply`` gives the
image back untouched, so the drift suite's image-side readings and the failure images
see the clean picture. Their tag ``prompt`` keeps them out of every suite that does not
take it, and out of the flip-rate suite's pooled ``any`` row, which is about the image.

Where a family applies: a multiple-choice item (``kind`` ``mcq``) shows lettered options;
a yes/no item shows none (its prompt asks for "Yes or No" and the two words are scored
as they are), so reordering or relabelling its options would show the very same input,
and instances that cannot flip would only dilute the rate. A ``prompt`` sample (a
cross-modal form prepared elsewhere) is used verbatim and takes no prompt-side variant.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from vlmgate.perturbations.base import PROMPT, PerturbationFamily
from vlmgate.records import Sample, Variant

#: The sample kind whose prompt lists its options under labels.
LABELLED = "mcq"


def shows_labelled_options(sample: Sample) -> bool:
    """Whether ``sample``'s prompt lists its options under labels (so their order and labels can change)."""
    return sample.kind == LABELLED and len(sample.options) >= 2


class PromptFamily(PerturbationFamily):
    """A family that changes the prompt and leaves the image alone (see the module docstring)."""

    tags = (PROMPT,)

    def apply(self, image: Image.Image, variant: Variant, rng: np.random.Generator) -> Image.Image:
        """The image unchanged (the same object: nothing here modifies it)."""
        return image
