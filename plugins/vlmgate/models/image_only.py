"""Image-only processors for VLM families whose shipped processor needs torchvision.

Qwen2-VL, Qwen2.5-VL and SmolVLM processors take a video processor, and transformers
builds that from torchvision, which the CPU set-up of vlmgate does not install (it does
not import beside the CPU torch build). Without it, ``AutoProcessor`` either fails or —
for Qwen — silently returns the bare tokenizer, and a scorer would then run the text
without the image. vlmgate scores images only, so it builds the family's own processor
class without the video part: the same image processor, tokenizer, chat template and
placeholder expansion as the shipped one, with ``videos`` unsupported.

How: the family's processor class is subclassed with an ``__init__`` that names only
``image_processor`` and ``tokenizer``; transformers derives a processor's parts from that
signature, so loading and saving then skip the video processor, and the family's own
``__init__`` runs unchanged with ``video_processor=None``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

#: model_type -> the transformers processor class that needs the image-only variant.
PROCESSOR_CLASSES: dict[str, str] = {
    "qwen2_vl": "Qwen2VLProcessor",
    "qwen2_5_vl": "Qwen2_5_VLProcessor",
    "smolvlm": "SmolVLMProcessor",
}


@lru_cache(maxsize=None)
def image_only_class(model_type: str) -> type[Any]:
    """The image-only subclass of ``model_type``'s processor (one class per family)."""
    import transformers
    from transformers.processing_utils import ProcessorMixin

    base = getattr(transformers, PROCESSOR_CLASSES[model_type])

    # transformers reads a processor's parts and its saved options (SmolVLM's image_seq_len)
    # from this function's own parameter names, so they are spelled out.
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, image_seq_len=None, **kwargs):
        if image_seq_len is not None:
            kwargs["image_seq_len"] = image_seq_len
        # Positional: the family's __init__ takes (image_processor, tokenizer, video_processor, ...).
        base.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    def apply_chat_template(self, *args, **kwargs):
        # The family's override (SmolVLM) only fills in video defaults from its video processor.
        return ProcessorMixin.apply_chat_template(self, *args, **kwargs)

    return type(f"ImageOnly{base.__name__}", (base,), {
        "__init__": __init__, "apply_chat_template": apply_chat_template, "__module__": __name__})


def needs_image_only(model_type: str) -> bool:
    return model_type in PROCESSOR_CLASSES


def load_image_only_processor(folder: Path, model_type: str, **common: Any) -> Any:
    """The family's processor from ``folder``, without its video processor."""
    return image_only_class(model_type).from_pretrained(folder, **common)


def build_image_only_processor(model_type: str, image_processor: Any, tokenizer: Any, **kwargs: Any) -> Any:
    """A fresh image-only processor (for building tiny checkpoints)."""
    return image_only_class(model_type)(image_processor, tokenizer, **kwargs)
