"""Turning stored image files into the opaque RGB picture the model sees.

Expected pixels are computed by hand from the documented rules (16-bit grey: the high
byte; float: ``round(255 * v)`` for v in [0, 1]; transparency: composited onto white),
never by calling the decoder under test.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import PIL
import pytest
from PIL import Image, JpegImagePlugin

from vlmgate.benchmarks import image_decoding
from vlmgate.benchmarks.base import DEFAULT_MAX_PIXELS, MAX_SIDE
from vlmgate.benchmarks.image_decoding import ImageDecoder, decode_image
from vlmgate.errors import DataError

#: 16-bit grey values and their 8-bit images under the high-byte rule (v >> 8).
GREY16 = [0, 255, 256, 511, 32767, 32768, 65279, 65535]
GREY16_AS_8 = [0, 0, 1, 1, 127, 128, 254, 255]


def encoded(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    return decode_image(data, "test.img", max_pixels=max_pixels)


# -- bit depths ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grey_keeps_its_grey_levels(fmt):
    source = Image.fromarray(np.array([GREY16], dtype=np.uint16))
    assert source.mode == "I;16"
    out = pixels(decode(encoded(source, fmt)))
    assert out[0, :, 0].tolist() == GREY16_AS_8
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 0] == out[..., 2]).all()


def test_16_bit_grey_matches_pils_16_bit_colour_rule():
    """The same picture saved as 16-bit grey and as 16-bit RGB decodes to the same pixels."""
    grey = np.array([GREY16], dtype=np.uint16)
    rgb_png = _png_rgb16(np.stack([grey] * 3, axis=-1))
    assert (pixels(decode(rgb_png)) == pixels(decode(encoded(Image.fromarray(grey))))).all()


def _png_rgb16(values: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG written byte by byte (PIL cannot write one)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, _ = values.shape
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    rows = b"".join(b"\0" + values[y].astype(">u2").tobytes() for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def test_16_bit_netpbm_opened_as_mode_i_uses_the_same_rule():
    data = b"P5 8 1 65535\n" + np.array(GREY16, dtype=">u2").tobytes()
    assert Image.open(io.BytesIO(data)).mode == "I"
    assert pixels(decode(data))[0, :, 0].tolist() == GREY16_AS_8


def test_32_bit_integer_pixels_are_refused_naming_the_file():
    data = encoded(Image.fromarray(np.array([[0, 70000]], dtype=np.int32)), "TIFF")
    with pytest.raises(DataError, match=r"test\.img: .*32-bit integer.*save it as an 8- or 16-bit"):
        decode(data)


def test_float_pixels_in_unit_range_scale_to_255():
    values = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)
    out = pixels(decode(encoded(Image.fromarray(values), "TIFF")))
    assert out[0, :, 0].tolist() == [0, 64, 128, 255]  # 63.75 -> 64, 127.5 -> 128 (half to even)


@pytest.mark.parametrize("bad", [2.0, -0.5, float("nan")])
def test_float_pixels_outside_unit_range_are_refused(bad):
    values = np.array([[0.0, bad]], dtype=np.float32)
    with pytest.raises(DataError, match=r"test\.img: floating-point pixels .*\[0, 1\]"):
        decode(encoded(Image.fromarray(values), "TIFF"))


# -- transparency: composited onto white -----------------------------------------------------


def test_transparent_palette_pixel_becomes_white_not_its_hidden_colour():
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255])  # index 0 red, index 1 blue
    image.putpixel((1, 0), 1)
    out = pixels(decode(encoded(image, transparency=0)))
    assert out[0].tolist() == [[255, 255, 255], [0, 0, 255]]


def test_rgba_alpha_is_composited_onto_white():
    image = Image.new("RGBA", (3, 1))
    image.putdata([(255, 0, 0, 0), (0, 0, 0, 128), (10, 20, 30, 255)])
    out = pixels(decode(encoded(image)))
    # 255 * (255 - 128) / 255 = 127 for the half-transparent black
    assert out[0].tolist() == [[255, 255, 255], [127, 127, 127], [10, 20, 30]]


def test_grey_alpha_is_composited_onto_white():
    image = Image.new("LA", (2, 1))
    image.putdata([(0, 0), (40, 255)])
    assert pixels(decode(encoded(image)))[0].tolist() == [[255, 255, 255], [40, 40, 40]]


def test_palette_alpha_is_composited_onto_white():
    """No common file format stores PA, so the mode rule is checked on the image itself."""
    image = Image.new("PA", (2, 1))
    image.putpalette([200, 0, 0, 0, 90, 0])
    image.putdata([(0, 0), (1, 255)])
    assert pixels(image_decoding.opaque_rgb(image, "test.img"))[0].tolist() == [[255, 255, 255], [0, 90, 0]]


def test_grey_and_rgb_transparency_keys_become_white():
    grey = Image.new("L", (2, 1), 7)
    grey.putpixel((1, 0), 200)
    assert pixels(decode(encoded(grey, transparency=7)))[0].tolist() == [[255] * 3, [200] * 3]
    rgb = Image.new("RGB", (2, 1), (1, 2, 3))
    rgb.putpixel((1, 0), (9, 9, 9))
    assert pixels(decode(encoded(rgb, transparency=(1, 2, 3))))[0].tolist() == [[255] * 3, [9] * 3]


def test_16_bit_grey_transparency_key_becomes_white():
    grey = Image.fromarray(np.array([[1000, 40000]], dtype=np.uint16))
    out = pixels(decode(encoded(grey, transparency=1000)))
    assert out[0].tolist() == [[255] * 3, [40000 >> 8] * 3]


# -- other colour spaces ---------------------------------------------------------------------


@pytest.mark.parametrize("mode,value,expected", [
    ("1", 1, (255, 255, 255)),
    ("1", 0, (0, 0, 0)),
    ("L", 100, (100, 100, 100)),
    ("CMYK", (0, 255, 0, 0), (255, 0, 255)),  # full magenta ink
    ("CMYK", (0, 0, 0, 0), (255, 255, 255)),  # no ink: paper white
    pytest.param("YCbCr", (255, 128, 128), (255, 255, 255), marks=pytest.mark.skipif(
        int(PIL.__version__.split(".")[0]) < 13, reason="Pillow < 13 cannot read the YCbCr TIFF it writes")),
])
def test_colour_spaces_decode_to_their_rgb(mode, value, expected):
    out = pixels(decode(encoded(Image.new(mode, (2, 2), value), "TIFF")))
    assert tuple(out[0, 0]) == expected


def test_lab_white_and_black_are_white_and_black():
    white = pixels(decode(encoded(Image.new("LAB", (1, 1), (255, 128, 128)), "TIFF")))[0, 0]
    black = pixels(decode(encoded(Image.new("LAB", (1, 1), (0, 128, 128)), "TIFF")))[0, 0]
    assert min(white) >= 250 and max(black) <= 5


# -- damaged files ---------------------------------------------------------------------------


def test_truncated_png_names_the_file():
    data = encoded(Image.new("RGB", (64, 64), (1, 2, 3)))
    noisy = encoded(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(DataError, match=r"test\.img: .*cannot be decoded.*replace"):
        decode(noisy[: len(noisy) // 2])
    with pytest.raises(DataError, match=r"test\.img: .*cannot be decoded"):
        decode(b"not an image" + data)


def test_a_directory_is_named_as_such(tmp_path):
    with pytest.raises(DataError, match=r"is a directory"):
        decode_image(tmp_path, "test.img", max_pixels=DEFAULT_MAX_PIXELS)


# -- the pixel budget ------------------------------------------------------------------------


def test_image_above_the_budget_is_refused_from_its_header():
    data = encoded(Image.new("RGB", (200, 100)))
    with pytest.raises(DataError) as info:
        decode(data, max_pixels=19_999)
    message = str(info.value)
    assert "test.img" in message and "200x100" in message and "20,000" in message and "19,999" in message
    assert "--vlmgate-max-pixels" in message and "max_pixels" in message and "downscale" in message
    assert decode(data, max_pixels=20_000).size == (200, 100)


def test_pils_own_bomb_check_never_fires_first(monkeypatch):
    """Below the budget PIL neither warns nor raises, however low its own limit; above, the
    refusal is vlmgate's (size and budget named), not a DecompressionBombError."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    data = encoded(Image.new("RGB", (100, 100), (5, 6, 7)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pixels(decode(data, max_pixels=10_000))[0, 0].tolist() == [5, 6, 7]
    with pytest.raises(DataError, match=r"100x100 .*10,000 pixels.*budget of 5,000"):
        decode(data, max_pixels=5_000)
    assert Image.MAX_IMAGE_PIXELS == 1_000  # restored


def test_budget_above_pils_limit_decodes_without_a_warning():
    """A budget raised past PIL's default limit lets PIL's check follow it (no warning)."""
    data = encoded(Image.new("1", (10_000, 9_000)))  # 90 MP: above PIL's 89.5 MP warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode(data, max_pixels=100_000_000).size == (MAX_SIDE, 922)


# -- downscale once --------------------------------------------------------------------------


class OpenCounter:
    """Counts how often the decoder reads each source."""

    def __init__(self, sources: dict[str, Path | bytes]):
        self.sources = sources
        self.reads: dict[str, int] = {key: 0 for key in sources}

    def reader(self, key: str):
        def read():
            self.reads[key] += 1
            return self.sources[key]
        return read


def test_large_sources_are_decoded_once_and_kept_downscaled():
    big = Image.fromarray(np.random.default_rng(1).integers(0, 255, (900, 2400, 3), dtype=np.uint8))
    counter = OpenCounter({"big": encoded(big), "small": encoded(Image.new("RGB", (20, 10), (3, 2, 1)))})
    decoder = ImageDecoder(max_pixels=DEFAULT_MAX_PIXELS)
    first = [decoder.decode(key, counter.reader(key), key) for key in ("big", "small")]
    second = [decoder.decode(key, counter.reader(key), key) for key in ("big", "small")]
    assert counter.reads == {"big": 1, "small": 2}  # small images are cheap to decode again
    assert first[0].size == (MAX_SIDE, 384)
    for a, b in zip(first, second):
        assert a.mode == b.mode == "RGB" and (pixels(a) == pixels(b)).all()  # lossless


def test_the_downscaled_memo_is_bounded():
    big = encoded(Image.new("RGB", (2048, 2048), (9, 9, 9)))
    counter = OpenCounter({"a": big, "b": big})
    decoder = ImageDecoder(max_pixels=DEFAULT_MAX_PIXELS,
                           memo_bytes=len(encoded(Image.new("RGB", (1024, 1024), (9, 9, 9)), compress_level=1)))
    for _ in range(2):
        for key in ("a", "b"):
            decoder.decode(key, counter.reader(key), key)
    assert counter.reads == {"a": 1, "b": 2}  # the first one kept, the one beyond the bound re-read


def test_large_jpegs_are_drafted_before_decoding(monkeypatch):
    drafts = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        drafts.append((self.size, size))
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    gradient = np.tile(np.linspace(0, 255, 4096, dtype=np.uint8), (2048, 1))
    source = Image.fromarray(np.stack([gradient] * 3, axis=-1))
    out = decode(encoded(source, "JPEG", quality=95))
    assert drafts == [((4096, 2048), (2 * MAX_SIDE, MAX_SIDE))]  # 2x the cap, as PIL's thumbnail()
    assert out.size == (MAX_SIDE, 512)
    full = np.asarray(source.resize((MAX_SIDE, 512), Image.Resampling.BICUBIC), dtype=float)
    assert np.abs(np.asarray(out, dtype=float) - full).mean() < 2.0
