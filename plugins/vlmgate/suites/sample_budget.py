"""A suite's default sample budget: how many samples it judges when the run sets no limit.

Some gates cost far more per sample than a flip rate: a corruption is five forward passes
per sample (RAS), a family's probes several passes per instance (drift, structure: the
greedy answer token by token, the open prompt). Run on a whole benchmark by default they
turn a local ``pytest -m textoverlay`` into minutes of silence. Such a suite judges the
first ``default`` samples unless the run sets ``--vlmgate-limit``, which replaces the
budget (``--vlmgate-limit`` at or above the benchmark's size judges all of it). The rule
that chose the samples goes into every result's details, so a reader knows what n means.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlmgate.suites.base import RunOptions


@dataclass(frozen=True)
class SampleBudget:
    """Judge the first ``default`` samples unless the run's ``--vlmgate-limit`` says otherwise."""

    default: int

    def first(self, options: RunOptions) -> int | None:
        """How many leading samples to judge; ``None``: all of the run's (its limit applies)."""
        return None if options.limit is not None else self.default

    def rule(self, options: RunOptions) -> str:
        """Which samples are judged and why, for the details."""
        if options.limit is not None:
            return f"first {options.limit} samples (--vlmgate-limit)"
        return (f"first {self.default} samples (the suite's default without --vlmgate-limit; "
                "--vlmgate-limit N judges the first N)")
