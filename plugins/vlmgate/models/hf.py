"""``hf:PATH`` — a transformers vision-language checkpoint in a local folder.

The adapter scores answer options by likelihood, as spec §1 defines it: each option's
score is the summed log-probability of its text as the assistant turn after a user turn
holding the image and the prompt. No parsing of generated text is involved, so a score
is a deterministic function of (weights, image, prompt, option).

What is counted. With the chat template, the context is
``template([user(image + prompt)], add_generation_prompt=True)`` and the scored sequence
is ``template([user(image + prompt), assistant(option)])`` cut right after the option's
text (``continue_final_message=True``). The scored tokens are those from ``Lctx`` (the
context's token count) to the end of the option text: the end-of-turn marker the template
appends after an assistant message (``<|end|>`` in the tiny models, ``<|im_end|>`` in
Qwen, ``</s>`` in LLaVA-1.5) is *not* counted, because it says "the reply is over", not
which option was chosen. Scores are plain sums, without length normalisation.

Without a chat template (a processor that ships none) the plain format
``USER: <image>\\n{prompt}\\nASSISTANT:`` is the context and ``" " + option`` the
continuation; the tokenizer's own special tokens (e.g. BOS) are added. The adapter's
``prompt_format`` says which of the two was used, and loading warns about the fallback.

Checkpoints load offline (``HF_HUB_OFFLINE=1``, ``local_files_only=True``), from
safetensors only; ``trust_remote_code`` is passed through from ``ModelOptions``.
Multi-image processors (Qwen2-VL without torchvision, SmolVLM) are not supported yet and
fail at load time with a message, never by silently scoring without the image.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers reads its hub constants

import hashlib
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from vlmgate.errors import ModelError
from vlmgate.models.base import ModelOptions, ScoreRequest

#: Rows (request × option sequences) per forward pass; more rows amortise Python
#: overhead, fewer bound activation memory on large models.
DEFAULT_MAX_ROWS = 32
PLAIN_CONTEXT = "USER: {image}\n{prompt}\nASSISTANT:"
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_HASH_CHUNK = 1 << 20
#: Processor outputs that describe tokens, not images; anything else is per image.
_TOKEN_KEYS = ("input_ids", "attention_mask")
#: Architectures whose image encoder output is fully described by per-image features.
_SHARED_VISION_MODEL_TYPES = frozenset({"llava"})


def load_hf_model(path: str, options: ModelOptions, *, spec: str) -> "HFAdapter":
    """Load the checkpoint folder ``path`` (the part of ``spec`` after ``hf:``)."""
    folder = Path(path).expanduser().resolve()
    weights = _checked_weight_files(folder, spec)
    if options.dtype not in _DTYPES:
        raise ModelError(
            f"model spec {spec!r}: dtype {options.dtype!r} is not supported; "
            f"use one of {', '.join(_DTYPES)}"
        )
    try:
        device = torch.device(options.device)
    except RuntimeError as exc:
        raise ModelError(f"model spec {spec!r}: device {options.device!r} is not a torch device ({exc}); "
                         "use e.g. cpu, cuda or cuda:0") from None

    from transformers import AutoModelForImageTextToText, AutoProcessor

    common = {"local_files_only": True, "trust_remote_code": options.trust_remote_code}
    try:
        processor = AutoProcessor.from_pretrained(folder, **common)
        model = AutoModelForImageTextToText.from_pretrained(
            folder, dtype=_DTYPES[options.dtype], use_safetensors=True, **common
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"model spec {spec!r}: transformers cannot load {folder} offline ({type(exc).__name__}: {exc}); "
            "the folder must hold config.json, *.safetensors and the processor/tokenizer files "
            "written by save_pretrained (enable trust_remote_code in the model options only for "
            "checkpoints whose code you trust)"
        ) from exc
    if getattr(processor, "image_processor", None) is None:
        raise ModelError(
            f"model spec {spec!r}: AutoProcessor on {folder} returned a {type(processor).__name__} "
            "without an image processor, so images could not reach the model (transformers does this "
            "for Qwen2-VL when torchvision is missing); this model family is not supported yet, "
            "use a LLaVA-style checkpoint whose processor loads with its image processor"
        )
    model.to(device)
    model.eval()
    return HFAdapter(spec=spec, folder=folder, model=model, processor=processor,
                     fingerprint=fingerprint_checkpoint(folder, weights), device=device)


def _checked_weight_files(folder: Path, spec: str) -> list[Path]:
    if not folder.is_dir():
        raise ModelError(
            f"model spec {spec!r}: checkpoint folder {folder} does not exist; pass hf:PATH with "
            "PATH a local folder holding config.json and *.safetensors (vlmgate never downloads)"
        )
    if not (folder / "config.json").is_file():
        raise ModelError(
            f"model spec {spec!r}: {folder} has no config.json; save the checkpoint with "
            "model.save_pretrained(PATH) and processor.save_pretrained(PATH)"
        )
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise ModelError(
            f"model spec {spec!r}: {folder} has no *.safetensors weights (checkpoints load from "
            "safetensors only, never pickle); convert it with model.save_pretrained(PATH), "
            "whose default format is safetensors"
        )
    return weights


def fingerprint_checkpoint(folder: Path, weights: Sequence[Path]) -> str:
    """sha256 over config.json and the safetensors files (names and bytes, in name order).

    Only what determines the scores is hashed, so a copied or moved folder keeps its
    fingerprint and the observation cache stays valid, while any changed weight or
    config value gives a new one. Files are streamed so large checkpoints hash in
    constant memory.
    """
    digest = hashlib.sha256()
    for file in [folder / "config.json", *sorted(weights)]:
        digest.update(file.name.encode("utf-8") + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class _EncodedPrompt:
    """The text side of one (prompt, options) pair, independent of the image.

    ``context_text`` still holds the image placeholder; the processor expands it per
    image. ``continuation_ids`` are the scored tokens of each option.
    """

    context_text: str
    continuation_ids: tuple[tuple[int, ...], ...]


class HFAdapter:
    """A loaded transformers VLM that scores options by summed log-likelihood."""

    def __init__(self, *, spec: str, folder: Path, model: Any, processor: Any, fingerprint: str,
                 device: torch.device, max_rows: int = DEFAULT_MAX_ROWS):
        self.spec = spec
        self.folder = folder
        self.model = model
        self.processor = processor
        self.fingerprint = fingerprint
        self.device = device
        self.max_rows = max_rows
        self.tokenizer = processor.tokenizer
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id or 0
        self.pixel_dtype = next(model.parameters()).dtype
        self.prompt_format = "chat_template" if getattr(processor, "chat_template", None) else "plain"
        if self.prompt_format == "plain":
            if not getattr(processor, "image_token", None):
                raise ModelError(
                    f"model spec {spec!r}: the processor in {folder} has neither a chat template "
                    "nor an image_token, so there is no way to place the image in the prompt; "
                    "save a chat_template.jinja beside the processor"
                )
            warnings.warn(
                f"model spec {spec!r}: no chat template in {folder}; scoring with the plain "
                f"format {PLAIN_CONTEXT!r} + ' ' + option",
                stacklevel=2,
            )
        # Prompts repeat across every perturbation of a sample: render and tokenize once.
        self._encode = lru_cache(maxsize=8192)(self._encode_uncached)

    # -- text side -------------------------------------------------------------------------

    def _encode_uncached(self, prompt: str, continuations: tuple[str, ...]) -> _EncodedPrompt:
        if self.prompt_format == "chat_template":
            context = self._render(prompt, None)
            fulls = [self._render(prompt, option) for option in continuations]
            special = False  # the template writes BOS and markers itself
        else:
            context = PLAIN_CONTEXT.format(image=self.processor.image_token, prompt=prompt)
            fulls = [f"{context} {option}" for option in continuations]
            special = True
        encoded = self.tokenizer([context, *fulls], add_special_tokens=special)["input_ids"]
        context_ids, full_ids = encoded[0], encoded[1:]
        n_context = len(context_ids)
        continuation_ids = []
        for option, full_text, ids in zip(continuations, fulls, full_ids):
            if not full_text.startswith(context) or ids[:n_context] != context_ids:
                raise ModelError(
                    f"model spec {self.spec!r}: option {option!r} of prompt {prompt[:60]!r} does not "
                    "extend the context tokens (the chat template renders the user turn differently "
                    "with an assistant reply, or the tokenizer merges across the turn boundary), so "
                    "Lctx is undefined; fix the checkpoint's chat template"
                )
            scored = tuple(ids[n_context:])
            if not scored:
                raise ModelError(
                    f"model spec {self.spec!r}: option {option!r} of prompt {prompt[:60]!r} has no "
                    "tokens to score; options must be non-empty text"
                )
            continuation_ids.append(scored)
        return _EncodedPrompt(context, tuple(continuation_ids))

    def _render(self, prompt: str, option: str | None) -> str:
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
        ]
        if option is None:
            return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        messages.append({"role": "assistant", "content": [{"type": "text", "text": option}]})
        try:
            return self.processor.apply_chat_template(messages, tokenize=False, continue_final_message=True)
        except ValueError as exc:  # the template rewrote the reply beyond recognition
            raise ModelError(
                f"model spec {self.spec!r}: the chat template does not reproduce option {option!r} "
                f"verbatim ({exc}); fix the checkpoint's chat template"
            ) from exc

    # -- scoring ---------------------------------------------------------------------------

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        """Summed option log-likelihoods, one float64 array per request (spec §1)."""
        if not requests:
            return []
        encoded = [self._encode(r.prompt, tuple(r.continuations)) for r in requests]
        context_ids, images = self._process_images(requests, encoded)
        # One row per (request, option); rows sorted by length so a chunk pads little.
        rows = [(i, ids) for i, enc in enumerate(encoded) for ids in enc.continuation_ids]
        order = sorted(range(len(rows)), key=lambda k: len(context_ids[rows[k][0]]) + len(rows[k][1]))
        row_scores = np.empty(len(rows), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(order), self.max_rows):
                chunk = order[start:start + self.max_rows]
                row_scores[chunk] = self._score_rows([rows[k] for k in chunk], context_ids, images, requests)
        out, offset = [], 0
        for enc in encoded:
            n = len(enc.continuation_ids)
            out.append(row_scores[offset:offset + n].copy())
            offset += n
        return out

    def _process_images(self, requests: Sequence[ScoreRequest], encoded: Sequence[_EncodedPrompt]
                        ) -> tuple[list[list[int]], dict[str, torch.Tensor]]:
        """Expand the image placeholders and preprocess every image, in one processor call."""
        batch = self.processor(
            text=[enc.context_text for enc in encoded],
            images=[r.image for r in requests],
            add_special_tokens=self.prompt_format == "plain",
        )
        images: dict[str, torch.Tensor] = {}
        for key, value in batch.items():
            if key in _TOKEN_KEYS:
                continue
            if len(value) != len(requests):
                raise ModelError(
                    f"model spec {self.spec!r}: processor output {key!r} has {len(value)} entries for "
                    f"{len(requests)} images; processors that split images into patches or tiles "
                    "are not supported yet"
                )
            images[key] = torch.as_tensor(np.stack(value)).to(self.device)
        if "pixel_values" in images:
            images["pixel_values"] = images["pixel_values"].to(self.pixel_dtype)
        return [list(ids) for ids in batch["input_ids"]], images

    def _image_inputs(self, row_requests: Sequence[int], images: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The image arguments of a forward over rows that belong to ``row_requests``.

        All options of a request show the same image, so for LLaVA the vision tower runs
        once per distinct image and its features are handed to every row through
        transformers' ``mm_encoder_outputs`` (for K options this saves K-1 vision passes,
        about half the compute of a tiny model). Other architectures get their processed
        image inputs repeated per row: their encoder outputs carry more than per-image
        features (e.g. Qwen's deepstack states), and sharing them would be unsafe.
        """
        if self.model.config.model_type in _SHARED_VISION_MODEL_TYPES and set(images) == {"pixel_values"}:
            distinct = sorted(set(row_requests))
            where = {request: k for k, request in enumerate(distinct)}
            features = self.model.get_image_features(
                pixel_values=images["pixel_values"][distinct], return_dict=True
            ).pooler_output
            return {"mm_encoder_outputs": {"image": BaseModelOutputWithPooling(
                pooler_output=[features[where[request]] for request in row_requests]
            )}}
        index = torch.tensor(row_requests, device=self.device)
        return {key: value.index_select(0, index) for key, value in images.items()}

    def _score_rows(self, rows: Sequence[tuple[int, tuple[int, ...]]], context_ids: Sequence[list[int]],
                    images: dict[str, torch.Tensor], requests: Sequence[ScoreRequest]) -> np.ndarray:
        """One forward pass over ``rows``, right-padded; returns each row's summed log-prob.

        Rows are right-padded, so every row keeps positions 0..L-1 and no position ids are
        needed; the scored positions are found from each row's own lengths. Only the
        logits that predict option tokens are projected onto the vocabulary.
        """
        lengths = [len(context_ids[i]) + len(cont) for i, cont in rows]
        width = max(lengths)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        attention = np.zeros((len(rows), width), dtype=np.int64)
        keep = np.zeros((len(rows), width), dtype=bool)
        targets: list[int] = []
        for r, ((i, cont), length) in enumerate(zip(rows, lengths)):
            n_context = len(context_ids[i])
            input_ids[r, :n_context] = context_ids[i]
            input_ids[r, n_context:length] = cont
            attention[r, :length] = 1
            keep[r, n_context - 1:length - 1] = True  # logits at j-1 predict token j
            targets.extend(cont)
        keep_t = torch.from_numpy(keep).to(self.device)
        logits = self.model(
            input_ids=torch.from_numpy(input_ids).to(self.device),
            attention_mask=torch.from_numpy(attention).to(self.device),
            logits_to_keep=keep_t,
            **self._image_inputs([i for i, _ in rows], images),
        ).logits
        if logits.ndim == 3:  # a model that ignores a boolean logits_to_keep
            logits = logits[keep_t]
        logits = logits.float()
        target_t = torch.tensor(targets, device=self.device)
        token_logprob = logits.gather(1, target_t[:, None])[:, 0] - torch.logsumexp(logits, dim=1)
        counts = torch.tensor([len(cont) for _, cont in rows], device=self.device)
        row_of_token = torch.repeat_interleave(torch.arange(len(rows), device=self.device), counts)
        sums = torch.zeros(len(rows), dtype=torch.float64, device=self.device)
        sums.index_add_(0, row_of_token, token_logprob.double())
        result = sums.cpu().numpy()
        # A NaN or +inf logit in a scored row, or a -inf on an option token, makes the sum
        # non-finite; a -inf on some other token is a legitimate mask and stays harmless.
        bad = ~np.isfinite(result)
        if bad.any():
            request = rows[int(np.flatnonzero(bad)[0])][0]
            raise ModelError(
                f"model spec {self.spec!r} produced non-finite scores for request {request} "
                f"(prompt {requests[request].prompt[:60]!r}); the checkpoint's weights contain "
                "NaN/inf or the dtype overflows (load it with dtype float32)"
            )
        return result
