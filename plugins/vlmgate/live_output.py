"""Writing past pytest's capture while a case runs: where the progress display's text goes.

pytest captures what a running test writes (at file-descriptor level by default) and
shows it only for a failure; a progress line written the ordinary way would surface
minutes later, in a failure report. So, as pytest's own live logging does, every write
here suspends the capture (the capture manager's ``global_and_fixture_disabled``) and
resumes it after.

* In the pytest process that reports (no xdist, or ``-p no:xdist``), lines go through the
  terminal reporter, which starts them on a fresh line after the progress dots, and the
  bar goes to the real stderr on a line of its own.
* In an xdist worker there is no terminal of its own: pytest-xdist starts workers with
  the controller's stderr (execnet keeps only stdin / stdout for its channel), so a line
  written to the worker's real stderr appears in the user's terminal or CI log as it is
  written, prefixed with the worker's id.
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest

from vlmgate.progress_display import ProgressDisplay, Surroundings, resolve_mode


class LiveOutput:
    """A text stream (for the bar) and a line writer that write past the capture of ``config``."""

    def __init__(self, config: pytest.Config, *, worker: str | None):
        self.config = config
        self.worker = worker

    def _uncaptured(self) -> AbstractContextManager[Any]:
        capman = self.config.pluginmanager.getplugin("capturemanager")
        return capman.global_and_fixture_disabled() if capman is not None else nullcontext()

    def _reporter(self) -> Any:
        return None if self.worker else self.config.pluginmanager.getplugin("terminalreporter")

    def write(self, text: str) -> int:
        with self._uncaptured():
            sys.stderr.write(text)
            sys.stderr.flush()
        return len(text)

    def flush(self) -> None:
        return None

    def line(self, text: str) -> None:
        reporter = self._reporter()
        with self._uncaptured():
            if reporter is not None:
                _fresh_line(reporter)
                reporter.write_line(text)
            else:
                sys.stderr.write(text + "\n")
                sys.stderr.flush()

    def ensure_newline(self) -> None:
        """Start the bar on a line of its own (pytest's dots stay on theirs)."""
        reporter = self._reporter()
        if reporter is not None:
            with self._uncaptured():
                _fresh_line(reporter)


def _fresh_line(reporter: Any) -> None:
    """End the reporter's current line if anything is on it.

    ``ensure_newline`` knows only a line it began with a file name; under ``-q`` the
    progress dots are written without one, so the writer's own column is read too.
    """
    reporter.ensure_newline()
    if getattr(getattr(reporter, "_tw", None), "width_of_current_line", 0):
        reporter.write("\n")


def progress_display(config: pytest.Config, mode: str) -> ProgressDisplay:
    """The display this process shows its cases' progress on, for the requested ``mode``.

    ``auto`` is resolved here, where it is known whether stderr is a terminal (pytest's
    capture is suspended while plugins configure), whether a ``CI`` variable is set and
    whether this process is an xdist worker.
    """
    worker = config.workerinput.get("workerid") if hasattr(config, "workerinput") else None
    where = Surroundings(tty=sys.stderr.isatty(), ci=bool(os.environ.get("CI")), worker=worker)
    output = LiveOutput(config, worker=worker)
    return ProgressDisplay(resolve_mode(mode, where), write_line=output.line, stream=output,  # type: ignore[arg-type]
                           before_bar=output.ensure_newline, label=f"[{worker}] " if worker else "",
                           width=shutil.get_terminal_size().columns)
