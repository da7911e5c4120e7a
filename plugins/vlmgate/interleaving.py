"""Where an interleaved item's pictures sit in its prompt.

An item with several pictures (``Sample.more_images``) places picture k where its text
writes ``<image k>`` (1-based), MMMU's convention, which BLINK's and MuirBench's loaders
write too. Each picture is shown once, at its first marker; a later marker of the same
picture reads ``[image k]`` in the text, since showing a picture twice would give the model
another input than the benchmark's. Pictures the text never names come first, in order,
before the text: the layout VLMEvalKit and lmms-eval use for a question that does not place
its images. An item with one picture is not split: its picture comes first, as it always has,
and its text is left as it is.

Every adapter that takes several pictures builds its prompt from ``interleaved``, so the
``hf:`` chat templates and the ``openai:`` message parts show the same order.
"""

from __future__ import annotations

import re

#: A picture's place in the text: ``<image 2>`` is the item's second picture.
IMAGE_MARKER = re.compile(r"<image (\d+)>")


def marker(k: int) -> str:
    """The marker of picture ``k`` (0-based) in an item's text."""
    return f"<image {k + 1}>"


def interleaved(text: str, n_images: int) -> tuple[str | int, ...]:
    """``text`` split at its image markers into text pieces and 0-based picture indices.

    Every picture appears exactly once; unplaced ones lead. A marker naming a picture the
    item does not have is an error (a loader checks its rows, so this is a bug upstream).
    """
    if n_images <= 1:
        return (0, text) if n_images == 1 else (text,)
    pieces: list[str | int] = []
    placed: set[int] = set()
    position = 0
    for match in IMAGE_MARKER.finditer(text):
        k = int(match.group(1)) - 1
        if not 0 <= k < n_images:
            raise ValueError(f"the text names <image {k + 1}> but the item has {n_images} images")
        pieces.append(text[position:match.start()])
        pieces.append(k if k not in placed else f"[image {k + 1}]")
        placed.add(k)
        position = match.end()
    pieces.append(text[position:])
    leading = [k for k in range(n_images) if k not in placed]
    merged: list[str | int] = list(leading)
    for piece in pieces:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        elif piece != "":
            merged.append(piece)
    return tuple(merged)


def as_text(text: str) -> str:
    """``text`` with every image marker written as text (``[image k]``): what a reply or any other
    text that shows no picture says where the prompt would show one."""
    return IMAGE_MARKER.sub(lambda match: f"[image {match.group(1)}]", text)


def image_order(text: str, n_images: int) -> tuple[int, ...]:
    """The pictures' indices in the order ``interleaved`` shows them."""
    return tuple(piece for piece in interleaved(text, n_images) if isinstance(piece, int))
