"""What a model scheme offers the suites, known before any model loads.

A suite requires capabilities of an adapter (``models.base.CAPABILITIES``: option scores,
hidden-state probes, generation, pixel gradients). Checked only when a case runs, a
combination that cannot work would be a skipped case in every run; known at collection,
it is no case at all (``suites.applicability``). So a model loader declares what its
scheme's adapters offer in an ``offers`` attribute: a set of capabilities, a function of
the spec's rest returning one (``bundled:`` reads the folder's model type), or ``None``
where only loading can tell (a served model's tier depends on its server). Reading a
declaration imports the loader's module; it loads no weights.
"""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar, Union

from vlmgate import registry
from vlmgate.errors import ModelError, VlmgateError

#: Besides the capabilities a suite may require, a scheme says whether its adapters read the
#: sample's question at all: a dual encoder scores options against the image alone, so it
#: cannot answer items whose question decides the answer (``suites.applicability``).
READS_QUESTIONS = "questions"
#: A generative VLM checkpoint (``hf:``, ``bundled:`` LLaVA folders): every capability but pixels.
VLM_OFFERS = frozenset({"choices", "scores", "probes", "generate", READS_QUESTIONS})
#: The capability of taking an interleaved item's pictures in one prompt (``models.base``).
SEVERAL_IMAGES = "several_images"
#: ``hf:`` families whose processor and forward take several pictures in one prompt, each
#: placed by the chat template where the content list puts it, and whose scores the project's
#: tests compare with a direct transformers call. PaliGemma is not one: its processor puts every
#: image before the prompt, so an interleaved item would reach it as another question.
SEVERAL_IMAGE_MODEL_TYPES = frozenset({"llava", "qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm"})


def vlm_offers(model_type: str | None) -> frozenset[str]:
    """What a generative VLM checkpoint of ``model_type`` offers (``None``: unknown, the load tells)."""
    return VLM_OFFERS | {SEVERAL_IMAGES} if model_type in SEVERAL_IMAGE_MODEL_TYPES else VLM_OFFERS
#: A CLIP-style dual encoder (``clip:``): zero-shot option scores and differentiable image embeddings.
CLIP_OFFERS = frozenset({"choices", "scores", "pixels"})
#: A loader's ``offers``: a set of capabilities, or a function of the spec's rest giving one (or ``None``).
OffersDeclaration = Union[Iterable[str], Callable[[str], "Iterable[str] | None"], None]
_Loader = TypeVar("_Loader", bound=Callable[..., object])


def offering(offers: OffersDeclaration) -> Callable[[_Loader], _Loader]:
    """Declare what a model loader's adapters offer (a decorator)."""
    def declare(loader: _Loader) -> _Loader:
        loader.offers = offers  # type: ignore[attr-defined]
        return loader

    return declare


def model_offers(spec: str) -> frozenset[str] | None:
    """The capabilities ``spec``'s scheme declares, or ``None`` when it declares none or cannot tell."""
    try:
        scheme, rest = registry.split_spec(spec, "model", ModelError)
        declared = getattr(registry.load(registry.MODELS, scheme), "offers", None)
    except VlmgateError:
        return None
    if callable(declared):
        declared = declared(rest)
    return None if declared is None else frozenset(declared)
