"""Runs (sample, variant) requests through a model adapter, in batches, once.

One ``Engine`` serves one (model, benchmark) pair for a whole pytest session: it reads
the samples once, scores the clean images once, and scores each family's variants once,
however many test cases (flip rate, drift, search, ...) then read those observations.
Every observation is memoised by (sample id, variant), so a second metric or a search
step that revisits an input costs no forward pass.

The engine hands a dispatcher (``vlmgate.dispatch``) whole batches of items (sample,
variant), not prepared requests: perturbing an image and building its request happen
where the batch is computed (``vlmgate.batches``), on a Ray replica or on the local
dispatcher's preparation thread, and overlap with the forward passes of other batches,
since at small image sizes a perturbation costs about as much as a forward.

Probes (hidden states and vision tokens, for the drift and structure gates) are a second
request kind, memoised the same way; a family's probes are taken only after its scores,
so that the answer a probe teacher-forces is exactly the prediction the flip gates judge.

Across runs, observations live in an ``ObservationCache`` keyed by (model fingerprint,
sample content, request kind, variant, the family's implementation ``version``, seed); a
read names the request's option count, so an entry that cannot be its value is a miss.
With the cache's ``audit`` fraction, the hits it picks (``ObservationCache.audits``) are not
served but recomputed in their canonical batch, and compared exactly with what the cache
holds before anything is written: a difference is a ``CacheAuditError`` (see ``vlmgate.cache``).
Requests carry their sample's id, so an adapter that refuses one names it.

Results must not depend on the cache, on the number of xdist workers or on the backend,
and a batch's composition fixes its floating-point rounding (padding, kernel blocking),
so batches are *canonical*: the items of one request (the clean pass, a family's grid)
are cut into batches by a rule that depends only on those items, and a batch with any
item unknown is computed whole.
Within a window of ``WINDOW_BATCHES`` batches, items are ordered by image size and prompt
length so that a batch pads little.

Samples stream: ``samples()`` re-reads the benchmark on every pass instead of holding
decoded images, and a family's grid is built, perturbed and scored one window at a
time, so memory stays flat in the number of samples (observations are kept, images not).

Every pass (the clean pass, a family's grid, a family's probes, a caller's request)
reports its requests done / total to the ``progress`` sink the engine is given
(``vlmgate.progress``), batch by batch; a streamed grid's total is estimated from its
first sample. The engine does not know how, or whether, that is shown.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections import deque
from collections.abc import Sized
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, overload

import numpy as np

from vlmgate import batches
from vlmgate.batches import DEFAULT_BATCH_SIZE, KINDS, Batch, WorkItem
from vlmgate.benchmarks.base import CATEGORY_KEY, Benchmark
from vlmgate.cache import (
    CacheAuditError,
    CacheWarning,
    ObservationCache,
    describe_difference,
    observation_key,
    same_value,
    sample_digest,
)
from vlmgate.claims import BatchClaims
from vlmgate.dispatch import DispatchCounts, Dispatcher, LocalDispatcher
from vlmgate.errors import ModelError
from vlmgate.models.base import ModelAdapter, ProbeRecord, ScoreRequest, require_generation, require_probes
from vlmgate.observations import FamilyObservations, FamilyProbes
from vlmgate.perturbations.base import PerturbationFamily, VariantContext, get_family
from vlmgate.progress import NO_PROGRESS, PassTally, ProgressSink
from vlmgate.prompts import option_continuations, prompt_for
from vlmgate.records import CLEAN, CLEAN_FAMILY, NO_ANSWER, Observation, Sample, Variant
from vlmgate.seeding import rng_for

#: Batches whose items are ordered together by image size and prompt length.
WINDOW_BATCHES = 8


class SampleSet(Sequence[Sample]):
    """The first ``limit`` samples of a benchmark, decoded afresh on every iteration.

    Holding every decoded image would make memory grow with the benchmark; re-reading
    costs a PNG decode per sample and pass, small beside a forward pass. Ids and answers,
    which metrics read without images, are kept after the first pass.
    """

    def __init__(self, benchmark: Benchmark, limit: int | None):
        self.benchmark = benchmark
        self.limit = limit
        self._answers: dict[str, int | None] | None = None
        self._categories: dict[str, str | None] = {}
        self._most_images = 0

    def __len__(self) -> int:
        total = len(self.benchmark)
        return total if self.limit is None else min(total, self.limit)

    def __iter__(self) -> Iterator[Sample]:
        answers: dict[str, int | None] = {}
        categories: dict[str, str | None] = {}
        most_images = 0
        for sample in islice(self.benchmark.samples(), self.limit):
            answers[sample.id] = sample.answer
            category = sample.meta_dict.get(CATEGORY_KEY)
            categories[sample.id] = None if category is None else str(category)
            most_images = max(most_images, len(sample.images))
            yield sample
        self._answers = answers
        self._categories = categories
        self._most_images = most_images

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Sample, ...]: ...

    def __getitem__(self, index: int | slice) -> Sample | tuple[Sample, ...]:
        positions = range(len(self))
        if isinstance(index, slice):
            chosen = positions[index]
            if chosen.step == 1:
                return tuple(islice(iter(self), chosen.start, chosen.stop))
            wanted = set(chosen)
            picked = {n: s for n, s in enumerate(self) if n in wanted}
            return tuple(picked[n] for n in chosen)
        position = positions[index]  # IndexError out of range, negatives resolved
        return next(islice(iter(self), position, None))

    @property
    def answers(self) -> Mapping[str, int | None]:
        """Sample id -> answer index, in benchmark order (one pass the first time)."""
        if self._answers is None:
            for _ in self:
                pass
        assert self._answers is not None
        return self._answers

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.answers)

    @property
    def categories_seen(self) -> Mapping[str, str | None]:
        """Sample id -> its ``category`` metadata, from the last whole pass (empty before one):
        what ``metrics.categories`` splits results by, without decoding the images again."""
        return self._categories

    @property
    def most_images(self) -> int:
        """The most pictures one item holds, from the last whole pass (0 before one)."""
        return self._most_images


@dataclass(frozen=True)
class _RequestKind:
    """One kind of request the engine memoises, caches and batches: scores, probes or generations.

    ``item`` describes one input for a dispatcher (which prepares the request where it computes).
    """

    name: str
    memo: dict
    item: Callable[[Sample, Variant], WorkItem]
    cache_kind: Callable[[Sample, Variant], str]
    convert: Callable[[Sample, Variant, Any], Any]
    #: ``read(cache, key, n_options)``: the stored value, or ``None`` when absent or unfit.
    read: Callable[[ObservationCache, str, int], Any]
    write: Callable[[ObservationCache, str, Any], None]


class ObservationsRead:
    """The distinct score observations the engine handed out inside ``Engine.reading()``.

    What a case read, whichever case scored it first: the clean pass is computed once per
    engine, so counting what a case's own passes computed would miss every input it shares.
    """

    def __init__(self) -> None:
        self.observations: dict[tuple[str, Variant], Observation] = {}

    def add(self, observations: Iterable[Observation]) -> None:
        for observation in observations:
            self.observations.setdefault((observation.sample_id, observation.variant), observation)


def _recording(items: Iterable[tuple[Sample, Variant]], keys: list[tuple[str, Variant]]
               ) -> Iterator[tuple[Sample, Variant]]:
    """``items`` passed through, each one's memo key appended to ``keys`` as it goes by."""
    for sample, variant in items:
        keys.append((sample.id, variant))
        yield sample, variant


def _pass_name(variant: Variant) -> str:
    """A caller's request named after its first item: the family, or a clean variant's presentation."""
    if variant.family != CLEAN_FAMILY or not variant.params:
        return variant.family
    return " ".join(str(value) for key, value in variant.params if key != "max_new_tokens" and value) or CLEAN_FAMILY


def _length(items: Iterable[object]) -> int | None:
    """How many items a caller's request holds, when it says (a list does, a generator does not)."""
    return len(items) if isinstance(items, Sized) else None


def _naming(items: Iterable[tuple[Sample, Variant]], tally: PassTally) -> Iterator[tuple[Sample, Variant]]:
    """``items`` passed through; the first one names the pass (before any report)."""
    first = True
    for sample, variant in items:
        if first:
            tally.rename(_pass_name(variant))
            first = False
        yield sample, variant


def observation_from_scores(sample_id: str, variant: Variant, scores: np.ndarray, spec: str,
                            may_not_answer: bool = False) -> Observation:
    """Wrap adapter scores; a non-finite score is refused rather than judged.

    ``may_not_answer``: the adapter reads answers from replies (``scoring`` other than
    ``exact``), so all-NaN scores (``no_answer_scores``) mean it got no readable answer:
    the observation's prediction is ``NO_ANSWER``. Anywhere else a NaN is an error.
    """
    if may_not_answer and scores.size and np.all(np.isnan(scores)):
        return Observation(sample_id, variant, tuple(float(s) for s in scores), NO_ANSWER)
    if not np.all(np.isfinite(scores)):
        raise ModelError(
            f"model {spec} returned non-finite option scores {scores.tolist()} for sample {sample_id!r} "
            f"under {variant.label}; check the checkpoint's weights and --vlmgate-dtype (float16 overflows)"
        )
    return Observation(sample_id, variant, tuple(float(s) for s in scores), int(np.argmax(scores)))


class Engine:
    """Batched, memoised, cached scoring of one benchmark by one model."""

    def __init__(self, model: ModelAdapter, benchmark: Benchmark, *, seed: int = 0,
                 limit: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE, cache: ObservationCache | None = None,
                 dispatcher: Dispatcher | None = None, progress: ProgressSink = NO_PROGRESS):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model = model
        self.benchmark = benchmark
        self.seed = seed
        self.limit = limit
        self.batch_size = batch_size
        # An adapter whose fingerprint cannot vouch for its weights (a served model without a
        # revision) must not read or write the cache: another checkpoint served under the same
        # name would be handed this one's values.
        self.cache = cache if getattr(model, "cacheable", True) else None
        #: Workers sharing the cache folder compute each canonical batch once (``vlmgate.claims``);
        #: a long wait for another's batch is said on the display's live lines where it has them.
        self.claims = (BatchClaims(self.cache.root / "claims", prepare=self.cache.ensure_root,
                                   say=getattr(progress, "write_line", None))
                       if self.cache is not None else None)
        self.dispatcher: Dispatcher = dispatcher if dispatcher is not None else LocalDispatcher(model)
        #: Where each pass reports its requests done / total (``vlmgate.progress``).
        self.progress = progress
        self._samples = SampleSet(benchmark, limit)
        self._digests: dict[str, str] = {}
        self._family_versions: dict[str, int] = {}
        self._memo: dict[tuple[str, Variant], Observation] = {}
        self._clean: dict[str, Observation] | None = None
        self._repeat: dict[str, Observation] | None = None
        self._families: dict[str, FamilyObservations] = {}
        self._probe_memo: dict[tuple[str, Variant], ProbeRecord] = {}
        self._family_probes: dict[tuple[str, int | None], FamilyProbes] = {}
        self._generation_memo: dict[tuple[str, Variant], str] = {}
        #: Audited hits awaiting their recomputation: (kind, sample id, variant) -> (cache key, stored value).
        self._audits: dict[tuple[str, str, Variant], tuple[str, Any]] = {}
        self._audit = self.cache is not None and self.cache.audit > 0
        if self._audit and not getattr(model, "deterministic", True):
            # Its values differ between two passes by themselves: no comparison could tell a
            # stale entry from the model's own noise.
            self._audit = False
            warnings.warn(CacheWarning(f"--vlmgate-cache-audit: model {model.spec} is not deterministic, so its "
                                       "cache hits are not audited"), stacklevel=2)
        may_not_answer = getattr(model, "scoring", "exact") != "exact"
        self._scores = _RequestKind(
            "score", self._memo, WorkItem, lambda s, v: "score",
            lambda s, v, row: observation_from_scores(s.id, v, np.asarray(row, dtype=np.float64), self.model.spec,
                                                      may_not_answer),
            ObservationCache.get, lambda cache, key, obs: cache.put(key, np.asarray(obs.scores)))
        self._probes = _RequestKind(
            "probe", self._probe_memo, self._probe_item, self._probe_cache_kind,
            lambda s, v, record: record, ObservationCache.get_probe, ObservationCache.put_probe)
        self._generations = _RequestKind(
            "generate", self._generation_memo, WorkItem, lambda s, v: "generate",
            lambda s, v, text: str(text), ObservationCache.get_text, ObservationCache.put_text)
        #: Open ``reading()`` records (a case's evaluation), each told of every observation handed out.
        self._readers: list[ObservationsRead] = []
        #: Forward-pass requests actually sent to the model (not served from memory or cache).
        self.requests_scored = 0
        #: Probe requests actually sent to the model (each costs several passes).
        self.requests_probed = 0
        #: Generation requests actually sent to the model (one pass per generated token).
        self.requests_generated = 0

    # -- samples -------------------------------------------------------------------
    def samples(self) -> SampleSet:
        """The run's samples (a lazily re-read sequence; see ``SampleSet``)."""
        return self._samples

    # -- scoring -------------------------------------------------------------------
    def perturb(self, sample: Sample, variant: Variant, family: PerturbationFamily | None) -> Sample:
        if family is None:
            return sample
        return batches.perturbed(sample, variant, family, self.seed)

    def shown(self, sample: Sample, variant: Variant) -> Sample:
        """``sample`` as the model sees it under ``variant`` (``vlmgate.batches.shown``, this run's seed)."""
        return batches.shown(sample, variant, self.seed)

    def _score_request(self, sample: Sample, variant: Variant) -> ScoreRequest:
        """The score request a dispatcher builds for ``(sample, variant)``."""
        return batches.request("score", WorkItem(sample, variant), self.seed)

    def _probe_item(self, sample: Sample, variant: Variant) -> WorkItem:
        """A probe's item; ``ans_mcq`` teacher-forces the prediction already observed."""
        known = self._memo.get((sample.id, variant))
        return WorkItem(sample, variant, None if known is None else known.prediction)

    def _probe_cache_kind(self, sample: Sample, variant: Variant) -> str:
        """A probe's value depends on the option ``ans_mcq`` teacher-forces: part of its key."""
        known = self._memo.get((sample.id, variant))
        return f"probe:{'argmax' if known is None else known.prediction}"

    def _cache_key(self, kind: _RequestKind, sample: Sample, variant: Variant) -> str:
        digest = self._digests.get(sample.id)
        if digest is None:
            digest = self._digests[sample.id] = sample_digest(sample)
        return observation_key(self.model.fingerprint, kind.cache_kind(sample, variant), sample.id, digest,
                               variant, self._family_version(variant), self.seed, self.batch_size)

    def _family_version(self, variant: Variant) -> int:
        """The ``version`` of the family that makes ``variant`` (0 for the clean image)."""
        if variant.family == CLEAN_FAMILY:
            return 0
        if variant.family not in self._family_versions:
            self._family_versions[variant.family] = get_family(variant.family).version
        return self._family_versions[variant.family]

    def _canonical_batches(self, items: Iterable[tuple[Sample, Variant]]
                           ) -> Iterator[list[tuple[Sample, Variant]]]:
        """Unique ``items`` in batches that depend only on the items (see module docstring).

        Each window of ``WINDOW_BATCHES`` batches is ordered (stably) by clean image size,
        variant and prompt length, then cut into batches of at most ``batch_size`` that
        never mix clean image sizes, so the processor pads or resizes alike within a batch.
        """
        seen: set[tuple[str, Variant]] = set()
        window: list[tuple[Sample, Variant]] = []
        width = self.batch_size * WINDOW_BATCHES

        def flush() -> Iterator[list[tuple[Sample, Variant]]]:
            window.sort(key=lambda item: (item[0].image.size, item[1].label, len(prompt_for(item[0]))))
            batch: list[tuple[Sample, Variant]] = []
            for item in window:
                if batch and (len(batch) == self.batch_size or item[0].image.size != batch[0][0].image.size):
                    yield batch
                    batch = []
                batch.append(item)
            if batch:
                yield batch
            window.clear()

        for sample, variant in items:
            key = (sample.id, variant)
            if key in seen:
                continue
            seen.add(key)
            window.append((sample, variant))
            if len(window) == width:
                yield from flush()
        yield from flush()

    def _needs_compute(self, kind: _RequestKind, batch: Sequence[tuple[Sample, Variant]], audit: bool = True) -> bool:
        """Fill what the cache knows of ``batch`` into the memo; whether anything is left.

        With ``audit``, a hit the cache picks for its audit is held back for comparison
        (``_audits``) and counts as left: its canonical batch is computed.
        """
        missing = False
        for sample, variant in batch:
            if (sample.id, variant) in kind.memo:
                continue
            value = None
            if self.cache is not None:
                key = self._cache_key(kind, sample, variant)
                stored = kind.read(self.cache, key, len(option_continuations(sample)))
                value = None if stored is None else kind.convert(sample, variant, stored)
                if value is not None and audit and self._audit and self.cache.audits(key, self.seed):
                    self._audits[(kind.name, sample.id, variant)] = (key, value)
                    value = None
            if value is None:
                missing = True
            else:
                kind.memo[(sample.id, variant)] = value
        return missing

    def _audited(self, kind: _RequestKind, sample: Sample, variant: Variant, fresh: Any) -> str | None:
        """Compare a recomputed value with the audited hit it stands for, if it is one: ``None``
        when they are the same (or it is none), else what differs. The entry is not written."""
        held = self._audits.pop((kind.name, sample.id, variant), None)
        if held is None or self.cache is None:
            return None
        key, stored = held
        self.cache.audited += 1
        if same_value(stored, fresh):
            return None
        return (f"cache entry {key} at {self.cache.entry_path(key, kind.name)} ({kind.name} of sample "
                f"{sample.id!r} under {variant.label}, model {self.model.spec}) differs from its recomputation: "
                f"{describe_difference(stored, fresh)}")

    def _keep(self, kind: _RequestKind, batch: Sequence[tuple[Sample, Variant]], results: Sequence[Any],
              private: dict | None = None) -> None:
        """Store a computed batch: memo (values already known stay as they were) and cache.

        With ``private``, new values go there instead, and neither to the memo nor the cache.
        """
        differences: list[str] = []
        for (sample, variant), result in zip(batch, results):
            if (sample.id, variant) in kind.memo:
                continue
            if private is not None:
                private[(sample.id, variant)] = kind.convert(sample, variant, result)
            elif self.cache is not None:
                key = self._cache_key(kind, sample, variant)  # before the memo: probe keys read it
                value = kind.convert(sample, variant, result)
                if (kind.name, sample.id, variant) in self._audits:  # compared, never written over
                    difference = self._audited(kind, sample, variant, value)
                    if difference is not None:
                        differences.append(difference)
                        continue
                    kind.memo[(sample.id, variant)] = value
                    continue
                kind.memo[(sample.id, variant)] = value
                kind.write(self.cache, key, value)
            else:
                kind.memo[(sample.id, variant)] = kind.convert(sample, variant, result)
        if kind is self._scores:
            self.requests_scored += len(batch)
        elif kind is self._probes:
            self.requests_probed += len(batch)
        else:
            self.requests_generated += len(batch)
        if differences and self.cache is not None:
            more = f" (and {len(differences) - 1} more in this batch)" if len(differences) > 1 else ""
            raise CacheAuditError(
                f"--vlmgate-cache-audit: {differences[0]}{more}. A cold recomputation in the same canonical batch "
                f"gives a deterministic model's values back bit for bit, so the cache {self.cache.root} holds stale "
                "or altered values (another checkpoint, branch or vlmgate build wrote them); delete that folder, "
                "or run with --vlmgate-no-cache")

    def _tally(self, kind: _RequestKind, name: str, total: int | None = None) -> PassTally:
        """A new pass of ``kind`` reporting to the engine's progress sink."""
        return PassTally(self.progress, name, kind.name, total, time.monotonic())

    def _run(self, kind: _RequestKind, items: Iterable[tuple[Sample, Variant]], private: dict | None = None, *,
             total: int | None = None, tally: PassTally | None = None) -> None:
        """Make every item of ``items`` known to ``kind.memo``: memo, then cache, then model.

        Items stream: batches are cut lazily and submitted whole to the dispatcher, which
        prepares and computes them; up to its ``capacity`` are outstanding, so the next
        batches are perturbed while the current ones compute. Results are kept in
        submission order. With ``private``, what the model computes goes there (see ``observe``).
        Each batch known (read or computed) is counted on ``tally``; without one the call is
        a pass of its own of ``total`` items (``None``: unknown), named after its first item,
        and finished here.
        """
        own = tally is None
        if tally is None:
            tally = self._tally(kind, kind.name, total)
            items = _naming(items, tally)
        # Claims only where the values are shared: a private pass never enters the cache.
        claims = self.claims if private is None else None
        held: set[str] = set()
        deferred: list[tuple[list[tuple[Sample, Variant]], str]] = []
        in_flight: deque = deque()

        def finish(done: list[tuple[Sample, Variant]], pending, key: str | None) -> None:
            self._keep(kind, done, self._results(kind, done, pending), private)
            if key is not None and claims is not None:
                claims.release(key)
                held.discard(key)
            tally.add(len(done))

        try:
            for batch in self._canonical_batches(items):
                if not self._needs_compute(kind, batch, audit=private is None):
                    tally.add(len(batch))
                    continue
                key = None
                if claims is not None:
                    key = self._batch_key(kind, batch)
                    if not claims.try_claim(key):
                        deferred.append((batch, key))  # another worker computes it: read it at the end
                        continue
                    held.add(key)
                in_flight.append((batch, self._submit(kind, batch), key))
                while len(in_flight) >= self.dispatcher.capacity:
                    finish(*in_flight.popleft())
            while in_flight:
                finish(*in_flight.popleft())
            if claims is not None:
                self._wait_for_others(kind, deferred, claims, held, finish, tally)
        finally:
            if claims is not None:
                for key in held:
                    claims.release(key)
        if own:
            tally.finish()

    def _wait_for_others(self, kind: _RequestKind, deferred: list[tuple[list[tuple[Sample, Variant]], str]],
                         claims: BatchClaims, held: set[str], finish: Callable[..., None], tally: PassTally) -> None:
        """Read the batches other workers claimed once their claims go; compute one whose holder failed."""
        for batch, key in deferred:
            while True:
                claims.wait(key)
                if not self._needs_compute(kind, batch):
                    tally.add(len(batch))
                    break
                if claims.try_claim(key):  # its holder died or failed: compute it here
                    held.add(key)
                    finish(batch, self._submit(kind, batch), key)
                    break

    def _submit(self, kind: _RequestKind, batch: Sequence[tuple[Sample, Variant]]):
        """Hand one canonical batch to the dispatcher; its pending result."""
        return self.dispatcher.submit(Batch(kind.name, self.seed, tuple(kind.item(s, v) for s, v in batch)))

    def _results(self, kind: _RequestKind, batch: Sequence[tuple[Sample, Variant]], pending) -> Sequence[Any]:
        """A computed batch's results, one per request, or ``ModelError`` naming the adapter.

        Every computed result passes here, and leaves with its option scores in the sample's
        own order (``batches.in_sample_order``: a prompt-side family may have shown them in
        another), before memo, cache, audit or any metric sees it.
        """
        results = pending.result()
        if len(results) != len(batch):
            raise ModelError(f"model {self.model.spec}: {KINDS[kind.name]}() returned {len(results)} results "
                             f"for a batch of {len(batch)} requests; an adapter must return one per request")
        return [batches.in_sample_order(kind.name, sample, variant, result)
                for (sample, variant), result in zip(batch, results)]

    def _batch_key(self, kind: _RequestKind, batch: Sequence[tuple[Sample, Variant]]) -> str:
        """A name every worker gives this canonical batch: the hash of its items' cache keys."""
        joined = "\n".join(self._cache_key(kind, sample, variant) for sample, variant in batch)
        return hashlib.sha256(joined.encode("utf-8")).hexdigest()

    def dispatch_counts(self) -> DispatchCounts:
        """What this engine's dispatcher did so far (shared by the engines of one model in a session)."""
        return self.dispatcher.counts()

    @contextmanager
    def reading(self) -> Iterator[ObservationsRead]:
        """Record the score observations handed out (``observe``, ``clean``, ``family``) until the block ends."""
        read = ObservationsRead()
        self._readers.append(read)
        try:
            yield read
        finally:
            self._readers.remove(read)

    def _handed(self, observations: Iterable[Observation]) -> None:
        if self._readers:
            held = list(observations)
            for read in self._readers:
                read.add(held)

    def observe(self, items: Iterable[tuple[Sample, Variant]], *, private: bool = False) -> list[Observation]:
        """Observations of ``items`` in order, scoring only what is not yet known.

        ``items`` are one request: they are batched by their own rule. They may be a
        generator, consumed as batches are cut, so a caller can make its inputs (render
        cross-modal forms) as they are needed instead of holding them all. A caller whose items
        are not a whole request of their own (a search that scores a few instances, one
        clean sample) passes ``private=True``: what is known already (memo, cache) is read,
        and what has to be computed is returned without entering the memo or the cache.
        Otherwise a value computed in an odd batch (rounded differently by ~1e-6) would
        stand in for the canonical one in every later pass and run, and results would
        depend on which case ran first.
        """
        computed: dict[tuple[str, Variant], Observation] | None = {} if private else None
        keys: list[tuple[str, Variant]] = []
        self._run(self._scores, _recording(items, keys), computed, total=_length(items))
        observed = [self._memo[key] if key in self._memo else computed[key] for key in keys]  # type: ignore[index]
        self._handed(observed)
        return observed

    def probe(self, items: Iterable[tuple[Sample, Variant]]) -> list[ProbeRecord]:
        """Probe records of ``items`` in order, probing only what is not yet known.

        Score an item (``observe``) first where ``ans_mcq`` must follow its prediction;
        an item probed unscored teacher-forces the arg-max of the probe pass's own scores.
        """
        require_probes(self.model)
        keys: list[tuple[str, Variant]] = []
        self._run(self._probes, _recording(items, keys), total=_length(items))
        return [self._probe_memo[key] for key in keys]

    def generate(self, items: Iterable[tuple[Sample, Variant]]) -> list[str]:
        """Greedy replies to ``items`` in order (each variant names its ``max_new_tokens``).

        ``items`` are one request, batched by their own rule, memoised and cached like
        scores: a reply is a deterministic function of the model and its input.
        """
        require_generation(self.model, "this gate")
        keys: list[tuple[str, Variant]] = []
        self._run(self._generations, _recording(items, keys), total=_length(items))
        return [self._generation_memo[key] for key in keys]

    def clean(self) -> dict[str, Observation]:
        """Clean observations of every sample: one pass per (model, benchmark), shared by all suites."""
        if self._clean is None:
            self._run(self._scores, ((s, CLEAN) for s in self.samples()), total=len(self.samples()))
            self._clean = {sample_id: self._memo[(sample_id, CLEAN)] for sample_id in self.samples().ids}
        self._handed(self._clean.values())
        return self._clean

    def repeat_clean(self) -> dict[str, Observation]:
        """The clean pass scored a second time past memo and cache, in the same canonical batches.

        A deterministic model gives the first pass back; a served model may not (batching on
        the server, non-deterministic kernels): how often its answers differ is its own noise,
        the floor under which no flip rate means anything. Computed once per engine.
        """
        if self._repeat is None:
            self.clean()
            repeat: dict[str, Observation] = {}
            tally = self._tally(self._scores, "clean (repeat)", len(self.samples()))
            in_flight: deque = deque()  # as in _run: the next batches are prepared while these compute

            def finish(batch: list[tuple[Sample, Variant]], pending: Any) -> None:
                for (sample, variant), row in zip(batch, self._results(self._scores, batch, pending)):
                    repeat[sample.id] = self._scores.convert(sample, variant, row)
                tally.add(len(batch))

            for batch in self._canonical_batches((s, CLEAN) for s in self.samples()):
                in_flight.append((batch, self._submit(self._scores, batch)))
                while len(in_flight) >= self.dispatcher.capacity:
                    finish(*in_flight.popleft())
            while in_flight:
                finish(*in_flight.popleft())
            tally.finish()
            self.requests_scored += len(repeat)
            self._repeat = repeat
        return self._repeat

    def variants(self, name: str, sample: Sample, *, prediction: int | None = None) -> tuple[Variant, ...]:
        """The family's default grid for one sample.

        The one rule every pass and suite builds a grid by: the family sees the sample's
        clean prediction and a generator seeded by (run seed, sample, family), so the grid
        is the same whichever case, worker or search asks for it. The prediction is the
        clean pass's unless given (a caller that must not start the whole clean pass, such
        as a replay that fails fast, passes the one it observed).
        """
        family = get_family(name)
        if prediction is None and family.needs_base_prediction:
            prediction = self.clean()[sample.id].prediction
        elif prediction is None and self._clean is not None:
            prediction = self._clean[sample.id].prediction
        context = VariantContext(prediction, rng_for(self.seed, "variants", sample.id, name))
        return tuple(family.variants(sample, context))

    def _grid_items(self, name: str, grid: dict[str, tuple[Variant, ...]], samples: Iterable[Sample] | None = None,
                    tally: PassTally | None = None) -> Iterator[tuple[Sample, Variant]]:
        """Stream the family's (sample, variant) items, recording each sample's variants in ``grid``.

        ``tally``'s total is estimated once the first sample's grid is known (its size times
        the number of samples): the grid of a sample is built only when the stream reaches it.
        """
        for sample in self.samples() if samples is None else samples:
            grid[sample.id] = self.variants(name, sample)
            if tally is not None and len(grid) == 1:
                tally.estimate(len(grid[sample.id]) * len(self.samples()))
            for variant in grid[sample.id]:
                yield sample, variant

    def variant_grid(self, name: str, samples: Iterable[Sample] | None = None) -> dict[str, tuple[Variant, ...]]:
        """The family's default grid of variants for every sample, or for ``samples``."""
        grid: dict[str, tuple[Variant, ...]] = {}
        for _ in self._grid_items(name, grid, samples):
            pass
        return grid

    def family(self, name: str) -> FamilyObservations:
        """The family's default grid on every sample, scored once per session (streamed)."""
        if name not in self._families:
            clean = self.clean()
            grid: dict[str, tuple[Variant, ...]] = {}
            tally = self._tally(self._scores, name)
            self._run(self._scores, self._grid_items(name, grid, tally=tally), tally=tally)
            tally.finish()
            perturbed = {sample_id: tuple(self._memo[(sample_id, v)] for v in variants)
                         for sample_id, variants in grid.items()}
            self._families[name] = FamilyObservations(name, self.samples(), clean, perturbed)
        observed = self._families[name]
        self._handed(observed.clean.values())
        self._handed(o for row in observed.perturbed.values() for o in row)
        return observed

    def family_probes(self, name: str, first: int | None = None) -> FamilyProbes:
        """Probe records of the family's default grid and of the clean images, once per session.

        The family is scored first (``family``), so probes follow the flip gates' predictions
        and the flip flags of ``FamilyProbes.flipped`` are those the flip-rate suite judges.
        ``first`` probes only the first N samples (a suite's sample budget: probing costs
        several passes per instance); their scores are still the family's whole pass, which
        the flip gates share, so a budget never changes what another gate judges.
        """
        if (name, first) not in self._family_probes:
            require_probes(self.model)
            observations = self.family(name)
            samples: Sequence[Sample] = self.samples()
            if first is not None:
                samples = self.samples()[:first]
                observations = FamilyObservations(name, samples, observations.clean,
                                                  {s.id: observations.perturbed[s.id] for s in samples})
            instances = sum(len(observed) for observed in observations.perturbed.values())
            tally = self._tally(self._probes, f"{name} probes", len(samples) + instances)
            self._run(self._probes, ((s, CLEAN) for s in samples), tally=tally)
            self._run(self._probes, ((s, obs.variant) for s in samples for obs in observations.perturbed[s.id]),
                      tally=tally)
            tally.finish()
            clean = {sample_id: self._probe_memo[(sample_id, CLEAN)] for sample_id in observations.perturbed}
            perturbed = {sample_id: tuple(self._probe_memo[(sample_id, obs.variant)] for obs in observed)
                         for sample_id, observed in observations.perturbed.items()}
            self._family_probes[(name, first)] = FamilyProbes(name, observations, clean, perturbed)
        return self._family_probes[(name, first)]
