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

Without a chat template (a processor that ships none) there is no format to trust, so
loading fails unless the user names one (``ModelOptions.prompt_format``, a
``vlmgate.models.prompt_formats`` record such as ``llava-plain``): its context, BOS
written out, is the context and ``separator + option`` the continuation. PaliGemma's
processor frames the prompt itself, and that frame is its default format. The adapter's
``prompt_format`` names the format (``chat_template`` for the checkpoint's own) and
``render_context`` shows a context as the model reads it.

Probes (``embed``, for the drift and structure gates) read the final language-model
layer of the same sequences: the context's last token, the mean over the teacher-forced
option's tokens, the mean over the model's own greedy answer, and the last token of an
open-prompt context; plus the projected vision tokens with their grid. ``score`` never
computes them.

``generate`` (free-text replies: numeric answers and OCR transcripts of the cross-modal
suite) reuses that greedy decoding and returns the decoded text; it is the only place
where generated text, rather than option likelihood, leaves the adapter.

Checkpoints load offline (``HF_HUB_OFFLINE=1``, ``local_files_only=True``), from
safetensors only; ``trust_remote_code`` is passed through from ``ModelOptions``. The
folder is checked, fingerprinted and loaded with transformers' loading report by
``checkpoint`` (shared with ``clip:``): weights that do not fit the architecture are a
load error, not a random initialisation. The weights load straight onto the device in
the requested dtype, or sharded over several GPUs (``device_map="auto"``), pre-quantized
or quantized by bitsandbytes at load (``checkpoint.weight_placement``); inputs then go to
the device of the token embeddings. The adapter's ``identity`` (files, dtype, device
type, prompt format, limits, quantization) is what its ``fingerprint`` hashes.

Sequences are scored whole: the tokenizer's own truncation and padding (a fixed length
in tokenizer.json) are switched off, and a request longer than the language model's
``max_position_embeddings`` is refused naming its sample, since positions beyond the
trained range give scores that look fine and are not.

Prefix sharing (``HFAdapter.prefix_sharing``). A context is hundreds of tokens (576 image
tokens alone in LLaVA-1.5) and an option a few, so each chunk of contexts runs once,
keeping its key/value cache and the logits of its last position (which predict every
option's first token); all options of a context then continue that cache as segments of
one packed row (``shared_prefix``: a 4-D mask lets each segment see its context and
itself only; position ids carry on where the context ends), batched across requests.
The probes reuse the same passes: ``ctx_mcq`` is the context's last state, ``ans_mcq``
comes from the option segments, greedy decoding for ``ans_mcq_free`` continues the cache
cropped back to the context, and the open prompt of ``ctx_open`` continues it too where
both contexts share the image part. Every verified family takes this path
(``HFAdapter.PREFIX_SHARED_MODEL_TYPES``): Qwen's multimodal RoPE continues at ``index +
rope_delta``; PaliGemma's bidirectional prefix is the whole context and the option its
causal suffix, so the cached keys do not depend on the option (its positions count
from 1, ``family_inputs.position_base``); only its open prompt cannot reuse the image part
(``SHARED_OPEN_PROMPT_MODEL_TYPES``), since its image tokens attend to the prompt after
them. The row path (every option a whole ``context + option`` row) stays for other model
types and for attention implementations without dense masks (flash, flex); both give the
same scores up to float rounding (1e-6 on the tiny families, tested within 1e-4), and
``identity`` records which one ran.

Families (``VERIFIED_MODEL_TYPES``): LLaVA, Qwen2-VL, Qwen2.5-VL, Idefics3, SmolVLM,
PaliGemma. Their differences live beside this module: image-only processors where the
shipped one needs torchvision (``image_only``), per-image input layouts and per-token type
ids (``family_inputs``), vision-token grids (``vision_grid``). A model type transformers
cannot run as an image-text-to-text model fails at load time naming what is missing,
never by silently scoring without the image.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers reads its hub constants

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from vlmgate.errors import ModelError
from vlmgate.interleaving import image_order, interleaved
from vlmgate.models.base import (
    GenerateRequest,
    ModelIdentity,
    ModelOptions,
    ProbeRecord,
    ProbeRequest,
    ScoreRequest,
)
from vlmgate.models.checkpoint import (
    dtype_name,
    load_weights,
    open_checkpoint,
    torch_device,
    torch_dtype,
    weight_placement,
)
from vlmgate.models.family_inputs import (
    MROPE_MODEL_TYPES,
    PREFIX_LM_MODEL_TYPES,
    TOKEN_KEYS,
    image_rows,
    pack_images,
    position_base,
    processor_images,
    processor_kwargs,
    token_inputs,
    unpack_rows,
    unpadded_ids,
)
from vlmgate.models.image_only import load_image_only_processor, needs_image_only
from vlmgate.models.offers import SEVERAL_IMAGE_MODEL_TYPES, VLM_OFFERS, offering, vlm_offers
from vlmgate.models.prompt_formats import CHAT_TEMPLATE, choose_format
from vlmgate.models.shared_prefix import ATTENTION_IMPLEMENTATIONS, Segment, attention_mask, pack
from vlmgate.models.vision_grid import family_vision_tokens

#: Sequences per forward pass: contexts per cached pass with prefix sharing, else
#: (request × option) rows; more amortise Python overhead, fewer bound activation memory
#: on large models.
DEFAULT_MAX_ROWS = 32
#: Longest greedy answer read for the ``ans_mcq_free`` probe; option texts are a few tokens.
DEFAULT_MAX_ANSWER_TOKENS = 8
#: Tokenizer and processor calls never truncate or pad on their own: a checkpoint whose
#: tokenizer.json fixes a length would otherwise score cut or padded sequences.
_WHOLE_TEXT = {"truncation": False, "padding": False}
#: Families whose tiny checkpoints the project's tests score and probe through ``hf:``.
VERIFIED_MODEL_TYPES = frozenset({"llava", "qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm", "paligemma"})
#: Architectures whose image encoder output is fully described by per-image features.
_SHARED_VISION_MODEL_TYPES = frozenset({"llava"})
#: Families whose contexts run once for all their options (``shared_prefix``): every
#: verified family. PaliGemma's bidirectional prefix is the whole context and the option
#: is its causal suffix, so the context's keys do not depend on the option and cache
#: exactly; Qwen's multimodal RoPE numbers the text after the image ``index + rope_delta``,
#: which the continuation's position ids carry on.
PREFIX_SHARED_MODEL_TYPES = VERIFIED_MODEL_TYPES
#: Families whose prompt is read causally, so that a second prompt over the same image (the
#: open prompt of ``ctx_open``) continues the cached keys of the part both contexts share
#: (the image, with an image-first template). Not PaliGemma: its image tokens attend to the
#: whole prompt after them.
SHARED_OPEN_PROMPT_MODEL_TYPES = PREFIX_SHARED_MODEL_TYPES - PREFIX_LM_MODEL_TYPES


def hf_offers(path: str) -> frozenset[str]:
    """What ``hf:PATH`` offers, read at collection (``models.offers``): every suite but pixel
    gradients, and several pictures per prompt where its ``config.json`` names a family that
    takes them. An unreadable folder offers the common set; loading it says what is wrong."""
    try:
        config = json.loads((Path(path).expanduser() / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return VLM_OFFERS
    return vlm_offers(config.get("model_type") if isinstance(config, dict) else None)


@offering(hf_offers)
def load_hf_model(path: str, options: ModelOptions, *, spec: str) -> "HFAdapter":
    """Load the checkpoint folder ``path`` (the part of ``spec`` after ``hf:``)."""
    checkpoint = open_checkpoint(path, spec)
    folder = checkpoint.folder
    torch_dtype(options, spec)  # an unsupported dtype fails before anything loads
    device = torch_device(options, spec)
    placement = weight_placement(checkpoint, options)  # so does a device map or quantization that cannot run

    from transformers import AutoModelForImageTextToText, AutoProcessor

    common = {"local_files_only": True, "trust_remote_code": options.trust_remote_code}
    model_type = checkpoint.model_type
    _check_architecture(model_type, folder, spec, options)
    try:
        if needs_image_only(model_type):  # its shipped processor needs torchvision for videos
            processor = load_image_only_processor(folder, model_type, **common)
        else:
            processor = AutoProcessor.from_pretrained(folder, **common)
        model, initialised = load_weights(AutoModelForImageTextToText, checkpoint, options, placement=placement,
                                          trust_remote_code=options.trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:  # ImportError: a processor's package
        raise ModelError(
            f"model spec {spec!r}: transformers cannot load {folder} offline ({type(exc).__name__}: {exc}); "
            "the folder must hold config.json, *.safetensors and the processor/tokenizer files "
            "written by save_pretrained (enable trust_remote_code in the model options only for "
            "checkpoints whose code you trust)"
        ) from exc
    if getattr(processor, "image_processor", None) is None:
        raise ModelError(
            f"model spec {spec!r}: AutoProcessor on {folder} (model_type {model_type!r}) returned a "
            f"{type(processor).__name__} without an image processor, so images could not reach the model; "
            "missing: an image processor config (processor_config.json or preprocessor_config.json) that "
            "loads without torchvision. Save the processor with processor.save_pretrained(PATH); families "
            f"verified with vlmgate: {', '.join(sorted(VERIFIED_MODEL_TYPES))}"
        )
    if placement.placed:  # on its device(s) already; inputs go where the token embeddings are
        device = model.get_input_embeddings().weight.device
    else:
        model.to(device)
    model.eval()
    memo = Path(options.digest_dir) if options.digest_dir else None
    adapter = HFAdapter(spec=spec, folder=folder, model=model, processor=processor,
                        fingerprint=checkpoint.files_digest(memo), initialised=initialised, device=device,
                        prompt_format=options.prompt_format)
    adapter.quantization = placement.quantization
    return adapter


def _check_architecture(model_type: str, folder: Path, spec: str, options: ModelOptions) -> None:
    """Fail early, naming what is missing, for a model type transformers cannot run as a VLM."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES or options.trust_remote_code:
        return
    import transformers

    raise ModelError(
        f"model spec {spec!r}: {folder / 'config.json'} has model_type {model_type!r}, which transformers "
        f"{transformers.__version__} cannot load as an image-text-to-text model (missing: an "
        f"AutoModelForImageTextToText class for {model_type!r}). Use a checkpoint of a supported family "
        f"(verified: {', '.join(sorted(VERIFIED_MODEL_TYPES))}), upgrade transformers, or, for a checkpoint "
        "that ships its own modelling code you trust, pass --vlmgate-trust-remote-code"
    )


@dataclass(frozen=True)
class _EncodedPrompt:
    """The text side of one (prompt, options) pair, independent of the image.

    ``context_text`` still holds the image placeholders (one per picture, where the prompt
    places it); the processor expands them. ``continuation_ids`` are the scored tokens of each option.
    """

    context_text: str
    continuation_ids: tuple[tuple[int, ...], ...]


class HFAdapter:
    """A loaded transformers VLM that scores options by summed log-likelihood.

    ``fingerprint`` (the argument) is the digest of the checkpoint's files
    (``checkpoint.files_digest``) and ``initialised`` that of weights initialised at load;
    the adapter's ``identity`` adds what else decides a value (dtype, device type, prompt
    format, limits), and its ``fingerprint`` attribute hashes all of it.

    Scoring takes one of two paths (``prefix_sharing``): each context once, its options
    continuing its key/value cache (``PREFIX_SHARED_MODEL_TYPES``, under an attention
    implementation that takes dense masks), or one whole (context + option) row per
    option. Both give the same scores up to float rounding; which one ran is part of the
    identity.
    """

    #: Families that score options as continuations of one context pass (module docstring).
    PREFIX_SHARED_MODEL_TYPES: frozenset[str] = PREFIX_SHARED_MODEL_TYPES
    #: Families whose open-prompt probe continues the scoring context's cached image part.
    SHARED_OPEN_PROMPT_MODEL_TYPES: frozenset[str] = SHARED_OPEN_PROMPT_MODEL_TYPES
    #: ``None``: the family and attention implementation decide (``prefix_sharing``).
    _prefix_sharing: bool | None = None
    #: How the weights were quantized ("" for none; ``checkpoint.Placement.quantization``).
    quantization: str = ""

    def __init__(self, *, spec: str, folder: Path, model: Any, processor: Any, fingerprint: str,
                 device: torch.device, max_rows: int = DEFAULT_MAX_ROWS,
                 max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS, initialised: str = "",
                 prompt_format: str | None = None):
        self.spec = spec
        self.folder = folder
        self.model = model
        self.processor = processor
        self.files_digest = fingerprint
        self.initialised = initialised
        self.device = device
        self.max_rows = max_rows
        self.max_answer_tokens = max_answer_tokens
        self.tokenizer = processor.tokenizer
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:  # a fixed length from tokenizer.json; calls pass _WHOLE_TEXT too
            backend.no_truncation()
            backend.no_padding()
        #: Positions the language model was built for; a longer sequence is refused, not scored.
        self.max_positions: int | None = getattr(model.config.get_text_config(), "max_position_embeddings", None)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id or 0
        self.pixel_dtype = next(model.parameters()).dtype
        self.model_type: str = model.config.model_type
        #: The named format contexts are rendered in; ``None``: the checkpoint's chat template.
        self._format = choose_format(prompt_format, has_chat_template=bool(getattr(processor, "chat_template", None)),
                                     model_type=self.model_type, spec=spec, folder=folder)
        self.prompt_format = CHAT_TEMPLATE if self._format is None else self._format.name
        if self._format is not None and not getattr(processor, "image_token", None):
            raise ModelError(
                f"model spec {spec!r}: the processor in {folder} has no image_token, so prompt format "
                f"{self.prompt_format!r} has no way to place the image in the prompt; save a chat_template.jinja "
                "beside the processor"
            )
        # Prompts repeat across every perturbation of a sample: render and tokenize once.
        self._encode = lru_cache(maxsize=8192)(self._encode_uncached)
        self._context_text("")  # a chat template that does not render fails at load, not mid-run

    @property
    def identity(self) -> ModelIdentity:
        """What decides this adapter's values (see ``ModelIdentity``), read from its current state."""
        return ModelIdentity(
            adapter="hf", files=self.files_digest, initialised=self.initialised, dtype=dtype_name(self.pixel_dtype),
            device_type=self.device.type,
            prompt_format=self.prompt_format if self._format is None else self._format.identity,
            limits=(("max_answer_tokens", self.max_answer_tokens), ("max_rows", self.max_rows),
                    ("prefix_sharing", int(self.prefix_sharing))),
            quantization=self.quantization,
        )

    @property
    def prefix_sharing(self) -> bool:
        """Whether options continue one cached pass of their context (else: a whole row each).

        Set it to ``False`` for the row path (the reference the shared path is tested
        against), ``None`` to let the family and attention implementation decide again.
        """
        if self._prefix_sharing is not None:
            return self._prefix_sharing
        implementation = getattr(self.model.config.get_text_config(), "_attn_implementation", None)
        return self.model_type in self.PREFIX_SHARED_MODEL_TYPES and implementation in ATTENTION_IMPLEMENTATIONS

    @prefix_sharing.setter
    def prefix_sharing(self, value: bool | None) -> None:
        self._prefix_sharing = value

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint

    @property
    def takes_several_images(self) -> bool:
        """Whether an interleaved item's pictures reach this model in one prompt (``models.offers``)."""
        return self.model_type in SEVERAL_IMAGE_MODEL_TYPES

    def _who(self, request: ScoreRequest | ProbeRequest | GenerateRequest, index: int) -> str:
        """How an error names a request: its sample, else its place in the batch and its prompt."""
        if request.sample_id:
            return f"sample {request.sample_id!r}"
        return f"request {index} (prompt {request.prompt[:60]!r})"

    def _check_positions(self, requests: Sequence[ScoreRequest | ProbeRequest | GenerateRequest],
                         needed: Sequence[int], what: str) -> None:
        """Refuse a request whose sequence (``needed[i]`` tokens) exceeds the model's positions.

        Beyond ``max_position_embeddings`` a rotary model extrapolates and a learned table
        has no entry: either way the score would be silently wrong.
        """
        if self.max_positions is None:
            return
        for index, (request, length) in enumerate(zip(requests, needed)):
            if length > self.max_positions:
                raise ModelError(
                    f"model spec {self.spec!r}: {self._who(request, index)} needs {length} token positions "
                    f"({what}, image tokens included), but the model has {self.max_positions} positions "
                    f"(max_position_embeddings in {self.folder / 'config.json'}); shorten the sample's question "
                    "and options or use a smaller image, or gate it with a model of a longer context"
                )

    # -- text side -------------------------------------------------------------------------

    def _encode_uncached(self, prompt: str, continuations: tuple[str, ...], n_images: int = 1) -> _EncodedPrompt:
        # The tokens are those of the context as the model reads it (PaliGemma's processor frames
        # the text it is handed), each option joined after it; the template or the format writes
        # BOS and markers itself, so the tokenizer adds none.
        context = self.render_context(prompt, n_images)
        if self._format is None:
            fulls = [self._render(prompt, option, n_images) for option in continuations]
        else:
            fulls = [f"{context}{self._format.separator}{option}" for option in continuations]
        encoded = self.tokenizer([context, *fulls], add_special_tokens=False, **_WHOLE_TEXT)["input_ids"]
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
        return _EncodedPrompt(self._context_text(prompt, n_images), tuple(continuation_ids))

    def _context_text(self, prompt: str, n_images: int = 1) -> str:
        """The user turn holding the image placeholders and ``prompt``, up to the reply, as handed to the processor."""
        if self._format is None:
            return self._render(prompt, None, n_images)
        text, image = self._format_slots(prompt, n_images)
        return self._format.handed(text, image=image, bos=self.tokenizer.bos_token or "")

    def render_context(self, prompt: str, n_images: int = 1) -> str:
        """The context of ``prompt`` as the model reads it, image placeholders unexpanded (the run
        record's example): the chat template's rendering, or the named format's text."""
        if self._format is None:
            return self._render(prompt, None, n_images)
        text, image = self._format_slots(prompt, n_images)
        return self._format.read(text, image=image, bos=self.tokenizer.bos_token or "")

    def _format_slots(self, prompt: str, n_images: int) -> tuple[str, str]:
        """``(prompt, image)`` of a named format for ``n_images`` pictures: the pictures the
        prompt does not place fill the format's image slot, the others sit in the prompt where it
        places them (``vlmgate.interleaving``)."""
        token = self.processor.image_token
        pieces = interleaved(prompt, n_images)
        leading = next((i for i, piece in enumerate(pieces) if not isinstance(piece, int)), len(pieces))
        text = "".join(token if isinstance(piece, int) else piece for piece in pieces[leading:])
        return text, token * leading

    def _render(self, prompt: str, option: str | None, n_images: int = 1) -> str:
        content = [{"type": "image"} if isinstance(piece, int) else {"type": "text", "text": piece}
                   for piece in interleaved(prompt, n_images)]
        messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
        from jinja2 import TemplateError

        try:
            if option is None:
                return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            messages.append({"role": "assistant", "content": [{"type": "text", "text": option}]})
            return self.processor.apply_chat_template(messages, tokenize=False, continue_final_message=True)
        except TemplateError as exc:
            raise ModelError(
                f"model spec {self.spec!r}: the chat template in {self.folder} does not render an image and "
                f"text user turn ({type(exc).__name__}: {exc}); fix chat_template.jinja (or the "
                "chat_template of tokenizer_config.json / chat_template.json)"
            ) from None
        except ValueError as exc:  # the template rewrote the reply beyond recognition
            if option is None:
                raise
            raise ModelError(
                f"model spec {self.spec!r}: the chat template does not reproduce option {option!r} "
                f"verbatim ({exc}); fix the checkpoint's chat template"
            ) from exc

    # -- scoring ---------------------------------------------------------------------------

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        """Summed option log-likelihoods, one float64 array per request (spec §1)."""
        if not requests:
            return []
        encoded = [self._encode(r.prompt, tuple(r.continuations), len(r.images)) for r in requests]
        context_ids, images = self._process_images(requests, encoded)
        self._check_positions(requests, _longest_rows(context_ids, encoded), "context and longest option")
        with torch.inference_mode():
            if self.prefix_sharing:
                rows = self._shared_option_pass(encoded, context_ids, images, requests)
            else:
                rows = self._option_pass(encoded, context_ids, images, requests, features=None, states=False)
        return _split_per_request(rows.scores, encoded)

    def _option_pass(self, encoded: Sequence[_EncodedPrompt], context_ids: Sequence[list[int]],
                     images: "_Images", requests: Sequence[ScoreRequest | ProbeRequest], *,
                     features: list[torch.Tensor] | None, states: bool) -> "_OptionRows":
        """The row path: every (request, option) row whole through the model, in chunks of ``max_rows``.

        Rows are sorted by length so a chunk pads little; the result is in row order
        (request by request, options in order).
        """
        rows = [(i, ids) for i, enc in enumerate(encoded) for ids in enc.continuation_ids]
        order = sorted(range(len(rows)), key=lambda k: len(context_ids[rows[k][0]]) + len(rows[k][1]))
        parts = []
        for start in range(0, len(order), self.max_rows):
            chunk = order[start:start + self.max_rows]
            parts.append((chunk, self._score_rows([rows[k] for k in chunk], context_ids, images, requests,
                                                  features=features, states=states)))
        return _OptionRows.gather(len(rows), parts)

    def _check_finite(self, scores: np.ndarray, row_requests: Sequence[int],
                      requests: Sequence[ScoreRequest | ProbeRequest]) -> None:
        """Refuse non-finite option scores, naming the request of the first.

        A NaN or +inf logit in a scored row, or a -inf on an option token, makes the sum
        non-finite; a -inf on some other token is a legitimate mask and stays harmless.
        """
        bad = ~np.isfinite(scores)
        if bad.any():
            request = row_requests[int(np.flatnonzero(bad)[0])]
            raise ModelError(
                f"model spec {self.spec!r} produced non-finite scores for {self._who(requests[request], request)}; "
                "the checkpoint's weights contain NaN/inf or the dtype overflows (load it with dtype float32)"
            )

    def _context_chunks(self, encoded: Sequence[_EncodedPrompt], context_ids: Sequence[list[int]]
                        ) -> list[tuple[list[int], list[int]]]:
        """Requests in chunks of ``max_rows`` contexts (sorted by length, so a chunk pads
        little), each with the option rows it covers (row order: request by request)."""
        bounds = np.cumsum([0, *(len(enc.continuation_ids) for enc in encoded)]).tolist()
        order = sorted(range(len(encoded)), key=lambda i: len(context_ids[i]))
        chunks = [order[start:start + self.max_rows] for start in range(0, len(order), self.max_rows)]
        return [(chunk, [row for i in chunk for row in range(bounds[i], bounds[i + 1])]) for chunk in chunks]

    def _shared_option_pass(self, encoded: Sequence[_EncodedPrompt], context_ids: Sequence[list[int]],
                            images: "_Images", requests: Sequence[ScoreRequest | ProbeRequest]
                            ) -> "_OptionRows":
        """``_option_pass``'s scores, each context run once for all its options (``_context_chunk``)."""
        parts = [(rows, self._context_chunk(chunk, context_ids, encoded, images, requests).options)
                 for chunk, rows in self._context_chunks(encoded, context_ids)]
        return _OptionRows.gather(sum(len(enc.continuation_ids) for enc in encoded), parts)

    def _shared_probes(self, encoded: Sequence[_EncodedPrompt], context_ids: Sequence[list[int]],
                       open_ids: Sequence[list[int]], images: "_Images",
                       requests: Sequence[ProbeRequest], features: list[torch.Tensor] | None
                       ) -> tuple["_OptionRows", list[tuple[int, ...]], list[np.ndarray], list[np.ndarray]]:
        """Option rows with their states, greedy answers with theirs, and ``ctx_open``, per request.

        One cached pass per chunk of contexts serves the options, the open prompts that
        continue it (``_open_tail``) and greedy decoding; the other open prompts run alone.
        """
        tails = {i: tail for i in range(len(requests))
                 if (tail := self._open_tail(context_ids[i], open_ids[i])) is not None}
        parts: list[tuple[Sequence[int], _OptionRows]] = []
        answers: dict[int, tuple[int, ...]] = {}
        answer_states: dict[int, np.ndarray] = {}
        open_states: dict[int, np.ndarray] = {}
        for chunk, rows in self._context_chunks(encoded, context_ids):
            result = self._context_chunk(chunk, context_ids, encoded, images, requests, features=features,
                                         probes=True, open_tails=tails)
            parts.append((rows, result.options))
            assert result.answer_states is not None  # probes=True: the pass decoded answers
            answers.update(zip(chunk, result.answers))
            answer_states.update(zip(chunk, result.answer_states))
            open_states.update(result.open_states)
        open_states.update(self._context_states(open_ids, images, features,
                                                [i for i in range(len(requests)) if i not in tails]))
        n = range(len(requests))
        return (_OptionRows.gather(sum(len(enc.continuation_ids) for enc in encoded), parts),
                [answers[i] for i in n], [answer_states[i] for i in n], [open_states[i] for i in n])

    def _open_tail(self, context: Sequence[int], open_: Sequence[int]) -> tuple[int, tuple[int, ...]] | None:
        """Where the open-prompt context parts from the scoring context, and its tokens from there.

        ``None`` unless the open prompt can continue the scoring context's cache: the family
        reads its prompt causally (``SHARED_OPEN_PROMPT_MODEL_TYPES``) and the shared start
        holds every image token, so nothing after it changes the cached keys (an
        image-first chat template; with the text first nothing worth sharing is common). At
        least the open context's last token is fed, for its state.
        """
        image = getattr(self.model.config, "image_token_id", None)
        if self.model_type not in self.SHARED_OPEN_PROMPT_MODEL_TYPES or image is None:
            return None
        common, limit = 0, min(len(context), len(open_) - 1)
        while common < limit and context[common] == open_[common]:
            common += 1
        if image in open_[common:] or image not in open_[:common]:
            return None
        return common, tuple(open_[common:])

    def _context_chunk(self, chunk: Sequence[int], context_ids: Sequence[list[int]],
                       encoded: Sequence[_EncodedPrompt], images: "_Images",
                       requests: Sequence[ScoreRequest | ProbeRequest], *, features: list[torch.Tensor] | None = None,
                       probes: bool = False, open_tails: dict[int, tuple[int, tuple[int, ...]]] | None = None
                       ) -> "_ContextChunk":
        """The contexts of ``chunk`` once, then their options as continuations of that pass.

        The prefill keeps the logits of each context's last position, which predict every
        option's first token, and the key/value cache. Each option's remaining tokens are a
        ``Segment`` of its context's packed row (``shared_prefix``), at the positions they
        would hold after the context; their logits predict the tokens after them. Options
        of one token need no continuation pass at all. With ``probes``, the same passes
        give ``ctx_mcq`` (the context's last state), each option's mean state, the open
        prompts' tails of ``open_tails`` (their last state is ``ctx_open``), and, from the
        cache cropped back to the contexts, the greedy answers.
        """
        sequences = [context_ids[i] for i in chunk]
        lengths = [len(s) for s in sequences]
        prefill = self._forward(sequences, chunk, images, [(n - 1, n) for n in lengths], features=features,
                                hidden=probes, cache=True)
        # Position id minus index of the text after each context (``_next_positions``).
        shift = [after - n for after, n in zip(self._next_positions(lengths).tolist(), lengths)]
        options = [Segment(r, ids, lengths[r], lengths[r] + shift[r], scored=True)
                   for r, i in enumerate(chunk) for ids in encoded[i].continuation_ids]
        open_tails = open_tails or {}
        tails = [(i, Segment(r, open_tails[i][1], open_tails[i][0], open_tails[i][0] + shift[r]))
                 for r, i in enumerate(chunk) if i in open_tails]
        first = torch.log_softmax(prefill.logits, dim=-1)
        sums = first[[s.row for s in options], [s.tokens[0] for s in options]].double()
        hidden = None
        if probes or tails or any(len(s.tokens) > 1 for s in options):
            packed = pack([*options, *(segment for _, segment in tails)], prefill.attention, self.pad_id)
            outputs = self.model(
                input_ids=packed.input_ids, position_ids=packed.position_ids, cache=prefill.cache, use_cache=True,
                attention_mask=attention_mask(packed.mask, self.model.config.get_text_config()._attn_implementation,
                                              self.pixel_dtype),
                logits_to_keep=packed.keep, **({"output_hidden_states": -1} if probes else {}),
            )
            prefill.cache.crop(-packed.width)
            logits = outputs.logits
            if logits.ndim == 3:  # a model that ignores a boolean logits_to_keep
                logits = logits[packed.keep.to(logits.device)]
            logits = logits.float()
            targets = packed.targets.to(logits.device)
            token_logprob = logits.gather(1, targets[:, None])[:, 0] - torch.logsumexp(logits, dim=1)
            sums = sums.to(logits.device).index_add_(0, packed.target_segment.to(logits.device),
                                                     token_logprob.double())
            hidden = outputs.hidden_states[-1].float() if probes else None
        scores = sums.cpu().numpy()
        self._check_finite(scores, [chunk[s.row] for s in options], requests)
        if not probes:
            return _ContextChunk(_OptionRows(scores))
        assert prefill.hidden is not None and hidden is not None  # probes=True: both passes kept their states
        rows_of = [s.row for s in options]
        contexts = _last_positions(prefill.hidden, lengths)
        spans = [(packed.starts[k], packed.starts[k] + len(s.tokens)) for k, s in enumerate(options)]
        answers, answer_states = self._decode(prefill, lengths, self._end_of_turn_ids(), self.max_answer_tokens)
        return _ContextChunk(
            _OptionRows(scores, context_states=contexts[rows_of],
                        answer_states=_span_means(hidden[torch.tensor(rows_of, device=hidden.device)], spans)),
            open_states={i: hidden[s.row, packed.starts[len(options) + k] + len(s.tokens) - 1].cpu().numpy()
                         for k, (i, s) in enumerate(tails)},
            answers=answers, answer_states=answer_states,
        )

    def _process_images(self, requests: Sequence[ScoreRequest | ProbeRequest], encoded: Sequence[_EncodedPrompt]
                        ) -> tuple[list[list[int]], "_Images"]:
        """Expand the image placeholders and preprocess every image, in one processor call."""
        return self._expand([enc.context_text for enc in encoded], [self._shown_images(r) for r in requests])

    def _shown_images(self, request: ScoreRequest | ProbeRequest | GenerateRequest) -> list[Any]:
        """The request's pictures in the order its prompt shows them (``vlmgate.interleaving``)."""
        if not request.more_images:
            return [request.image]
        if self.model_type not in SEVERAL_IMAGE_MODEL_TYPES:
            raise ModelError(
                f"model spec {self.spec!r}: {self._who(request, 0)} holds {len(request.images)} images, and "
                f"model_type {self.model_type!r} takes one per prompt in vlmgate (families that take several: "
                f"{', '.join(sorted(SEVERAL_IMAGE_MODEL_TYPES))}); gate it on single-image items"
            )
        return [request.images[k] for k in image_order(request.prompt, len(request.images))]

    def _expand(self, texts: Sequence[str], per_text: Sequence[Sequence[Any]]) -> tuple[list[list[int]], "_Images"]:
        """Token ids of ``texts`` with each image placeholder expanded, and the image tensors
        (``per_text``: each text's pictures, in the order its placeholders show them)."""
        batch = self.processor(text=list(texts), images=processor_images(self.model_type, per_text),
                               add_special_tokens=False,  # the template or the prompt format writes BOS
                               **{**_WHOLE_TEXT, **processor_kwargs(self.model_type)})
        rows = image_rows(self.model_type, [len(images) for images in per_text])
        entries = sum(len(r) for r in rows)
        packed = pack_images(batch, entries)
        if packed is None:
            raise ModelError(
                f"model spec {self.spec!r}: the {type(self.processor).__name__} output "
                f"({', '.join(k for k in batch if k not in TOKEN_KEYS)}) cannot be split into one entry per "
                f"image for {entries} images; missing: a per-image layout for model_type "
                f"{self.model_type!r} in vlmgate.models.family_inputs"
            )
        tensors = {key: value.to(self.device) for key, value in packed.items()}
        if "pixel_values" in tensors:
            tensors["pixel_values"] = tensors["pixel_values"].to(self.pixel_dtype)
        return unpadded_ids(batch), _Images(tensors, rows)

    def _shares_vision_features(self, images: "_Images") -> bool:
        return self.model.config.model_type in _SHARED_VISION_MODEL_TYPES and set(images.tensors) == {"pixel_values"}

    def _vision_features(self, images: "_Images", which: Sequence[int]) -> list[torch.Tensor]:
        """The projected image features the language model receives, one tensor per entry ``which``."""
        return list(self.model.get_image_features(
            pixel_values=images.tensors["pixel_values"][list(which)], return_dict=True
        ).pooler_output)

    def _image_inputs(self, row_requests: Sequence[int], images: "_Images",
                      features: list[torch.Tensor] | None = None) -> dict[str, Any]:
        """The image arguments of a forward over rows that belong to ``row_requests``.

        All options of a request show the same pictures (``_Images.rows``: one entry each, or one
        per text), so for LLaVA the vision tower runs
        once per distinct image and its features are handed to every row through
        transformers' ``mm_encoder_outputs`` (for K options this saves K-1 vision passes,
        about half the compute of a tiny model). ``features``, when given, are those of
        every request, computed once for several passes (probes). Other architectures get
        their processed image inputs repeated per row: their encoder outputs carry more
        than per-image features (e.g. Qwen's deepstack states), and sharing them would be
        unsafe.
        """
        entries = images.of(row_requests)
        if self._shares_vision_features(images):
            if features is None:
                distinct = sorted(set(entries))
                where = dict(zip(distinct, self._vision_features(images, distinct)))
            else:
                where = dict(enumerate(features))
            return {"mm_encoder_outputs": {"image": BaseModelOutputWithPooling(
                # one tensor per image, as the families' get_image_features return (typed as a single tensor)
                pooler_output=[where[entry] for entry in entries]  # type: ignore[arg-type]
            )}}
        index = torch.tensor(entries, device=self.device)
        return unpack_rows({key: value.index_select(0, index) for key, value in images.tensors.items()})

    def _forward(self, sequences: Sequence[Sequence[int]], row_requests: Sequence[int],
                 images: "_Images", logit_spans: Sequence[tuple[int, int]], *,
                 features: list[torch.Tensor] | None = None, hidden: bool = False, cache: bool = False
                 ) -> "_Pass":
        """One forward pass over right-padded ``sequences``.

        Rows are right-padded, so every row keeps positions 0..L-1 and no position ids are
        needed. Only the logits at positions ``[start, end)`` of each row's span are
        projected onto the vocabulary; they come back as float32 ``(kept, V)`` in row
        order. With ``hidden`` the final-layer hidden states ``(rows, width, D)`` come too
        (only the last layer is kept, so asking costs no activation memory); with
        ``cache`` the key/value cache, for decoding on from these sequences.
        """
        width = max(len(s) for s in sequences)
        input_ids = np.full((len(sequences), width), self.pad_id, dtype=np.int64)
        attention = np.zeros((len(sequences), width), dtype=np.int64)
        keep = np.zeros((len(sequences), width), dtype=bool)
        for r, (sequence, (start, end)) in enumerate(zip(sequences, logit_spans)):
            input_ids[r, :len(sequence)] = sequence
            attention[r, :len(sequence)] = 1
            keep[r, start:end] = True
        keep_t = torch.from_numpy(keep).to(self.device)
        attention_t = torch.from_numpy(attention).to(self.device)
        extra: dict[str, Any] = {"output_hidden_states": -1} if hidden else {}
        ids_t = torch.from_numpy(input_ids).to(self.device)
        # Qwen's image-token map / PaliGemma's prefix: rebuilt for each row's own ids.
        extra.update(token_inputs(self.model_type, ids_t, [start + 1 for start, _ in logit_spans],
                                  getattr(self.model.config, "image_token_id", None)))
        outputs = self.model(
            input_ids=ids_t,
            attention_mask=attention_t,
            logits_to_keep=keep_t,
            use_cache=cache,
            **self._image_inputs(row_requests, images, features),
            **extra,
        )
        logits = outputs.logits
        if logits.ndim == 3:  # a model that ignores a boolean logits_to_keep
            logits = logits[keep_t]
        return _Pass(logits.float(), outputs.hidden_states[-1].float() if hidden else None,
                     outputs.cache if cache else None, attention_t)

    def _score_rows(self, rows: Sequence[tuple[int, tuple[int, ...]]], context_ids: Sequence[list[int]],
                    images: "_Images", requests: Sequence[ScoreRequest | ProbeRequest], *,
                    features: list[torch.Tensor] | None = None, states: bool = False) -> "_OptionRows":
        """One forward pass over option ``rows``; each row's summed log-prob, and its states.

        The scored positions are found from each row's own lengths; the logits at ``j-1``
        predict token ``j``. With ``states``, also the hidden state of the context's last
        token (``ctx_mcq``) and the mean hidden state over the option's tokens (``ans_mcq``).
        """
        sequences = [[*context_ids[i], *cont] for i, cont in rows]
        n_contexts = [len(context_ids[i]) for i, _ in rows]
        logits, hidden, _, _ = self._forward(
            sequences, [i for i, _ in rows], images,
            [(n - 1, len(s) - 1) for n, s in zip(n_contexts, sequences)], features=features, hidden=states,
        )
        targets = torch.tensor([t for _, cont in rows for t in cont], device=self.device)
        token_logprob = logits.gather(1, targets[:, None])[:, 0] - torch.logsumexp(logits, dim=1)
        counts = torch.tensor([len(cont) for _, cont in rows], device=self.device)
        row_of_token = torch.repeat_interleave(torch.arange(len(rows), device=self.device), counts)
        sums = torch.zeros(len(rows), dtype=torch.float64, device=self.device)
        sums.index_add_(0, row_of_token, token_logprob.double())
        result = sums.cpu().numpy()
        self._check_finite(result, [i for i, _ in rows], requests)
        if not states:
            return _OptionRows(result)
        assert hidden is not None  # states=True: the pass kept its states
        return _OptionRows(
            result,
            context_states=_last_positions(hidden, n_contexts),
            answer_states=_span_means(hidden, [(n, len(s)) for n, s in zip(n_contexts, sequences)]),
        )

    # -- probes ----------------------------------------------------------------------------

    def embed(self, requests: Sequence[ProbeRequest]) -> list[ProbeRecord]:
        """Option scores, the four probes of ``PROBES`` and the vision tokens of each request.

        With ``prefix_sharing`` each chunk of contexts (``max_rows``) runs once and keeps its
        key/value cache (``_context_chunk``): its last position gives ``ctx_mcq`` and the
        first greedy token; one packed continuation pass scores every option (``ans_mcq``:
        the chosen option's mean state over its tokens) and, where the open prompt shares
        the context's image part (``SHARED_OPEN_PROMPT_MODEL_TYPES`` with an image-first
        template), feeds the open prompt's tail for ``ctx_open``; then greedy decoding
        continues the same cache for ``ans_mcq_free``, one single-token step per answer
        token (at most ``max_answer_tokens``), stopping at an end-of-turn token. Open
        prompts that share no image part get a pass of their own.

        On the row path: the scoring pass over every (request, option) row, as
        ``score()``; greedy decoding from a pass of its own over the contexts; a pass over
        the open-prompt contexts.

        The vision tower runs once per image for all of them (LLaVA); its output is
        returned as the vision tokens.
        """
        if not requests:
            return []
        several = next((r for r in requests if r.more_images), None)
        if several is not None:  # probes read one picture's vision tokens
            raise ModelError(f"model spec {self.spec!r}: {self._who(several, 0)} holds {len(several.images)} images; "
                             "hidden-state probes and vision tokens are read for one picture per prompt")
        encoded = [self._encode(r.prompt, tuple(r.continuations)) for r in requests]
        texts = [enc.context_text for enc in encoded] + [self._context_text(r.open_prompt) for r in requests]
        all_ids, images = self._expand(texts, [[r.image] for r in requests] * 2)
        context_ids, open_ids = all_ids[:len(requests)], all_ids[len(requests):]
        self._check_positions(requests, [max(rows, len(ids) + self.max_answer_tokens, len(open_))
                                         for rows, ids, open_ in zip(_longest_rows(context_ids, encoded),
                                                                     context_ids, open_ids)],
                              "context with its longest option or answer")
        images = images.first(len(requests))
        with torch.inference_mode():
            features = self._vision_features(images, range(len(requests))) \
                if self._shares_vision_features(images) else None
            open_states: Sequence[np.ndarray] | Mapping[int, np.ndarray]  # by request index
            if self.prefix_sharing:
                rows, answers, answer_states, open_states = self._shared_probes(
                    encoded, context_ids, open_ids, images, requests, features)
            else:
                rows = self._option_pass(encoded, context_ids, images, requests, features=features, states=True)
                answers, answer_states = self._greedy_answers(context_ids, images, features)
                open_states = self._context_states(open_ids, images, features)
            scores = _split_per_request(rows.scores, encoded)
            chosen = self._chosen_rows(requests, encoded, scores)
            grids = [] if features is not None else [
                family_vision_tokens(self.model, self._image_inputs([i], images)) for i in range(len(requests))]
        assert rows.context_states is not None and rows.answer_states is not None  # states=True above
        records = []
        for i, row in enumerate(chosen):
            tokens, grid = self._vision_tokens(features[i]) if features is not None else grids[i]
            records.append(ProbeRecord(
                scores=scores[i],
                embeddings={
                    "ctx_mcq": rows.context_states[row],
                    "ans_mcq": rows.answer_states[row],
                    "ans_mcq_free": answer_states[i],
                    "ctx_open": open_states[i],
                },
                answer_tokens=answers[i],
                vision_tokens=tokens,
                vision_grid=grid,
            ))
        return records

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        """Greedy replies (temperature 0) to (image, prompt), each at most its ``max_new_tokens``.

        The decoding is the one behind the ``ans_mcq_free`` probe (``_greedy_answers``), so
        the cross-modal suite's parsed answers and OCR transcripts come from the same code
        path as the probe; the batch decodes to the longest limit and each reply is cut to
        its own (rows decode independently, so the cut equals decoding alone).
        """
        if not requests:
            return []
        context_ids, images = self._expand([self._context_text(r.prompt, len(r.images)) for r in requests],
                                           [self._shown_images(r) for r in requests])
        self._check_positions(requests, [len(ids) + r.max_new_tokens for ids, r in zip(context_ids, requests)],
                              "context and max_new_tokens")
        with torch.inference_mode():
            features = self._vision_features(images, range(images.entries)) \
                if self._shares_vision_features(images) else None
            answers, _ = self._greedy_answers(context_ids, images, features,
                                              max(r.max_new_tokens for r in requests))
        return [self.tokenizer.decode(list(answer[:request.max_new_tokens]), skip_special_tokens=True)
                for answer, request in zip(answers, requests)]

    def _chosen_rows(self, requests: Sequence[ProbeRequest], encoded: Sequence[_EncodedPrompt],
                     scores: Sequence[np.ndarray]) -> np.ndarray:
        """Row index of the option each request's ``ans_mcq`` teacher-forces."""
        chosen, offset = [], 0
        for request, enc, request_scores in zip(requests, encoded, scores):
            option = int(np.argmax(request_scores)) if request.option is None else request.option
            if not 0 <= option < len(enc.continuation_ids):
                raise ModelError(
                    f"model spec {self.spec!r}: probe request for prompt {request.prompt[:60]!r} names "
                    f"option {option}, but it has {len(enc.continuation_ids)} options; pass an index "
                    "into its continuations or None for the arg-max"
                )
            chosen.append(offset + option)
            offset += len(enc.continuation_ids)
        return np.array(chosen, dtype=np.intp)

    def _end_of_turn_ids(self) -> frozenset[int]:
        """Tokens that end the assistant's reply: the tokenizer's and the generation config's EOS."""
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
        return frozenset(i for i in ids if i is not None)

    def _greedy_answers(self, context_ids: Sequence[list[int]], images: "_Images",
                        features: list[torch.Tensor] | None, max_tokens: int | None = None
                        ) -> tuple[list[tuple[int, ...]], list[np.ndarray]]:
        """Each request's greedy answer and the mean final-layer state over its tokens.

        The answer ends before an end-of-turn token or at ``max_answer_tokens``. A model
        that ends its turn at once has an empty answer; its probe is then the state of that
        end-of-turn token, so the channel stays defined.
        """
        stop = self._end_of_turn_ids()
        order = sorted(range(len(context_ids)), key=lambda i: len(context_ids[i]))
        answers: dict[int, tuple[int, ...]] = {}
        states: dict[int, np.ndarray] = {}
        for start in range(0, len(order), self.max_rows):
            chunk = order[start:start + self.max_rows]
            for i, answer, state in zip(chunk, *self._greedy_chunk(chunk, context_ids, images, features, stop,
                                                                   max_tokens or self.max_answer_tokens)):
                answers[i], states[i] = answer, state
        return [answers[i] for i in range(len(context_ids))], [states[i] for i in range(len(context_ids))]

    def _greedy_chunk(self, chunk: Sequence[int], context_ids: Sequence[list[int]], images: "_Images",
                      features: list[torch.Tensor] | None, stop: frozenset[int], max_tokens: int
                      ) -> tuple[list[tuple[int, ...]], np.ndarray]:
        """Greedy decoding of right-padded contexts: one cached pass over them, then ``_decode``."""
        sequences = [context_ids[i] for i in chunk]
        prefill = self._forward(sequences, chunk, images, [(len(s) - 1, len(s)) for s in sequences],
                                features=features, cache=True)
        return self._decode(prefill, [len(s) for s in sequences], stop, max_tokens)

    def _decode(self, prefill: "_Pass", lengths: Sequence[int], stop: frozenset[int], max_tokens: int
                ) -> tuple[list[tuple[int, ...]], np.ndarray]:
        """Greedy answers continuing ``prefill`` (its cache holds exactly the contexts' keys).

        Every step feeds each row's last token at its own position (``_next_positions``:
        ``len(context) + step`` in the family's numbering), appended after the padded
        width. The padding between a short context and its new tokens stays masked out,
        so each row sees exactly ``context + answer so far``. The state a step returns is
        that of the token it fed. The first token is the arg-max of the prefill's last
        logits, so a prefill that scored options already (``_context_chunk``) serves too.
        """
        positions = self._next_positions(lengths)
        fed = prefill.logits.argmax(dim=1).to(self.device)
        attention, cache = prefill.attention, prefill.cache
        answers: list[list[int]] = [[] for _ in lengths]
        sums = torch.zeros((len(lengths), self.model.config.get_text_config().hidden_size))
        counts = torch.zeros(len(lengths))
        done = [False] * len(lengths)
        for step in range(max_tokens):
            attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
            outputs = self.model(input_ids=fed[:, None], attention_mask=attention,
                                 position_ids=(positions + step)[:, None], cache=cache, use_cache=True,
                                 logits_to_keep=1, output_hidden_states=-1)
            cache = outputs.cache
            state = outputs.hidden_states[-1][:, 0].float().cpu()
            following = outputs.logits[:, -1].argmax(dim=-1).to(self.device)
            for r, (token, after) in enumerate(zip(fed.tolist(), following.tolist())):
                if done[r]:
                    continue
                sums[r] += state[r]
                counts[r] += 1
                if token not in stop:
                    answers[r].append(token)
                done[r] = token in stop or after in stop or len(answers[r]) >= max_tokens
            if all(done):
                break
            fed = torch.where(torch.tensor(done, device=self.device), torch.full_like(following, self.pad_id),
                              following)
        return [tuple(a) for a in answers], (sums / counts[:, None]).numpy()

    def _context_states(self, context_ids: Sequence[list[int]], images: "_Images",
                        features: list[torch.Tensor] | None, which: Sequence[int] | None = None
                        ) -> dict[int, np.ndarray]:
        """Final-layer state of each context's last token (the generation prompt's end), by request.

        ``which``: the requests to run (all by default).
        """
        which = range(len(context_ids)) if which is None else which
        order = sorted(which, key=lambda i: len(context_ids[i]))
        out: dict[int, np.ndarray] = {}
        for start in range(0, len(order), self.max_rows):
            chunk = order[start:start + self.max_rows]
            sequences = [context_ids[i] for i in chunk]
            hidden = self._forward(sequences, chunk, images, [(len(s) - 1, len(s)) for s in sequences],
                                   features=features, hidden=True).hidden
            assert hidden is not None  # hidden=True
            out.update(zip(chunk, _last_positions(hidden, [len(s) for s in sequences])))
        return out

    def _next_positions(self, lengths: Sequence[int]) -> torch.Tensor:
        """Position id of the token after each context of the last prefill, ``(rows,)``.

        ``len(context)`` in the family's numbering: from ``position_base`` (PaliGemma
        counts from 1), and for Qwen's multimodal RoPE plus the row's ``rope_delta``: it
        numbers an image's tokens by its grid, so the text after it sits at ``index +
        rope_delta``, and the model keeps the deltas of its last prefill.
        """
        positions = torch.tensor(list(lengths), device=self.device) + position_base(self.model_type)
        deltas = getattr(getattr(self.model, "model", None), "rope_deltas", None)
        if self.model_type not in MROPE_MODEL_TYPES or deltas is None:
            return positions
        return positions + deltas.reshape(-1).to(self.device)

    def _vision_tokens(self, features: torch.Tensor) -> tuple[np.ndarray | None, tuple[int, int, int] | None]:
        """The image's tokens as fed to the language model, and their ``(T, H', W')`` grid.

        LLaVA feeds one token per vision patch: an ``image_size / patch_size`` square grid
        of one frame (a leading CLS token, fed under the ``full`` feature strategy, is not
        part of the grid and is left out). Other token counts give ``(None, None)``.
        """
        vision = getattr(self.model.config, "vision_config", None)
        size, patch = getattr(vision, "image_size", None), getattr(vision, "patch_size", None)
        if not size or not patch:
            return None, None
        side = int(size) // int(patch)
        tokens = features.float().cpu().numpy()
        if tokens.shape[0] == side * side + 1:
            tokens = tokens[1:]
        if tokens.shape[0] != side * side:
            return None, None
        return tokens, (1, side, side)


@dataclass(frozen=True)
class _Images:
    """A batch's processed pictures: image-major tensors (``family_inputs.pack_images``) and, per
    request, the entries that are its pictures in prompt order (``family_inputs.image_rows``)."""

    tensors: dict[str, torch.Tensor]
    rows: tuple[tuple[int, ...], ...]

    @property
    def entries(self) -> int:
        return sum(len(r) for r in self.rows)

    def of(self, requests: Sequence[int]) -> list[int]:
        """The entries of ``requests``' pictures, request by request (one request may repeat)."""
        return [entry for request in requests for entry in self.rows[request]]

    def first(self, n: int) -> "_Images":
        """The pictures of the first ``n`` requests alone (their entries come first)."""
        rows = self.rows[:n]
        kept = sum(len(r) for r in rows)
        return _Images({key: value[:kept] for key, value in self.tensors.items()}, rows)


class _Pass(NamedTuple):
    """What one forward pass returns: kept logits, final-layer states, cache, padding mask."""

    logits: torch.Tensor
    hidden: torch.Tensor | None
    cache: Any
    attention: torch.Tensor


@dataclass(frozen=True)
class _OptionRows:
    """Per option row: summed log-prob, and with states the probe inputs of the row."""

    scores: np.ndarray
    context_states: np.ndarray | None = None
    answer_states: np.ndarray | None = None

    @classmethod
    def gather(cls, n_rows: int, parts: Sequence[tuple[Sequence[int], "_OptionRows"]]) -> "_OptionRows":
        """Reassemble chunk results (each with the row indices it covered) in row order."""
        fields: dict[str, Any] = {}  # scores, and the states or None
        for name in ("scores", "context_states", "answer_states"):
            pieces = [(rows, getattr(part, name)) for rows, part in parts]
            if pieces[0][1] is None:
                fields[name] = None
                continue
            out = np.empty((n_rows, *pieces[0][1].shape[1:]), dtype=pieces[0][1].dtype)
            for rows, values in pieces:
                out[list(rows)] = values
            fields[name] = out
        return cls(**fields)


@dataclass(frozen=True)
class _ContextChunk:
    """What one cached pass over a chunk of contexts gave, in chunk order.

    ``options``: the option rows (with probe states when asked); ``open_states``:
    ``ctx_open`` of the requests whose open prompt continued the pass, by request index;
    ``answers`` / ``answer_states``: the greedy answers and their mean states.
    """

    options: _OptionRows
    open_states: dict[int, np.ndarray] = field(default_factory=dict)
    answers: list[tuple[int, ...]] = field(default_factory=list)
    answer_states: np.ndarray | None = None


def _longest_rows(context_ids: Sequence[list[int]], encoded: Sequence[_EncodedPrompt]) -> list[int]:
    """Tokens in each request's longest (context, option) row."""
    return [len(ids) + max(map(len, enc.continuation_ids)) for ids, enc in zip(context_ids, encoded)]


def _split_per_request(row_values: np.ndarray, encoded: Sequence[_EncodedPrompt]) -> list[np.ndarray]:
    out, offset = [], 0
    for enc in encoded:
        n = len(enc.continuation_ids)
        out.append(row_values[offset:offset + n].copy())
        offset += n
    return out


def _last_positions(hidden: torch.Tensor, lengths: Sequence[int]) -> np.ndarray:
    """``hidden[r, lengths[r] - 1]`` of every row, float32 ``(rows, D)``."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    last = torch.tensor([n - 1 for n in lengths], device=hidden.device)
    return hidden[rows, last].cpu().numpy()


def _span_means(hidden: torch.Tensor, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Mean of ``hidden[r, start:end]`` of every row, float32 ``(rows, D)``."""
    mask = torch.zeros(hidden.shape[:2], dtype=hidden.dtype, device=hidden.device)
    for r, (start, end) in enumerate(spans):
        mask[r, start:end] = 1.0
    sums = torch.einsum("rw,rwd->rd", mask, hidden)
    return (sums / mask.sum(dim=1, keepdim=True)).cpu().numpy()
