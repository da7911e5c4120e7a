"""Build tiny LLaVA checkpoints offline, deterministically, from nothing but a text corpus.

Stable API (other modules build on these signatures)::

    build_tiny_llava(corpus: Sequence[str], *, image_size=224, patch_size=16, hidden_size=64,
                     intermediate_size=128, num_layers=2, num_heads=4, vision_hidden_size=None,
                     vision_layers=None, vocab_size=512, seed=0, chat_template=CHAT_TEMPLATE)
        -> tuple[LlavaForConditionalGeneration, LlavaProcessor]
    build_tokenizer(corpus: Sequence[str], *, vocab_size=512, chat_template=CHAT_TEMPLATE)
        -> PreTrainedTokenizerFast
    save_checkpoint(model, processor, path) -> pathlib.Path

Why this exists: the gating suite and the project's tests need real transformers VLMs
(the same classes, processors and chat templates a released checkpoint uses) without
downloading weights. A LLaVA made of a CLIP vision tower and a Llama text model with
~0.3 M parameters runs a forward in milliseconds on a CPU, reloads through
``AutoModelForImageTextToText`` / ``AutoProcessor`` like any hub checkpoint, and can be
trained on synthetic images to give meaningful robustness behaviour.

Determinism: the tokenizer is trained in-process with ``tokenizers`` on the given corpus
(same corpus, same vocabulary), and every random weight is drawn from a
``numpy.random.Generator`` seeded with ``seed``. Model construction runs inside
``torch.random.fork_rng`` so it neither depends on nor disturbs torch's global RNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from vlmgate.errors import ModelError

PAD_TOKEN = "<pad>"
BOS_TOKEN = "<s>"
#: End of a turn; also the end-of-sequence token, so generation stops after one reply.
END_OF_TURN_TOKEN = "<|end|>"
IMAGE_TOKEN = "<image>"
USER_TOKEN = "<|user|>"
ASSISTANT_TOKEN = "<|assistant|>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, END_OF_TURN_TOKEN, IMAGE_TOKEN, USER_TOKEN, ASSISTANT_TOKEN)

#: The parts of a turn both templates share: role markers and the end of turn.
_TURN_START = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['user', 'assistant'] -%}"
    "{{- raise_exception('tiny LLaVA chat template supports user and assistant turns only') -}}"
    "{%- endif -%}"
    "{{- '<|' + message['role'] + '|>' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
)
_TURN_END = (
    "{{- '<|end|>\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- endif -%}"
)
#: ``<s><|user|><image>\n{text}<|end|>\n<|assistant|>{reply}<|end|>\n``. Role markers
#: are single special tokens, so the assistant text always starts a fresh token after
#: the generation prompt and option scoring can split context and reply cleanly.
CHAT_TEMPLATE = (
    _TURN_START
    + "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{- '<image>\n' -}}"
    "{%- elif item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    + _TURN_END
)

#: ``<s><|user|>{text}\n<image><|end|>\n<|assistant|>{reply}<|end|>\n``: the user turn's
#: text comes before its image. In a causal model every image token can then attend to
#: the question and mark itself as asked-about, so the reply position only has to read
#: the marked tokens; the bundled shapes checkpoints are trained with it.
TEXT_FIRST_CHAT_TEMPLATE = (
    _TURN_START
    + "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'text' -%}{{- item['text'] + '\n' -}}{%- endif -%}{%- endfor -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{- '<image>' -}}{%- endif -%}{%- endfor -%}{%- endif -%}"
    + _TURN_END
)

#: GPT-2 style initialisation scale for every randomly drawn weight.
INIT_STD = 0.02


def build_tokenizer(corpus: Sequence[str], *, vocab_size: int = 512,
                    chat_template: str = CHAT_TEMPLATE) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``corpus`` (deterministic for a given corpus).

    Byte-level means any text encodes (no unknown token), so a prompt the corpus never
    saw still scores; the corpus only decides which merges make common words short.
    """
    return train_tokenizer(corpus, vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, bos_token=BOS_TOKEN,
                           eos_token=END_OF_TURN_TOKEN, pad_token=PAD_TOKEN,
                           extra_special_tokens={"image_token": IMAGE_TOKEN}, chat_template=chat_template)


def train_tokenizer(corpus: Sequence[str], *, vocab_size: int, special_tokens: Sequence[str],
                    bos_token: str | None, eos_token: str, pad_token: str,
                    extra_special_tokens: dict[str, str], chat_template: str | None
                    ) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``corpus`` with a family's special tokens.

    Each VLM family names its own markers (``<|im_start|>``, ``<|image_pad|>``,
    ``<end_of_utterance>`` ...); its processor and chat template look them up by text, so
    a tiny checkpoint of the family needs exactly those tokens, each a single id.
    """
    if vocab_size < 256 + len(special_tokens):
        raise ModelError(
            f"tiny tokenizer vocab_size={vocab_size} is too small: a byte-level tokenizer needs "
            f"at least {256 + len(special_tokens)} entries (256 bytes + {len(special_tokens)} special "
            "tokens); pass a larger vocab_size"
        )
    texts = [text for text in corpus if text]
    if not texts:
        raise ModelError("tiny model corpus is empty; pass the prompts and answers the model will see")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos_token,
        eos_token=eos_token,
        pad_token=pad_token,
        extra_special_tokens=extra_special_tokens,
        padding_side="right",
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def build_tiny_llava(
    corpus: Sequence[str],
    *,
    image_size: int = 224,
    patch_size: int = 16,
    hidden_size: int = 64,
    intermediate_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    vision_hidden_size: int | None = None,
    vision_layers: int | None = None,
    vocab_size: int = 512,
    seed: int = 0,
    chat_template: str = CHAT_TEMPLATE,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """A randomly initialised LLaVA (CLIP vision + Llama text) and its processor.

    ``vision_hidden_size`` / ``vision_layers`` default to the text model's. The vision
    tower sees ``(image_size // patch_size) ** 2`` patches, each one image token in the
    text sequence (the CLS token is dropped, as in LLaVA-1.5). The model is in eval mode.
    ``chat_template`` is ``CHAT_TEMPLATE`` (image first) or ``TEXT_FIRST_CHAT_TEMPLATE``.
    """
    if image_size % patch_size:
        raise ModelError(
            f"tiny LLaVA image_size={image_size} is not a multiple of patch_size={patch_size}; "
            "pick sizes so the patch grid is whole"
        )
    tokenizer = build_tokenizer(corpus, vocab_size=vocab_size, chat_template=chat_template)
    vision_hidden = vision_hidden_size or hidden_size
    vision_config = CLIPVisionConfig(
        hidden_size=vision_hidden,
        intermediate_size=2 * vision_hidden,
        num_hidden_layers=vision_layers or num_layers,
        num_attention_heads=num_heads,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=vision_hidden,
    )
    text_config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    # image_token_id: the config's attribute_map alias of image_token_index, which its signature does not list
    config = LlavaConfig(  # type: ignore[call-arg]
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",
        # The last vision layer: a tiny tower has no layers to spare.
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )
    with torch.random.fork_rng(devices=[]):
        model = LlavaForConditionalGeneration(config)
    redraw_random_weights(model, np.random.default_rng(seed))
    model.eval()

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        chat_template=chat_template,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped by the "default" strategy
    )
    return model, processor


def redraw_random_weights(model: torch.nn.Module, rng: np.random.Generator) -> None:
    """Replace every randomly initialised parameter by a draw from ``rng``.

    Matrices and non-constant vectors (e.g. CLIP's class embedding) get N(0, INIT_STD²);
    constant vectors (norm scales of one, zero biases) and scalars (CLIP's logit scale) were
    not random and are kept.
    Parameters are visited in name order so the draw does not depend on module order.
    """
    with torch.no_grad():
        for _, param in sorted(model.named_parameters(), key=lambda item: item[0]):
            if param.ndim == 0 or (param.ndim == 1 and bool((param == param.flatten()[0]).all())):
                continue
            draw = rng.standard_normal(tuple(param.shape), dtype=np.float32) * INIT_STD
            param.copy_(torch.from_numpy(draw))


def save_checkpoint(model: torch.nn.Module, processor: LlavaProcessor, path: str | Path) -> Path:
    """Write a hub-style checkpoint folder: safetensors weights, config, processor, tokenizer.

    It reloads offline with ``AutoModelForImageTextToText.from_pretrained(path)`` and
    ``AutoProcessor.from_pretrained(path)``.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)  # type: ignore[operator]  # a transformers model; nn.Module types attributes as Tensor
    processor.save_pretrained(folder)
    if not any(folder.glob("*.safetensors")):  # a transformers default changing under us
        raise ModelError(f"saving {folder} wrote no .safetensors file; upgrade transformers (>= 5)")
    return folder

