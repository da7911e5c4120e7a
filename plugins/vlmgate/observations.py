"""What a suite reads of a family: its observations (and probes) beside the clean ones.

The engine computes them (``Engine.family``, ``Engine.family_probes``) and the metrics and
suites read them; they are plain records, so a metric can be tested on hand-built ones
without an engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from vlmgate.models.base import ProbeRecord
from vlmgate.records import Observation, Sample


def sample_answers(samples: Sequence[Sample]) -> Mapping[str, int | None]:
    """Id -> answer of ``samples``, without decoding images again where the set remembers them
    (an ``engine.SampleSet`` keeps its answers after a pass)."""
    remembered = getattr(samples, "answers", None)
    if isinstance(remembered, Mapping):
        return remembered
    return {s.id: s.answer for s in samples}


@dataclass(frozen=True)
class FamilyObservations:
    """A family's perturbed observations next to the clean ones of the same samples."""

    family: str
    samples: Sequence[Sample]
    clean: Mapping[str, Observation]
    perturbed: Mapping[str, tuple[Observation, ...]]

    @property
    def answers(self) -> Mapping[str, int | None]:
        """Sample id -> answer, in benchmark order (no image decoded where the set remembers them)."""
        return sample_answers(self.samples)


@dataclass(frozen=True, eq=False)
class FamilyProbes:
    """A family's probe records next to the clean ones, aligned with its observations.

    ``perturbed[sample_id][i]`` belongs to the same variant as
    ``observations.perturbed[sample_id][i]``. The array views cover the samples that have
    at least one instance (``samples``), in benchmark order, in the shapes that
    ``vlmgate.metrics.drift`` takes.
    """

    family: str
    observations: FamilyObservations
    clean: Mapping[str, ProbeRecord]
    perturbed: Mapping[str, tuple[ProbeRecord, ...]]

    @property
    def samples(self) -> tuple[Sample, ...]:
        """Samples with at least one perturbed instance (a sample without has no drift)."""
        return tuple(s for s in self.observations.samples if self.perturbed[s.id])

    @property
    def sample_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.samples)

    def flipped(self) -> np.ndarray:
        """``(N, I)`` booleans: the instance changed the prediction (False where padded)."""
        samples = self.samples
        width = max(len(self.perturbed[s.id]) for s in samples)
        flags = np.zeros((len(samples), width), dtype=bool)
        for n, sample in enumerate(samples):
            clean = self.observations.clean[sample.id].prediction
            for i, obs in enumerate(self.observations.perturbed[sample.id]):
                flags[n, i] = obs.prediction != clean
        return flags
