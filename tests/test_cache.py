"""The on-disk observation cache: keys, round trips, atomicity, checksums, audits, concurrency."""

import io
import math
import multiprocessing
import os
import re
import struct

import numpy as np
import pytest
from PIL import Image

from vlmgate.cache import (
    TRAILER_SIZE,
    WARNED_ENTRIES,
    CacheAuditError,
    CacheWarning,
    ObservationCache,
    describe_difference,
    observation_key,
    probe_to_arrays,
    same_value,
    sample_digest,
    seal,
)
from vlmgate.engine import Engine
from vlmgate.errors import ConfigError
from vlmgate.models.base import PROBES, ProbeRecord
from vlmgate.records import CLEAN, Sample, Variant
from vlmgate.settings import build_settings

from test_engine_cache import BatchSensitiveAdapter, GeneratedBenchmark, observed


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


def not_served(path):
    """``pytest.warns`` for the ``CacheWarning`` that names ``path`` and says it will be recomputed."""
    return pytest.warns(CacheWarning, match=re.escape(str(path)) + ".* it will be recomputed")


def store(path, payload: bytes) -> None:
    """Write ``payload`` at ``path`` with a valid trailer: a whole entry whose value is what is tested."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(seal(path.name, payload))


def npy(value) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, value, allow_pickle=False)
    return buffer.getvalue()


def test_a_truncated_entry_is_a_miss_with_a_warning_and_removed(tmp_path):
    cache = ObservationCache(tmp_path)
    key = "cd" * 32
    cache.put(key, np.array([1.0]))
    path = tmp_path / key[:2] / f"{key}.npy"
    path.write_bytes(path.read_bytes()[:20])  # truncated
    with not_served(path):
        assert cache.get(key, 1) is None
    assert not path.exists() and (cache.hits, cache.misses) == (0, 1)


def test_a_score_vector_altered_in_place_is_detected_and_not_served(tmp_path):
    """One float's bytes changed, the length kept: the payload is still a valid, finite vector
    of the right shape, so only the checksum can tell, and it does."""
    cache = ObservationCache(tmp_path)
    key = "a1" * 32
    cache.put(key, np.array([-1.5, -2.25, -0.75]))
    path = tmp_path / key[:2] / f"{key}.npy"
    data = bytearray(path.read_bytes())
    first = len(data) - TRAILER_SIZE - 3 * 8  # the first of the three float64 scores
    data[first:first + 8] = struct.pack("<d", 0.0)  # -1.5 becomes 0.0: option 0 would win
    path.write_bytes(bytes(data))
    assert np.load(path).tolist() == [0.0, -2.25, -0.75]  # what a cache without checksums would serve
    with not_served(path) as caught:
        assert cache.get(key, 3) is None
    assert "checksum does not match" in str(caught[0].message)
    assert not path.exists() and (cache.hits, cache.misses) == (0, 1)


def test_past_five_entries_not_served_one_warning_says_the_rest_are_counted(tmp_path):
    """An older vlmgate's cache holds thousands of entries without a trailer: each is recomputed,
    the first few are named, one more warning says the rest are counted, and all are counted."""
    cache = ObservationCache(tmp_path)
    keys = [f"{k:02x}" * 32 for k in range(WARNED_ENTRIES + 3)]
    for key in keys:
        cache.put(key, np.array([1.0, 2.0]))
        path = tmp_path / key[:2] / f"{key}.npy"
        path.write_bytes(path.read_bytes()[:-TRAILER_SIZE])  # an entry as written before checksums
    with pytest.warns(CacheWarning) as caught:
        assert all(cache.get(key, 2) is None for key in keys)
    messages = [str(w.message) for w in caught]
    assert len(messages) == WARNED_ENTRIES + 1
    assert all(keys[i] in messages[i] for i in range(WARNED_ENTRIES))
    assert f"more than {WARNED_ENTRIES} entries are not served" in messages[-1]
    assert (cache.misses, cache.not_served) == (len(keys), len(keys))


def test_a_score_vector_altered_in_the_cache_is_recomputed_by_the_engine_not_served(tmp_path):
    benchmark = GeneratedBenchmark(9)
    reference = observed(Engine(BatchSensitiveAdapter(), benchmark, batch_size=4))
    cold = Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=ObservationCache(tmp_path))
    observed(cold)
    path = tmp_path / (key := cold._cache_key(cold._scores, cold.samples()[0], CLEAN))[:2] / f"{key}.npy"
    original = path.read_bytes()
    altered = bytearray(original)
    altered[-TRAILER_SIZE - 8:-TRAILER_SIZE] = struct.pack("<d", 0.0)  # the last option now wins
    path.write_bytes(bytes(altered))
    model = BatchSensitiveAdapter()
    warm = Engine(model, benchmark, batch_size=4, cache=ObservationCache(tmp_path))
    with not_served(path):
        assert observed(warm) == reference
    assert warm.cache.misses == 1 and len(model.batches) == 1  # the altered entry's canonical batch
    assert path.read_bytes() == original  # the recomputed value overwrote it, byte for byte


def test_an_entry_of_the_old_format_or_another_key_is_a_miss(tmp_path):
    cache = ObservationCache(tmp_path)
    old, other, copied = "0f" * 32, "1f" * 32, "2f" * 32
    old_path = tmp_path / old[:2] / f"{old}.npy"
    old_path.parent.mkdir()
    np.save(old_path, np.array([-1.0, -2.0]), allow_pickle=False)  # exactly what format 1 wrote
    with not_served(old_path) as caught:
        assert cache.get(old, 2) is None
    assert "no checksum trailer" in str(caught[0].message)
    cache.put(other, np.array([-1.0, -2.0]))
    versioned = tmp_path / other[:2] / f"{other}.npy"
    data = bytearray(versioned.read_bytes())
    data[-TRAILER_SIZE + 8:-TRAILER_SIZE + 10] = struct.pack(">H", 1)  # a trailer of another format version
    versioned.write_bytes(bytes(data))
    with not_served(versioned) as caught:
        assert cache.get(other, 2) is None
    assert "cache format 1" in str(caught[0].message)
    cache.put(other, np.array([-1.0, -2.0]))
    moved = tmp_path / copied[:2] / f"{copied}.npy"
    moved.parent.mkdir()
    moved.write_bytes(versioned.read_bytes())  # a whole entry, under a key that is not its own
    with not_served(moved):
        assert cache.get(copied, 2) is None
    assert cache.get(other, 2) is not None and (cache.hits, cache.misses) == (1, 3)


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
    store(path, npy(stored))  # checksummed: the value itself is what the reader refuses
    with not_served(path):
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
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **_spoil(probe_to_arrays(record()), name, value))
    store(path, buffer.getvalue())
    with not_served(path):
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


# -- the audit -------------------------------------------------------------------------------


def test_which_hits_are_audited_depends_on_the_key_and_seed_only(tmp_path):
    keys = [f"{i:064x}" for i in range(4000)]
    cache = ObservationCache(tmp_path, audit=0.25)
    chosen = {key for key in keys if cache.audits(key, seed=0)}
    assert chosen == {key for key in keys if ObservationCache(tmp_path / "other", audit=0.25).audits(key, seed=0)}
    assert abs(len(chosen) / len(keys) - 0.25) < 0.03
    assert chosen != {key for key in keys if cache.audits(key, seed=1)}  # another run seed, another sample
    assert chosen < {key for key in keys if ObservationCache(tmp_path, audit=0.5).audits(key, seed=0)}  # nested
    assert not any(ObservationCache(tmp_path).audits(key, 0) for key in keys)
    assert all(ObservationCache(tmp_path, audit=1.0).audits(key, 0) for key in keys)
    with pytest.raises(ValueError, match="fraction"):
        ObservationCache(tmp_path, audit=1.5)


class RecordingCache(ObservationCache):
    """An ``ObservationCache`` that remembers which keys it picked for the audit."""

    def __init__(self, root, audit=0.0):
        super().__init__(root, audit)
        self.picked: set[str] = set()

    def audits(self, key, seed):
        chosen = super().audits(key, seed)
        if chosen:
            self.picked.add(key)
        return chosen


def test_the_audit_recomputes_the_chosen_fraction_in_any_order_and_serves_equal_values(tmp_path):
    benchmark = GeneratedBenchmark(21)
    reference = observed(Engine(BatchSensitiveAdapter(), benchmark, batch_size=4))
    observed(Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=ObservationCache(tmp_path)))
    entries = {path: path.read_bytes() for path in tmp_path.glob("*/*.npy")}
    expected = {path.stem for path in entries if ObservationCache(tmp_path, audit=0.3).audits(path.stem, seed=0)}
    assert 0 < len(expected) < len(entries)

    forward = Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=RecordingCache(tmp_path, 0.3))
    assert observed(forward) == reference  # bit for bit: recomputed in the batches that wrote them
    backward = Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=RecordingCache(tmp_path, 0.3))
    backward.family("padcrop"), backward.family("rotation"), backward.clean()  # another order of cases
    assert observed(backward) == reference
    for engine in (forward, backward):
        assert engine.cache.picked == expected and engine.cache.audited == len(expected)
        assert engine.cache.misses == 0 and 0 < engine.requests_scored < len(entries)
    assert {path: path.read_bytes() for path in entries} == entries  # nothing rewritten


def test_the_audit_fails_naming_key_path_and_both_values_of_a_stale_entry(tmp_path):
    """A value written whole through the cache (a valid checksum) but not this model's: what a
    cache restored from another branch holds. The checksum cannot see it; the audit does."""
    benchmark = GeneratedBenchmark(9)
    reference = observed(Engine(BatchSensitiveAdapter(), benchmark, batch_size=4))
    cold = Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=ObservationCache(tmp_path))
    observed(cold)
    first = cold.samples()[0]
    key = cold._cache_key(cold._scores, first, CLEAN)
    good = reference["clean"][first.id].scores
    stale = tuple(score - 0.125 for score in good)
    cold.cache.put(key, np.array(stale))
    path = tmp_path / key[:2] / f"{key}.npy"
    entry = path.read_bytes()

    served = Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=ObservationCache(tmp_path))
    assert served.clean()[first.id].scores == stale  # without the audit, the stale value is a hit

    audited = Engine(BatchSensitiveAdapter(), benchmark, batch_size=4, cache=ObservationCache(tmp_path, audit=1.0))
    with pytest.raises(CacheAuditError) as failure:
        audited.clean()
    message = str(failure.value)
    for part in (key, str(path), repr(stale), repr(good), repr(first.id), "--vlmgate-no-cache"):
        assert part in message, part
    assert "\n" not in message
    assert path.read_bytes() == entry  # compared, not written over: the evidence stays


def test_a_model_that_is_not_deterministic_is_not_audited(tmp_path):
    class Served(BatchSensitiveAdapter):
        deterministic = False

    benchmark = GeneratedBenchmark(5)
    Engine(Served(), benchmark, batch_size=4, cache=ObservationCache(tmp_path)).clean()
    with pytest.warns(CacheWarning, match="not deterministic"):
        engine = Engine(Served(), benchmark, batch_size=4, cache=ObservationCache(tmp_path, audit=1.0))
    engine.clean()
    assert engine.requests_scored == 0 and engine.cache.audited == 0


def test_values_compare_exactly_and_a_difference_is_described():
    original = record(width=32)
    copy = ProbeRecord(np.array(original.scores), {p: v.copy() for p, v in original.embeddings.items()},
                       list(original.answer_tokens), original.vision_tokens.copy(), tuple(original.vision_grid))
    assert same_value(original, copy)
    nudged = dict(copy.embeddings)
    nudged[PROBES[1]] = copy.embeddings[PROBES[1]].copy()
    nudged[PROBES[1]][3] = np.nextafter(nudged[PROBES[1]][3], np.float32(np.inf))  # one ulp
    changed = ProbeRecord(copy.scores, nudged, copy.answer_tokens, copy.vision_tokens, copy.vision_grid)
    assert not same_value(original, changed)
    text = describe_difference(original, changed)
    assert f"embeddings[{PROBES[1]!r}]" in text and "1 of 32 elements differ" in text
    assert repr(float(original.embeddings[PROBES[1]][3])) in text
    assert not same_value(np.array([-1.0, -2.0]), np.array([-1.0, -2.0 + 2 ** -50]))
    assert describe_difference(np.array([-1.0, -2.0]), np.array([-1.0, -2.5])) == \
        "value: stored [-1.0, -2.0], recomputed [-1.0, -2.5]"
    assert not same_value("a reply", "another reply")


@pytest.mark.parametrize("fraction", [0, -0.5, 1.5, math.nan, math.inf])
def test_an_audit_fraction_outside_zero_to_one_is_refused(tmp_path, fraction):
    with pytest.raises(ConfigError) as refused:
        build_settings(tmp_path, {"cache_audit": fraction})
    assert str(refused.value).startswith("--vlmgate-cache-audit must be a fraction of cache hits in (0, 1]")
    assert "pass e.g. --vlmgate-cache-audit 0.05" in str(refused.value) and "\n" not in str(refused.value)


def test_an_audit_fraction_is_kept_and_needs_the_cache(tmp_path):
    assert build_settings(tmp_path, {}).cache_audit == 0.0
    assert build_settings(tmp_path, {"cache_audit": 1.0}).cache_audit == 1.0
    assert build_settings(tmp_path, {"cache_audit": 0.05}).cache_audit == 0.05
    with pytest.raises(ConfigError, match="which --vlmgate-no-cache turns off; drop one of them"):
        build_settings(tmp_path, {"cache_audit": 0.05, "no_cache": True})
