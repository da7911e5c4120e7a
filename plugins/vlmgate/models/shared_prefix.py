"""Short continuations of cached contexts, packed one batch row per context.

Why: an option is a few tokens after a context of hundreds (a LLaVA-1.5 image alone is
576 tokens). Scoring each option as its own (context + option) row repeats the context's
forward once per option; here the contexts run once (their key/value cache is kept) and
every continuation of a context — its options, the tail of a second prompt that shares
its start — is fed as a segment of *one* packed row against that cache.

Exactness. A segment must see what it would see as the tail of a whole sequence, and
nothing else: the cached keys ``[0, visible)`` of its own context (minus that row's
right padding) and, causally, its own earlier tokens — never another segment packed
beside it. That is a 4-D mask ``(rows, 1, Q, W + Q)`` over the ``W`` cached and ``Q`` new
keys, passed to the model as is (transformers returns a 4-D mask unchanged). Each token
gets the position id it would have had in the whole sequence (``position`` of the
segment's first token, then one per token), so rotary embeddings see the same relative
offsets. Padding queries attend only to themselves, so no softmax row is empty (an empty
row is NaN, and ``0 · NaN`` would leak into real rows through the values).

Only attention implementations that take an arbitrary dense mask can run this: ``sdpa``
(boolean mask) and ``eager`` (additive float mask). Flash and flex attention cannot, and
the adapter keeps its one-row-per-option path for them (``ATTENTION_IMPLEMENTATIONS``).

The caller crops the cache back to the ``W`` context keys after a pass (``Cache.crop``),
so one prefill serves several passes (options, then greedy decoding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

#: Attention implementations that honour a dense 4-D mask over cached and new keys.
ATTENTION_IMPLEMENTATIONS = frozenset({"sdpa", "eager"})


@dataclass(frozen=True)
class Segment:
    """Tokens that continue context ``row`` of the prefill after its first ``visible`` tokens.

    ``position`` is the position id of the first token. ``scored``: whether the logits
    predicting each next token of the segment are kept (option scoring); the first
    token's own prediction comes from the prefill, not from here.
    """

    row: int
    tokens: tuple[int, ...]
    visible: int
    position: int
    scored: bool = False


@dataclass(frozen=True)
class Packed:
    """Model inputs of one continuation pass, and where each segment landed.

    ``starts[k]`` is segment ``k``'s first column in its row; ``targets`` are the tokens
    the kept logits predict, in the order ``logits_to_keep`` returns them (row-major), and
    ``target_segment`` the segment each belongs to.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    mask: torch.Tensor
    keep: torch.Tensor
    starts: tuple[int, ...]
    targets: torch.Tensor
    target_segment: torch.Tensor

    @property
    def width(self) -> int:
        """New keys per row (``Q``): what the cache must be cropped by afterwards."""
        return int(self.input_ids.shape[1])


def pack(segments: Sequence[Segment], context_mask: torch.Tensor, pad_id: int) -> Packed:
    """Pack ``segments`` into rows of the prefill batch whose 2-D padding mask is ``context_mask``.

    Segments of one row are laid side by side in the order given.
    """
    rows, cached = context_mask.shape
    lengths = np.zeros(rows, dtype=np.int64)
    starts = []
    for segment in segments:
        starts.append(int(lengths[segment.row]))
        lengths[segment.row] += len(segment.tokens)
    width = max(1, int(lengths.max(initial=0)))
    input_ids = np.full((rows, width), pad_id, dtype=np.int64)
    positions = np.zeros((rows, width), dtype=np.int64)
    keep = np.zeros((rows, width), dtype=bool)
    context = context_mask.bool().cpu().numpy()
    mask = np.zeros((rows, 1, width, cached + width), dtype=bool)
    used = np.zeros((rows, width), dtype=bool)
    target_at: dict[tuple[int, int], tuple[int, int]] = {}
    for k, (segment, start) in enumerate(zip(segments, starts)):
        n, end, row = len(segment.tokens), start + len(segment.tokens), segment.row
        input_ids[row, start:end] = segment.tokens
        positions[row, start:end] = np.arange(segment.position, segment.position + n)
        used[row, start:end] = True
        mask[row, 0, start:end, :segment.visible] = context[row, :segment.visible]
        mask[row, 0, start:end, cached + start:cached + end] = np.tril(np.ones((n, n), dtype=bool))
        if segment.scored:
            for j in range(n - 1):
                keep[row, start + j] = True
                target_at[(row, start + j)] = (segment.tokens[j + 1], k)
    for row, column in zip(*np.nonzero(~used)):
        mask[row, 0, column, cached + column] = True
    order = [target_at[(int(r), int(c))] for r, c in zip(*np.nonzero(keep))]  # row-major, as keep selects
    device = context_mask.device
    return Packed(
        input_ids=torch.from_numpy(input_ids).to(device),
        position_ids=torch.from_numpy(positions).to(device),
        mask=torch.from_numpy(mask).to(device),
        keep=torch.from_numpy(keep).to(device),
        starts=tuple(starts),
        targets=torch.tensor([t for t, _ in order], dtype=torch.long, device=device),
        target_segment=torch.tensor([k for _, k in order], dtype=torch.long, device=device),
    )


def attention_mask(mask: torch.Tensor, implementation: str, dtype: torch.dtype) -> torch.Tensor:
    """``mask`` (True = attend) in the form ``implementation`` adds or selects with."""
    if implementation == "eager":
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    return mask
