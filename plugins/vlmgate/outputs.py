"""Where a run writes: every output location checked before the work, and written whole.

A run that cannot write its record, its PNGs or a counterexample finds out at the end,
after the work is done (an hour of gating, a 49 s search), and the result is lost. So
the plugin checks every output location at start-up (``report.locations.run_outputs`` then ``check``),
before any test, and a bad one is a one-line usage error naming the option, the path
and the fix:

* a folder must be a folder or creatable: not an existing file, no file among its
  parents, and, when the run will write into it, writable (asked of the nearest folder
  that exists, which is where ``mkdir`` would create it);
* a file must not be an existing folder, and its folder must pass the folder check
  (files are replaced atomically, so the folder's write access is what counts).

``os.access`` answers yes to root for every permission, so as root only the shape
checks bite; the writers still fail loudly on what the check could not see.

Write access is required only where the run will write for certain: the report folder
(``--vlmgate-report``), search images the user named or a search will produce, the
counterexample store when ``--vlmgate-search`` is on (without it the store is only read,
and ``vlmgate.search.counterexamples`` checks it). The observation cache tolerates a
read-only folder (``vlmgate.cache``), so it is checked only for being a folder.

``write_text_atomic`` is how the report files are written: a temporary file beside the
target, then ``os.replace``, so an interrupted write leaves the old file or the new one,
never half of either.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from vlmgate.errors import ConfigError


@dataclass(frozen=True)
class Output:
    """One place a run writes: the option that names it, the path, its shape and whether it is written."""

    option: str
    path: Path
    folder: bool
    written: bool = True

    def problem(self) -> str | None:
        """Why the run could not write here (option, path and fix in one line), or ``None``."""
        where = f"{self.option} {self.path}"
        if self.folder and self.path.exists() and not self.path.is_dir():
            return f"{where}: is a file, not a folder; pass a folder path, or move the file away"
        if not self.folder and self.path.is_dir():
            return f"{where}: is a folder, not a file; pass a file path, or remove the folder"
        folder = self.path if self.folder else self.path.parent
        existing = _nearest_existing(folder)
        if not existing.is_dir():
            return (f"{where}: cannot be created, {existing} is a file; pass a path outside it, "
                    "or move the file away")
        if self.written and not os.access(existing, os.W_OK | os.X_OK):
            return (f"{where}: {existing} is not writable; make it writable (chmod u+w {existing}) "
                    "or pass a writable location")
        return None


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (the folder ``mkdir -p`` would create in)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check(outputs: Iterable[Output]) -> None:
    """Raise ``ConfigError`` with the first unusable output's problem (see the module docstring)."""
    for output in outputs:
        problem = output.problem()
        if problem is not None:
            raise ConfigError(problem)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (creating its folder): a temporary file beside it, then ``os.replace``.

    The temporary file is opened exclusively under a unique name rather than by
    ``mkstemp``, whose 0600 mode would make a shared report unreadable to others.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
