"""Text as a picture: the renderer behind the cross-modal suite (spec §3, REST / REST+).

A model that reads a question as text should answer the same when the question is shown
as an image. To ask that, the same characters must become pixels in a controlled way:
white background, black DejaVu Sans, 200 DPI (REST), and the REST+ variations of face
(sans, monospace, oblique), resolution (50, 100, 200 DPI) and one coloured-text style.

Geometry is given in physical units so that DPI means what it says: text is set at
``POINT_SIZE`` points on a page ``PAGE_WIDTH_IN`` inches wide with ``MARGIN_IN`` margins,
so a 50 DPI rendering has a quarter of the 200 DPI pixels in each direction, with the
same line breaks (wrapping is decided at the reference DPI, see ``wrap_lines``). The
page width keeps a 200 DPI rendering under the 1024 px cap of ``benchmarks.base``.

Determinism: fonts are the shipped DejaVu files, loaded with Pillow's basic layout engine
(``vlmgate.fonts.load_font``), there is no anti-aliasing choice left to the platform, and
nothing random is drawn: the same text and style give byte-identical pixels on every
machine. A missing font file is a ``ConfigError`` naming the file and the fix.

This module imports PIL only when it renders, so the plugin can list the styles (they
are pytest markers) without loading any imaging library.

The page size, point size, line spacing and the coloured variant's colour are not given
by the paper: they are **reconstructed** and kept as named constants here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlmgate.errors import ConfigError
from vlmgate.fonts import load_font

if TYPE_CHECKING:
    from PIL.Image import Image

#: Type size in points (1/72 inch); 12 pt at 200 DPI is 33 px (reconstructed).
POINT_SIZE = 12
#: Page width in inches: 1000 px at 200 DPI, under the 1024 px image cap (reconstructed).
PAGE_WIDTH_IN = 5.0
#: Margin on every side, in inches (reconstructed).
MARGIN_IN = 0.25
#: Baseline-to-baseline distance as a multiple of the font's ascent + descent (reconstructed).
LINE_SPACING = 1.2
#: Line breaks are decided at this DPI, so every resolution of a style wraps alike.
REFERENCE_DPI = 200
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
#: Text colour of the REST+ coloured variant (reconstructed: the paper names no colour).
CRIMSON = (200, 20, 60)

#: Short face names used in style names -> shipped face (``vlmgate.fonts.FACES``).
FACE_NAMES = {"sans": "DejaVu Sans", "mono": "DejaVu Sans Mono", "oblique": "DejaVu Sans Oblique"}
REST_PLUS_DPIS = (200, 100, 50)


@dataclass(frozen=True)
class RenderStyle:
    """How text becomes an image: a face, a resolution and a text colour.

    ``name`` is also the pytest marker and the case family of the cross-modal suite, so
    it is a Python identifier (``sans_dpi200``).
    """

    name: str
    face: str
    dpi: int
    colour: tuple[int, int, int] = BLACK

    @property
    def pixel_size(self) -> int:
        """Font size in pixels: ``POINT_SIZE`` points at ``dpi``."""
        return max(1, round(POINT_SIZE * self.dpi / 72))

    @property
    def description(self) -> str:
        colour = "black" if self.colour == BLACK else f"RGB{self.colour}"
        return f"{self.face}, {self.dpi} DPI, {colour} text on white"


def _rest_plus_styles() -> dict[str, RenderStyle]:
    styles = {}
    for short, face in FACE_NAMES.items():
        for dpi in REST_PLUS_DPIS:
            styles[f"{short}_dpi{dpi}"] = RenderStyle(f"{short}_dpi{dpi}", face, dpi)
    styles["coloured_dpi200"] = RenderStyle("coloured_dpi200", FACE_NAMES["sans"], 200, CRIMSON)
    return styles


#: Every render style, the REST default first: {sans, mono, oblique} x {200, 100, 50} DPI
#: plus one coloured-text style (REST+).
RENDER_STYLES: dict[str, RenderStyle] = _rest_plus_styles()
#: REST's rendering: black DejaVu Sans at 200 DPI.
DEFAULT_STYLE = RENDER_STYLES["sans_dpi200"]


def get_style(name: str) -> RenderStyle:
    if name not in RENDER_STYLES:
        from vlmgate.registry import unknown_name_message

        raise ConfigError(unknown_name_message("render style", name, list(RENDER_STYLES)))
    return RENDER_STYLES[name]


def _inches(value: float, dpi: int) -> int:
    return round(value * dpi)


def wrap_lines(text: str, face: str) -> list[str]:
    """Greedy word wrap of ``text`` to the page width, measured at ``REFERENCE_DPI``.

    Explicit newlines are kept (an equation system stays one equation per line); a word
    wider than the line is broken between characters. Wrapping at one reference DPI
    means that a low-resolution rendering shows the same lines, only smaller, so the
    DPI variants differ in resolution alone.
    """
    font = load_font(face, max(1, round(POINT_SIZE * REFERENCE_DPI / 72)))
    width = _inches(PAGE_WIDTH_IN - 2 * MARGIN_IN, REFERENCE_DPI)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split():
            for piece in _break_word(word, font, width):
                candidate = f"{current} {piece}" if current else piece
                if current and font.getlength(candidate) > width:
                    lines.append(current)
                    candidate = piece
                current = candidate
        lines.append(current)
    return lines


def _break_word(word: str, font, width: int) -> list[str]:
    """``word`` itself, or its pieces when it is wider than a line (between characters)."""
    if font.getlength(word) <= width:
        return [word]
    pieces, current = [], ""
    for char in word:
        if current and font.getlength(current + char) > width:
            pieces.append(current)
            current = char
        else:
            current += char
    pieces.append(current)
    return pieces


def render_text(text: str, style: RenderStyle = DEFAULT_STYLE) -> "Image":
    """``text`` set in ``style`` on a white page ``PAGE_WIDTH_IN`` wide, as an RGB image.

    The page is as tall as the wrapped text needs. Empty text gives a page with one
    empty line (a blank image of the style's line height), never an error.
    """
    from PIL import Image, ImageDraw

    font = load_font(style.face, style.pixel_size)
    ascent, descent = font.getmetrics()
    line_height = max(1, round((ascent + descent) * LINE_SPACING))
    margin = _inches(MARGIN_IN, style.dpi)
    lines = wrap_lines(text, style.face)
    width = _inches(PAGE_WIDTH_IN, style.dpi)
    height = 2 * margin + line_height * len(lines)
    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        if line:
            draw.text((margin, margin + index * line_height), line, font=font, fill=style.colour)
    return image
