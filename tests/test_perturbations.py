"""Geometric, text-overlay and blank perturbation families, pinned to hand-computed pixels.

Expected outputs come from hand arithmetic on tiny synthetic images (every column and
row has its own value, so a misplaced pixel shows), from independent re-implementations
(an explicit per-pixel loop for the cyclic shift, the rotated-corner bounding box for
rotation) or from PIL's documented primitives the spec names (bicubic resize, getbbox).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from vlmgate.errors import ConfigError, DataError
from vlmgate.fonts import load_font
from vlmgate.perturbations import PerturbationFamily, VariantContext, family_names, get_family
from vlmgate.records import Sample, Variant
from vlmgate.seeding import rng_for

OUR_FAMILIES = ("translation", "padcrop", "scale", "scale_pad", "rotation",
                "textoverlay", "textoverlay_random", "textoverlay_empty", "blank")
OVERLAYS = ("textoverlay", "textoverlay_random", "textoverlay_empty")
WHITE = (255, 255, 255)


def grid_image(width: int, height: int) -> Image.Image:
    """Every column and row distinct, no pixel pure black or pure white."""
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    red = 10 + (7 * x + 3 * y) % 230
    green = 10 + (5 * y + x) % 230
    blue = 10 + (11 * x + 13 * y) % 230
    pixels = np.stack(np.broadcast_arrays(red, green, blue), axis=-1).astype(np.uint8)
    return Image.fromarray(pixels)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


def photo() -> Image.Image:
    """A real photograph, small enough for every family to run quickly."""
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((96, 72), Image.Resampling.BILINEAR)


def make_sample(sample_id: str = "s1", image: Image.Image | None = None,
                n_options: int = 5, kind: str = "mcq") -> Sample:
    options = ("Yes", "No") if kind == "yesno" else tuple(f"option {i}" for i in range(n_options))
    return Sample(sample_id, image if image is not None else grid_image(160, 64),
                  "What is shown?", options, kind=kind)


def context_for(sample: Sample, family: str, base_prediction: int | None = 1) -> VariantContext:
    return VariantContext(base_prediction, rng_for(0, sample.id, family))


def default_variants(name: str, sample: Sample | None = None) -> list[Variant]:
    sample = sample or make_sample()
    return get_family(name).variants(sample, context_for(sample, name))


def apply(name: str, image: Image.Image, variant: Variant) -> Image.Image:
    return get_family(name).apply(image, variant, np.random.default_rng(0))


# --- registry -------------------------------------------------------------------------


@pytest.mark.parametrize("name", OUR_FAMILIES)
def test_family_is_registered_and_loads(name):
    assert name in family_names()
    family = get_family(name)
    assert isinstance(family, PerturbationFamily)
    assert family.name == name
    assert family.description


def test_overlay_families_share_the_textoverlay_tag_and_need_the_prediction():
    for name in OUR_FAMILIES:
        family = get_family(name)
        assert ("textoverlay" in family.tags) == (name in OVERLAYS)
        assert family.needs_base_prediction == (name in OVERLAYS)


# --- default grids --------------------------------------------------------------------

SHIFTS = [-16, -12, -8, -4, 4, 8, 12, 16]


@pytest.mark.parametrize("name, params, intensities", [
    ("translation", [{"dx": d} for d in SHIFTS], [abs(d) / 32 for d in SHIFTS]),
    ("padcrop", [{"n": n} for n in SHIFTS], [abs(n) / 32 for n in SHIFTS]),
    ("scale", [{"factor": 0.9}], [10 / 50]),
    ("scale_pad", [{"factor": 0.9, "background": "black"}, {"factor": 0.9, "background": "white"}],
     [0.2, 0.2]),
    ("rotation", [{"degrees": 30}, {"degrees": -30}], [1 / 3, 1 / 3]),
    # 5 options, clean prediction 1 ("B"): the first three others are A, C, D.
    ("textoverlay", [{"label": label, "level": 4} for label in "ACD"], [0.5] * 3),
    ("textoverlay_empty", [{"label": label, "level": 4} for label in "ACD"], [0.5] * 3),
    ("blank", [{"level": 1}], [1.0]),
])
def test_default_grid(name, params, intensities):
    variants = default_variants(name)
    assert [v.family for v in variants] == [name] * len(params)
    assert [v.param_dict for v in variants] == params
    assert [v.intensity for v in variants] == pytest.approx(intensities)


def test_random_overlay_grid_has_the_semantic_count_and_valid_texts():
    sample = make_sample()
    variants = default_variants("textoverlay_random", sample)
    assert len(variants) == len(default_variants("textoverlay", sample)) == 3
    # One per semantic slot, naming the same label: its box is that slot's box.
    assert [v.param_dict["label"] for v in variants] == [v.param_dict["label"]
                                                          for v in default_variants("textoverlay", sample)]
    for variant in variants:
        assert set(variant.param_dict) == {"level", "label", "text"}
        assert variant.param_dict["level"] == 4 and variant.intensity == 0.5
        assert re.fullmatch(r"[A-Z0-9]{6,12}", variant.param_dict["text"])


@pytest.mark.parametrize("n_options, kind, base, expected", [
    (5, "mcq", 1, ["A", "C", "D"]),   # capped at three, in option order
    (5, "mcq", 0, ["B", "C", "D"]),
    (4, "mcq", 3, ["A", "B", "C"]),
    (3, "mcq", 2, ["A", "B"]),
    (2, "yesno", 0, ["No"]),
    (2, "yesno", 1, ["Yes"]),
])
def test_overlay_labels_are_the_options_other_than_the_prediction(n_options, kind, base, expected):
    sample = make_sample(n_options=n_options, kind=kind)
    for name in ("textoverlay", "textoverlay_empty"):
        variants = get_family(name).variants(sample, context_for(sample, name, base))
        assert [v.param_dict["label"] for v in variants] == expected
    random_variants = get_family("textoverlay_random").variants(
        sample, context_for(sample, "textoverlay_random", base))
    assert len(random_variants) == len(expected)


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_without_or_with_a_bad_prediction_is_refused(name):
    sample = make_sample("item-42", n_options=4)
    family = get_family(name)
    with pytest.raises(ConfigError, match="item-42"):
        family.variants(sample, context_for(sample, name, None))
    with pytest.raises(DataError, match="item-42"):
        family.variants(sample, context_for(sample, name, 4))


@pytest.mark.parametrize("name", OUR_FAMILIES)
def test_params_are_json_safe_and_replay_without_hidden_state(name):
    image = photo()
    sample = make_sample(image=image)
    for variant in default_variants(name, sample):
        assert all(type(value) in (int, float, str) for value in variant.param_dict.values())
        restored = Variant.of(name, variant.intensity, **json.loads(json.dumps(variant.param_dict)))
        assert restored == variant
        fresh = get_family(name)  # a new instance: nothing carried over from variants()
        assert np.array_equal(pixels(fresh.apply(image, restored, np.random.default_rng(1))),
                              pixels(apply(name, image, variant)))


# --- levels ---------------------------------------------------------------------------

CHOICES = {
    "translation": [{"direction": 1}, {"direction": -1}],
    "padcrop": [{"mode": "pad"}, {"mode": "crop"}],
    "scale": [{}],
    "scale_pad": [{"background": "black"}, {"background": "white"}],
    "rotation": [{"sign": 1}, {"sign": -1}],
    "textoverlay": [{"label": "B"}],
    "textoverlay_random": [{"text": "X7Q2KD"}, {"seed": 3}],
    "textoverlay_empty": [{"label": "B"}],
    "blank": [{}],
}
MAX_LEVELS = {"translation": 32, "padcrop": 32, "scale": 50, "scale_pad": 50, "rotation": 90,
              "textoverlay": 8, "textoverlay_random": 8, "textoverlay_empty": 8, "blank": 1}


@pytest.mark.parametrize("name", OUR_FAMILIES)
def test_level_zero_is_the_identity(name):
    image = grid_image(40, 36)
    family = get_family(name)
    for choices in CHOICES[name]:
        variant = family.at_level(0, **choices)
        assert variant.intensity == 0.0
        out = family.apply(image, variant, np.random.default_rng(0))
        assert out.size == image.size and out.mode == "RGB"
        assert np.array_equal(pixels(out), pixels(image))


@pytest.mark.parametrize("name", OUR_FAMILIES)
def test_levels_map_linearly_onto_intensity(name):
    family = get_family(name)
    assert family.max_level == MAX_LEVELS[name]
    for level in range(family.max_level + 1):
        assert family.at_level(level, **CHOICES[name][0]).intensity == pytest.approx(
            level / MAX_LEVELS[name])
    with pytest.raises(ValueError):
        family.at_level(family.max_level + 1)
    with pytest.raises(ValueError):
        family.at_level(-1)


@pytest.mark.parametrize("name, level, choices, params", [
    ("translation", 5, {"direction": -1}, {"dx": -5}),
    ("translation", 32, {}, {"dx": 32}),
    ("padcrop", 7, {"mode": "crop"}, {"n": -7}),
    ("padcrop", 7, {}, {"n": 7}),
    ("scale", 25, {}, {"factor": 0.75}),
    ("scale", 50, {}, {"factor": 0.5}),
    ("scale_pad", 10, {"background": "white"}, {"factor": 0.9, "background": "white"}),
    ("rotation", 45, {"sign": -1}, {"degrees": -45}),
    ("textoverlay", 6, {"label": "C"}, {"level": 6, "label": "C"}),
    ("textoverlay_random", 2, {"text": "ABC123"}, {"level": 2, "label": "A", "text": "ABC123"}),
    ("textoverlay_random", 2, {"label": "C", "text": "ABC123"}, {"level": 2, "label": "C", "text": "ABC123"}),
    ("blank", 1, {}, {"level": 1}),
])
def test_at_level_params(name, level, choices, params):
    assert get_family(name).at_level(level, **choices).param_dict == params


def test_random_overlay_at_level_draws_its_text_from_the_seed():
    family = get_family("textoverlay_random")
    a = family.at_level(4, seed=7).param_dict["text"]
    assert a == family.at_level(4, seed=7).param_dict["text"]
    assert re.fullmatch(r"[A-Z0-9]{6,12}", a)
    assert {family.at_level(4, seed=s).param_dict["text"] for s in range(8)} != {a}


@pytest.mark.parametrize("name, choices", [
    ("translation", {"direction": 2}),
    ("padcrop", {"mode": "zoom"}),
    ("scale_pad", {"background": "grey"}),
    ("rotation", {"sign": 0}),
    ("translation", {"directon": 1}),  # a typo must not be ignored
    ("scale", {"background": "white"}),
    ("blank", {"colour": "black"}),
    ("textoverlay", {"label": ""}),
    ("textoverlay_random", {"text": "lower case"}),
    ("textoverlay_random", {"label": ""}),
])
def test_bad_choices_name_the_family_and_key(name, choices):
    key = next(iter(choices))
    with pytest.raises(ConfigError, match=rf"{name}.*{key}"):
        get_family(name).at_level(1, **choices)


@pytest.mark.parametrize("name", OUR_FAMILIES)
def test_apply_refuses_another_familys_variant_or_missing_params(name):
    family = get_family(name)
    image = grid_image(40, 36)
    other = "blank" if name != "blank" else "translation"
    foreign = get_family(other).at_level(1)
    with pytest.raises(ConfigError, match=other):
        family.apply(image, foreign, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="lacks param"):
        family.apply(image, Variant.of(name, 0.5), np.random.default_rng(0))


# --- purity ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", OUR_FAMILIES)
def test_apply_is_pure_and_deterministic(name):
    image = photo()
    before = image.tobytes()
    for variant in default_variants(name, make_sample(image=image)):
        first = apply(name, image, variant)
        second = get_family(name).apply(image, variant, np.random.default_rng(12345))
        assert first is not image and first.mode == "RGB"
        assert np.array_equal(pixels(first), pixels(second))
        assert image.tobytes() == before
        first.putpixel((0, 0), (1, 2, 3))  # the result shares no buffer with the input
        assert image.tobytes() == before


@pytest.mark.parametrize("name", OUR_FAMILIES)
def test_non_rgb_input_gives_rgb_output(name):
    grey = grid_image(40, 36).convert("L")
    for variant in default_variants(name, make_sample(image=grey))[:1]:
        assert apply(name, grey, variant).mode == "RGB"


# --- translation ----------------------------------------------------------------------


def hand_rolled_shift(src: np.ndarray, dx: int) -> np.ndarray:
    height, width = src.shape[:2]
    out = np.empty_like(src)
    for y in range(height):
        for x in range(width):
            out[y, x] = src[y, (x - dx) % width]
    return out


@pytest.mark.parametrize("dx", SHIFTS + [0, 1, 11, 12, -13, 32])
def test_translation_is_a_cyclic_shift(dx):
    image = grid_image(12, 8)  # shifts beyond the width wrap around more than once
    variant = Variant.of("translation", abs(dx) / 32, dx=dx)
    assert np.array_equal(pixels(apply("translation", image, variant)),
                          hand_rolled_shift(pixels(image), dx))


def test_positive_translation_moves_content_right():
    src = pixels(grid_image(12, 8))
    out = pixels(apply("translation", grid_image(12, 8), get_family("translation").at_level(1)))
    assert np.array_equal(out[:, 1], src[:, 0])
    assert np.array_equal(out[:, 0], src[:, 11])


# --- padcrop --------------------------------------------------------------------------


def test_pad_adds_an_exactly_black_border_around_the_original():
    image = grid_image(12, 8)
    out = pixels(apply("padcrop", image, Variant.of("padcrop", 0.125, n=4)))
    assert out.shape == (16, 20, 3)
    assert (out[:4] == 0).all() and (out[-4:] == 0).all()
    assert (out[:, :4] == 0).all() and (out[:, -4:] == 0).all()
    assert np.array_equal(out[4:12, 4:16], pixels(image))


def test_crop_equals_slicing():
    image = grid_image(12, 8)
    out = pixels(apply("padcrop", image, Variant.of("padcrop", 2 / 32, n=-2)))
    assert out.shape == (4, 8, 3)
    assert np.array_equal(out, pixels(image)[2:6, 2:10])


@pytest.mark.parametrize("n", SHIFTS)
def test_padcrop_sizes(n):
    out = apply("padcrop", grid_image(40, 36), Variant.of("padcrop", abs(n) / 32, n=n))
    assert out.size == (40 + 2 * n, 36 + 2 * n)


def test_crop_that_would_empty_the_image_is_refused():
    with pytest.raises(DataError, match="12x8"):
        apply("padcrop", grid_image(12, 8), Variant.of("padcrop", 0.125, n=-4))


# --- scale ----------------------------------------------------------------------------


@pytest.mark.parametrize("size, level, expected", [
    ((20, 12), 10, (18, 11)),   # 18.0, 10.8 -> 11
    ((10, 10), 10, (9, 9)),
    ((100, 50), 50, (50, 25)),
    ((33, 7), 25, (25, 5)),     # 24.75 -> 25, 5.25 -> 5
    ((1, 1), 50, (1, 1)),       # never below one pixel
])
def test_scale_sizes(size, level, expected):
    out = apply("scale", grid_image(*size), get_family("scale").at_level(level))
    assert out.size == expected


def test_scale_is_pils_bicubic_resize_and_keeps_a_flat_colour():
    image = grid_image(20, 12)
    out = apply("scale", image, get_family("scale").at_level(10))
    assert np.array_equal(pixels(out), pixels(image.resize((18, 11), Image.Resampling.BICUBIC)))
    flat = Image.new("RGB", (20, 12), (128, 64, 200))
    assert (pixels(apply("scale", flat, get_family("scale").at_level(10)))
            == (128, 64, 200)).all()


# --- scale_pad ------------------------------------------------------------------------


@pytest.mark.parametrize("background, colour", [("black", (0, 0, 0)), ("white", WHITE)])
@pytest.mark.parametrize("level, box", [
    (10, (1, 0, 19, 11)),   # 18x11 pasted at ((20-18)//2, (12-11)//2) = (1, 0)
    (50, (5, 3, 15, 9)),    # 10x6 pasted at (5, 3)
])
def test_scale_pad_pastes_centred_on_the_original_canvas(background, colour, level, box):
    left, top, right, bottom = box
    content = (128, 64, 200)
    flat = Image.new("RGB", (20, 12), content)
    variant = get_family("scale_pad").at_level(level, background=background)
    out = pixels(apply("scale_pad", flat, variant))
    assert out.shape == (12, 20, 3)
    inside = np.zeros((12, 20), dtype=bool)
    inside[top:bottom, left:right] = True
    assert (out[inside] == content).all()
    assert (out[~inside] == colour).all()
    assert (out[[0, 0, -1, -1], [0, -1, 0, -1]] == colour).all()


def test_scale_pad_puts_an_odd_leftover_on_the_right_and_bottom():
    # 25x15 at factor 0.8 -> 20x12; leftovers 5 and 3 -> offset (5 // 2, 3 // 2) = (2, 1).
    flat = Image.new("RGB", (25, 15), (128, 64, 200))
    out = pixels(apply("scale_pad", flat, get_family("scale_pad").at_level(20)))
    content = (out == (128, 64, 200)).all(axis=-1)
    assert np.array_equal(content, box_mask((15, 25), (2, 1, 22, 13)))


def test_scale_pad_content_is_the_scaled_image():
    image = grid_image(20, 12)
    out = pixels(apply("scale_pad", image, get_family("scale_pad").at_level(10)))
    scaled = pixels(image.resize((18, 11), Image.Resampling.BICUBIC))
    assert np.array_equal(out[0:11, 1:19], scaled)


# --- rotation -------------------------------------------------------------------------


def rotated_bounding_size(width: int, height: int, degrees: float) -> tuple[int, int]:
    """Bounding box of the image's corners rotated about its centre, outward to whole px."""
    theta = math.radians(degrees)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    centre = np.array([width / 2, height / 2])
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]]) - centre
    moved = corners @ rotation.T + centre
    return (math.ceil(moved[:, 0].max() - 1e-9) - math.floor(moved[:, 0].min() + 1e-9),
            math.ceil(moved[:, 1].max() - 1e-9) - math.floor(moved[:, 1].min() + 1e-9))


def test_rotation_by_30_degrees_expands_to_the_rotated_bounding_box():
    # W cos30 + H sin30 = 17.32 + 6 = 23.32 about x = 10: [-1.66, 21.66] -> 2 + 22 = 24;
    # W sin30 + H cos30 = 10 + 10.39 = 20.39 about y = 6: [-4.20, 16.20] -> 5 + 17 = 22.
    for variant in default_variants("rotation"):
        out = apply("rotation", grid_image(20, 12), variant)
        assert out.size == (24, 22) == rotated_bounding_size(20, 12, 30)
        corners = pixels(out)[[0, 0, -1, -1], [0, -1, 0, -1]]
        assert (corners == WHITE).all()


@pytest.mark.parametrize("size", [(20, 12), (13, 31)])
def test_rotation_sizes_for_every_level(size):
    family = get_family("rotation")
    image = grid_image(*size)
    for level in range(1, family.max_level + 1, 7):
        for sign in (1, -1):
            out = family.apply(image, family.at_level(level, sign=sign), np.random.default_rng(0))
            assert out.size == rotated_bounding_size(*size, level)


def test_positive_rotation_turns_counter_clockwise():
    canvas = np.full((41, 41, 3), 255, dtype=np.uint8)
    canvas[19:22, 25:39] = 0  # a bar to the right of the centre
    out = pixels(apply("rotation", Image.fromarray(canvas), get_family("rotation").at_level(90)))
    assert out.shape == (41, 41, 3)
    assert (out[25:39, 20] > 200).all()  # below the centre: empty
    assert (out[3:15, 20] < 50).all()    # above the centre: the bar


# --- text overlays --------------------------------------------------------------------


@pytest.mark.parametrize("height, level, size", [
    (64, 4, 14), (640, 4, 20), (1000, 4, 31),   # max(14, H // 32)
    (64, 8, 28), (64, 2, 7), (64, 3, 10),       # 10.5 rounds half to even
    (64, 1, 4), (20, 1, 4),                     # 3.5 -> 4
])
def test_font_size(height, level, size):
    from vlmgate.perturbations.textoverlay import font_size

    assert font_size(height, level) == size


def hand_box(text: str, font_size: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Text bbox grown by 4 px on each side, centred with floor division (half-open)."""
    left, top, right, bottom = load_font("DejaVu Sans", font_size).getbbox(text)
    box_width, box_height = right - left + 8, bottom - top + 8
    x0, y0 = (width - box_width) // 2, (height - box_height) // 2
    return x0, y0, x0 + box_width, y0 + box_height


def box_mask(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    left, top, right, bottom = box
    mask[max(top, 0):bottom, max(left, 0):right] = True
    return mask


def reference_ink(text: str, font_size: int, image_size: tuple[int, int]) -> np.ndarray:
    """Where ``text`` inks when its getbbox's top-left is put 4 px inside the hand box."""
    from PIL import ImageDraw

    font = load_font("DejaVu Sans", font_size)
    left, top = font.getbbox(text)[:2]
    box_left, box_top = hand_box(text, font_size, *image_size)[:2]
    canvas = Image.new("L", image_size, 0)
    ImageDraw.Draw(canvas).text((box_left + 4 - left, box_top + 4 - top), text, font=font, fill=255)
    return np.asarray(canvas) > 0


def check_text_box(out: np.ndarray, src: np.ndarray, text: str, font_size: int) -> np.ndarray:
    """Outside the hand box unchanged; inside, white except red-ish ink exactly where the
    text inks when placed by hand, never in the 4 px padding. Returns the ink mask."""
    height, width = src.shape[:2]
    box = hand_box(text, font_size, width, height)
    inside = box_mask((height, width), box)
    assert np.array_equal(out[~inside], src[~inside])
    region = out[inside]
    assert (region[:, 0] == 255).all() and (region[:, 1] == region[:, 2]).all()
    ink = (out != 255).any(axis=-1) & inside
    assert np.array_equal(ink, reference_ink(text, font_size, (width, height)))
    left, top, right, bottom = box
    padding_ring = inside & ~box_mask((height, width), (left + 4, top + 4, right - 4, bottom - 4))
    assert not ink[padding_ring].any()
    return ink


@pytest.mark.parametrize("label", ["A", "C", "No"])
def test_semantic_overlay_box_and_text_pixels(label):
    image = grid_image(160, 64)
    out = pixels(apply("textoverlay", image, get_family("textoverlay").at_level(4, label=label)))
    ink = check_text_box(out, pixels(image), f"Answer is {label}", 14)
    assert ink.sum() > 50
    assert ((out == (255, 0, 0)).all(axis=-1) & ink).any()   # solid red stems
    ys, xs = np.nonzero(ink)
    left, top, right, bottom = hand_box(f"Answer is {label}", 14, 160, 64)
    # The ink fills the text bbox to within a pixel of side bearing.
    assert xs.min() - (left + 4) <= 1 and (right - 4) - (xs.max() + 1) <= 1
    assert ys.min() - (top + 4) <= 1 and (bottom - 4) - (ys.max() + 1) <= 1


def test_overlay_box_for_hand_checked_metrics():
    from vlmgate.perturbations.textoverlay import overlay_box

    left, top = load_font("DejaVu Sans", 14).getbbox("Answer is A")[:2]
    box = overlay_box(load_font("DejaVu Sans", 14), "Answer is A", (160, 64))
    assert (box.left, box.top, box.right, box.bottom) == hand_box("Answer is A", 14, 160, 64)
    assert (box.text_x, box.text_y) == (box.left + 4 - left, box.top + 4 - top)


def test_overlay_font_follows_the_image_height_and_level():
    image = grid_image(200, 640)  # base size max(14, 640 // 32) = 20
    family = get_family("textoverlay_empty")
    for level, size in [(4, 20), (2, 10), (8, 40)]:
        out = pixels(family.apply(image, family.at_level(level, label="B"), np.random.default_rng(0)))
        changed = (out != pixels(image)).any(axis=-1)
        assert np.array_equal(changed, box_mask(changed.shape, hand_box("Answer is B", size, 200, 640)))


@pytest.mark.parametrize("label", ["A", "D", "Yes"])
def test_empty_overlay_has_the_semantic_geometry_and_no_text(label):
    image = grid_image(160, 64)
    empty = pixels(apply("textoverlay_empty", image,
                         get_family("textoverlay_empty").at_level(4, label=label)))
    semantic = pixels(apply("textoverlay", image, get_family("textoverlay").at_level(4, label=label)))
    box = box_mask((64, 160), hand_box(f"Answer is {label}", 14, 160, 64))
    assert (empty[box] == WHITE).all()
    assert np.array_equal(empty[~box], pixels(image)[~box])
    # Same area as the semantic overlay: identical outside, and white wherever it has no ink.
    assert np.array_equal(empty[~box], semantic[~box])
    assert ((semantic[box] == WHITE).all(axis=-1)).sum() < box.sum()


def test_random_overlay_changes_exactly_the_semantic_overlays_box():
    """Spec §1: the content control is drawn "in the same boxes": for each slot it changes
    the pixels of the semantic overlay naming that label and no others, and writes there as
    many of its characters as fit, on the semantic text's baseline."""
    from vlmgate.perturbations.textoverlay import fitted_text

    image = grid_image(224, 224)
    sample = make_sample(image=image)
    font = load_font("DejaVu Sans", 14)
    # "Y" overhangs its origin (getbbox left < 0); 12 wide capitals are far wider than the box.
    assert font.getbbox("YR6TNOP")[0] < 0
    family = get_family("textoverlay_random")
    extra = [family.at_level(4, label="B", text="YR6TNOP"), family.at_level(4, label="D", text="MWMWMWMWMWMW"),
             family.at_level(4, label="Yes", text="QJ0QJ0QJ0")]
    for variant in default_variants("textoverlay_random", sample) + extra:
        label, text = variant.param_dict["label"], variant.param_dict["text"]
        out = pixels(apply("textoverlay_random", image, variant))
        semantic = pixels(apply("textoverlay", image, get_family("textoverlay").at_level(4, label=label)))
        empty = pixels(apply("textoverlay_empty", image, get_family("textoverlay_empty").at_level(4, label=label)))
        box = box_mask((224, 224), hand_box(f"Answer is {label}", 14, 224, 224))
        # The same pixels as both other overlays of the slot: everything outside the box kept.
        changed = (out != pixels(image)).any(axis=-1)
        assert np.array_equal(changed, (empty != pixels(image)).any(axis=-1))
        assert np.array_equal(out[~box], semantic[~box]) and np.array_equal(out[~box], pixels(image)[~box])
        # Inside: white and red ink only, none in the left / right padding (a descender of Q or J
        # may reach into the bottom padding: the semantic text has none).
        region = out[box]
        assert (region[:, 0] == 255).all() and (region[:, 1] == region[:, 2]).all()
        ink = (out != 255).any(axis=-1) & box
        left, top, right, bottom = hand_box(f"Answer is {label}", 14, 224, 224)
        assert not ink[box & ~box_mask((224, 224), (left + 4, top, right - 4, bottom))].any()
        semantic_left, _, semantic_right, _ = font.getbbox(f"Answer is {label}")
        written = fitted_text(font, text, semantic_right - semantic_left)
        assert text.startswith(written) and ink.sum() > 30
        columns = np.flatnonzero(ink.any(axis=0))
        ink_left, _, ink_right, _ = font.getbbox(written)
        # Its ink starts where the semantic ink starts (a faint antialiased edge may round to white).
        assert left + 4 <= columns[0] <= left + 5
        assert left + 4 + ink_right - ink_left - 1 <= columns[-1] + 1 <= left + 4 + ink_right - ink_left
        # Same baseline as the semantic text: same origin y.
        rows = np.flatnonzero(ink.any(axis=1))
        origin_y = top + 4 - font.getbbox(f"Answer is {label}")[1]
        assert origin_y + font.getbbox(written)[1] <= rows[0] <= origin_y + font.getbbox(written)[1] + 1
    # The fitted prefix: whole characters, the longest that is not wider than the box text.
    width = font.getbbox("Answer is B")[2] - font.getbbox("Answer is B")[0]
    for text in ("MWMWMWMWMWMW", "ABC123XYZ789", "IIIIII"):
        written = fitted_text(font, text, width)
        assert font.getbbox(written)[2] - font.getbbox(written)[0] <= width
        longer = font.getbbox(text[:len(written) + 1])
        assert written == text or longer[2] - longer[0] > width
    assert fitted_text(font, "WWW", 1) == "W"  # at least one character


def test_random_overlay_ink_never_leaves_the_box_at_any_level():
    """A descender (Q, J) at the largest size would cross the bottom padding: it is clipped."""
    image = grid_image(224, 224)
    for level in range(1, 9):
        variant = get_family("textoverlay_random").at_level(level, label="B", text="QJQJQJ")
        empty = get_family("textoverlay_empty").at_level(level, label="B")
        out = pixels(apply("textoverlay_random", image, variant))
        blank = pixels(apply("textoverlay_empty", image, empty))
        box = (blank == 255).all(axis=-1)
        assert np.array_equal(out[~box], blank[~box])
        assert (out[box][:, 0] == 255).all()


def test_random_text_is_deterministic_per_sample_and_differs_between_samples():
    def texts(sample_id: str) -> list[str]:
        sample = make_sample(sample_id)
        return [v.param_dict["text"] for v in default_variants("textoverlay_random", sample)]

    assert texts("s1") == texts("s1")
    assert texts("s1") != texts("s2")
    assert len(set(texts("s1"))) == 3


def test_random_text_covers_every_length_and_only_the_alphabet():
    from vlmgate.perturbations.textoverlay import random_text

    rng = np.random.default_rng(0)
    drawn = [random_text(rng) for _ in range(2000)]
    assert {len(t) for t in drawn} == set(range(6, 13))
    assert set("".join(drawn)) == set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def test_overlay_larger_than_the_image_is_clipped():
    image = grid_image(20, 12)
    out = pixels(apply("textoverlay", image, get_family("textoverlay").at_level(4, label="A")))
    assert out.shape == (12, 20, 3)
    assert (out[:, :, 0] == 255).all()  # the box covers it all: white or red ink


# --- blank ----------------------------------------------------------------------------


def test_blank_is_all_white_of_the_same_size():
    image = grid_image(20, 12)
    (variant,) = default_variants("blank")
    out = pixels(apply("blank", image, variant))
    assert out.shape == (12, 20, 3) and (out == 255).all()
