"""Claim-and-wait: workers sharing a cache folder compute each canonical batch once.

Two engines in two threads stand in for two xdist workers: each has its own model and
memo and only the cache folder in common. A slow stub model makes their passes overlap.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from vlmgate.cache import ObservationCache
from vlmgate.claims import HEARTBEAT_S, SAY_EVERY_S, STALE_AFTER_S, BatchClaims, Heartbeat
from vlmgate.engine import Engine

from test_engine_cache import BatchSensitiveAdapter, GeneratedBenchmark, observed


@dataclass
class SlowAdapter(BatchSensitiveAdapter):
    """A model whose every batch takes ``delay`` seconds, so that two workers overlap."""

    delay: float = 0.02
    lock: threading.Lock = field(default_factory=threading.Lock)

    def score(self, requests):
        time.sleep(self.delay)
        return super().score(requests)


def test_two_workers_compute_every_batch_once_and_observe_the_same_values(tmp_path):
    benchmark = GeneratedBenchmark(24)
    reference_model = BatchSensitiveAdapter()
    reference = observed(Engine(reference_model, benchmark, batch_size=4))
    models = [SlowAdapter(), SlowAdapter()]
    engines = [Engine(model, benchmark, batch_size=4, cache=ObservationCache(tmp_path)) for model in models]
    results: list = [None, None]

    def work(i: int) -> None:
        results[i] = observed(engines[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[0] == reference and results[1] == reference
    computed = [sum(model.batches) for model in models]
    print(f"requests computed per worker: {computed}; one process alone: {sum(reference_model.batches)}")
    assert sum(computed) == sum(reference_model.batches)  # no batch computed twice
    assert min(computed) > 0  # and both did a share of the work
    assert not list((tmp_path / "claims").iterdir())  # every claim released


class FakeTime:
    """A monotonic clock and a wall clock that move only when a waiter sleeps; ``on_sleep``
    runs at each step (a holder's heartbeat, a release)."""

    def __init__(self, on_sleep: Callable[[float], None] = lambda now: None):
        self.now = 0.0
        self.base = time.time()
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.base + self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.on_sleep(self.now)


class NoHeartbeat(Heartbeat):
    """A holder whose heartbeat never runs: a process killed, stopped or gone with its host."""

    def hold(self, path, token):
        pass


def touch(path, at: float) -> None:
    os.utime(path, ns=(int(at * 1e9), int(at * 1e9)))


def waiter(root, fake: FakeTime, said: list[str], **options) -> BatchClaims:
    return BatchClaims(root, clock=fake.clock, wall=fake.wall, sleep=fake.sleep, say=said.append,
                       heartbeat=NoHeartbeat(), **options)


def holder_line(path) -> str:
    return path.read_text().split()[1]


def test_a_claim_whose_heartbeat_stops_is_broken_within_seconds_and_the_wait_said(tmp_path):
    fake, said = FakeTime(), []
    holder = BatchClaims(tmp_path, heartbeat=NoHeartbeat(), wall=fake.wall)
    assert holder.try_claim("k")
    touch(tmp_path / "k.claim", fake.wall())
    claims = waiter(tmp_path, fake, said)
    assert not claims.try_claim("k")  # fresh: its holder may be computing
    claims.wait("k")
    assert STALE_AFTER_S < fake.now < STALE_AFTER_S + 1  # broken within a second of going stale
    assert claims.broken == 1 and not (tmp_path / "k.claim").exists()
    claim = str(tmp_path / "k.claim")
    waiting = [line for line in said if line.startswith("vlmgate: waiting")]
    assert len(waiting) == math.ceil(STALE_AFTER_S / SAY_EVERY_S) - 1  # every SAY_EVERY_S, not every poll
    assert claim in waiting[0] and f"pid {os.getpid()} on {claims.host}" in waiting[0] and "heartbeat" in waiting[0]
    assert said[-1].startswith(f"vlmgate: broke batch claim {claim} held by pid {os.getpid()}")
    assert "no heartbeat for 10s" in said[-1] and "computing the batch here" in said[-1]
    assert claims.try_claim("k")


def test_a_live_heartbeat_keeps_a_claim_however_long_its_batch_takes(tmp_path):
    path = tmp_path / "k.claim"
    fake, said, beat = FakeTime(), [], [0.0]

    def holder_alive(now: float) -> None:  # beats every HEARTBEAT_S, releases at 60 s
        if now >= 60:
            path.unlink(missing_ok=True)
        elif now - beat[0] >= HEARTBEAT_S:
            beat[0] = now
            touch(path, fake.wall())

    fake.on_sleep = holder_alive
    assert BatchClaims(tmp_path, heartbeat=NoHeartbeat()).try_claim("k")
    touch(path, fake.wall())
    claims = waiter(tmp_path, fake, said)
    claims.wait("k")
    assert 60 <= fake.now < 60.1 and claims.broken == 0
    assert len(said) == 11 and all(line.startswith("vlmgate: waiting") for line in said)  # every 5 s
    assert "waiting 55s" in said[-1]


def test_a_claim_alive_but_held_past_the_bound_is_broken_and_computed_here(tmp_path):
    path = tmp_path / "k.claim"
    fake, said = FakeTime(), []
    fake.on_sleep = lambda now: touch(path, fake.wall()) if path.exists() else None  # a stuck holder's heartbeat
    assert BatchClaims(tmp_path, heartbeat=NoHeartbeat()).try_claim("k")
    claims = waiter(tmp_path, fake, said, max_wait_s=30.0)
    claims.wait("k")
    assert 30 <= fake.now < 30.1 and claims.broken == 1
    assert "still held with a live heartbeat (is its process stuck?)" in said[-1]
    assert claims.try_claim("k")


def test_another_hosts_claim_is_broken_at_once_when_old_and_after_watching_when_dated_ahead(tmp_path):
    fake, said = FakeTime(), []
    claims = waiter(tmp_path, fake, said)
    restored = tmp_path / "old.claim"  # from a CI cache of a cancelled job
    restored.write_text("ci-runner-7 4242 1700000000.000 0f0f\n")
    touch(restored, fake.wall() - 3600)
    assert claims.try_claim("old")
    assert "held by pid 4242 on ci-runner-7" in said[-1] and "no heartbeat for 1h" not in said[-1]
    skewed = tmp_path / "ahead.claim"  # written by a host whose clock runs an hour ahead, then gone
    skewed.write_text("ci-runner-8 99 0 0e0e\n")
    touch(skewed, fake.wall() + 3600)
    assert not claims.try_claim("ahead")
    claims.wait("ahead")  # its modification time never changes: stale after STALE_AFTER_S of watching
    assert STALE_AFTER_S < fake.now < STALE_AFTER_S + 1 and claims.broken == 2


def test_the_process_id_a_claim_names_does_not_matter(tmp_path):
    fake, said = FakeTime(), []
    claims = waiter(tmp_path, fake, said)
    # A live process id (this one, as a reused id would be) on a claim without a heartbeat: broken.
    (tmp_path / "reused.claim").write_text(f"{claims.host} {os.getpid()} 0 aaaa\n")
    touch(tmp_path / "reused.claim", fake.wall() - 2 * STALE_AFTER_S)
    assert claims.try_claim("reused")
    # A process id that no longer exists on a claim with a fresh heartbeat: kept.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "dead.claim").write_text(f"{claims.host} {int(dead.stdout)} 0 bbbb\n")
    touch(tmp_path / "dead.claim", fake.wall())
    assert not claims.try_claim("dead")


def test_the_heartbeat_thread_touches_only_claims_still_its_own_and_stops(tmp_path):
    heartbeat = Heartbeat(period=0.02)
    claims = BatchClaims(tmp_path, heartbeat=heartbeat)
    try:
        assert claims.try_claim("mine") and claims.try_claim("taken")
        for name in ("mine", "taken"):
            touch(tmp_path / f"{name}.claim", time.time() - 100)
        # "taken" was broken by a waiter and claimed by another process meanwhile.
        (tmp_path / "taken.claim").write_text("elsewhere 1 0 cccc\n")
        touch(tmp_path / "taken.claim", time.time() - 100)
        deadline = time.monotonic() + 5
        while heartbeat.beats == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert time.time() - (tmp_path / "mine.claim").stat().st_mtime < 5
        assert time.time() - (tmp_path / "taken.claim").stat().st_mtime > 50  # not kept alive by us
        claims.release("taken")  # nor removed by us
        assert (tmp_path / "taken.claim").read_text() == "elsewhere 1 0 cccc\n"
        thread = heartbeat._thread
        assert thread is not None and thread.daemon  # never keeps the process alive
    finally:
        heartbeat.stop()
    assert not thread.is_alive()
    claims.release("mine")
    assert not (tmp_path / "mine.claim").exists()


def test_a_live_claim_is_waited_for_and_an_unreadable_one_is_judged_by_its_age(tmp_path):
    claims = BatchClaims(tmp_path, poll_s=0.01)
    assert claims.try_claim("live")
    releaser = threading.Timer(0.1, claims.release, args=("live",))
    started = time.monotonic()
    releaser.start()
    BatchClaims(tmp_path, poll_s=0.01).wait("live")
    assert time.monotonic() - started >= 0.09
    garbled = tmp_path / "garbled.claim"
    garbled.write_text("")  # a holder killed between open and write, or writing this instant
    assert not BatchClaims(tmp_path).try_claim("garbled")
    os.utime(garbled, (time.time() - 60, time.time() - 60))
    assert BatchClaims(tmp_path).try_claim("garbled")


def test_a_folder_where_no_claim_can_be_written_computes_as_without_claims(tmp_path):
    blocker = tmp_path / "claims"
    blocker.write_text("a file where the folder goes")
    benchmark = GeneratedBenchmark(8)
    model = BatchSensitiveAdapter()
    engine = Engine(model, benchmark, batch_size=4, cache=ObservationCache(tmp_path))
    engine.claims = BatchClaims(blocker)
    assert observed(engine) == observed(Engine(BatchSensitiveAdapter(), benchmark, batch_size=4))
    assert np.sum(model.batches) > 0
