"""Reading a TOML file a user wrote: every way it can be unreadable is one ``ConfigError``.

Threshold files, the counterexample store and ``pyproject.toml`` are all hand-edited, so
each can be a directory, unreadable, saved in the wrong encoding (TOML is UTF-8 by
definition) or not valid TOML. ``read_toml`` turns each of these into one line naming
the file and the fix, instead of an ``IsADirectoryError`` or ``UnicodeDecodeError``
traceback. A missing file is left to the caller (``FileNotFoundError``), because what it
means differs: no store is an empty store, no threshold file is an error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from vlmgate.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: tomli, the package the standard library's tomllib was taken from
    import tomli as tomllib


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The parsed document at ``path``; ``what`` names the file's role ("threshold file").

    Raises ``FileNotFoundError`` when ``path`` does not exist.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a {what}; pass the {what} itself") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc}); make it readable") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          f"save it as UTF-8, the encoding TOML requires") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax at the line and column given") from None
