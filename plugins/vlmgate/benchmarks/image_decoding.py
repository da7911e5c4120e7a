"""Turning a benchmark's stored image (a file, or the bytes of a table cell) into the picture
the model sees: opaque 8-bit RGB, at most ``MAX_SIDE`` px on its longest side.

Every benchmark image passes through here, so each rule below holds for ``jsonl:``
manifests and for SEED-Bench / POPE / MMMU tables alike. An image that cannot be turned
into that picture is a ``DataError`` naming it (the ``where`` its loader passes: the
manifest line and sample, or the table row and column) and the fix, never a traceback
and never a silently different picture.

**Pixel budget.** ``Image.open`` reads only the header, so the declared size is checked
against the budget (``BenchmarkOptions.max_pixels``) before any pixel is decoded; a
larger image is refused with its size, the budget and the two fixes. PIL's own
decompression-bomb guard would otherwise fire first, as an 88-line traceback naming no
file (or, between 89 and 179 MP, as a warning): while the header is read it is off, and
while pixels are decoded its limit is the budget, its warning an error, so it can only
fire for a file whose frames or tiles claim more than the header did, and then as the same
``DataError``.

**Modes** (PIL's name for the pixel format a file decodes to):

* ``1``, ``L``, ``P``, ``RGB``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: PIL's conversion
  to RGB (CMYK without an ICC transform, as PIL converts it; LAB through its colorimetric
  conversion).
* 16-bit grey (``I;16``, ``I;16B``, ``I;16L``, and ``I`` when the decoder reads 16-bit
  samples, as for 16-bit PGM / TIFF): the high byte, ``v >> 8``. That is the rule PIL
  itself applies to 16-bit-per-channel RGB and grey+alpha PNGs, so one picture decodes to
  the same pixels whether saved as 16-bit grey or 16-bit colour; it differs from the
  nearest level ``round(v / 257)`` by at most one. (A plain ``convert("RGB")`` clips every
  value above 255 to white.)
* ``I`` with 32-bit samples: refused. The file does not say which value is white, and any
  guess (the image's own maximum, 2**32 - 1) silently changes contrast.
* ``F`` (floating point): values in [0, 1] are ``round(255 * v)`` (halves to even);
  anything else (negative, above 1, NaN) is refused with the range found, for the same
  reason as 32-bit integers.
* Transparency (an alpha band: ``LA``, ``PA``, ``RGBA``, ``La``, ``RGBa``; or a
  ``transparency`` key: a palette's alpha, a grey or RGB colour key): composited onto
  white. The model sees an opaque picture, and a transparent pixel's stored colour is
  invisible in every viewer, so showing it would feed the model a picture nobody saw.

**Downscale once.** The engine iterates a benchmark once per pass (``engine.SampleSet``),
so a 12000-px photo would be decoded in full on every pass to make the same 1024-px
picture. ``ImageDecoder`` keeps the capped picture of a source larger than the cap,
re-encoded as PNG (lossless: every pass sees identical pixels), and a JPEG larger than
twice the cap is decoded at a reduced scale first (PIL's ``draft``, at twice the capped
size as PIL's ``thumbnail`` does, so the final bicubic step still has the detail to work
from).
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from vlmgate.benchmarks.base import MAX_SIDE, cap_size, capped_size
from vlmgate.errors import DataError

#: Where a stored image comes from: a file, or the encoded bytes of a table cell.
Source = Path | bytes
#: Bytes the downscaled memo of one benchmark may hold (about 100-200 photos at 1024 px).
MEMO_BYTES = 256 * 2**20
#: A JPEG is drafted to at least this many times its capped size (PIL ``thumbnail``'s
#: ``reducing_gap`` default): the DCT-domain reduction is coarse, the bicubic step is not.
DRAFT_GAP = 2
#: ``Image.MAX_IMAGE_PIXELS`` is one global of PIL's; decodes that change it take turns.
_PIL_LIMIT = threading.Lock()
_WHITE = (255, 255, 255, 255)
_ALPHA_BANDS = frozenset("Aa")


class ImageDecoder:
    """A benchmark's decoder: ``decode_image`` under one pixel budget, large sources decoded once.

    ``key`` names a source for the memo (the image path, or the table row and column).
    The memo holds at most ``memo_bytes``; what does not fit is decoded again on each
    pass (correct, only slower). It keeps the first sources, not the most recent: passes
    walk the samples in the same order, so a least-recently-used memo smaller than the
    scan would evict every entry just before its next use. Sources within the cap are not
    kept: decoding them again costs what decoding the kept PNG would, and keeping them
    would copy the benchmark into memory.
    """

    def __init__(self, max_pixels: int, *, memo_bytes: int = MEMO_BYTES):
        self.max_pixels = max_pixels
        self.memo_bytes = memo_bytes
        self._memo: dict[Hashable, bytes] = {}
        self._held = 0

    def decode(self, key: Hashable, read: Callable[[], Source], where: str):
        """The picture of the source ``read()`` gives, from the memo when it holds ``key``."""
        from PIL import Image

        kept = self._memo.get(key)
        if kept is not None:
            with Image.open(io.BytesIO(kept)) as image:
                image.load()
                return image
        image, source_size = _decode(read(), where, self.max_pixels)
        if max(source_size) > MAX_SIDE:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", compress_level=1)
            if self._held + buffer.tell() <= self.memo_bytes:
                self._memo[key] = buffer.getvalue()
                self._held += buffer.tell()
        return image


def decode_image(source: Source, where: str, *, max_pixels: int):
    """Decode ``source`` into an opaque RGB image capped at ``MAX_SIDE`` (module docstring)."""
    return _decode(source, where, max_pixels)[0]


def check_budget(size: tuple[int, int], where: str, max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise DataError(
            f"{where}: the image is {width}x{height} = {width * height:,} pixels, above the pixel budget of "
            f"{max_pixels:,}; raise the budget (--vlmgate-max-pixels N, or max_pixels in [tool.vlmgate]) "
            f"or downscale the file (the model sees at most {MAX_SIDE} px on the longest side)"
        )


def _decode(source: Source, where: str, max_pixels: int):
    """``(picture, size declared by the source)``."""
    from PIL import Image

    if isinstance(source, Path) and source.is_dir():
        raise DataError(f"{where}: is a directory, not an image file; point it at the image file")
    with _PIL_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        try:
            Image.MAX_IMAGE_PIXELS = None  # the header only; the budget is checked next
            image = _pil(lambda: Image.open(source if isinstance(source, Path) else io.BytesIO(source)), where)
            with image:
                size = image.size
                check_budget(size, where, max_pixels)
                bits = _sample_bits(image)
                if max(size) > MAX_SIDE:
                    target = capped_size(size)
                    _pil(lambda: image.draft(None, (target[0] * DRAFT_GAP, target[1] * DRAFT_GAP)), where)
                Image.MAX_IMAGE_PIXELS = max_pixels
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    _pil(image.load, where)
                picture = opaque_rgb(image, where, bits=bits)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    return cap_size(picture), size


def _pil(call: Callable[[], Any], where: str) -> Any:
    """Run a PIL decoding step; whatever a decoder raises on a bad file names the file.

    Decoder plugins raise a wide range of types on damaged input (``OSError`` for a
    truncated stream, ``SyntaxError``, ``struct.error``, ``ValueError``, ``EOFError``,
    ``DecompressionBombError``, ...), so every ``Exception`` of this step is the file's.
    """
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's (see above)
        raise DataError(f"{where}: the image cannot be decoded ({type(exc).__name__}: {exc}); "
                        "replace the file or drop the row") from None


def _sample_bits(image) -> int | None:
    """16 when the decoder reads 16-bit samples (read before ``load``, which drops the tiles)."""
    for codec, _extents, _offset, args in image.tile:
        raw = args[0] if isinstance(args, tuple) and args else args
        if (isinstance(raw, str) and raw.startswith("I;16")) or (codec == "ppm" and image.mode == "I"):
            return 16
    return None


def opaque_rgb(image, where: str, *, bits: int | None = None):
    """``image`` (any PIL mode) as the opaque 8-bit RGB picture a viewer shows (module docstring)."""
    from PIL import Image

    mode = image.mode
    if mode.startswith("I;16") or (mode == "I" and bits == 16):
        image = _sixteen_bit_grey(image, where)
    elif mode.startswith("I"):
        raise DataError(f"{where}: 32-bit integer pixels (PIL mode {mode}): the file does not say which value "
                        "is white; save it as an 8- or 16-bit image (PNG) with the scaling you intend")
    elif mode == "F":
        image = _float_grey(image, where)
    if _ALPHA_BANDS.intersection(image.getbands()) or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    return image.convert("RGB")


def _sixteen_bit_grey(image, where: str):
    """16-bit grey as 8-bit ``L`` (the high byte), its colour key as an alpha band (``LA``)."""
    import numpy as np
    from PIL import Image

    wide = image.convert("I")
    low, high = wide.getextrema()
    if low < 0 or high > 0xFFFF:
        raise DataError(f"{where}: 16-bit grey pixels outside 0..65535 (found {low}..{high}, signed samples); "
                        "save it as an unsigned 8- or 16-bit image")
    values = np.asarray(wide)
    grey = Image.fromarray((values >> 8).astype(np.uint8))
    key = image.info.get("transparency")
    if isinstance(key, int):
        grey.putalpha(Image.fromarray(np.where(values == key, 0, 255).astype(np.uint8)))
    return grey


def _float_grey(image, where: str):
    """Float grey in [0, 1] as 8-bit ``L``: ``round(255 * v)``; any other range is refused."""
    import numpy as np
    from PIL import Image

    values = np.asarray(image, dtype=np.float64)
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        finite = values[np.isfinite(values)]
        found = f"{finite.min():g}..{finite.max():g}" if finite.size else "none finite"
        nan = ", with NaN or infinite values" if finite.size < values.size else ""
        raise DataError(f"{where}: floating-point pixels must lie in [0, 1] (found {found}{nan}): the file "
                        "does not say which value is white; scale the values to [0, 1] or save an 8-bit image")
    return Image.fromarray(np.rint(values * 255).astype(np.uint8))
