"""Fonts for rendered text (overlays, cross-modal renderings), shipped with the package.

Rendering must be byte-identical on every machine, and a fresh machine may lack
Debian's fonts-dejavu, so vlmgate ships the DejaVu faces it draws with (licence in
``fonts/LICENSE-DejaVu.txt``) instead of asking the system.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from vlmgate.errors import ConfigError

FONT_DIR = Path(__file__).with_name("fonts")

#: Face name -> shipped file.
FACES = {
    "DejaVu Sans": "DejaVuSans.ttf",
    "DejaVu Sans Mono": "DejaVuSansMono.ttf",
    "DejaVu Sans Oblique": "DejaVuSans-Oblique.ttf",
}


def font_path(face: str = "DejaVu Sans") -> Path:
    if face not in FACES:
        raise ConfigError(f"unknown font face {face!r}; shipped faces: {', '.join(FACES)}")
    path = FONT_DIR / FACES[face]
    if not path.is_file():
        raise ConfigError(
            f"font file {path} for {face!r} is missing; reinstall vlmgate "
            "(`pip install -e .`) so its package data is present"
        )
    return path


@lru_cache(maxsize=64)
def load_font(face: str = "DejaVu Sans", size: int = 14):
    """A cached FreeType font of ``face`` at ``size`` pixels."""
    from PIL import ImageFont

    # The basic layout engine is pinned: Raqm (used when installed) shapes text slightly
    # differently, and renderings must be byte-identical across machines.
    return ImageFont.truetype(str(font_path(face)), size=size, layout_engine=ImageFont.Layout.BASIC)
