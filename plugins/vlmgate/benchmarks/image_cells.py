"""The encoded image a table cell holds, in the forms public benchmarks use.

* base64 text (VLMEvalKit TSV);
* the Hugging Face ``Image`` feature's struct ``{"bytes": ..., "path": ...}`` (parquet,
  ``datasets`` folders): the bytes when present, else the path, relative to the table;
* raw bytes.

Every failure names the table, row and column, and what to fix: a benchmark with one
broken image should say which one, not raise a bare ``binascii.Error``. Decoding the
bytes into a picture is ``benchmarks.image_decoding``'s.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from vlmgate.errors import DataError


def image_bytes(value: Any, where: str, base_dir: Path) -> bytes:
    """The encoded image file held by a cell (not decoded yet)."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            path = Path(value["path"])
            path = path if path.is_absolute() else base_dir / path
            if path.is_dir():
                raise DataError(f"{where}: image struct points at {path}, which is a directory; "
                                "point it at the image file or store the image bytes in the table")
            if not path.is_file():
                raise DataError(f"{where}: image struct points at {path}, which does not exist; "
                                "store the image bytes in the table or fix the path")
            return path.read_bytes()
        raise DataError(f"{where}: image struct has neither bytes nor path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str) and value.strip():
        try:
            return base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DataError(f"{where}: not valid base64 image data ({exc}); re-encode the image with "
                            "base64.b64encode(png_bytes)") from None
    raise DataError(f"{where}: no image (empty cell); fill it or drop the row")


def has_image(value: Any) -> bool:
    """Whether a table cell holds a picture at all (an ``Image`` struct with bytes or a path, or
    non-blank bytes / text), read without decoding it: a null or empty cell is no picture."""
    if isinstance(value, dict):
        return bool(value.get("bytes") or value.get("path"))
    return bool(value.strip() if isinstance(value, (str, bytes)) else value)
