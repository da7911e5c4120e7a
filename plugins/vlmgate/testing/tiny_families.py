"""Tiny random-weight checkpoints of the common open VLM families, built offline.

Why: users gate checkpoints of LLaVA, Qwen2-VL, Qwen2.5-VL, Idefics3 / SmolVLM and
PaliGemma through ``hf:PATH``. None can be downloaded here, so the adapter is verified on
checkpoints of the *same classes* — configs, processors, special tokens and chat
templates as the released ones — with hidden size 64 and two layers, which run a
forward in milliseconds. ``save_checkpoint`` (from ``tiny``) writes them like a hub
folder; ``hf:`` then loads them exactly as it would a release.

Each family keeps what makes it different, since that is what the adapter must handle:
Qwen's flattened patches with ``image_grid_thw``, 2×2 merge and multimodal RoPE;
Idefics3 / SmolVLM's ``<fake_token_around_image>`` framing, pixel shuffle and nested
image lists; PaliGemma's image-prefix with ``<bos>`` after the image and no chat template.
Chat templates are the families' own, shortened to image + text turns.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from vlmgate.errors import ModelError
from vlmgate.models.image_only import build_image_only_processor
from vlmgate.testing.tiny import build_tiny_llava, redraw_random_weights, train_tokenizer

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
               "<|image_pad|>", "<|video_pad|>")

IDEFICS3_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
IDEFICS3_TOKENS = ("<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>", "<fake_token_around_image>",
                   "<global-img>", "<row_1_col_1>")

PALIGEMMA_TOKENS = ("<pad>", "<bos>", "<eos>", "<image>")

#: Sizes shared by every family (notes/offline-transformers.md: these construct and run).
TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "max_position_embeddings": 2048}


def _tokenizer(corpus: Sequence[str], tokens: Sequence[str], *, bos: str | None, eos: str, pad: str,
               image: str, template: str | None, vocab_size: int, **extra: str):
    return train_tokenizer(corpus, vocab_size=vocab_size, special_tokens=tokens, bos_token=bos, eos_token=eos,
                           pad_token=pad, extra_special_tokens={"image_token": image, **extra},
                           chat_template=template)


def _ids(tokenizer, **names: str) -> dict[str, Any]:
    return {key: tokenizer.convert_tokens_to_ids(token) for key, token in names.items()}


def _finish(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    redraw_random_weights(model, np.random.default_rng(seed))
    return model.eval()


def _build(model_class: Any, config: Any, seed: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        model = model_class(config)
    return _finish(model, seed)


def _qwen(version: str, corpus: Sequence[str], *, image_size: int, vocab_size: int, seed: int):
    import transformers as tf

    tokenizer = _tokenizer(corpus, QWEN_TOKENS, bos=None, eos="<|im_end|>", pad="<|endoftext|>",
                           image="<|image_pad|>", template=QWEN_CHAT_TEMPLATE, vocab_size=vocab_size,
                           video_token="<|video_pad|>", vision_bos_token="<|vision_start|>",
                           vision_eos_token="<|vision_end|>")
    ids = _ids(tokenizer, image_token_id="<|image_pad|>", video_token_id="<|video_pad|>",
               vision_start_token_id="<|vision_start|>", vision_end_token_id="<|vision_end|>")
    head_dim = TEXT["hidden_size"] // TEXT["num_attention_heads"]
    text = {**TEXT, "vocab_size": vocab_size, "rope_parameters": {
        "rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, head_dim // 2 - 5]},
        "bos_token_id": None, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    vision: dict[str, Any]
    config: tf.PretrainedConfig
    model_class: type[tf.PreTrainedModel]
    if version == "qwen2_vl":
        vision = {"depth": 2, "embed_dim": 64, "hidden_size": TEXT["hidden_size"], "num_heads": 4, "mlp_ratio": 2,
                  "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
        config, model_class = tf.Qwen2VLConfig(text_config=text, vision_config=vision, **ids), \
            tf.Qwen2VLForConditionalGeneration
    else:
        vision = {"depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4,
                  "out_hidden_size": TEXT["hidden_size"], "patch_size": 14, "spatial_merge_size": 2,
                  "temporal_patch_size": 2, "window_size": 56, "fullatt_block_indexes": [1]}
        config, model_class = tf.Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids), \
            tf.Qwen2_5_VLForConditionalGeneration
    # Images are resized to whole 28 px merge cells within [min, max] pixels.
    image_processor = tf.Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=image_size * image_size,
                                                  patch_size=14, merge_size=2, temporal_patch_size=2)
    processor = build_image_only_processor(version, image_processor, tokenizer, chat_template=QWEN_CHAT_TEMPLATE)
    return _build(model_class, config, seed), processor


def _idefics(version: str, corpus: Sequence[str], *, image_size: int, vocab_size: int, seed: int):
    import transformers as tf

    tokenizer = _tokenizer(corpus, IDEFICS3_TOKENS, bos=None, eos="<end_of_utterance>", pad="<|endoftext|>",
                           image="<image>", template=IDEFICS3_CHAT_TEMPLATE, vocab_size=vocab_size)
    patch, scale = 8, 2
    image_seq_len = (image_size // patch) ** 2 // scale ** 2
    vision = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "image_size": image_size, "patch_size": patch}
    text = {**TEXT, "vocab_size": vocab_size, "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id, "bos_token_id": None, "tie_word_embeddings": False}
    size = {"longest_edge": image_size}
    image_kwargs = {"size": size, "max_image_size": size, "do_image_splitting": False}
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    config: tf.PretrainedConfig
    if version == "idefics3":
        config = tf.Idefics3Config(vision_config=vision, text_config=text, scale_factor=scale,
                                   image_token_id=image_token_id)
        processor = tf.Idefics3Processor(tf.Idefics3ImageProcessorPil(**image_kwargs), tokenizer,
                                         image_seq_len=image_seq_len, chat_template=IDEFICS3_CHAT_TEMPLATE)
        return _build(tf.Idefics3ForConditionalGeneration, config, seed), processor
    config = tf.SmolVLMConfig(vision_config=vision, text_config=text, scale_factor=scale,
                              image_token_id=image_token_id)
    processor = build_image_only_processor("smolvlm", tf.SmolVLMImageProcessorPil(**image_kwargs), tokenizer,
                                           image_seq_len=image_seq_len, chat_template=IDEFICS3_CHAT_TEMPLATE)
    return _build(tf.SmolVLMForConditionalGeneration, config, seed), processor


def _paligemma(corpus: Sequence[str], *, image_size: int, vocab_size: int, seed: int):
    import transformers as tf

    tokenizer = _tokenizer(corpus, PALIGEMMA_TOKENS, bos="<bos>", eos="<eos>", pad="<pad>", image="<image>",
                           template=None, vocab_size=vocab_size)
    patch = 16
    vision = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "image_size": image_size, "patch_size": patch, "projection_dim": TEXT["hidden_size"]}
    text = {**TEXT, "vocab_size": vocab_size, "head_dim": 16, "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    # image_token_id: the config's attribute_map alias of image_token_index, which its signature does not list
    config = tf.PaliGemmaConfig(vision_config=vision, text_config=text,  # type: ignore[call-arg]
                                projection_dim=TEXT["hidden_size"],
                                image_token_id=tokenizer.convert_tokens_to_ids("<image>"))
    image_processor = tf.SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    # read by PaliGemmaProcessor; the image processor class does not declare it
    image_processor.image_seq_length = (image_size // patch) ** 2  # type: ignore[attr-defined]
    processor = tf.PaliGemmaProcessor(image_processor, tokenizer)
    return _build(tf.PaliGemmaForConditionalGeneration, config, seed), processor


def _llava(corpus: Sequence[str], *, image_size: int, vocab_size: int, seed: int):
    return build_tiny_llava(corpus, image_size=image_size, patch_size=16, vocab_size=vocab_size, seed=seed)


BUILDERS: dict[str, Callable[..., tuple[torch.nn.Module, Any]]] = {
    "llava": _llava,
    "qwen2_vl": lambda corpus, **kw: _qwen("qwen2_vl", corpus, **kw),
    "qwen2_5_vl": lambda corpus, **kw: _qwen("qwen2_5_vl", corpus, **kw),
    "idefics3": lambda corpus, **kw: _idefics("idefics3", corpus, **kw),
    "smolvlm": lambda corpus, **kw: _idefics("smolvlm", corpus, **kw),
    "paligemma": _paligemma,
}
FAMILIES: tuple[str, ...] = tuple(BUILDERS)


def build_tiny_vlm(family: str, corpus: Sequence[str], *, image_size: int = 64, vocab_size: int = 512,
                   seed: int = 0) -> tuple[torch.nn.Module, Any]:
    """A randomly initialised tiny checkpoint of ``family`` and its processor (eval mode)."""
    if family not in BUILDERS:
        raise ModelError(f"no tiny builder for family {family!r}; known: {', '.join(FAMILIES)}")
    return BUILDERS[family](corpus, image_size=image_size, vocab_size=vocab_size, seed=seed)
