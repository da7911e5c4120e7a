"""What a second xdist worker buys when forward passes dominate: 1 process against ``-n 2``.

Runs ``pytest robustness_tests/test_flip_rate.py`` (clean accuracy, every flip-rate family
and the pooled ``any`` case) on a compute-bound checkpoint, once in one process and once
with two workers, each from an empty cache, one torch thread per process. Prints, from one
run (ratios are the figures to quote; cores and load are printed with them):

* the wall times and their ratio (process start, imports and model loads included: what a
  CI job waits for);
* the requests each run sent to the model, from the run records' dispatch counts: with
  claim-and-wait (``vlmgate.claims``) two workers together compute what one process does,
  no batch twice;
* whether the two run records are identical (``RunRecord.comparable``).

The checkpoint is ``prefix_scoring.py``'s LLaVA-1.5-shaped random-weight model (336 px,
patch 14: 576 image tokens, ~33 M parameters), built in code; ``--tiny`` uses the bundled
``shapes-v1`` instead, where start-up rather than compute dominates.

Usage: python perf/xdist_speedup.py [--limit 6] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def run_suite(model: str, limit: int, workers: list[str], folder: Path) -> tuple[float, int]:
    """Wall seconds of one run from an empty cache, and its exit status; writes ``folder/run.json``."""
    command = [sys.executable, "-m", "pytest", "robustness_tests/test_flip_rate.py", "-q", "-p", "no:cacheprovider",
               f"--vlmgate-model={model}", f"--vlmgate-limit={limit}", "--vlmgate-torch-threads=1",
               f"--vlmgate-cache={folder / 'cache'}", f"--vlmgate-report={folder / 'report'}", *workers]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    begin = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    return time.perf_counter() - begin, done.returncode


def requests_sent(folder: Path) -> str:
    record = json.loads((folder / "report" / "run.json").read_text())
    return json.dumps(record.get("environment", {}).get("dispatch", "not recorded"), sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=6)
    parser.add_argument("--tiny", action="store_true", help="bundled:shapes-v1 instead of the 33 M checkpoint")
    args = parser.parse_args()
    from vlmgate.report.record import load_record

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        if args.tiny:
            model = "bundled:shapes-v1"
        else:
            from vlmgate.benchmarks.base import load_benchmark

            from prefix_scoring import LLAVA15_SHAPED, build_llava, shapes_corpus

            corpus = shapes_corpus(load_benchmark("bundled:shapes"), args.limit)
            model = f"hf:{build_llava(root / 'llava15-shaped', corpus, LLAVA15_SHAPED)}"
        times, records = {}, {}
        for name, workers in (("1 process", ["-p", "no:xdist"]), ("-n 2", ["-n", "2"])):
            folder = root / name.replace(" ", "-")
            times[name], status = run_suite(model, args.limit, workers, folder)
            records[name] = load_record(folder / "report" / "run.json")
            print(f"  {name}: {times[name]:.1f} s wall (exit {status}); dispatch: {requests_sent(folder)}")
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.2f}; OMP_NUM_THREADS=1; model {model.split('/')[-1]}"
          f", flip-rate suite, {args.limit} samples, cold cache")
    print(f"xdist 2-worker speedup (1 process / -n 2)     : {times['1 process'] / times['-n 2']:.2f}x")
    same = records["1 process"].comparable() == records["-n 2"].comparable()
    print(f"run records identical                         : {same}")


if __name__ == "__main__":
    main()
