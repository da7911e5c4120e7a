"""``clip:PATH`` — a CLIP-style dual encoder as a zero-shot classifier.

Why a second adapter: spec §4 (Salman et al.) contrasts a CLIP model's zero-shot accuracy
with its *systematic* accuracy, where images are moved through embedding space by
gradient descent. That needs what a generative VLM adapter does not expose: the image
embedding as a differentiable function of the pixels.

Scoring: an option's score is the scaled cosine similarity of the image embedding with
the embedding of the option's text (``logit_scale · cos``), log-softmaxed over the
options, so ``argmax`` is the zero-shot class and the engine's flip gates work as for
any model. The prompt is not used (a dual encoder has no question channel), so gate a
CLIP model on classification-style items whose options name classes.

Differentiable access (``image_embedding``) works on ``(B, 3, S, S)`` pixels in [0, 1] at
the model's input size ``S``; ``to_pixels`` brings a PIL image there (resize to S×S,
bicubic) once, so pixel budgets are measured in the space the encoder sees. Loading is
offline and safetensors-only, with the same folder checks, loading-report check and
identity as ``hf:`` (``vlmgate.models.checkpoint``); the folder's config must say
``model_type: clip``, so a VLM folder is never gated as a (randomly initialised) CLIP.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vlmgate.errors import ModelError
from vlmgate.models.base import ModelIdentity, ModelOptions, ScoreRequest
from vlmgate.models.checkpoint import load_weights, open_checkpoint, torch_device, weight_placement
from vlmgate.models.offers import CLIP_OFFERS, offering

#: ``ModelIdentity.prompt_format`` of a dual encoder: options scored by image-text cosine.
PROMPT_FORMAT = "zero_shot_cosine"


@offering(CLIP_OFFERS)
def load_clip_model(path: str, options: ModelOptions, *, spec: str) -> "ClipAdapter":
    checkpoint = open_checkpoint(path, spec)
    folder = checkpoint.folder
    if checkpoint.model_type != "clip":
        raise ModelError(
            f"model spec {spec!r}: {folder / 'config.json'} has model_type {checkpoint.model_type!r}, not 'clip'; "
            "clip: gates CLIP dual encoders (saved with CLIPModel.save_pretrained(PATH)); gate a "
            f"vision-language model with hf:{folder}"
        )
    device = torch_device(options, spec)
    placement = weight_placement(checkpoint, options)  # a device map or quantization that cannot run fails here
    from transformers import CLIPModel, CLIPProcessor

    try:
        model, initialised = load_weights(CLIPModel, checkpoint, options, placement=placement)
        processor = CLIPProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"model spec {spec!r}: {folder} is not a CLIP checkpoint transformers can load offline "
            f"({type(exc).__name__}: {exc}); save it with CLIPModel.save_pretrained(PATH) and "
            "CLIPProcessor.save_pretrained(PATH)"
        ) from exc
    backend = getattr(processor.tokenizer, "backend_tokenizer", None)
    if backend is not None:  # a fixed length from tokenizer.json would cut option texts
        backend.no_truncation()
        backend.no_padding()
    if placement.placed:  # on its device(s) already (sharded or quantized): moving it would fail or undo that
        device = next(model.parameters()).device
    else:
        model.to(device)
    model.eval()
    memo = Path(options.digest_dir) if options.digest_dir else None
    identity = ModelIdentity(adapter="clip", files=checkpoint.files_digest(memo), initialised=initialised,
                             dtype=options.dtype, device_type=device.type, prompt_format=PROMPT_FORMAT,
                             quantization=placement.quantization)
    return ClipAdapter(spec, model, processor, identity, device)


@dataclass(frozen=True, eq=False)
class ClipAdapter:
    """Zero-shot scores, and differentiable image embeddings for systematic evaluation.

    The model runs in the dtype it was loaded in; embeddings and logits come back as
    float32 so that pixel gradients and budgets stay in one precision.
    """

    spec: str
    model: Any
    processor: Any
    identity: ModelIdentity
    device: torch.device

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    def to_pixels(self, images: Sequence[Any]) -> torch.Tensor:
        """PIL images -> ``(B, 3, S, S)`` float32 in [0, 1] at the encoder's input size."""
        from PIL import Image

        size = self.image_size
        arrays = [np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
                  for image in images]
        return torch.from_numpy(np.stack(arrays) / 255.0).permute(0, 3, 1, 2).contiguous().to(self.device)

    def image_embedding(self, pixels: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings of ``(B, 3, S, S)`` pixels in [0, 1] (differentiable)."""
        processor = self.processor.image_processor
        mean = torch.tensor(processor.image_mean, device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(processor.image_std, device=pixels.device).view(1, 3, 1, 1)
        features = self.model.get_image_features(pixel_values=((pixels - mean) / std).to(self.model.dtype))
        features = getattr(features, "pooler_output", features)  # transformers 5 returns an output object
        return torch.nn.functional.normalize(features.float(), dim=-1)

    def text_embedding(self, texts: Sequence[str], who: str = "") -> torch.Tensor:
        """L2-normalised embeddings of ``texts``, never truncated: a text longer than the text
        encoder's positions is a ``ModelError`` naming ``who`` asked (a sample) and the text."""
        tokens = self.processor.tokenizer(list(texts), padding=True, truncation=False, return_tensors="pt")
        limit = getattr(self.model.config.text_config, "max_position_embeddings", None)
        if limit is not None and tokens["input_ids"].shape[1] > limit:
            longest = max(texts, key=lambda text: len(self.processor.tokenizer(text)["input_ids"]))
            raise ModelError(
                f"model spec {self.spec!r}: {who or 'a text'} has option text {longest[:60]!r} of more tokens than "
                f"the text encoder's {limit} positions; shorten the option texts or gate a CLIP model with a "
                "longer text context"
            )
        features = self.model.get_text_features(**tokens.to(self.device))
        features = getattr(features, "pooler_output", features)
        return torch.nn.functional.normalize(features.float(), dim=-1)

    def logits(self, image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` zero-shot logits: ``logit_scale · cos``."""
        return self.model.logit_scale.float().exp() * image_embeddings @ text_embeddings.T

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        """Log-softmax over each request's options of the scaled image-text cosine."""
        if not requests:
            return []
        with torch.inference_mode():
            images = self.image_embedding(self.to_pixels([r.image for r in requests]))
            out = []
            for index, (request, image) in enumerate(zip(requests, images)):
                who = f"sample {request.sample_id!r}" if request.sample_id else f"request {index}"
                texts = self.text_embedding(request.continuations, who)
                out.append(torch.log_softmax(self.logits(image[None], texts)[0].double(), dim=-1).cpu().numpy())
        return out
