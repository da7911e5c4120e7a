"""Text written onto the image (spec §1, "textoverlay" and its two controls).

The semantic overlay writes "Answer is {L}" for an option the model did *not* pick, in
red on a white box at the image centre: a typographic attack that tests whether text in
the image overrides what the image shows. Two controls separate the causes of a flip:

* ``textoverlay_random``: random characters in the *same* box as the semantic overlay
  naming the same option, so a flip there comes from text being present, not from
  what it says;
* ``textoverlay_empty``: the semantic overlay's white box with no text, so a flip there
  comes from the occluded area alone.

All three variants of one slot (the option ``label`` the semantic overlay names) change
exactly the same pixels: the box of ``"Answer is {label}"``, and nothing outside it
(spec §1: the controls are drawn "in the same boxes"). Only what is written inside differs,
so the differences between their flip rates are the text's and its meaning's, never the
area hidden. (Before, the random text sized its own box by its 6-12 capitals, up to 1.8
times as wide as the semantic one, so the content control also hid more of the image.)

Box geometry (exact, shared by all three). With ``font = DejaVu Sans`` at the size below
and ``(l, t, r, b) = font.getbbox(text)`` of the *box text* ``"Answer is {label}"`` (the
ink bounds drawn at the origin with PIL's default left-ascender anchor, integers), the box
is that bbox grown by ``PADDING`` px on every side, ``w = (r − l) + 2·PADDING`` by
``h = (b − t) + 2·PADDING``, centred on a ``W×H`` image with floor division::

    box_left = (W − w) // 2        box_top = (H − h) // 2
    box = [box_left, box_left + w) × [box_top, box_top + h)   (half-open, in pixels)
    text origin = (box_left + PADDING − l, box_top + PADDING − t)

so the semantic ink lands exactly ``PADDING`` px inside the box; an odd leftover puts the
extra pixel on the right / bottom. A box larger than the image is clipped at its edges.
The random control writes, on the semantic text's baseline and with its ink starting where
the semantic ink starts (origin ``(box_left + PADDING − l', text origin y)``, ``l'`` its own
left bearing), the longest prefix of its characters whose ink is no wider than the semantic
ink (``fitted_text``; at least one character): 6-12 capitals are wider than "Answer is B",
so typically 6-9 of them are drawn. Whatever ink would still cross the box's edge (a
descender at a large level) is clipped: nothing outside the box is ever changed.
Font size: ``base = max(14, H // 32)`` (spec), ``size = max(1, round(base · level / 4))``
for ``level`` 1..8, so the default level 4 is the spec's size; level 0 draws nothing.

Placement and colour (searched by ``vlmgate.search.strategies.text_overlays``; the default
grid never sets them, so its params and pixels are the spec's). ``x`` and ``y`` are integer
steps in ``[-POSITION_STEPS, POSITION_STEPS]`` away from the centre: the box moves by
``step · (max(0, W − w) // 2) // POSITION_STEPS`` px, so ±``POSITION_STEPS`` touches an edge
and 0 is centred. ``colour`` names a ``TEXT_COLOURS`` entry (default red, the spec's). They
are integers and a first-listed default so that Hypothesis shrinks toward the spec's overlay.
A param is stored only when it differs from its default, so a default variant's label (and
cache key) is unchanged.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np
from PIL import Image, ImageDraw

from vlmgate.errors import ConfigError, DataError
from vlmgate.fonts import load_font
from vlmgate.perturbations.base import CONTROL, TEXTOVERLAY, PerturbationFamily, VariantContext
from vlmgate.records import NO_ANSWER, Sample, Variant
from vlmgate.seeding import rng_for

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

FACE = "DejaVu Sans"
PADDING = 4
MIN_BASE_FONT_SIZE = 14
#: At most this many overlays (one per option other than the clean prediction).
MAX_OVERLAYS = 3
#: The level at which the font has the spec's size; ``max_level`` is twice it.
DEFAULT_LEVEL = 4
TEXT_COLOUR = (255, 0, 0)
#: Text colours an overlay may take; the first is the spec's (and the default).
TEXT_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": TEXT_COLOUR, "black": (0, 0, 0), "blue": (0, 0, 255), "green": (0, 160, 0),
}
DEFAULT_COLOUR = "red"
#: Placement steps from the centre to an edge (see the module docstring).
POSITION_STEPS = 4
#: Placement params of the spec's overlay; a variant stores only those that differ.
PLACEMENT_DEFAULTS: dict[str, object] = {"x": 0, "y": 0, "colour": DEFAULT_COLOUR}
BOX_COLOUR = (255, 255, 255)
RANDOM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#: Inclusive bounds of the random text's length.
RANDOM_LENGTH = (6, 12)


def base_font_size(height: int) -> int:
    """The spec's size for an image ``height`` px tall: ``max(14, H // 32)``."""
    return max(MIN_BASE_FONT_SIZE, height // 32)


def font_size(height: int, level: int) -> int:
    """``max(1, round(base_font_size(H) · level / DEFAULT_LEVEL))`` (``round`` = half to even)."""
    return max(1, round(base_font_size(height) * level / DEFAULT_LEVEL))


def semantic_text(label: str) -> str:
    return f"Answer is {label}"


@dataclass(frozen=True)
class OverlayBox:
    """Where one overlay goes: the white box (half-open pixel bounds) and the text origin."""

    left: int
    top: int
    right: int
    bottom: int
    text_x: int
    text_y: int


def overlay_box(font, text: str, image_size: tuple[int, int], steps: tuple[int, int] = (0, 0)) -> OverlayBox:
    """The box of ``text`` in ``font`` on an image of ``image_size``, centred then moved by ``steps``."""
    width, height = image_size
    left, top, right, bottom = (int(v) for v in font.getbbox(text))
    box_width = (right - left) + 2 * PADDING
    box_height = (bottom - top) + 2 * PADDING
    box_left = (width - box_width) // 2 + steps[0] * (max(0, width - box_width) // 2) // POSITION_STEPS
    box_top = (height - box_height) // 2 + steps[1] * (max(0, height - box_height) // 2) // POSITION_STEPS
    return OverlayBox(box_left, box_top, box_left + box_width, box_top + box_height,
                      box_left + PADDING - left, box_top + PADDING - top)


def overlay_labels(sample: Sample, base_prediction: int | None, family: str) -> list[str]:
    """The first ``MAX_OVERLAYS`` option labels, in option order, other than the prediction
    (every label when the clean input got no answer, ``records.NO_ANSWER``)."""
    labels = sample.labels
    if base_prediction is None:
        raise ConfigError(
            f"{family}: sample {sample.id!r} has no clean prediction "
            "(VariantContext.base_prediction is None); run the clean pass first and pass "
            "its predicted option index"
        )
    if base_prediction == NO_ANSWER:
        return list(labels[:MAX_OVERLAYS])
    if not 0 <= base_prediction < len(labels):
        raise DataError(
            f"{family}: clean prediction {base_prediction} of sample {sample.id!r} is not an "
            f"option index (the sample has {len(labels)} options); pass an index in "
            f"[0, {len(labels) - 1}]"
        )
    return [label for index, label in enumerate(labels) if index != base_prediction][:MAX_OVERLAYS]


def fitted_text(font, text: str, width: int) -> str:
    """The longest prefix of ``text`` (at least its first character) whose ink in ``font`` is
    at most ``width`` px wide: what the random control writes in the semantic overlay's box."""
    for end in range(len(text), 1, -1):
        left, _, right, _ = font.getbbox(text[:end])
        if right - left <= width:
            return text[:end]
    return text[:1]


def random_text(rng: np.random.Generator) -> str:
    """``RANDOM_LENGTH`` characters of ``RANDOM_ALPHABET``, drawn from ``rng`` only."""
    length = int(rng.integers(RANDOM_LENGTH[0], RANDOM_LENGTH[1] + 1))
    return "".join(RANDOM_ALPHABET[i] for i in rng.integers(0, len(RANDOM_ALPHABET), size=length))


def overlay_texts() -> "SearchStrategy[str]":
    """Random-overlay text: ``[A-Z0-9]`` of the control's lengths; shrinks toward short text."""
    from hypothesis import strategies as st

    return st.text(alphabet=RANDOM_ALPHABET, min_size=1, max_size=RANDOM_LENGTH[1])


def overlay_positions() -> "SearchStrategy[tuple[int, int]]":
    """``(x, y)`` steps from the centre; shrinks to centred."""
    from hypothesis import strategies as st

    step = st.integers(min_value=-POSITION_STEPS, max_value=POSITION_STEPS)
    return st.tuples(step, step)


def overlay_colours() -> "SearchStrategy[str]":
    """Text colours, the spec's red first (where shrinking ends)."""
    from hypothesis import strategies as st

    return st.sampled_from(tuple(TEXT_COLOURS))


class TextOverlayFamily(PerturbationFamily):
    """One white box with (or without) red text at the image centre, one variant per slot.

    The default grid has one variant per label from ``overlay_labels``; the box is always
    that of ``"Answer is {label}"``, and subclasses say what is written in it (``texts``).
    Params: ``level`` (int, 0..8), ``label`` and, for the random control, ``text``.
    """

    tags: ClassVar[tuple[str, ...]] = (TEXTOVERLAY,)
    max_level: ClassVar[int] = 2 * DEFAULT_LEVEL
    #: A typographic attack writes on one picture of a set (as a word on one photo would);
    #: the controls write their boxes on that same picture.
    several_images: ClassVar[str] = "one"
    needs_base_prediction: ClassVar[bool] = True

    def variants(self, sample: Sample, context: VariantContext) -> list[Variant]:
        labels = overlay_labels(sample, context.base_prediction, self.name)
        return [self.at_level(DEFAULT_LEVEL, **self.slot_choices(label, context.rng))
                for label in labels]

    def slot_choices(self, label: str, rng: np.random.Generator) -> dict[str, Any]:
        """The ``at_level`` choices of the overlay standing for option ``label``."""
        return {"label": label}

    def at_level(self, level: int, label: str = "A", x: int = 0, y: int = 0, colour: str = DEFAULT_COLOUR,
                 **choices: object) -> Variant:
        self.check_level(level)
        self.reject_unknown_choices(choices)
        if not isinstance(label, str) or not label:
            raise ConfigError(f"{self.name}: choice label={label!r} must be a non-empty option label")
        return Variant.of(self.name, self.intensity(level), level=int(level), label=label,
                          **self.placement(x, y, colour))

    def placement(self, x: int, y: int, colour: str) -> dict[str, object]:
        """The non-default placement / colour params (module docstring), checked."""
        steps = tuple(range(-POSITION_STEPS, POSITION_STEPS + 1))
        self.check_choice("x", x, steps)
        self.check_choice("y", y, steps)
        self.check_choice("colour", colour, tuple(TEXT_COLOURS))
        chosen = {"x": int(x), "y": int(y), "colour": colour}
        return {key: value for key, value in chosen.items() if value != PLACEMENT_DEFAULTS[key]}

    def search_choices(self, labels: Sequence[str]) -> "SearchStrategy[dict[str, object]]":
        """The text (an option label the overlay names), position and colour of one overlay."""
        return self._overlay_choices(self._label_choice(labels), colour=True)

    def _label_choice(self, labels: Sequence[str]) -> "SearchStrategy[dict[str, object]]":
        from hypothesis import strategies as st

        if not labels:
            raise ConfigError(f"search: {self.name} needs at least one option label to write")
        return st.sampled_from(tuple(labels)).map(lambda label: {"label": label})

    def _overlay_choices(self, text: "SearchStrategy[dict[str, object]]", *, colour: bool
                         ) -> "SearchStrategy[dict[str, object]]":
        """``text``'s choices, then the position and (where text is drawn) the colour, in draw order."""
        from hypothesis import strategies as st

        @st.composite
        def draw_choices(draw: st.DrawFn) -> dict[str, object]:
            chosen = dict(draw(text))
            chosen["x"], chosen["y"] = draw(overlay_positions())
            if colour:
                chosen["colour"] = draw(overlay_colours())
            return chosen

        return draw_choices()

    def texts(self, variant: Variant) -> tuple[str, str]:
        """``(text whose bbox sizes the box, text written in the box)``: the box is always the
        semantic overlay's for the variant's ``label``; ``written`` says what goes in it."""
        (label,) = self.params_of(variant, "label")
        return semantic_text(label), self.written(variant)

    @abstractmethod
    def written(self, variant: Variant) -> str:
        """The text written in the box (``""`` for none)."""

    def apply(self, image: Image.Image, variant: Variant, rng: np.random.Generator) -> Image.Image:
        (level,) = self.params_of(variant, "level")
        box_text, drawn_text = self.texts(variant)
        canvas = image.convert("RGB")  # a copy, even when already RGB
        if int(level) == 0:
            return canvas
        params = variant.param_dict
        font = load_font(FACE, font_size(canvas.height, int(level)))
        box = overlay_box(font, box_text, canvas.size, (int(params.get("x", 0)), int(params.get("y", 0))))
        # Drawn on the box's own tile, pasted back: no ink can leave the box (module docstring).
        tile = Image.new("RGB", (box.right - box.left, box.bottom - box.top), BOX_COLOUR)
        if drawn_text:
            left, _, right, _ = font.getbbox(box_text)
            fitted = fitted_text(font, drawn_text, right - left)
            origin_x = box.text_x + left - font.getbbox(fitted)[0]  # its ink starts where the box text's does
            ImageDraw.Draw(tile).text((origin_x - box.left, box.text_y - box.top), fitted, font=font,
                                      fill=TEXT_COLOURS[params.get("colour", DEFAULT_COLOUR)])
        canvas.paste(tile, (box.left, box.top))
        return canvas


class SemanticTextOverlay(TextOverlayFamily):
    """Red "Answer is {label}" for an option other than the clean prediction."""

    name: ClassVar[str] = "textoverlay"
    description: ClassVar[str] = (
        'red "Answer is L" in a white centred box, L an option the model did not pick')

    def written(self, variant: Variant) -> str:
        (label,) = self.params_of(variant, "label")
        return semantic_text(label)


class EmptyTextOverlay(TextOverlayFamily):
    """The semantic overlay's white box for the same label, with no text (area control)."""

    name: ClassVar[str] = "textoverlay_empty"
    tags: ClassVar[tuple[str, ...]] = (TEXTOVERLAY, CONTROL)
    description: ClassVar[str] = "the semantic overlay's white box, no text (control)"

    def search_choices(self, labels: Sequence[str]) -> "SearchStrategy[dict[str, object]]":
        """The label that sizes the box and its position; an empty box has no text colour."""
        return self._overlay_choices(self._label_choice(labels), colour=False)

    def written(self, variant: Variant) -> str:
        return ""


class RandomTextOverlay(TextOverlayFamily):
    """Random ``[A-Z0-9]{6,12}`` text in the semantic overlay's box for the same label (content control).

    The variant for slot ``label`` changes exactly the pixels the semantic overlay naming
    ``label`` changes (its box); what it writes there says nothing. The text is drawn from
    the context's generator in ``variants`` (seeded per sample) and stored in the ``text``
    param; ``at_level`` takes ``text`` directly, or draws it from ``rng_for(seed, family
    name)`` when only ``seed`` is given. As many of its characters as fit the box are
    written (``fitted_text``).
    """

    name: ClassVar[str] = "textoverlay_random"
    tags: ClassVar[tuple[str, ...]] = (TEXTOVERLAY, CONTROL)
    description: ClassVar[str] = "random 6-12 chars of [A-Z0-9] in the semantic overlay's box (control)"

    def slot_choices(self, label: str, rng: np.random.Generator) -> dict[str, Any]:
        return {"label": label, "text": random_text(rng)}

    def search_choices(self, labels: Sequence[str]) -> "SearchStrategy[dict[str, object]]":
        """The label whose box it fills, random characters (shrinking toward short text),
        position and colour."""
        from hypothesis import strategies as st

        text = st.tuples(self._label_choice(labels), overlay_texts()).map(
            lambda drawn: {**drawn[0], "text": drawn[1]})
        return self._overlay_choices(text, colour=True)

    def at_level(self, level: int, label: str = "A", text: str | None = None,  # type: ignore[override]
                 seed: int = 0, x: int = 0, y: int = 0, colour: str = DEFAULT_COLOUR, **choices: object) -> Variant:
        self.check_level(level)
        self.reject_unknown_choices(choices)
        if not isinstance(label, str) or not label:
            raise ConfigError(f"{self.name}: choice label={label!r} must be a non-empty option label")
        if text is None:
            text = random_text(rng_for(int(seed), self.name))
        if not isinstance(text, str) or not text or any(c not in RANDOM_ALPHABET for c in text):
            raise ConfigError(
                f"{self.name}: choice text={text!r} must be non-empty and use only [A-Z0-9]"
            )
        return Variant.of(self.name, self.intensity(level), level=int(level), label=label, text=text,
                          **self.placement(x, y, colour))

    def written(self, variant: Variant) -> str:
        (text,) = self.params_of(variant, "text")
        return text
