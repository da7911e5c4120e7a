"""Embedding matching (spec §4): move an image's embedding onto another image's, within a pixel budget.

Salman et al. show that a CLIP-style model with > 99 % zero-shot accuracy has 0 %
*systematic* accuracy: gradient descent on the pixels finds, next to almost any image,
one whose embedding equals that of an image of another class. This module is that
search; ``metrics.systematic`` turns its outcomes into rates.

Procedure (step size, iterations and budget are **reconstructed**): minimise
``L(Δ) = ½‖f(x₀ + Δ) − f(x_target)‖²`` over Δ with Adam, projecting after every step onto
the L∞ ball ``‖Δ‖∞ ≤ budget`` and the pixel range [0, 1]; stop when the zero-shot class
becomes the target's and the cosine exceeds ``stop_cosine``, or after ``steps``. The
projection makes the budget a hard guarantee, not a penalty. Deterministic: no random
start, and torch's CPU kernels are deterministic for these ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MatchSettings:
    """Budget in [0, 1] pixel units (L∞), Adam step size, iteration cap, early stop.

    Reconstructed defaults: the paper's η ≈ 1e-3 over 200–1000 steps is for a full-size
    CLIP; 1e-2 over 100 steps reaches the same stopping rule on the tiny models the
    tests use at a tenth of the cost. 32/255 is the budget under which the tests' tiny
    CLIP (trained on faint ±24/255 textures) is matched.
    """

    budget: float = 32 / 255
    step_size: float = 1e-2
    steps: int = 100
    stop_cosine: float = 0.99


@dataclass(frozen=True)
class MatchOutcome:
    """One matched image: how far it moved, how close its embedding got, and its class."""

    linf: float
    l2: float
    cosine_to_target: float
    cosine_to_source: float
    predicted: int
    steps: int


def match_embedding(adapter, source: torch.Tensor, target: torch.Tensor, class_embeddings: torch.Tensor,
                    target_class: int, settings: MatchSettings = MatchSettings()
                    ) -> tuple[torch.Tensor, MatchOutcome]:
    """Match ``source`` ``(1, 3, S, S)`` to ``target``'s embedding; the image and its outcome.

    ``adapter`` is a ``ClipAdapter`` (``image_embedding``, ``logits``); ``class_embeddings``
    ``(K, D)`` define the zero-shot classes the early stop watches.
    """
    with torch.no_grad():
        goal = adapter.image_embedding(target)
        start = adapter.image_embedding(source)
    delta = torch.zeros_like(source, requires_grad=True)
    optimiser = torch.optim.Adam([delta], lr=settings.step_size)
    taken = 0
    for taken in range(1, settings.steps + 1):  # noqa: B007 (read after the loop: the steps taken)
        optimiser.zero_grad()
        embedding = adapter.image_embedding(source + delta)
        loss = 0.5 * (embedding - goal).pow(2).sum()
        loss.backward()
        optimiser.step()
        with torch.no_grad():  # project: the budget and the pixel range are constraints
            delta.clamp_(-settings.budget, settings.budget)
            delta.copy_((source + delta).clamp(0.0, 1.0) - source)
            embedding = adapter.image_embedding(source + delta)
            cosine = float((embedding * goal).sum())
            predicted = int(adapter.logits(embedding, class_embeddings).argmax())
        if predicted == target_class and cosine >= settings.stop_cosine:
            break
    with torch.no_grad():
        matched = (source + delta).detach()
        embedding = adapter.image_embedding(matched)
        outcome = MatchOutcome(
            linf=float(delta.abs().max()),
            l2=float(delta.pow(2).sum().sqrt()),
            cosine_to_target=float((embedding * goal).sum()),
            cosine_to_source=float((embedding * start).sum()),
            predicted=int(adapter.logits(embedding, class_embeddings).argmax()),
            steps=taken,
        )
    return matched, outcome
