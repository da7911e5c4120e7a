"""The per-process state of a gating run: loaded models, benchmarks and engines.

Models and benchmarks load on first use and are shared by every case that names them,
so a model loads once per pytest process (once per xdist worker), or, under the Ray
backend, once per replica and never in this process. A load error is remembered and
reported by every case that needs that model, without retrying.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from vlmgate.cases import CaseKey
from vlmgate.errors import VlmgateError
from vlmgate.progress import NO_PROGRESS, ProgressSink
from vlmgate.records import MetricResult
from vlmgate.settings import Settings
from vlmgate.thresholds import ThresholdSet

if TYPE_CHECKING:
    from vlmgate.suites.base import RunOptions


@dataclass
class _Memo:
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, VlmgateError] = field(default_factory=dict)

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        if key in self.errors:
            raise self.errors[key]
        if key not in self.values:
            try:
                self.values[key] = make()
            except VlmgateError as exc:
                self.errors[key] = exc
                raise
        return self.values[key]


class GateSession:
    """Lazily loaded models, benchmarks and one engine per (model, benchmark).

    ``progress`` receives every engine's passes (the plugin's terminal display; nothing by
    default), so a long case shows how far it has got without the engine knowing pytest.
    """

    def __init__(self, settings: Settings, thresholds: ThresholdSet, progress: ProgressSink = NO_PROGRESS):
        self.settings = settings
        self.thresholds = thresholds
        self.progress = progress
        self._cache: Any = None
        self._models = _Memo()
        self._benchmarks = _Memo()
        self._engines = _Memo()
        self._dispatchers = _Memo()
        #: Per (model, benchmark): how the model reads the benchmark's first sample. It decodes
        #: that sample and renders its context (a replica call under Ray), so once, not per case.
        self._descriptions = _Memo()
        #: The counterexample store as read at start-up (``load_counterexamples``).
        self.counterexamples: Any = None

    def load_counterexamples(self, families: list[str]) -> None:
        """Read the store once, at start-up: a malformed file fails before any test, and a
        failure found during the run is replayed next run, not by later cases of this one."""
        from vlmgate.search.counterexamples import CounterexampleStore

        self.counterexamples = CounterexampleStore.load(self.settings.counterexamples, families)

    @property
    def cache(self):
        """The observation cache (``None`` with ``--vlmgate-no-cache``); numpy loads on first use."""
        if self._cache is None and self.settings.cache_dir is not None:
            from vlmgate.cache import ObservationCache

            self._cache = ObservationCache(self.settings.cache_dir, audit=self.settings.cache_audit)
        return self._cache

    def model_options(self):
        """This process's load options: its device under ``--vlmgate-devices``; torch threads set."""
        from vlmgate.placement import apply_torch_threads, placement

        place = placement(device=self.settings.device, devices=self.settings.devices,
                          torch_threads=self.settings.torch_threads)
        apply_torch_threads(place.torch_threads)
        return self.settings.model_options(place.device)

    def model(self, spec: str):
        """The model ``spec``: loaded here, or under the Ray backend what its replicas report.

        With ``--vlmgate-backend ray`` this process loads no weights: the replicas do, and
        the engine works with their ``RemoteModel`` (spec, fingerprint, capabilities).
        """
        if self.settings.backend == "ray":
            return self.dispatcher(spec).model
        from vlmgate.models.base import load_model

        return self._models.get(spec, lambda: self._load(load_model, spec))

    def _load(self, load_model: Callable[..., Any], spec: str) -> Any:
        """Load ``spec`` with the libraries' own progress bars off (``models.progress_bars``): one
        "Loading weights" bar per load and worker says nothing the run's progress does not."""
        from vlmgate.models.progress_bars import third_party_bars_off

        with third_party_bars_off():
            return load_model(spec, self.model_options())

    def dispatcher(self, spec: str):
        """Where the batches of model ``spec`` are computed, one dispatcher per model and process.

        Engines of one model (one per benchmark) share it: under Ray they share its replicas,
        and its ``DispatchCounts`` are the model's in this process.
        """
        settings = self.settings

        def make():
            if settings.backend == "ray":
                from vlmgate.ray_backend import RayDispatcher

                return RayDispatcher(spec, settings.model_options(), replicas=settings.ray_replicas,
                                     gpus_per_replica=settings.ray_gpus_per_replica)
            from vlmgate.dispatch import LocalDispatcher

            return LocalDispatcher(self.model(spec))

        return self._dispatchers.get(spec, make)

    def dispatch_counts(self, spec: str):
        """``DispatchCounts`` of model ``spec`` in this process, or ``None`` when it dispatched nothing."""
        dispatcher = self._dispatchers.values.get(spec)
        return None if dispatcher is None else dispatcher.counts()

    def cache_counts(self) -> tuple[int, int, int]:
        """This process's cache (hits, misses, entries not served); zeros when it never looked anything up."""
        return (0, 0, 0) if self._cache is None else (self._cache.hits, self._cache.misses, self._cache.not_served)

    def close(self) -> None:
        """Release backend resources (Ray replicas, then Ray itself, so the last opened closes first)."""
        for dispatcher in reversed(list(self._dispatchers.values.values())):
            dispatcher.close()
        self._dispatchers = _Memo()

    def benchmark(self, spec: str):
        """The benchmark ``spec``, loaded once under the run's ``BenchmarkOptions`` (pixel budget)."""
        from vlmgate.benchmarks.base import load_benchmark

        return self._benchmarks.get(spec, lambda: load_benchmark(spec, self.settings.benchmark_options()))

    def engine(self, model_spec: str, benchmark_spec: str):
        from vlmgate.engine import Engine

        def make():
            return Engine(self.model(model_spec), self.benchmark(benchmark_spec), seed=self.settings.seed,
                          limit=self.settings.limit, batch_size=self.settings.batch_size, cache=self.cache,
                          dispatcher=self.dispatcher(model_spec), progress=self.progress)

        return self._engines.get(f"{model_spec}\x00{benchmark_spec}", make)

    def fingerprints(self, case: CaseKey) -> dict[str, dict[str, Any]]:
        """Fingerprints of a judged case's model and benchmark (both loaded by judging it), and
        how the model read this benchmark's first sample (``model_descriptions``: its JSON
        ``ModelDescription``, prompt format and rendered context)."""
        from vlmgate.errors import NotApplicable
        from vlmgate.models.base import describe_model
        from vlmgate.prompts import prompt_for

        engine = self.engine(case.model, case.benchmark)

        def describe() -> dict[str, Any]:
            try:
                first = engine.samples()[0] if len(engine.samples()) else None
            except NotApplicable:  # a text-only benchmark (soebench:, textqa:) has no sample of its own to show
                first = None
            return describe_model(engine.model, None if first is None else prompt_for(first),
                                  benchmark=case.benchmark, sample=None if first is None else first.id,
                                  images=1 if first is None else len(first.images)).to_json()

        description = self._descriptions.get(f"{case.model}\x00{case.benchmark}", describe)
        return {"models": {case.model: str(engine.model.fingerprint)},
                "benchmarks": {case.benchmark: str(engine.benchmark.fingerprint)},
                "model_descriptions": {case.model: description}}

    def run_options(self) -> "RunOptions":
        """What suites may read of the run settings (seed, limit, the search's options)."""
        from vlmgate.suites.base import RunOptions, SearchOptions

        settings = self.settings
        search = SearchOptions(settings.search, settings.search_budget, self.counterexamples, settings.search_images)
        return RunOptions(settings.seed, settings.limit, search, settings.repeat_clean)

    def evaluate(self, case: CaseKey) -> list[MetricResult]:
        """The case's results, after checking the adapter offers what the suite needs, with
        rows that share an image clustered as one image (``metrics.shared_images``).

        An adapter without a capability the suite requires (probes of hidden states,
        generation, pixel gradients, exact option scores) skips the case with the reason.
        """
        from vlmgate.metrics.shared_images import cluster_by_image
        from vlmgate.suites import get_suite
        from vlmgate.suites.base import CaseContext

        suite = get_suite(case.suite)
        engine = self.engine(case.model, case.benchmark)
        suite.check_adapter(case.family, engine.model)
        return cluster_by_image(suite.run(CaseContext(case, engine, self.run_options())), engine.samples, suite.metric)
