"""Severity tables: the published rows for severities 1-5, continuous in between.

ImageNet-C defines each corruption by five parameter rows. The gate's search wants an
integer magnitude with a continuous effect, so a severity ``s`` in [0, 5] linearly
interpolates the parameters between the rows around it; below severity 1 it interpolates
from an *identity row* (the parameters at which the corruption does nothing, or as
little as it can), so severity 0 is the clean image and every integer severity is the
published row exactly. Parameters that count things (iterations, JPEG quality, a mode
switch) are rounded half up after interpolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

RowT = TypeVar("RowT", bound=NamedTuple)

#: Highest severity of every ImageNet-C table.
MAX_SEVERITY = 5


@dataclass(frozen=True)
class SeverityTable(Generic[RowT]):
    """Five published rows plus an identity row, all of one ``NamedTuple`` type."""

    identity: RowT
    rows: tuple[RowT, RowT, RowT, RowT, RowT]
    #: Field names whose interpolated value is rounded half up to an integer.
    integer_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.rows) != MAX_SEVERITY:
            raise ValueError(f"a severity table needs {MAX_SEVERITY} rows, got {len(self.rows)}")
        unknown = set(self.integer_fields) - set(self.identity._fields)
        if unknown:
            raise ValueError(f"integer_fields {sorted(unknown)} are not fields of the table rows")

    def at(self, severity: float) -> RowT:
        """The parameters at ``severity`` in [0, 5]: a published row when it is an integer."""
        if not 0 <= severity <= MAX_SEVERITY:
            raise ValueError(f"severity {severity} outside [0, {MAX_SEVERITY}]")
        anchors = (self.identity, *self.rows)
        lower = min(int(math.floor(severity)), MAX_SEVERITY - 1)
        t = severity - lower
        below, above = anchors[lower], anchors[lower + 1]
        # (1 - t)·a + t·b returns a exactly at t = 0 and b exactly at t = 1.
        values = [(1.0 - t) * a + t * b for a, b in zip(below, above)]
        for i, name in enumerate(below._fields):
            if name in self.integer_fields:
                values[i] = int(math.floor(values[i] + 0.5))
        return type(below)._make(values)
