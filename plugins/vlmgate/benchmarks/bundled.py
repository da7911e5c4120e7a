"""``bundled:NAME`` — a benchmark split shipped under ``fixtures/benchmarks/NAME``."""

from __future__ import annotations

from vlmgate.benchmarks.base import DEFAULT_OPTIONS, BenchmarkOptions
from vlmgate.benchmarks.jsonl import JsonlBenchmark
from vlmgate.errors import DataError
from vlmgate.fixture_paths import bundled_entry


def load_bundled_benchmark(name: str, *, spec: str, options: BenchmarkOptions = DEFAULT_OPTIONS) -> JsonlBenchmark:
    return JsonlBenchmark(bundled_entry("benchmarks", name, DataError) / "manifest.jsonl", spec, options)
