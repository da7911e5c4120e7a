"""What a VLM family's forward needs besides ``input_ids``, in a form any row subset can use.

The ``hf:`` adapter scores each option as its own row, so it must hand every row the
inputs of *its* image, for arbitrary subsets of the batch. Families lay those inputs out
differently:

* LLaVA, PaliGemma: one entry per image along dim 0; Idefics3 / SmolVLM: one entry per
  text along dim 0, its pictures' tiles along dim 1 (a length that can differ between texts);
* Qwen2-VL / Qwen2.5-VL: all images' patches concatenated, ``(Σ patches, D)``, with
  ``image_grid_thw`` saying how many belong to each image.

``pack_images`` brings every layout to "dim 0 = entry" (ragged axes zero-padded — an
all-zero Idefics3 tile is dropped by the model as padding; Qwen's patches are re-split
by their grid), so rows are gathered with one ``index_select`` of the entries that
``image_rows`` gives each text (an interleaved item's several pictures are several
entries, in prompt order); ``unpack_rows`` undoes the Qwen padding for the rows at hand.

Position ids the adapter writes itself (greedy decoding, continuations of a cached
context) start where the family's own do (``position_base``: 1 for PaliGemma).

Per-token inputs are recomputed for every row from its own ids, never taken from the
processor's context-only output: Qwen's ``mm_token_type_ids`` (which tokens are image
placeholders, needed for its multimodal RoPE) and PaliGemma's ``token_type_ids`` (0 on
the prefix — image and prompt, attended bidirectionally — 1 on the scored reply).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

#: Processor outputs that are per token (rebuilt per row here) or training-only.
TOKEN_KEYS = frozenset({"input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids", "labels"})
#: Families that number image positions with multimodal RoPE from ``mm_token_type_ids``.
MROPE_MODEL_TYPES = frozenset({"qwen2_vl", "qwen2_5_vl"})
#: Families whose processor wants one image list per text (``[[img], [img], ...]``).
NESTED_IMAGE_MODEL_TYPES = frozenset({"idefics3", "smolvlm"})
#: Families that attend bidirectionally over the prefix when told where it ends.
PREFIX_LM_MODEL_TYPES = frozenset({"paligemma"})
#: Position id of a sequence's first token where it is not 0: PaliGemma numbers from 1
#: when it makes the ids itself, so ids the adapter passes (decoding, continuations of a
#: cached context) must too, or every later token sits one position off its context.
POSITION_BASES = {"paligemma": 1}
GRID_KEY = "image_grid_thw"
PATCHES_KEY = "pixel_values"


#: Families whose processor builds arrays over the token ids (PaliGemma's ``labels``), so
#: texts of different lengths must be padded in the call and trimmed again after it.
PADDED_CALL_MODEL_TYPES = frozenset({"paligemma"})


def processor_images(model_type: str, per_text: Sequence[Sequence[Any]]) -> list[Any]:
    """The ``images`` argument in the nesting the family's processor expects, from each text's
    pictures in prompt order: one list per text, or every picture in one flat list."""
    if model_type in NESTED_IMAGE_MODEL_TYPES:
        return [list(images) for images in per_text]
    return [image for images in per_text for image in images]


def image_rows(model_type: str, counts: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Which image-major entries of a processor output (``pack_images``) belong to each text,
    for texts showing ``counts`` pictures: one entry per text where the family stacks a text's
    pictures along a second axis (Idefics3 / SmolVLM), else one per picture, in prompt order."""
    if model_type in NESTED_IMAGE_MODEL_TYPES:
        return tuple((i,) for i in range(len(counts)))
    bounds = np.cumsum([0, *counts]).tolist()
    return tuple(tuple(range(bounds[i], bounds[i + 1])) for i in range(len(counts)))


def processor_kwargs(model_type: str) -> dict[str, Any]:
    return {"padding": "longest"} if model_type in PADDED_CALL_MODEL_TYPES else {}


def unpadded_ids(batch: Mapping[str, Any]) -> list[list[int]]:
    """Each text's token ids without the padding a padded processor call added."""
    ids = [list(np.asarray(row).tolist()) for row in batch["input_ids"]]
    if "attention_mask" not in batch:
        return ids
    return [[t for t, keep in zip(row, np.asarray(mask).tolist()) if keep] for row, mask in
            zip(ids, batch["attention_mask"])]


def _pad_stack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Stack along a new dim 0, zero-padding every axis to the largest size."""
    shape = tuple(max(sizes) for sizes in zip(*(a.shape for a in arrays)))
    out = np.zeros((len(arrays), *shape), dtype=arrays[0].dtype)
    for i, array in enumerate(arrays):
        # named first: mypy's parser reads the starred tuple inside ``out[...]`` as Python 3.11 syntax
        index: tuple[int | slice, ...] = (i, *(slice(0, n) for n in array.shape))
        out[index] = array
    return out


def pack_images(batch: Mapping[str, Any], n_images: int) -> dict[str, torch.Tensor] | None:
    """Image-major tensors of a processor output, or ``None`` if a key has another count."""
    values = {key: value for key, value in batch.items() if key not in TOKEN_KEYS}
    if GRID_KEY in values and PATCHES_KEY in values:  # Qwen: split the concatenated patches
        grid = np.asarray(values[GRID_KEY])
        bounds = np.cumsum([0, *np.prod(grid, axis=1)])
        patches = np.asarray(values[PATCHES_KEY])
        values[PATCHES_KEY] = [patches[bounds[i]:bounds[i + 1]] for i in range(len(grid))]
    packed = {}
    for key, value in values.items():
        arrays = [np.asarray(v) for v in value]
        if len(arrays) != n_images:
            return None
        packed[key] = torch.from_numpy(_pad_stack(arrays))
    return packed


def unpack_rows(rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inputs for a forward over ``rows`` (image-major, as ``pack_images`` made them)."""
    if GRID_KEY in rows and PATCHES_KEY in rows:
        grid = rows[GRID_KEY]
        counts = grid.prod(dim=1).tolist()
        rows = {**rows, PATCHES_KEY: torch.cat([rows[PATCHES_KEY][r, :n] for r, n in enumerate(counts)])}
    return rows


def position_base(model_type: str) -> int:
    """The position id the family gives a sequence's first token (``POSITION_BASES``, else 0)."""
    return POSITION_BASES.get(model_type, 0)


def token_inputs(model_type: str, input_ids: torch.Tensor, prefix_lengths: Sequence[int],
                 image_token_id: int | None) -> dict[str, torch.Tensor]:
    """Per-token type ids the family's forward needs for these rows (often none)."""
    if model_type in MROPE_MODEL_TYPES and image_token_id is not None:
        return {"mm_token_type_ids": (input_ids == image_token_id).to(torch.int32)}
    if model_type in PREFIX_LM_MODEL_TYPES:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
        prefix = torch.tensor(list(prefix_lengths), device=input_ids.device)[:, None]
        return {"token_type_ids": (positions >= prefix).to(torch.long)}
    return {}
