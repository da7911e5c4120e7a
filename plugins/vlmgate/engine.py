"""Runs (sample, variant) requests through a model adapter, in batches, once.

One ``Engine`` serves one (model, benchmark) pair for a whole pytest session: it reads
the samples once, scores the clean images once, and scores each family's variants once,
however many test cases (flip rate, drift, search, ...) then read those observations.
Every observation is memoised by (sample id, variant), so a second metric or a search
step that revisits an input costs no forward pass.

Perturbing the next batch overlaps with scoring the current one (PIL and numpy release
the GIL), since at small image sizes a perturbation costs about as much as a forward.

Probes (hidden states and vision tokens, for the drift and structure gates) are a second
request kind, memoised the same way; a family's probes are taken only after its scores,
so that the answer a probe teacher-forces is exactly the prediction the flip gates judge.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from vlmgate.benchmarks.base import Benchmark
from vlmgate.errors import ConfigError, DataError, ModelError
from vlmgate.metrics.drift import pad_instances
from vlmgate.metrics.flips import FlipPair
from vlmgate.models.base import PROBES, ModelAdapter, ProbeRecord, ProbeRequest, ScoreRequest, require_probes
from vlmgate.perturbations.base import PerturbationFamily, VariantContext, get_family
from vlmgate.prompts import open_prompt, option_continuations, prompt_for
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

    def embeddings(self, probe: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``probe``'s clean ``(N, D)``, perturbed ``(N, I, D)`` and instance mask ``(N, I)``."""
        if probe not in PROBES:
            raise ConfigError(f"probe {probe!r} is not known; use one of {', '.join(PROBES)}")
        samples = self.samples
        if not samples:
            raise DataError(
                f"family {self.family!r} produced no perturbed instance for any sample, so there "
                "is no drift to measure; check the benchmark and the family's default grid"
            )
        clean = np.stack([self.clean[s.id].embeddings[probe] for s in samples]).astype(np.float64)
        perturbed, mask = pad_instances([
            np.stack([record.embeddings[probe] for record in self.perturbed[s.id]]) for s in samples
        ])
        return clean, perturbed, mask

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
        self._probe_memo: dict[tuple[str, Variant], ProbeRecord] = {}
        self._family_probes: dict[str, FamilyProbes] = {}
        #: Forward-pass requests actually sent to the model (not served from memory).
        self.requests_scored = 0
        #: Probe requests actually sent to the model (each costs several passes).
        self.requests_probed = 0

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

    def shown(self, sample: Sample, variant: Variant) -> Sample:
        """``sample`` as the model sees it under ``variant`` (the clean sample for CLEAN)."""
        return self.perturb(sample, variant, None if variant == CLEAN else get_family(variant.family))

    def _prepare(self, batch: Sequence[tuple[Sample, Variant]]) -> list[ScoreRequest]:
        requests = []
        for sample, variant in batch:
            shown = self.shown(sample, variant)
            requests.append(ScoreRequest(shown.image, prompt_for(shown), option_continuations(shown)))
        return requests

    def _prepare_probes(self, batch: Sequence[tuple[Sample, Variant]]) -> list[ProbeRequest]:
        """Probe requests; ``ans_mcq`` teacher-forces the prediction already observed."""
        requests = []
        for sample, variant in batch:
            shown = self.shown(sample, variant)
            known = self._memo.get((sample.id, variant))
            requests.append(ProbeRequest(shown.image, prompt_for(shown), option_continuations(shown),
                                         open_prompt(shown), None if known is None else known.prediction))
        return requests

    def _batches(self, todo: Sequence[tuple[Sample, Variant]]) -> Iterator[Sequence[tuple[Sample, Variant]]]:
        for start in range(0, len(todo), self.batch_size):
            yield todo[start:start + self.batch_size]

    def _pipelined(self, items: Sequence[tuple[Sample, Variant]], known: Mapping[tuple[str, Variant], Any],
                   prepare: Callable[[Sequence[tuple[Sample, Variant]]], list[Any]],
                   send: Callable[[Sequence[tuple[Sample, Variant]], list[Any]], None]) -> None:
        """Run the ``items`` not in ``known`` through ``send`` in batches, once each.

        The next batch is prepared (perturbed, prompted) on a worker thread while the
        current one is with the model.
        """
        pending_keys: dict[tuple[str, Variant], tuple[Sample, Variant]] = {}
        for sample, variant in items:
            key = (sample.id, variant)
            if key not in known:
                pending_keys.setdefault(key, (sample, variant))
        todo = list(pending_keys.values())
        if not todo:
            return
        batches = list(self._batches(todo))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlmgate-perturb") as pool:
            pending = pool.submit(prepare, batches[0])
            for index, batch in enumerate(batches):
                requests = pending.result()
                if index + 1 < len(batches):
                    pending = pool.submit(prepare, batches[index + 1])
                send(batch, requests)

    def observe(self, items: Sequence[tuple[Sample, Variant]]) -> list[Observation]:
        """Observations of ``items`` in order, scoring only what is not yet known."""
        def send(batch: Sequence[tuple[Sample, Variant]], requests: list[ScoreRequest]) -> None:
            scores = self.model.score(requests)
            self.requests_scored += len(requests)
            for (sample, variant), row in zip(batch, scores):
                self._memo[(sample.id, variant)] = observation_from_scores(
                    sample.id, variant, np.asarray(row, dtype=np.float64), self.model.spec)

        self._pipelined(items, self._memo, self._prepare, send)
        return [self._memo[(s.id, v)] for s, v in items]

    def probe(self, items: Sequence[tuple[Sample, Variant]]) -> list[ProbeRecord]:
        """Probe records of ``items`` in order, probing only what is not yet known.

        Score an item (``observe``) first where ``ans_mcq`` must follow its prediction;
        an item probed unscored teacher-forces the arg-max of the probe pass's own scores.
        """
        model = require_probes(self.model)

        def send(batch: Sequence[tuple[Sample, Variant]], requests: list[ProbeRequest]) -> None:
            records = model.embed(requests)
            self.requests_probed += len(requests)
            for (sample, variant), record in zip(batch, records):
                self._probe_memo[(sample.id, variant)] = record

        self._pipelined(items, self._probe_memo, self._prepare_probes, send)
        return [self._probe_memo[(s.id, v)] for s, v in items]

    def clean(self) -> dict[str, Observation]:
        """Clean observations of every sample, scored once."""
        samples = self.samples()
        return {obs.sample_id: obs for obs in self.observe([(s, CLEAN) for s in samples])}

    def variant_grid(self, name: str) -> dict[str, tuple[Variant, ...]]:
        """The family's default grid of variants for every sample (needs the clean pass)."""
        family = get_family(name)
        clean = self.clean()
        return {
            s.id: tuple(family.variants(s, VariantContext(
                clean[s.id].prediction, rng_for(self.seed, "variants", s.id, name))))
            for s in self.samples()
        }

    def family(self, name: str) -> FamilyObservations:
        """The family's default grid on every sample, scored once per session."""
        if name not in self._families:
            clean = self.clean()
            samples = self.samples()
            grid = self.variant_grid(name)
            observed = iter(self.observe([(s, v) for s in samples for v in grid[s.id]]))
            perturbed = {s.id: tuple(next(observed) for _ in grid[s.id]) for s in samples}
            self._families[name] = FamilyObservations(name, samples, clean, perturbed)
        return self._families[name]

    def family_probes(self, name: str) -> FamilyProbes:
        """Probe records of the family's default grid and of the clean images, once per session.

        The family is scored first (``family``), so probes follow the flip gates' predictions
        and the flip flags of ``FamilyProbes.flipped`` are those the flip-rate suite judges.
        """
        if name not in self._family_probes:
            observations = self.family(name)
            samples = observations.samples
            clean = dict(zip((s.id for s in samples), self.probe([(s, CLEAN) for s in samples])))
            probed = iter(self.probe([(s, obs.variant) for s in samples for obs in observations.perturbed[s.id]]))
            perturbed = {s.id: tuple(next(probed) for _ in observations.perturbed[s.id]) for s in samples}
            self._family_probes[name] = FamilyProbes(name, observations, clean, perturbed)
        return self._family_probes[name]
