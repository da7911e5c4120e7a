"""What a user sees of a running case: a refreshing bar, periodic plain lines, or nothing.

pytest prints one character per case, after it ends; a drift case can run for minutes
first. The engine reports each pass's requests (``vlmgate.progress``); this module shows
them, per case:

* ``bar``: one line that refreshes in place (tqdm), ``[case] pass done/total, rate, ETA``,
  shown once a pass has run ``BAR_DELAY_S`` (a pass read from the cache shows nothing)
  and cleared when it ends, so pytest's own output stays as it was;
* ``lines``: a plain line at most every ``LINE_INTERVAL_S`` seconds, with the same figures,
  and a last line for a pass that printed any: what a CI log or an xdist worker can show
  (a carriage return there would pile up, and two workers' bars would overwrite each other);
* ``off``: nothing.

``auto`` (the default) picks ``bar`` where stderr is a terminal, no ``CI`` variable is set
and the process is not an xdist worker, else ``lines``. Where the text goes (pytest
captures a case's output) is the caller's: it passes a line writer and a stream that
write past the capture (``vlmgate.plugin``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from vlmgate.errors import ConfigError
from vlmgate.progress import PassProgress

MODES = ("off", "auto", "lines", "bar")
DEFAULT_MODE = "auto"
#: Seconds between two plain lines of one case (``lines``).
LINE_INTERVAL_S = 15.0
#: Seconds a pass runs before its bar appears (``bar``).
BAR_DELAY_S = 2.0


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"--vlmgate-progress {mode!r} must be one of {', '.join(MODES)}")
    return mode


@dataclass(frozen=True)
class Surroundings:
    """What decides ``auto``: a terminal on stderr, a CI job, an xdist worker (``worker`` its id)."""

    tty: bool
    ci: bool
    worker: str | None = None


def resolve_mode(requested: str, where: Surroundings) -> str:
    """The mode shown: ``requested``, or for ``auto`` the one ``where`` allows (see module docstring)."""
    if check_mode(requested) != "auto":
        return requested
    return "bar" if where.tty and not where.ci and where.worker is None else "lines"


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for one line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def describe(progress: PassProgress, now: float) -> str:
    """``translation probes 120/~400 requests (30%), 4.1/s, ETA 1m08s`` (``~``: an estimated total)."""
    elapsed = max(now - progress.started, 1e-9)
    rate = progress.done / elapsed
    noun = {"score": "requests", "probe": "probe requests", "generate": "generations"}.get(progress.kind, "requests")
    if progress.finished:
        return f"{progress.name}: {progress.done} {noun} done in {duration(elapsed)} ({rate:.1f}/s)"
    if progress.total is None:
        return f"{progress.name}: {progress.done} {noun}, {rate:.1f}/s"
    total = f"~{progress.total}" if progress.estimated else str(progress.total)
    share = progress.done / progress.total if progress.total else 1.0
    eta = f"ETA {duration((progress.total - progress.done) / rate)}" if rate > 0 else "ETA ?"
    return f"{progress.name}: {progress.done}/{total} {noun} ({share:.0%}), {rate:.1f}/s, {eta}"


class ProgressDisplay:
    """A ``ProgressSink`` showing the current case's passes in ``mode`` (``off``, ``lines`` or ``bar``).

    ``write_line`` prints one line (``lines``); ``stream`` receives the bar (``bar``), after
    ``before_bar()`` once per bar, which lets the caller start it on a line of its own;
    ``label`` prefixes every line (an xdist worker's id); ``width`` is the bar's (the
    terminal's, read once: while a case runs pytest's capture hides it). ``clock`` is
    injectable for tests.
    """

    def __init__(self, mode: str, *, write_line: Callable[[str], None] | None = None, stream: TextIO | None = None,
                 before_bar: Callable[[], None] = lambda: None, label: str = "", width: int | None = None,
                 clock: Callable[[], float] = time.monotonic, interval: float | None = None,
                 delay: float | None = None):
        if mode not in ("off", "lines", "bar"):
            raise ValueError(f"ProgressDisplay shows off, lines or bar, not {mode!r}; resolve auto first")
        self.mode = mode
        self.write_line = write_line
        self.stream = stream
        self.before_bar = before_bar
        self.label = label
        self.width = width
        self.clock = clock
        self.interval = LINE_INTERVAL_S if interval is None else interval
        self.delay = BAR_DELAY_S if delay is None else delay
        self.case = ""
        self._last_line = clock()
        self._lined: set[tuple[str, str, float]] = set()
        self._bar: Any = None
        self._bar_pass: tuple[str, str, float] | None = None

    def start_case(self, name: str) -> None:
        self.end_case()
        self.case = name
        self._last_line = self.clock()

    def end_case(self) -> None:
        self._close_bar()
        self._lined.clear()
        self.case = ""

    def report(self, progress: PassProgress) -> None:
        if self.mode == "lines":
            self._line(progress)
        elif self.mode == "bar":
            self._update_bar(progress)

    def _prefix(self) -> str:
        where = f"[{self.case}] " if self.case else ""
        return f"{self.label}vlmgate {where}"

    def _line(self, progress: PassProgress) -> None:
        key = (progress.name, progress.kind, progress.started)
        now = self.clock()
        if progress.finished:
            if key in self._lined:
                self._lined.discard(key)
                self._emit(f"{self._prefix()}{describe(progress, now)}", now)
            return
        if now - self._last_line >= self.interval:
            self._lined.add(key)
            self._emit(f"{self._prefix()}{describe(progress, now)}", now)

    def _emit(self, text: str, now: float) -> None:
        self._last_line = now
        if self.write_line is not None:
            self.write_line(text)

    def _update_bar(self, progress: PassProgress) -> None:
        key = (progress.name, progress.kind, progress.started)
        if self._bar_pass != key:
            self._close_bar()
            if progress.finished or self.clock() - progress.started < self.delay or self.stream is None:
                return
            from tqdm import tqdm

            self.before_bar()
            self._bar = tqdm(total=progress.total, initial=progress.done, desc=f"{self._prefix()}{progress.name}",
                             unit="req", file=self.stream, leave=False, ncols=self.width, mininterval=0.5)
            self._bar_pass = key
            return
        bar = self._bar
        if progress.finished:
            self._close_bar()
            return
        if progress.total != bar.total:
            bar.total = progress.total
        bar.update(progress.done - bar.n)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar = None
        self._bar_pass = None
