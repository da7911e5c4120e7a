"""The observation cache end to end, through pytester: same record cold, warm, 1 or 2 workers, after a kill.

The no-cache run of the kill test is the reference there, so "no cache" is compared too.

Every run gates the tiny LLaVA on the six-image manifest of ``test_plugin.py``: the
flip-rate cases ``clean`` and ``padcrop`` and the ``padcrop.ctx_mcq`` drift case (so both
request kinds, scores and probes, go through the cache), with ``--vlmgate-limit 4``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlmgate.report.record import load_record

from support import DRIFT_TEST, FLIP_TEST, RECORD_ONLY, gate_args

SELECT = ("-k", "clean or (padcrop and not ctx_open and not ans_mcq)", "--vlmgate-limit", "4")


@pytest.fixture
def suite_dir(pytester: pytest.Pytester):
    pytester.makepyfile(test_flip_rate=FLIP_TEST, test_drift=DRIFT_TEST)
    pytester.makefile(".toml", limits=RECORD_ONLY)  # the cache is what is tested: nothing is judged
    return pytester


def comparable_text(directory: Path) -> str:
    """The record as sorted JSON without its environment block (timings, workers, versions)."""
    return json.dumps(load_record(directory).comparable(), sort_keys=True)


def cache_line(result: pytest.RunResult) -> str:
    """The summary line of the "vlmgate: cache" section."""
    return next(line for line in result.stdout.lines if "this run:" in line)


def entries(cache: Path) -> list[Path]:
    """Stored values (not temporaries, not the claims a killed run may leave in ``claims/``)."""
    return sorted(p for p in cache.glob("*/*") if not p.name.startswith(".tmp-") and p.parent.name != "claims")


def test_record_is_the_same_cold_warm_and_with_two_workers(suite_dir, tiny_llava_checkpoint, manifest):
    args = gate_args(tiny_llava_checkpoint, manifest, *SELECT)
    cold = suite_dir.runpytest_subprocess(*args, "-p", "no:xdist", "--vlmgate-cache=c1", "--vlmgate-report=cold")
    assert cold.ret == 0, cold.stdout.str()
    assert " 0 hits" in cache_line(cold)
    stored = entries(suite_dir.path / "c1")
    assert any(p.suffix == ".npy" for p in stored) and any(p.suffix == ".npz" for p in stored)
    assert (suite_dir.path / "c1" / "CACHEDIR.TAG").is_file()

    warm = suite_dir.runpytest_subprocess(*args, "-p", "no:xdist", "--vlmgate-cache=c1", "--vlmgate-report=warm")
    assert warm.ret == 0 and " 0 misses" in cache_line(warm)
    assert f"{len(stored)} entries" in cache_line(warm)

    # Two workers on two (CPU) devices share a fresh cache; their counters reach the controller.
    two = suite_dir.runpytest_subprocess(*args, "-n", "2", "--vlmgate-devices=cpu,cpu", "--vlmgate-torch-threads=1",
                                         "--vlmgate-cache=c2", "--vlmgate-report=two")
    assert two.ret == 0 and "misses" in cache_line(two)
    reference = comparable_text(suite_dir.path / "cold")
    for name in ("warm", "two"):
        assert comparable_text(suite_dir.path / name) == reference, name


def test_a_run_killed_midway_restarts_reusing_the_cache_and_nothing_is_corrupt(suite_dir, tiny_llava_checkpoint,
                                                                             manifest):
    args = gate_args(tiny_llava_checkpoint, manifest, *SELECT, "-p", "no:xdist")
    reference = suite_dir.runpytest_subprocess(*args, "--vlmgate-no-cache", "--vlmgate-report=reference")
    assert reference.ret == 0 and "vlmgate: cache" not in reference.stdout.str()
    assert not (suite_dir.path / ".vlmgate_cache").exists()  # --vlmgate-no-cache writes nothing
    cache = suite_dir.path / "killed"
    # Kill a run as soon as it has written some entries (SIGKILL: no cleanup of any kind).
    process = subprocess.Popen([sys.executable, "-m", "pytest", *args, f"--vlmgate-cache={cache}"],
                               cwd=suite_dir.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(entries(cache)) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = entries(cache)
    assert written, "the run wrote nothing before it was killed"
    # What a kill mid-write leaves: a temporary file, and (a damaged disk) a truncated entry.
    (written[0].parent / ".tmp-dead.npy").write_bytes(b"\x93NUMPY half")
    written[-1].write_bytes(written[-1].read_bytes()[:16])

    again = suite_dir.runpytest_subprocess(*args, f"--vlmgate-cache={cache}", "--vlmgate-report=again")
    assert again.ret == 0, again.stdout.str()
    hits = int(cache_line(again).split("this run: ")[1].split(" hits")[0])
    assert hits >= len(written) - 1  # everything intact was reused; the damaged entry was recomputed
    assert comparable_text(suite_dir.path / "again") == comparable_text(suite_dir.path / "reference")
    rerun = suite_dir.runpytest_subprocess(*args, f"--vlmgate-cache={cache}", "--vlmgate-report=rerun")
    assert " 0 misses" in cache_line(rerun)
    assert comparable_text(suite_dir.path / "rerun") == comparable_text(suite_dir.path / "reference")


def test_a_capped_cache_evicts_old_entries_and_keeps_this_runs(suite_dir, tiny_llava_checkpoint, manifest):
    cache = suite_dir.path / "capped"
    old = cache / "ff" / f"{'ff' * 32}.npz"  # an entry of an earlier checkpoint, unused for a day
    old.parent.mkdir(parents=True)
    old.write_bytes(b"\0" * 1_500_000)
    os.utime(old, (time.time() - 86400, time.time() - 86400))
    args = gate_args(tiny_llava_checkpoint, manifest, *SELECT, "-p", "no:xdist", f"--vlmgate-cache={cache}",
                     "--vlmgate-cache-max-mb=1")
    first = suite_dir.runpytest_subprocess(*args)
    assert first.ret == 0, first.stdout.str()
    assert "pruned 1 least recently used entries (1.50 MB) to stay under the 1 MB cap" in first.stdout.str()
    assert not old.exists() and entries(cache)
    again = suite_dir.runpytest_subprocess(*args)  # this run's own entries were kept: all hits
    assert again.ret == 0 and " 0 misses" in cache_line(again) and "pruned" not in again.stdout.str()


def test_bad_cache_and_placement_options_are_usage_errors(suite_dir, tiny_llava_checkpoint, manifest):
    for option, message in (("--vlmgate-backend=spark", "must be one of local, ray"),
                            ("--vlmgate-devices=cuda:0,,cuda:1", "no empty items"),
                            ("--vlmgate-torch-threads=0", "must be 'auto' or an integer"),
                            ("--vlmgate-cache-max-mb=-1", "--vlmgate-cache-max-mb must be an integer >= 0")):
        result = suite_dir.runpytest_inprocess(*gate_args(tiny_llava_checkpoint, manifest, option))
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert message in result.stderr.str(), option


@pytest.mark.integration  # a local Ray cluster: run by `pytest tests --integration` (CI)
def test_the_ray_backend_writes_the_same_record(suite_dir, tiny_llava_checkpoint, manifest, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # the run starts (and stops) a private instance on 127.0.0.1
    args = gate_args(tiny_llava_checkpoint, manifest, *SELECT, "-p", "no:xdist", "--vlmgate-no-cache",
                     "--vlmgate-torch-threads=1")  # the replicas run one torch thread each
    local = suite_dir.runpytest_subprocess(*args, "--vlmgate-report=local")
    assert local.ret == 0, local.stdout.str()
    remote = suite_dir.runpytest_subprocess(*args, "--vlmgate-backend=ray", "--vlmgate-report=ray")
    assert remote.ret == 0, remote.stdout.str()
    assert comparable_text(suite_dir.path / "ray") == comparable_text(suite_dir.path / "local")
