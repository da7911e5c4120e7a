"""``--vlmgate-repeat-clean``: the clean pass scored twice, past memo and cache, and the share of
answers that differ recorded beside every flip rate (on by itself for non-deterministic models)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vlmgate.cache import ObservationCache
from vlmgate.engine import Engine
from vlmgate.metrics.flips import repeat_flip_rate
from vlmgate.suites.base import RunOptions
from vlmgate.testing import evaluate_case

from test_engine_cache import BatchSensitiveAdapter, GeneratedBenchmark


@dataclass
class NoisyServer(BatchSensitiveAdapter):
    """Every second scoring of samples s001, s004 and s007 answers option 3: a server's repeat noise."""

    deterministic: bool = False
    calls: dict = field(default_factory=dict)

    def score(self, requests):
        rows = super().score(requests)
        for request, row in zip(requests, rows):
            seen = self.calls[request.sample_id] = self.calls.get(request.sample_id, 0) + 1
            if seen % 2 == 0 and request.sample_id in ("s001", "s004", "s007"):
                row[:] = np.array([-9.0, -9.0, -9.0, 0.0])
        return rows


def test_repeat_flip_rate_by_hand():
    result = repeat_flip_rate({"a": 0, "b": 1, "c": 2, "d": 3}, {"a": 0, "b": 2, "c": 2, "d": 0})
    assert (result.value, result.n, result.count) == (0.5, 4, 2)
    assert result.units == {"a": 0, "b": 1, "c": 0, "d": 1} and result.better == "lower"


def test_a_noisy_model_records_its_noise_in_every_flip_rate_case_without_the_option(tmp_path):
    model = NoisyServer()
    engine = Engine(model, GeneratedBenchmark(9), batch_size=4, cache=ObservationCache(tmp_path))
    clean = {r.name: r for r in evaluate_case("flip_rate", engine, "clean")}
    noise = clean["repeat_flip_rate"]
    assert (noise.count, noise.n) == (3, 9)  # s001, s004, s007 answered differently the second time
    rotation = {r.name: r for r in evaluate_case("flip_rate", engine, "rotation")}
    assert rotation["repeat_flip_rate"] == noise  # measured once per engine, shown beside the flip rate
    assert engine.repeat_clean() is engine.repeat_clean()


def test_a_deterministic_model_records_it_only_when_asked_and_then_it_is_zero(tmp_path):
    engine = Engine(BatchSensitiveAdapter(), GeneratedBenchmark(9), batch_size=4, cache=ObservationCache(tmp_path))
    assert "repeat_flip_rate" not in {r.name for r in evaluate_case("flip_rate", engine, "clean")}
    warm = Engine(BatchSensitiveAdapter(), GeneratedBenchmark(9), batch_size=4, cache=ObservationCache(tmp_path))
    results = {r.name: r for r in evaluate_case("flip_rate", warm, "clean", RunOptions(repeat_clean=True))}
    assert results["repeat_flip_rate"].value == 0.0 and results["repeat_flip_rate"].n == 9
    assert warm.requests_scored == 9  # the repeat was computed, not read back from the cache


def test_an_adapter_that_drops_a_result_is_an_error_in_the_pass_and_in_its_repeat():
    import pytest

    from vlmgate.errors import ModelError

    class Dropping(BatchSensitiveAdapter):
        drop = False

        def score(self, requests):
            rows = super().score(requests)
            return rows[:-1] if self.drop else rows

    model = Dropping()
    engine = Engine(model, GeneratedBenchmark(5), batch_size=4)
    engine.clean()
    model.drop = True
    with pytest.raises(ModelError, match=r"score\(\) returned (\d+) results for a batch of (?!\1)\d+ requests"):
        engine.repeat_clean()  # never a silently shorter repeat
    with pytest.raises(ModelError, match=r"an adapter must return one per request"):
        Engine(model, GeneratedBenchmark(5), batch_size=4).clean()
