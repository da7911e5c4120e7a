"""Claim-and-wait: workers sharing a cache folder compute each canonical batch once.

Two engines in two threads stand in for two xdist workers: each has its own model and
memo and only the cache folder in common. A slow stub model makes their passes overlap.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from vlmgate.cache import ObservationCache
from vlmgate.claims import BatchClaims
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


def test_a_claim_left_by_a_dead_process_is_broken_and_the_batch_computed(tmp_path):
    claims = BatchClaims(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "k.claim").write_text(f"{claims.host} {int(dead.stdout)} {time.time():.3f}\n")
    assert claims.try_claim("k")  # its holder is gone
    assert not BatchClaims(tmp_path).try_claim("k")  # and now it is ours, alive
    claims.release("k")
    assert BatchClaims(tmp_path).try_claim("k")


def test_a_live_claim_is_waited_for_and_an_old_or_unreadable_one_is_not(tmp_path):
    claims = BatchClaims(tmp_path, poll_s=0.01)
    assert claims.try_claim("live")
    releaser = threading.Timer(0.1, claims.release, args=("live",))
    started = time.monotonic()
    releaser.start()
    BatchClaims(tmp_path, poll_s=0.01).wait("live")
    assert time.monotonic() - started >= 0.09
    foreign = tmp_path / "old.claim"
    foreign.write_text(f"elsewhere {os.getpid()} 0\n")
    os.utime(foreign, (time.time() - 7200, time.time() - 7200))
    assert BatchClaims(tmp_path).try_claim("old")  # older than the timeout: its holder died elsewhere
    garbled = tmp_path / "garbled.claim"
    garbled.write_text("")
    assert not BatchClaims(tmp_path).try_claim("garbled")  # may be being written this instant
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
