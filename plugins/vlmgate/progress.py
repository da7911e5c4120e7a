"""How far the engine's passes have got, as the engine reports it (no display here).

A case can run for minutes inside one engine call (a drift case probes every instance of
a family's grid), and pytest shows nothing until it ends. So the engine reports every
*pass* it runs (the clean pass, a family's grid, a family's probes, a set of generations,
any other request) to a ``ProgressSink``: requests done out of the pass's total, each time
a batch is known (computed, or read from the memo or the cache).

The sink is injected by whoever runs the engine (the gating session gives it the
terminal's display, ``vlmgate.progress_display``); the engine never imports pytest or a
display library, and without a sink it reports to ``NO_PROGRESS``, which does nothing.

A streamed grid is built sample by sample, so its size is not known before its last
sample: the engine estimates it from the first sample's grid times the number of
samples (``estimated``), and the pass's last report carries the exact count.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol


@dataclass(frozen=True)
class PassProgress:
    """One pass's state: which pass, requests done out of ``total``, whether it is over.

    ``total`` is ``None`` when the pass streams items of unknown number (a caller's
    generator); ``estimated`` says the total is extrapolated from the first sample's
    grid. ``started`` is the engine's clock reading when the pass began (monotonic
    seconds), so that a display measures rates over the pass rather than over its own
    life.
    """

    name: str
    kind: str
    done: int
    total: int | None
    started: float
    estimated: bool = False
    finished: bool = False


class ProgressSink(Protocol):
    """Receives a pass's progress after each batch, and once more when the pass ends."""

    def report(self, progress: PassProgress) -> None: ...


class NoProgress:
    """A sink that shows nothing: the engine's default (scripts, tests, the CLI)."""

    def report(self, progress: PassProgress) -> None:
        return None


NO_PROGRESS: ProgressSink = NoProgress()


class PassTally:
    """The engine's counter for one pass: it adds up requests and reports to the sink.

    ``estimate(total)`` replaces the total while the pass streams (see the module
    docstring); ``finish()`` reports the exact count as the total.
    """

    def __init__(self, sink: ProgressSink, name: str, kind: str, total: int | None, started: float,
                 estimated: bool = False):
        self.sink = sink
        self.state = PassProgress(name, kind, 0, total, started, estimated)

    def rename(self, name: str) -> None:
        """Name the pass (a caller's request is named after its first item, before any report)."""
        self.state = replace(self.state, name=name)

    def estimate(self, total: int) -> None:
        self.state = replace(self.state, total=max(total, self.state.done), estimated=True)

    def add(self, requests: int) -> None:
        state = self.state
        total = state.total if state.total is None or state.total >= state.done + requests else state.done + requests
        self.state = replace(state, done=state.done + requests, total=total)
        self.sink.report(self.state)

    def finish(self) -> None:
        self.state = replace(self.state, total=self.state.done, estimated=False, finished=True)
        self.sink.report(self.state)
