"""Every way a run ends leaves a true record: SIGTERM (what a CI timeout or cancel sends) and a
kill that leaves no chance to write anything, into a report folder that holds an older,
complete record of another run."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from support import gate_args

SELECT = ("-m", "translation or rotation")


def _older_record(suite_dir, args: list[str], folder: str) -> Path:
    """A complete record of an earlier run in ``folder``: what a stale CI workspace holds."""
    done = suite_dir.runpytest_subprocess(*args, f"--vlmgate-report={folder}")
    assert done.ret == 0, done.stdout.str()
    record = suite_dir.path / folder / "run.json"
    assert json.loads(record.read_text())["completeness"]["complete"] is True
    return record


def _start(suite_dir, args: list[str], folder: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pytest", *args, f"--vlmgate-report={folder}",
                             "--vlmgate-no-cache"], cwd=suite_dir.path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


#: Marks the moment a case begins, so a signal is known to land inside the cases rather than in
#: collection (which takes seconds on a slow CI runner).
CASE_STARTED = """
from pathlib import Path

def pytest_runtest_setup(item):
    Path("case-started").touch()
"""


def _wait_for(process: subprocess.Popen, ready) -> None:
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    raise AssertionError("the run ended or stalled before it could be interrupted")


def test_sigterm_mid_run_marks_the_folders_record_incomplete_and_diff_refuses_it(suite_dir, tiny_llava_checkpoint,
                                                                                  manifest):
    args = gate_args(tiny_llava_checkpoint, manifest, *SELECT, "-p", "no:xdist")
    record = _older_record(suite_dir, args, "reports")
    shutil.copy(record, suite_dir.path / "earlier.json")
    suite_dir.makeconftest(CASE_STARTED)
    process = _start(suite_dir, args, "reports")
    _wait_for(process, (suite_dir.path / "case-started").exists)
    time.sleep(0.5)  # into the case's work
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 2, output  # pytest's "interrupted"
    data = json.loads(record.read_text())
    assert data["completeness"]["complete"] is False
    assert data["completeness"]["reason"] == "terminated (SIGTERM)"
    assert "terminated (SIGTERM)" in output and "refuse this record" in output
    diff = subprocess.run([sys.executable, "-m", "vlmgate.cli", "diff", "earlier.json", "reports/run.json"],
                          cwd=suite_dir.path, capture_output=True, text=True)
    assert diff.returncode == 2
    assert "incomplete" in diff.stderr and "terminated (SIGTERM)" in diff.stderr and "--allow-incomplete" in diff.stderr


#: Holds collection open until the test has signalled the run.
SLOW_COLLECTION = """
import time
from pathlib import Path

def pytest_collection(session):
    Path("collecting").touch()
    time.sleep(30)
"""


def test_sigterm_during_collection_ends_interrupted_with_its_record(suite_dir, tiny_llava_checkpoint, manifest):
    """A CI cancel can arrive before any case runs; it is still exit 2 and an incomplete record."""
    args = gate_args(tiny_llava_checkpoint, manifest, *SELECT, "-p", "no:xdist")
    suite_dir.makeconftest(SLOW_COLLECTION)
    process = _start(suite_dir, args, "reports")
    _wait_for(process, (suite_dir.path / "collecting").exists)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 2, output
    assert "Traceback" not in output
    data = json.loads((suite_dir.path / "reports" / "run.json").read_text())
    assert data["completeness"]["complete"] is False
    assert data["completeness"]["reason"] == "terminated (SIGTERM)"


#: An interruption whose traceback holds a frame stopped where there is no source line: what a
#: signal handled at a comprehension's entry gives on CPython 3.11 (``tb_lineno is None``).
LINELESS_INTERRUPT = """
import sys
import types

def _stopped_without_a_line():
    return sys._getframe()

def pytest_collection_modifyitems(items):
    error = KeyboardInterrupt("stopped")
    past_the_end = 1 << 20  # no instruction there, so no source line
    error.__traceback__ = types.TracebackType(None, _stopped_without_a_line(), past_the_end, -1)
    assert error.__traceback__.tb_lineno is None
    raise error
"""


def test_an_interruption_in_a_frame_without_a_source_line_ends_interrupted_not_as_an_internal_error(
        suite_dir, tiny_llava_checkpoint, manifest):
    args = gate_args(tiny_llava_checkpoint, manifest, *SELECT, "-p", "no:xdist", "--vlmgate-report=reports")
    suite_dir.makeconftest(LINELESS_INTERRUPT)
    result = suite_dir.runpytest_subprocess(*args)
    assert result.ret == 2, result.stdout.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    data = json.loads((suite_dir.path / "reports" / "run.json").read_text())
    assert data["completeness"]["complete"] is False


def test_a_killed_run_leaves_an_unfinished_record_not_the_previous_one(suite_dir, tiny_llava_checkpoint, manifest):
    """SIGKILL writes nothing at the end, so the run marks its folder before it starts: the
    previous run's complete record can never stand in for it."""
    args = gate_args(tiny_llava_checkpoint, manifest, *SELECT, "-p", "no:xdist")
    record = _older_record(suite_dir, args, "reports")
    (suite_dir.path / "reports" / "report.html").write_text("<p>the previous run's report</p>")
    older = record.read_text()
    process = _start(suite_dir, args, "reports")
    _wait_for(process, lambda: record.read_text() != older)  # the run has marked its folder
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    data = json.loads(record.read_text())
    assert data["completeness"]["complete"] is False
    assert "had not finished" in data["completeness"]["reason"]
    assert not (suite_dir.path / "reports" / "report.html").exists()
    suite_dir.makefile(".toml", change='inherit = false\n[ifr]\n"*" = { max_increase = 0.02 }\n')
    baseline = suite_dir.runpytest_subprocess(*args, "--vlmgate-thresholds=change.toml",
                                              "--vlmgate-baseline=reports/run.json")
    assert baseline.ret == 4  # a usage error: --vlmgate-baseline refuses an incomplete record
    assert "had not finished" in baseline.stderr.str()
