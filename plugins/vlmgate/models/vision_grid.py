"""The vision tokens a VLM family feeds its language model, and their ``(T, H', W')`` grid.

The structure gate (Dirichlet energy, spec §1) needs the image's tokens on their spatial
grid, which each family produces differently:

* Qwen2-VL / Qwen2.5-VL: patches merged 2×2; ``image_grid_thw`` gives (t, h, w) in
  patches, so the grid is ``(t, h/m, w/m)`` and the merged tokens run row-major over it;
* Idefics3 / SmolVLM: each tile becomes ``(side/s)²`` tokens after the pixel shuffle by
  the scale factor ``s``; tiles are the grid's T axis;
* PaliGemma: one token per SigLIP patch, a square ``image_size / patch_size`` grid.

LLaVA's tokens come from the adapter's shared-feature path (``HFAdapter._vision_tokens``).
A family not listed, or a token count that does not fit the grid, gives ``(None, None)``:
the structure gate then reports that the grid is unknown instead of guessing one.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch

#: Image inputs each family's ``get_image_features`` takes.
FEATURE_KEYS: dict[str, tuple[str, ...]] = {
    "qwen2_vl": ("pixel_values", "image_grid_thw"),
    "qwen2_5_vl": ("pixel_values", "image_grid_thw"),
    "idefics3": ("pixel_values", "pixel_attention_mask"),
    "smolvlm": ("pixel_values", "pixel_attention_mask"),
    "paligemma": ("pixel_values",),
}

Grid = tuple[int, int, int]


def family_vision_tokens(model: Any, inputs: Mapping[str, torch.Tensor]) -> tuple[np.ndarray | None, Grid | None]:
    """``(T·H'·W', D)`` float32 tokens of one image and their grid, or ``(None, None)``."""
    model_type = model.config.model_type
    keys = FEATURE_KEYS.get(model_type)
    if keys is None or any(key not in inputs for key in keys):
        return None, None
    output = model.get_image_features(**{key: inputs[key] for key in keys}, return_dict=True)
    pooled = output.pooler_output
    tokens = (pooled[0] if isinstance(pooled, (list, tuple)) else pooled.reshape(-1, pooled.shape[-1]))
    tokens = tokens.reshape(-1, tokens.shape[-1]).float().cpu().numpy()
    grid = _grid(model, model_type, inputs, tokens.shape[0])
    if grid is None or math.prod(grid) != tokens.shape[0]:
        return None, None
    return tokens, grid


def _grid(model: Any, model_type: str, inputs: Mapping[str, torch.Tensor], count: int) -> Grid | None:
    vision = model.config.vision_config
    if model_type in ("qwen2_vl", "qwen2_5_vl"):
        t, h, w = (int(v) for v in inputs["image_grid_thw"].reshape(-1, 3)[0])
        merge = int(vision.spatial_merge_size)
        return t, h // merge, w // merge
    if model_type in ("idefics3", "smolvlm"):
        side = int(vision.image_size) // int(vision.patch_size) // int(model.config.scale_factor)
        return (count // (side * side), side, side) if side else None
    side = int(vision.image_size) // int(vision.patch_size)
    return 1, side, side
