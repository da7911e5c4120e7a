"""The three forms of a text item — text, image, mixed — and its OCR control (spec §3).

One item, three ways of showing it to a model, so that a different answer can only come
from the modality:

* **text**: everything in the prompt; the image is a blank white page (the adapters
  always place an image in the user turn, and a blank one carries no content). The blank
  page has a fixed size, so the text form does not depend on the render style and is
  scored once per item for every style.
* **image**: the whole item (stem, query, options) rendered; the prompt holds only the
  instruction.
* **mixed**: the stem rendered; query and options in the prompt. An item whose stem is
  the whole question (no separate query, no options) has a mixed form equal to its image
  form.

The OCR control asks the model to transcribe the image form; its character error rate
against ``full_text`` says whether the model could read the rendering at all, which is
what separates "does not read images" from "reads but answers differently".

Answers: an MCQ form is scored by option log-likelihood with the continuations
``"A. text"`` (as everywhere in vlmgate); a numeric form is answered by greedy generation
and ``parse_integer`` reads the reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlmgate.prompts import (
    IMAGE_FORM_PROMPT,
    MCQ_IMAGE_INSTRUCTION,
    MCQ_INSTRUCTION,
    NUMERIC_INSTRUCTION,
    OCR_PROMPT,
)
from vlmgate.records import TextItem
from vlmgate.render import DEFAULT_STYLE, RenderStyle, render_text

if TYPE_CHECKING:
    from PIL.Image import Image

#: The forms, in the order metrics report them.
MODALITIES: tuple[str, ...] = ("text", "image", "mixed")
#: Size of the blank page of the text form (fixed, so the text form is style-independent).
BLANK_SIZE = (448, 448)
#: An integer anywhere in a reply: the first one is the answer (``parse_integer``).
INTEGER = re.compile(r"(?<![\d.])[-−]?\d+(?![\d]|\.\d)")


@dataclass(frozen=True)
class ItemForm:
    """What the model sees for one form of an item: an image and a prompt."""

    item_id: str
    modality: str
    image: "Image"
    prompt: str


def options_block(item: TextItem) -> str:
    """``Options:\\nA. …\\nB. …`` (empty for a numeric item)."""
    if not item.options:
        return ""
    return "\n".join(["Options:", *(f"{label}. {text}" for label, text in zip(item.labels, item.options))])


def query_text(item: TextItem) -> str:
    """What the mixed form keeps as text: the query and the options."""
    return "\n".join(part for part in (item.query, options_block(item)) if part)


def full_text(item: TextItem) -> str:
    """The item's whole content: what the text form prompts and the image form renders."""
    return "\n".join(part for part in (item.stem, query_text(item)) if part)


def instruction(item: TextItem, options_in_image: bool) -> str:
    if item.kind == "numeric":
        return NUMERIC_INSTRUCTION
    return MCQ_IMAGE_INSTRUCTION if options_in_image else MCQ_INSTRUCTION


def blank_page() -> "Image":
    from PIL import Image

    return Image.new("RGB", BLANK_SIZE, (255, 255, 255))


def item_form(item: TextItem, modality: str, style: RenderStyle = DEFAULT_STYLE) -> ItemForm:
    """``item`` in ``modality`` (``text`` ignores ``style``)."""
    if modality == "text":
        return ItemForm(item.id, modality, blank_page(), f"{full_text(item)}\n{instruction(item, False)}")
    if modality == "image" or not query_text(item):
        image = render_text(full_text(item), style)
        return ItemForm(item.id, modality, image, f"{IMAGE_FORM_PROMPT}\n{instruction(item, True)}")
    if modality == "mixed":
        return ItemForm(item.id, modality, render_text(item.stem, style),
                        f"{query_text(item)}\n{instruction(item, False)}")
    raise ValueError(f"unknown modality {modality!r}; use one of {', '.join(MODALITIES)}")


def ocr_form(item: TextItem, style: RenderStyle = DEFAULT_STYLE) -> ItemForm:
    """The OCR control: the image form's rendering with the transcription prompt."""
    return ItemForm(item.id, "ocr", render_text(full_text(item), style), OCR_PROMPT)


def continuations(item: TextItem) -> tuple[str, ...]:
    """Scored assistant replies of an MCQ item (``"A. text"``), the same in every form."""
    return tuple(f"{label}. {text}" for label, text in zip(item.labels, item.options))


def parse_integer(reply: str) -> int | None:
    """The first integer in a generated reply, or ``None`` when there is none.

    Lenient about surrounding words ("B = 4", "The answer is 4.") but not about format:
    a reply without an integer (or with only a decimal number) is unparsable and, in the
    metrics, wrong (spec §3: a bad format counts as wrong).
    """
    match = INTEGER.search(reply)
    if match is None:
        return None
    return int(match.group(0).replace("−", "-"))
