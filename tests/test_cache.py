"""The on-disk observation cache: keys, round trips, atomicity, damaged entries, concurrency."""

import multiprocessing
import os

import numpy as np
import pytest
from PIL import Image

from vlmgate.cache import ObservationCache, observation_key, probe_to_arrays, sample_digest
from vlmgate.models.base import PROBES, ProbeRecord
from vlmgate.records import Sample, Variant


def sample(pixel=(1, 2, 3), question="Q?"):
    return Sample("s1", Image.new("RGB", (4, 3), pixel), question, ("a", "b"), 0)


def test_key_depends_on_everything_the_value_depends_on():
    base = dict(model_fingerprint="m", kind="score", sample_id="s1", content_digest=sample_digest(sample()),
                variant=Variant.of("rotation", angle=30), family_version=1, seed=0, batch_size=8)
    key = observation_key(**base)
    assert key == observation_key(**base)
    for field, other in [("model_fingerprint", "m2"), ("kind", "embed"), ("sample_id", "s2"),
                         ("content_digest", sample_digest(sample(pixel=(1, 2, 4)))),
                         ("variant", Variant.of("rotation", angle=-30)), ("family_version", 2), ("seed", 1),
                         ("batch_size", 16)]:
        assert observation_key(**{**base, field: other}) != key, field
    assert sample_digest(sample(question="Q2?")) != sample_digest(sample())


def test_round_trip_and_stats(tmp_path):
    cache = ObservationCache(tmp_path)
    assert cache.get("ab" * 32, 2) is None
    cache.put("ab" * 32, np.array([-1.5, -2.25]))
    np.testing.assert_array_equal(cache.get("ab" * 32, 2), [-1.5, -2.25])
    assert (cache.hits, cache.misses) == (1, 1)
    stats = cache.stats()
    assert stats.entries == 1 and stats.bytes > 0


def test_damaged_entry_is_a_miss_and_removed(tmp_path):
    cache = ObservationCache(tmp_path)
    key = "cd" * 32
    cache.put(key, np.array([1.0]))
    path = tmp_path / key[:2] / f"{key}.npy"
    path.write_bytes(path.read_bytes()[:20])  # truncated
    assert cache.get(key, 1) is None and not path.exists()


@pytest.mark.parametrize("stored, why", [
    (np.array([-1.0, -2.0, -3.0]), "three scores for a request with two options"),
    (np.array([-1.0]), "one score for a request with two options"),
    (np.array([-1.0, np.nan]), "a NaN score"),
    (np.array([-1.0, -np.inf]), "an infinite score"),
    (np.array([[-1.0, -2.0]]), "a 2-D array"),
    (np.array([-1, -2]), "integers, not float64"),
    (np.array([-1.0, -2.0], dtype=np.float32), "float32, not float64"),
])
def test_a_score_vector_that_does_not_fit_the_request_is_a_miss_and_removed(tmp_path, stored, why):
    cache = ObservationCache(tmp_path)
    key = "5e" * 32
    cache.put(key, np.array([-1.0, -2.0]))
    path = tmp_path / key[:2] / f"{key}.npy"
    np.save(path, stored, allow_pickle=False)  # what a foreign writer or an older layout left
    assert cache.get(key, 2) is None, why
    assert not path.exists() and (cache.hits, cache.misses) == (0, 1)


def record(width=8, options=2, grid=(1, 2, 2)):
    rng = np.random.default_rng(0)
    return ProbeRecord(scores=rng.normal(size=options), embeddings={p: rng.normal(size=width).astype(np.float32)
                                                                    for p in PROBES},
                       answer_tokens=(3, 4), vision_tokens=rng.normal(size=(int(np.prod(grid)), width)),
                       vision_grid=grid)


def test_probe_record_round_trip(tmp_path):
    cache = ObservationCache(tmp_path)
    original = record()
    cache.put_probe("7a" * 32, original)
    loaded = cache.get_probe("7a" * 32, 2)
    np.testing.assert_array_equal(loaded.scores, original.scores)
    assert loaded.answer_tokens == (3, 4) and loaded.vision_grid == (1, 2, 2)
    for probe in PROBES:
        np.testing.assert_array_equal(loaded.embeddings[probe], original.embeddings[probe])


def _spoil(arrays: dict, name: str, value) -> dict:
    return {**arrays, name: value}


@pytest.mark.parametrize("name, value, why", [
    ("scores", np.array([-1.0, -2.0, -3.0]), "three scores for two options"),
    ("scores", np.array([-1.0, np.nan]), "a NaN score"),
    (f"embedding.{PROBES[0]}", np.full(8, np.inf, dtype=np.float32), "an infinite embedding"),
    (f"embedding.{PROBES[1]}", np.zeros(9, dtype=np.float32), "an embedding of another width"),
    (f"embedding.{PROBES[2]}", np.zeros((2, 8), dtype=np.float32), "a 2-D embedding"),
    ("vision_tokens", np.zeros((5, 8)), "five vision tokens for a 1x2x2 grid"),
    ("vision_tokens", np.zeros(32), "1-D vision tokens"),
    ("vision_tokens", np.full((4, 8), np.nan), "NaN vision tokens"),
    ("vision_grid", np.array([1, 2]), "a grid of two numbers"),
    ("answer_tokens", np.zeros((2, 2), dtype=np.int64), "2-D answer tokens"),
])
def test_a_probe_record_that_does_not_fit_the_request_is_a_miss_and_removed(tmp_path, name, value, why):
    cache = ObservationCache(tmp_path)
    key = "9b" * 32
    path = tmp_path / key[:2] / f"{key}.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, allow_pickle=False, **_spoil(probe_to_arrays(record()), name, value))
    assert cache.get_probe(key, 2) is None, why
    assert not path.exists() and (cache.hits, cache.misses) == (0, 1)


def test_failed_write_leaves_no_entry(tmp_path, monkeypatch):
    cache = ObservationCache(tmp_path)

    def boom(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        cache.put("ef" * 32, np.array([1.0]))
    monkeypatch.undo()
    assert cache.get("ef" * 32, 1) is None
    assert list(tmp_path.rglob("*")) == [tmp_path / "ef"]  # no temporary file left behind


def _writer(root, start):
    cache = ObservationCache(root)
    for i in range(200):
        cache.put(f"{i % 20:064x}", np.arange(i % 20, dtype=np.float64))


def test_concurrent_writers_never_expose_partial_entries(tmp_path):
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(tmp_path, k)) for k in range(2)]
    for w in writers:
        w.start()
    cache = ObservationCache(tmp_path)
    seen = 0
    while any(w.is_alive() for w in writers):
        for i in range(20):
            value = cache.get(f"{i:064x}", i)
            if value is not None:
                np.testing.assert_array_equal(value, np.arange(i, dtype=np.float64))
                seen += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert cache.stats().entries == 20


def test_prune_removes_least_recently_used_entries_first(tmp_path):
    cache = ObservationCache(tmp_path)
    keys = [f"{i:02x}" * 32 for i in range(4)]
    for age, key in zip((400, 300, 200, 100), keys):  # keys[0] written longest ago
        cache.put(key, np.zeros(1000))
        path = tmp_path / key[:2] / f"{key}.npy"
        os.utime(path, (path.stat().st_atime - age, path.stat().st_mtime - age))
    size = (tmp_path / keys[0][:2] / f"{keys[0]}.npy").stat().st_size
    assert cache.get(keys[0], 1000) is not None  # a hit makes keys[0] the most recently used

    result = cache.prune(2 * size)
    assert (result.removed, result.freed_bytes) == (2, 2 * size)
    assert [cache.get(k, 1000) is not None for k in keys] == [True, False, False, True]
    assert cache.stats().bytes == 2 * size
    assert cache.prune(2 * size).removed == 0  # already under the cap
    assert cache.prune(0).removed == 2 and cache.stats().entries == 0
    assert "pruned 2 least recently used entries" in result.describe()
