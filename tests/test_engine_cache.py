"""The engine with the observation cache: canonical batches, streaming, placement, the dispatchers.

A stub adapter whose scores depend (by 1e-9 per request) on the size of the batch they
were computed in stands in for real float rounding: observations must be equal bit for
bit with or without a cache, cold, warm or partly filled, which holds only if every
batch is computed with the same composition.
"""

from __future__ import annotations

import gc
import threading
import weakref
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import pytest
from PIL import Image

from vlmgate.batches import Batch, WorkItem
from vlmgate.cache import ObservationCache
from vlmgate.dispatch import DispatchCounts, LocalDispatcher
from vlmgate.engine import Engine, SampleSet
from vlmgate.errors import ConfigError
from vlmgate.models.base import ScoreRequest
from vlmgate.placement import Placement, device_for_worker, parse_devices, placement, threads_for_worker
from vlmgate.records import CLEAN, Sample


@dataclass
class BatchSensitiveAdapter:
    """Option i scores ``-|mean/64 - i|``, plus 1e-9 x the batch size (a stand-in for rounding)."""

    spec: str = "stub:batch"
    fingerprint: str = "stub-batch"
    batches: list[int] = field(default_factory=list)

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        self.batches.append(len(requests))
        out = []
        for request in requests:
            level = float(np.asarray(request.image.convert("L")).mean()) / 64.0
            out.append(np.array([-abs(level - i) + 1e-9 * len(requests) for i in range(len(request.continuations))]))
        return out


@dataclass
class GeneratedBenchmark:
    """``n`` samples drawn on the fly; ``images`` holds weak references to every image made."""

    n: int
    spec: str = "stub:generated"
    fingerprint: str = "stub-generated"
    images: list = field(default_factory=list)

    def __len__(self) -> int:
        return self.n

    def samples(self) -> Iterator[Sample]:
        for i in range(self.n):
            image = Image.new("RGB", (64 + 8 * (i % 3), 64), (9 * i % 256, 40, 90))
            self.images.append(weakref.ref(image))
            yield Sample(f"s{i:03d}", image, "Which level?", ("a", "b", "c", "d"), i % 4)


def observed(engine: Engine) -> dict:
    return {"clean": engine.clean(), **{name: engine.family(name).perturbed for name in ("rotation", "padcrop")}}


def test_a_cache_filled_at_one_batch_size_does_not_serve_another(tmp_path):
    """Batches of 4 round differently from batches of 2: a warm run at 2 over entries written at 4
    would differ from a cold one, so the batch size is part of the key."""
    benchmark = GeneratedBenchmark(9)
    observed(Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=ObservationCache(tmp_path)))
    reference = observed(Engine(BatchSensitiveAdapter(), benchmark, batch_size=2))
    model = BatchSensitiveAdapter()
    other = Engine(model, benchmark, batch_size=2, cache=ObservationCache(tmp_path))
    assert observed(other) == reference
    assert other.cache.hits == 0 and max(model.batches) == 2


def test_observations_are_bit_identical_without_cache_cold_warm_and_partly_cached(tmp_path):
    benchmark = GeneratedBenchmark(21)
    reference = observed(Engine(BatchSensitiveAdapter(), benchmark, batch_size=4))
    cold = Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=ObservationCache(tmp_path))
    assert observed(cold) == reference and cold.requests_scored > 0
    warm_model = BatchSensitiveAdapter()
    warm = Engine(warm_model, benchmark, batch_size=4, cache=ObservationCache(tmp_path))
    assert observed(warm) == reference
    assert warm_model.batches == [] and warm.cache.misses == 0
    # A run killed midway leaves some entries: a batch with any missing item is computed whole.
    for path in sorted(tmp_path.glob("*/*.npy"))[::3]:
        path.unlink()
    partial_model = BatchSensitiveAdapter()
    partial = Engine(partial_model, benchmark, batch_size=4, cache=ObservationCache(tmp_path))
    assert observed(partial) == reference
    assert 0 < sum(partial_model.batches) < cold.requests_scored


def test_a_changed_family_version_misses_only_that_familys_entries(tmp_path, monkeypatch):
    from vlmgate.perturbations.rotation import Rotation

    benchmark = GeneratedBenchmark(9)
    cold = Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=ObservationCache(tmp_path))
    observed(cold)
    assert Rotation.version == 1
    monkeypatch.setattr(Rotation, "version", 2)  # what a changed rotation implementation declares
    model = BatchSensitiveAdapter()
    warm = Engine(model, benchmark, batch_size=4, cache=ObservationCache(tmp_path))
    observed(warm)
    rotated = sum(len(v) for v in warm.family("rotation").perturbed.values())
    assert warm.requests_scored == rotated == warm.cache.misses > 0  # clean and padcrop were hits
    assert warm.cache.hits == len(warm.samples()) + sum(len(v) for v in warm.family("padcrop").perturbed.values())


def test_a_cached_vector_with_the_wrong_option_count_is_a_miss_and_rewritten(tmp_path):
    benchmark = GeneratedBenchmark(9)
    reference = observed(Engine(BatchSensitiveAdapter(), benchmark, batch_size=4))
    cold = Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=ObservationCache(tmp_path))
    observed(cold)
    entries = sorted(tmp_path.glob("*/*.npy"))
    for path in entries:  # three scores where the requests have four options
        np.save(path, np.load(path)[:3], allow_pickle=False)
    warm = Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=ObservationCache(tmp_path))
    assert observed(warm) == reference
    assert (warm.cache.hits, warm.cache.misses) == (0, len(entries)) and warm.requests_scored == len(entries)
    assert all(np.load(path).shape == (4,) for path in entries)  # rewritten whole


def test_requests_name_their_sample():
    seen: list[str] = []

    class Recorder(BatchSensitiveAdapter):
        def score(self, requests):
            seen.extend(r.sample_id for r in requests)
            return super().score(requests)

    engine = Engine(Recorder(), GeneratedBenchmark(5), batch_size=2)
    engine.clean()
    assert sorted(seen) == [f"s{i:03d}" for i in range(5)]
    request = engine._score_request(next(iter(engine.samples())), CLEAN)
    assert request == ScoreRequest(request.image, request.prompt, request.continuations)  # the label is no content


def test_private_observations_never_stand_in_for_canonical_ones(tmp_path):
    """A search scoring one clean sample and one grid instance first changes nothing after it."""
    benchmark = GeneratedBenchmark(9)
    reference = observed(Engine(BatchSensitiveAdapter(), benchmark, batch_size=4))
    engine = Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=ObservationCache(tmp_path))
    first = next(iter(engine.samples()))
    variant = engine.family("rotation").perturbed[first.id][0].variant  # a grid item, scored alone below
    fresh = Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=ObservationCache(tmp_path / "fresh"))
    alone_clean, alone_rotated = fresh.observe([(first, CLEAN), (first, variant)], private=True)
    assert alone_clean.scores[0] != reference["clean"][first.id].scores[0]  # a batch of 2: rounded otherwise
    assert observed(fresh) == reference  # the odd batch entered neither the memo nor the cache
    assert fresh.observe([(first, CLEAN)], private=True)[0] == reference["clean"][first.id]  # now known: read
    again = Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=ObservationCache(tmp_path / "fresh"))
    assert observed(again) == reference


def test_the_clean_pass_runs_once_whatever_the_number_of_families():
    model = BatchSensitiveAdapter()
    engine = Engine(model, GeneratedBenchmark(10), batch_size=4)
    for name in ("rotation", "padcrop", "scale", "blank"):
        engine.family(name)
    clean_requests = sum(1 for _ in engine.samples())
    per_family = {name: sum(len(v) for v in engine.family(name).perturbed.values())
                  for name in ("rotation", "padcrop", "scale", "blank")}
    assert engine.requests_scored == clean_requests + sum(per_family.values())


def test_batches_group_images_of_one_size_and_samples_are_not_held():
    benchmark = GeneratedBenchmark(48)
    seen_sizes: list[set] = []

    class SizeRecorder(BatchSensitiveAdapter):
        def score(self, requests):
            seen_sizes.append({r.image.size for r in requests})
            return super().score(requests)

    engine = Engine(SizeRecorder(), benchmark, batch_size=4)
    engine.clean()
    assert all(len(sizes) == 1 for sizes in seen_sizes)  # three sizes, never mixed in a batch
    engine.family("padcrop")
    gc.collect()
    alive = sum(ref() is not None for ref in benchmark.images)
    assert alive <= 1, f"{alive} decoded images still held after the family pass"


def test_sample_set_is_a_lazy_sequence():
    samples = SampleSet(GeneratedBenchmark(10), limit=7)
    assert len(samples) == 7 and samples[2].id == "s002" and samples[-1].id == "s006"
    assert [s.id for s in samples[1:7:2]] == ["s001", "s003", "s005"]
    assert samples.ids == tuple(f"s{i:03d}" for i in range(7)) and samples.answers["s005"] == 1
    with pytest.raises(IndexError):
        samples[7]


def test_workers_map_to_devices_round_robin():
    devices = parse_devices("cuda:0, cuda:1")
    assert devices == ("cuda:0", "cuda:1")
    assert [device_for_worker(devices, f"gw{k}") for k in range(5)] == ["cuda:0", "cuda:1"] * 2 + ["cuda:0"]
    assert device_for_worker(devices, None) == "cuda:0"  # no xdist: the first device
    assert placement(device="cpu", devices=("cpu", "cpu"), torch_threads=None,
                     environ={"PYTEST_XDIST_WORKER": "gw1", "PYTEST_XDIST_WORKER_COUNT": "2"},
                     cpu_count=8) == Placement("cpu", 4)
    assert placement(device="cuda:3", devices=None, torch_threads=None, environ={}, cpu_count=8) == \
        Placement("cuda:3", None)
    assert threads_for_worker(3, 8, 2) == 3 and threads_for_worker(None, 2, 4) == 1
    with pytest.raises(ConfigError, match="gwN"):
        device_for_worker(devices, "worker-1")


@pytest.mark.integration  # a local Ray cluster: run by `pytest tests --integration` (CI)
def test_the_ray_backend_gives_bit_identical_results(tiny_llava_checkpoint, ray_cluster):
    import torch

    from vlmgate.models.base import ModelOptions, load_model
    from vlmgate.ray_backend import RayDispatcher

    # Each replica runs one torch thread; reductions split over another thread count round
    # differently, so the local reference runs with one thread too.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    benchmark = GeneratedBenchmark(10)
    spec = f"hf:{tiny_llava_checkpoint}"
    local_model = load_model(spec, ModelOptions())
    local = Engine(local_model, benchmark, batch_size=4)
    dispatcher = RayDispatcher(spec, ModelOptions())
    try:
        assert len(dispatcher.actors) == 2 and dispatcher.capacity == 4  # one replica per CPU slot
        assert dispatcher.model.fingerprint == local_model.fingerprint
        remote = Engine(dispatcher.model, benchmark, batch_size=4, dispatcher=dispatcher)
        assert observed(remote) == observed(local)
        assert remote.requests_scored == local.requests_scored
        probes_local, probes_remote = local.family_probes("padcrop"), remote.family_probes("padcrop")
        for sample_id, records in probes_local.perturbed.items():
            for a, b in zip(records, probes_remote.perturbed[sample_id]):
                for probe, vector in a.embeddings.items():
                    np.testing.assert_array_equal(vector, b.embeddings[probe])
    finally:
        dispatcher.close()
        torch.set_num_threads(threads)


def test_local_dispatcher_prepares_on_its_thread_and_computes_in_order():
    calls: list[tuple[str, int]] = []

    class Recorder(BatchSensitiveAdapter):
        def score(self, requests):
            calls.append((threading.current_thread().name, len(requests)))
            return super().score(requests)

    with pytest.raises(ValueError, match="unknown request kind"):
        Batch("forward", 0, ())
    engine = Engine(Recorder(), GeneratedBenchmark(3))
    assert [obs.sample_id for obs in engine.observe([(s, CLEAN) for s in engine.samples()])] == ["s000", "s001", "s002"]
    assert calls == [(threading.current_thread().name, 1)] * 3  # three image sizes; on the engine's thread
    assert engine.dispatch_counts() == DispatchCounts("local", batches=3)
    dispatcher = LocalDispatcher(Recorder())
    first = next(iter(engine.samples()))
    pending = dispatcher.submit(Batch("score", 0, (WorkItem(first, CLEAN),)))
    assert isinstance(pending.prepared.result()[0], ScoreRequest)  # prepared before anyone asked
    assert len(calls) == 3 and len(pending.result()) == 1 and len(calls) == 4
    dispatcher.close()


def test_an_adapter_that_cannot_vouch_for_its_weights_neither_reads_nor_writes_the_cache(tmp_path):
    """A served model without a revision (``cacheable = False``): another checkpoint served under
    the same name must not be handed this one's values, so the cache stays untouched."""
    cache = ObservationCache(tmp_path / "cache")
    vouching = Engine(BatchSensitiveAdapter(), GeneratedBenchmark(4), cache=cache)
    vouching.clean()
    stored = cache.stats().entries
    assert stored == 4

    class Unvouched(BatchSensitiveAdapter):
        cacheable = False

    unvouched = Unvouched()
    engine = Engine(unvouched, GeneratedBenchmark(4), cache=cache)
    engine.clean()
    assert sum(unvouched.batches) == 4  # computed, not read from the four stored entries
    assert cache.stats().entries == stored and engine.cache is None
