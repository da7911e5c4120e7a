"""Which local files a report may read into itself.

A run record names files (a minimal failure's clean and perturbed PNGs) that the HTML
report embeds as base64, and an HTML report is meant to be shared. A record is only
JSON, though: one from elsewhere could name ``~/.ssh/id_rsa`` or ``../../secrets.png``
and the report would carry its bytes to whoever reads it. So a report embeds only files
under its own folder, the folder of the run record (``REPORT_DIR`` holds ``run.json``,
``report.html`` and, by default, ``minimal_failures/``):

* a relative name is resolved against that folder;
* every name is resolved with its symlinks, and must then lie under an allowed folder,
  so neither ``..`` nor a link leads out;
* anything else is not read at all, and the report says which image was left out.

The HTML written at the end of a run also allows that run's own ``--vlmgate-search-images``
folder: the run chose it and wrote the files itself, so nothing foreign can be named there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalFiles:
    """The folders a report may embed files from; the first one resolves relative names.

    ``LocalFiles(())`` embeds nothing (a report rendered with no folder of its own).
    """

    roots: tuple[Path, ...] = ()

    @property
    def home(self) -> Path | None:
        """The report's own folder, which relative names are resolved against."""
        return self.roots[0] if self.roots else None

    def locate(self, name: str) -> Path | None:
        """The real path of the file ``name`` refers to, or ``None`` when it lies outside every root."""
        if self.home is None:
            return None
        path = (self.home / name).resolve()  # an absolute ``name`` replaces the home folder
        if any(path.is_relative_to(root.resolve()) for root in self.roots):
            return path
        return None
