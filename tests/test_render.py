"""The text renderer and the three forms of an item: geometry, determinism, styles, errors, CLI."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vlmgate import fonts
from vlmgate.cli import main
from vlmgate.errors import ConfigError
from vlmgate.fonts import load_font
from vlmgate.modalities import BLANK_SIZE, full_text, item_form, ocr_form, parse_integer, query_text
from vlmgate.records import TextItem
from vlmgate.render import (
    DEFAULT_STYLE,
    MARGIN_IN,
    PAGE_WIDTH_IN,
    POINT_SIZE,
    REFERENCE_DPI,
    RENDER_STYLES,
    RenderStyle,
    get_style,
    render_text,
    wrap_lines,
)

SYSTEM = TextItem("s1", "3A + 2B = 13\nA + B = 5", "What is the value of B?", (), 3, "numeric")
MCQ = TextItem("q1", "Which gas do plants take in for photosynthesis?", "", ("oxygen", "carbon dioxide"), 1)


def test_rest_plus_styles_are_faces_by_dpis_plus_one_coloured():
    assert DEFAULT_STYLE == RenderStyle("sans_dpi200", "DejaVu Sans", 200)
    faces = {(s.face, s.dpi) for s in RENDER_STYLES.values() if s.colour == (0, 0, 0)}
    assert faces == {(f, d) for f in ("DejaVu Sans", "DejaVu Sans Mono", "DejaVu Sans Oblique") for d in (50, 100, 200)}
    coloured = [s for s in RENDER_STYLES.values() if s.colour != (0, 0, 0)]
    assert [s.name for s in coloured] == ["coloured_dpi200"]
    assert all(name.isidentifier() for name in RENDER_STYLES)  # they are pytest markers


def test_rendering_is_deterministic_white_and_scales_with_dpi():
    text = full_text(SYSTEM)
    first, second = render_text(text), render_text(text)
    assert first.mode == "RGB" and first.tobytes() == second.tobytes()
    pixels = np.asarray(first)
    assert (pixels[0] == 255).all() and (pixels[:, 0] == 255).all()  # white margins
    assert set(np.unique(pixels.reshape(-1, 3), axis=0)[:, 0]) >= {0, 255}  # black text on white
    sizes = {dpi: render_text(text, get_style(f"sans_dpi{dpi}")).size for dpi in (50, 100, 200)}
    assert sizes[200][0] == round(PAGE_WIDTH_IN * 200) == 2 * sizes[100][0] == 4 * sizes[50][0]
    assert sizes[200][1] > sizes[100][1] > sizes[50][1]


def test_styles_give_different_pixels_and_the_coloured_one_has_colour():
    images = {name: np.asarray(render_text("2A + 3B = 12", style)) for name, style in RENDER_STYLES.items()}
    at_200 = [name for name in images if name.endswith("dpi200")]
    assert len({images[name].tobytes() for name in at_200}) == len(at_200)
    black = images["sans_dpi200"].astype(int)
    assert (black[..., 0] == black[..., 1]).all()  # grey levels only
    coloured = images["coloured_dpi200"].astype(int)
    assert ((coloured[..., 0] - coloured[..., 2]) > 100).any()


def test_word_wrap_fits_the_page_keeps_the_words_and_breaks_overlong_words():
    words = ["photosynthesis"] * 60 + ["x" * 300]
    text = " ".join(words) + "\nsecond paragraph"
    lines = wrap_lines(text, "DejaVu Sans")
    font = load_font("DejaVu Sans", round(POINT_SIZE * REFERENCE_DPI / 72))
    width = round((PAGE_WIDTH_IN - 2 * MARGIN_IN) * REFERENCE_DPI)
    assert all(font.getlength(line) <= width for line in lines)
    assert lines[-1] == "second paragraph"
    assert "".join("".join(lines[:-1]).split()) == "".join(words)
    assert len(lines) > 5
    # every DPI of a face wraps alike: a 50 DPI page shows the same lines, smaller
    assert render_text(text, get_style("sans_dpi50")).height * 4 == pytest.approx(
        render_text(text, get_style("sans_dpi200")).height, rel=0.1)


def test_a_missing_font_file_names_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(fonts, "FONT_DIR", tmp_path)
    load_font.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"DejaVuSansMono\.ttf.*missing; reinstall vlmgate"):
            render_text("A", get_style("mono_dpi100"))
    finally:
        load_font.cache_clear()
    with pytest.raises(ConfigError, match="unknown render style 'mono_dpi150'"):
        get_style("mono_dpi150")


def test_three_forms_and_the_ocr_form():
    text = item_form(SYSTEM, "text")
    assert text.image.size == BLANK_SIZE and np.asarray(text.image).min() == 255
    assert text.prompt == "3A + 2B = 13\nA + B = 5\nWhat is the value of B?\nAnswer with a single integer."
    image = item_form(SYSTEM, "image", get_style("mono_dpi100"))
    assert image.prompt.startswith("Answer the question shown in the image.")
    assert image.image.tobytes() == render_text(full_text(SYSTEM), get_style("mono_dpi100")).tobytes()
    mixed = item_form(SYSTEM, "mixed")
    assert mixed.image.tobytes() == render_text(SYSTEM.stem).tobytes()
    assert mixed.prompt == "What is the value of B?\nAnswer with a single integer."
    assert query_text(MCQ) == "Options:\nA. oxygen\nB. carbon dioxide"
    assert item_form(MCQ, "mixed").prompt.endswith("Please select the correct answer from the options above.")
    assert item_form(MCQ, "image").prompt.endswith("from the options in the image.")
    ocr = ocr_form(SYSTEM)
    assert ocr.image.tobytes() == item_form(SYSTEM, "image").image.tobytes() and "Transcribe" in ocr.prompt


@pytest.mark.parametrize("reply, expected", [
    ("4", 4), ("B = 4.", 4), ("The answer is -12", -12), ("  7 apples", 7), ("No 1 1 1", 1),
    ("B.......", None), ("", None), ("3.5", None), ("x", None),
])
def test_numeric_replies_parse_to_the_first_integer_or_none(reply, expected):
    assert parse_integer(reply) == expected


def test_render_command_saves_every_variant_as_png(tmp_path, capsys):
    assert main(["render", "--out", str(tmp_path)]) == 0
    files = sorted(p.name for p in tmp_path.glob("*.png"))
    expected = {f"soebench-0-00000-{form}-{style}.png" for form in ("image", "mixed") for style in RENDER_STYLES}
    assert set(files) == expected | {"soebench-0-00000-text-blank.png"}
    for path in tmp_path.glob("*.png"):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.mode == "RGB"
    assert "written:" in capsys.readouterr().out
    assert main(["render", "--out", str(tmp_path), "--item", "nope"]) == 2
