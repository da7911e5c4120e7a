"""Where a gating run writes: every location, checked before any test runs (``vlmgate.outputs``).

The run record and the HTML report are this package's files, so the list of a run's
output locations lives here, beside their names; ``vlmgate.outputs`` checks them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vlmgate.outputs import Output
from vlmgate.report.html import REPORT_FILE
from vlmgate.report.record import RUN_FILE

if TYPE_CHECKING:
    from vlmgate.settings import Settings


def run_outputs(settings: "Settings", *, report: str | None, images_named: bool) -> list[Output]:
    """Every location a pytest run with ``settings`` writes (``report``: ``--vlmgate-report``).

    ``images_named``: the PNG folder was given (``--vlmgate-search-images`` or derived from
    ``--vlmgate-report``), so the user expects it written; the default folder must be
    writable only when a search runs.
    """
    outputs = []
    if report is not None:
        folder = Path(report)
        outputs += [Output("--vlmgate-report", folder, folder=True),
                    Output("--vlmgate-report", folder / RUN_FILE, folder=False),
                    Output("--vlmgate-report", folder / REPORT_FILE, folder=False)]
    outputs.append(Output("--vlmgate-search-images", settings.search_images, folder=True,
                          written=images_named or settings.search))
    if settings.search:  # otherwise the store is only read, and its reader says what is wrong with it
        outputs.append(Output("--vlmgate-counterexamples", settings.counterexamples, folder=False))
    if settings.cache_dir is not None:
        outputs.append(Output("--vlmgate-cache", settings.cache_dir, folder=True, written=False))
    return outputs
