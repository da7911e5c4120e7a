"""The per-process state of a gating run: loaded models, benchmarks and engines.

Models and benchmarks load on first use and are shared by every case that names them,
so a model loads once per pytest process (once per xdist worker). A load error is
remembered and reported by every case that needs that model, without retrying.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from vlmgate.cases import CaseKey
from vlmgate.errors import VlmgateError
from vlmgate.records import MetricResult
from vlmgate.settings import Settings
from vlmgate.thresholds import ThresholdSet


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
        self._models = _Memo()
        self._benchmarks = _Memo()
        self._engines = _Memo()

    def model(self, spec: str):
        from vlmgate.models.base import ModelOptions, load_model

        options = ModelOptions(self.settings.device, self.settings.dtype, self.settings.trust_remote_code)
        return self._models.get(spec, lambda: load_model(spec, options))

    def benchmark(self, spec: str):
        from vlmgate.benchmarks.base import load_benchmark

        return self._benchmarks.get(spec, lambda: load_benchmark(spec))

    def engine(self, model_spec: str, benchmark_spec: str):
        from vlmgate.engine import Engine

        def make():
            return Engine(self.model(model_spec), self.benchmark(benchmark_spec), seed=self.settings.seed,
                          limit=self.settings.limit, batch_size=self.settings.batch_size)

        return self._engines.get(f"{model_spec}\x00{benchmark_spec}", make)

    def evaluate(self, case: CaseKey) -> list[MetricResult]:
        from vlmgate.suites import get_suite

        return get_suite(case.suite).evaluate(self.engine(case.model, case.benchmark), case.family)
