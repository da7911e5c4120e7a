"""The per-process state of a gating run: loaded models, benchmarks and engines.

Models and benchmarks load on first use and are shared by every case that names them,
so a model loads once per pytest process (once per xdist worker). A load error is
remembered and reported by every case that needs that model, without retrying.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from vlmgate.cases import CaseKey
from vlmgate.errors import VlmgateError
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
    """Lazily loaded models, benchmarks and one engine per (model, benchmark)."""

    def __init__(self, settings: Settings, thresholds: ThresholdSet):
        self.settings = settings
        self.thresholds = thresholds
        self._cache: Any = None
        self._models = _Memo()
        self._benchmarks = _Memo()
        self._engines = _Memo()
        self._dispatchers: list[Any] = []
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

            self._cache = ObservationCache(self.settings.cache_dir)
        return self._cache

    def model_options(self):
        """This process's load options: its device under ``--vlmgate-devices``; torch threads set.

        With the Ray backend the replicas hold the model on the requested device; this
        process keeps a CPU copy for its fingerprint and spec only.
        """
        from vlmgate.placement import apply_torch_threads, placement

        place = placement(device=self.settings.device, devices=self.settings.devices,
                          torch_threads=self.settings.torch_threads)
        apply_torch_threads(place.torch_threads)
        device = "cpu" if self.settings.backend == "ray" else place.device
        return self._options(device)

    def _options(self, device: str):
        """``ModelOptions`` of the run settings on ``device``."""
        return self.settings.model_options(device)

    def model(self, spec: str):
        from vlmgate.models.base import load_model

        return self._models.get(spec, lambda: load_model(spec, self.model_options()))

    def _dispatcher(self, model: Any):
        """The local dispatcher, or Ray replicas of ``model`` (``--vlmgate-backend ray``)."""
        if self.settings.backend != "ray":
            return None
        from vlmgate.ray_backend import RayDispatcher

        dispatcher = RayDispatcher(model.spec, self._options(self.settings.device), fingerprint=model.fingerprint)
        self._dispatchers.append(dispatcher)
        return dispatcher

    def cache_counts(self) -> tuple[int, int]:
        """This process's cache (hits, misses); (0, 0) when it never looked anything up."""
        return (0, 0) if self._cache is None else (self._cache.hits, self._cache.misses)

    def close(self) -> None:
        """Release backend resources (Ray actors); models are freed with the process."""
        for dispatcher in self._dispatchers:
            dispatcher.close()
        self._dispatchers.clear()

    def benchmark(self, spec: str):
        """The benchmark ``spec``, loaded once under the run's ``BenchmarkOptions`` (pixel budget)."""
        from vlmgate.benchmarks.base import load_benchmark

        return self._benchmarks.get(spec, lambda: load_benchmark(spec, self.settings.benchmark_options()))

    def engine(self, model_spec: str, benchmark_spec: str):
        from vlmgate.engine import Engine

        def make():
            model = self.model(model_spec)
            return Engine(model, self.benchmark(benchmark_spec), seed=self.settings.seed,
                          limit=self.settings.limit, batch_size=self.settings.batch_size, cache=self.cache,
                          dispatcher=self._dispatcher(model))

        return self._engines.get(f"{model_spec}\x00{benchmark_spec}", make)

    def fingerprints(self, case: CaseKey) -> dict[str, dict[str, str]]:
        """Fingerprints of a judged case's model and benchmark (both loaded by judging it)."""
        engine = self.engine(case.model, case.benchmark)
        return {"models": {case.model: str(engine.model.fingerprint)},
                "benchmarks": {case.benchmark: str(engine.benchmark.fingerprint)}}

    def run_options(self) -> "RunOptions":
        """What suites may read of the run settings (seed, limit, the search's options)."""
        from vlmgate.suites.base import RunOptions, SearchOptions

        settings = self.settings
        search = SearchOptions(settings.search, settings.search_budget, self.counterexamples, settings.search_images)
        return RunOptions(settings.seed, settings.limit, search)

    def evaluate(self, case: CaseKey) -> list[MetricResult]:
        """The case's results, after checking the adapter offers what the suite needs.

        An adapter without a capability the suite requires (probes of hidden states,
        generation, pixel gradients, exact option scores) skips the case with the reason.
        """
        from vlmgate.suites import get_suite
        from vlmgate.suites.base import CaseContext

        suite = get_suite(case.suite)
        engine = self.engine(case.model, case.benchmark)
        suite.check_adapter(case.family, engine.model)
        return suite.conform(suite.evaluate(CaseContext(case, engine, self.run_options())))
