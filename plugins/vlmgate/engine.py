"""Runs (sample, variant) requests through a model adapter, in batches, once.

One ``Engine`` serves one (model, benchmark) pair for a whole pytest session: it reads
the samples once, scores the clean images once, and scores each family's variants once,
however many test cases (flip rate, drift, search, ...) then read those observations.
Every observation is memoised by (sample id, variant), so a second metric or a search
step that revisits an input costs no forward pass.

Perturbing the next batch overlaps with scoring the current one (PIL and numpy release
the GIL), since at small image sizes a perturbation costs about as much as a forward.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np

from vlmgate.benchmarks.base import Benchmark
from vlmgate.errors import ModelError
from vlmgate.metrics.flips import FlipPair
from vlmgate.models.base import ModelAdapter, ScoreRequest
from vlmgate.perturbations.base import PerturbationFamily, VariantContext, get_family
from vlmgate.prompts import option_continuations, prompt_for
from vlmgate.records import CLEAN, Observation, Sample, Variant
from vlmgate.seeding import rng_for


@dataclass(frozen=True)
class FamilyObservations:
    """A family's perturbed observations next to the clean ones of the same samples."""

    family: str
    samples: tuple[Sample, ...]
    clean: Mapping[str, Observation]
    perturbed: Mapping[str, tuple[Observation, ...]]

    def flip_pairs(self) -> list[FlipPair]:
        return [
            FlipPair(s.id, obs.variant.label, self.clean[s.id].prediction, obs.prediction, s.answer)
            for s in self.samples
            for obs in self.perturbed[s.id]
        ]


def observation_from_scores(sample_id: str, variant: Variant, scores: np.ndarray, spec: str) -> Observation:
    """Wrap adapter scores; a non-finite score is refused rather than judged."""
    if not np.all(np.isfinite(scores)):
        raise ModelError(
            f"model {spec} returned non-finite option scores {scores.tolist()} for sample {sample_id!r} "
            f"under {variant.label}; check the checkpoint's weights and --vlmgate-dtype (float16 overflows)"
        )
    return Observation(sample_id, variant, tuple(float(s) for s in scores), int(np.argmax(scores)))


class Engine:
    """Batched, memoised scoring of one benchmark by one model."""

    def __init__(self, model: ModelAdapter, benchmark: Benchmark, *, seed: int = 0,
                 limit: int | None = None, batch_size: int = 8):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model = model
        self.benchmark = benchmark
        self.seed = seed
        self.limit = limit
        self.batch_size = batch_size
        self._samples: tuple[Sample, ...] | None = None
        self._memo: dict[tuple[str, Variant], Observation] = {}
        self._families: dict[str, FamilyObservations] = {}
        #: Forward-pass requests actually sent to the model (not served from memory).
        self.requests_scored = 0

    # -- samples -------------------------------------------------------------------
    def samples(self) -> tuple[Sample, ...]:
        if self._samples is None:
            chosen = []
            for sample in self.benchmark.samples():
                if self.limit is not None and len(chosen) >= self.limit:
                    break
                chosen.append(sample)
            self._samples = tuple(chosen)
        return self._samples

    # -- scoring -------------------------------------------------------------------
    def perturb(self, sample: Sample, variant: Variant, family: PerturbationFamily | None) -> Sample:
        if family is None:
            return sample
        rng = rng_for(self.seed, "apply", sample.id, variant.label)
        return sample.with_image(family.apply(sample.image, variant, rng))

    def _prepare(self, batch: Sequence[tuple[Sample, Variant]]) -> list[ScoreRequest]:
        requests = []
        for sample, variant in batch:
            family = None if variant == CLEAN else get_family(variant.family)
            shown = self.perturb(sample, variant, family)
            requests.append(ScoreRequest(shown.image, prompt_for(shown), option_continuations(shown)))
        return requests

    def _batches(self, todo: Sequence[tuple[Sample, Variant]]) -> Iterator[Sequence[tuple[Sample, Variant]]]:
        for start in range(0, len(todo), self.batch_size):
            yield todo[start:start + self.batch_size]

    def observe(self, items: Sequence[tuple[Sample, Variant]]) -> list[Observation]:
        """Observations of ``items`` in order, scoring only what is not yet known."""
        pending_keys: dict[tuple[str, Variant], tuple[Sample, Variant]] = {}
        for sample, variant in items:
            key = (sample.id, variant)
            if key not in self._memo:
                pending_keys.setdefault(key, (sample, variant))
        todo = list(pending_keys.values())
        if todo:
            batches = list(self._batches(todo))
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlmgate-perturb") as pool:
                pending = pool.submit(self._prepare, batches[0])
                for index, batch in enumerate(batches):
                    requests = pending.result()
                    if index + 1 < len(batches):
                        pending = pool.submit(self._prepare, batches[index + 1])
                    scores = self.model.score(requests)
                    self.requests_scored += len(requests)
                    for (sample, variant), row in zip(batch, scores):
                        self._memo[(sample.id, variant)] = observation_from_scores(
                            sample.id, variant, np.asarray(row, dtype=np.float64), self.model.spec)
        return [self._memo[(s.id, v)] for s, v in items]

    def clean(self) -> dict[str, Observation]:
        """Clean observations of every sample, scored once."""
        samples = self.samples()
        return {obs.sample_id: obs for obs in self.observe([(s, CLEAN) for s in samples])}

    def family(self, name: str) -> FamilyObservations:
        """The family's default grid on every sample, scored once per session."""
        if name not in self._families:
            family = get_family(name)
            clean = self.clean()
            samples = self.samples()
            grid = {
                s.id: family.variants(s, VariantContext(
                    clean[s.id].prediction, rng_for(self.seed, "variants", s.id, name)))
                for s in samples
            }
            observed = iter(self.observe([(s, v) for s in samples for v in grid[s.id]]))
            perturbed = {s.id: tuple(next(observed) for _ in grid[s.id]) for s in samples}
            self._families[name] = FamilyObservations(name, samples, clean, perturbed)
        return self._families[name]
