"""Reading a benchmark's text file (a ``jsonl:`` manifest, a ``textqa:`` file, a TSV table).

Such a file is UTF-8. Read any other way it either raises a bare ``UnicodeDecodeError``
(a traceback naming neither the file nor the line) or, decoded leniently, turns a
question into different text than the benchmark's authors wrote. So lines are decoded
one by one and the first byte that is not UTF-8 is a ``DataError`` naming the file, the
line and the byte's offset in the file (counted from 0, as ``hexdump`` and ``dd`` count),
with the command that repairs it. A UTF-8 byte order mark at the start (Windows editors
write one) is dropped, since it is not part of the first field.

A path that is a directory, or missing, is named as such before anything is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from vlmgate.errors import DataError

_BOM = b"\xef\xbb\xbf"


def require_file(path: Path, what: str, *, directory_fix: str, missing_fix: str) -> Path:
    """``path`` when it is a file; otherwise a ``DataError`` saying which of missing or a directory."""
    if path.is_dir():
        raise DataError(f"{what} {path} is a directory, not a file; {directory_fix}")
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist; {missing_fix}")
    return path


def utf8_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number from 1, text without its line ending)`` of every line of ``path``."""
    offset = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            start = len(_BOM) if number == 1 and raw.startswith(_BOM) else 0
            try:
                text = raw[start:].decode("utf-8")
            except UnicodeDecodeError as exc:
                at = offset + start + exc.start
                raise DataError(
                    f"{path}:{number}: byte {at} (0x{raw[start + exc.start]:02x}) is not UTF-8 ({exc.reason}); "
                    "re-save the file as UTF-8 (from Latin-1: iconv -f latin1 -t utf-8 OLD > NEW)"
                ) from None
            offset += len(raw)
            yield number, text.rstrip("\r\n")
