"""Speed and scale of the gating engine, all figures from one run.

Prints, on the bundled default (model bundled:shapes-v1, benchmark bundled:shapes) unless
told otherwise; ratios, not absolute times, are the figures to quote:

* suite / bare  — first run of the engine (no cache entries yet; writing them included)
  for the clean pass plus every flip-rate family, perturbing included, over a bare loop
  that feeds the very same already-perturbed inputs to processor + model in batches;
* warm / first  — a fresh engine (empty memory) over the cache the first run filled;
* perturbation share — time to perturb those inputs / first-run time;
* peak RSS for 100 vs 2,000 samples — a child process per size scores the clean pass
  and the ``scale`` family over a generated shapes benchmark (``vlmgate.benchmarks.shapes``),
  streamed, no cache; the growth over the RSS after loading the model is what matters;
* xdist 2-worker speedup — wall time of ``pytest robustness_tests/test_flip_rate.py``
  without xdist over ``-n 2`` (process start and model loads included; each run starts
  with an empty cache, through which the workers share forward passes).

Every process uses one torch thread per worker (``OMP_NUM_THREADS=1``,
``--vlmgate-torch-threads`` auto), so the figures describe the harness, not thread
contention. The machine's core count and load are printed with the figures.

Usage: python perf/speed_and_scale.py [--limit 100] [--rss-sizes 100 2000] [--xdist-limit 40]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


class GeneratedShapes:
    """A shapes benchmark drawn on the fly (no files): ``n`` items of the seeded stream."""

    def __init__(self, n: int, seed: int = 7):
        self.n, self.seed = n, seed
        self.spec = f"generated:shapes-{n}"
        self.fingerprint = f"generated-shapes-{seed}-{n}"

    def __len__(self) -> int:
        return self.n

    def samples(self):
        from vlmgate.benchmarks.shapes import generate

        for item in generate(self.n, self.seed):
            yield item.sample()


def peak_rss_mb() -> float:
    """This process's peak RSS since the last ``reset_peak_rss`` (Linux VmHWM; else ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Start the peak over from the current RSS, so that loading the model does not mask the run."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def rss_child(model_spec: str, n: int) -> None:
    """Score the clean pass and ``scale`` over ``n`` generated samples; print RSS figures."""
    import torch

    torch.set_num_threads(1)
    from vlmgate.engine import Engine
    from vlmgate.models.base import ModelOptions, load_model

    adapter = load_model(model_spec, ModelOptions())
    reset_peak_rss()
    loaded = peak_rss_mb()
    begin = time.perf_counter()
    engine = Engine(adapter, GeneratedShapes(n), batch_size=8)
    engine.family("scale")
    print(f"{n} {loaded:.1f} {peak_rss_mb():.1f} {time.perf_counter() - begin:.1f}")


def engine_figures(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    from vlmgate.benchmarks.base import load_benchmark
    from vlmgate.cache import ObservationCache
    from vlmgate.engine import Engine
    from vlmgate.models.base import ModelOptions, load_model
    from vlmgate.records import CLEAN
    from vlmgate.suites import get_suite

    from harness_overhead import bare_loop

    adapter = load_model(args.model, ModelOptions())
    benchmark = load_benchmark(args.benchmark)
    families = get_suite("flip_rate").perturbation_families()

    def run(engine: Engine) -> float:
        begin = time.perf_counter()
        engine.clean()
        for name in families:
            engine.family(name)
        return time.perf_counter() - begin

    with tempfile.TemporaryDirectory() as folder:
        first_engine = Engine(adapter, benchmark, limit=args.limit, batch_size=args.batch_size,
                              cache=ObservationCache(Path(folder)))
        first = run(first_engine)
        warm_engine = Engine(adapter, benchmark, limit=args.limit, batch_size=args.batch_size,
                             cache=ObservationCache(Path(folder)))
        warm = run(warm_engine)
        stats = warm_engine.cache.stats()

    # The very same inputs, perturbed up front (timed: the perturbation cost).
    samples = {s.id: s for s in first_engine.samples()}
    begin = time.perf_counter()
    requests = [first_engine._score_request(samples[sample_id], variant) for sample_id, variant in first_engine._memo]
    perturb = time.perf_counter() - begin
    bare = bare_loop(adapter, requests, args.batch_size)
    clean_share = sum(1 for _, v in first_engine._memo if v == CLEAN) / len(requests)

    print(f"engine: model {args.model}, benchmark {args.benchmark}, {len(samples)} samples, {len(requests)} requests "
          f"({clean_share:.1%} clean), {len(families)} families, batch {args.batch_size}, torch threads "
          f"{torch.get_num_threads()}; cache {stats.describe()}, warm run {warm_engine.cache.hits} hits / "
          f"{warm_engine.cache.misses} misses, {warm_engine.requests_scored} forwards")
    print(f"  first run {first:.2f} s, bare batched forward loop {bare:.2f} s, warm re-run {warm:.2f} s, "
          f"perturbing {perturb:.2f} s")
    print(f"suite / bare batched forward loop (first run) : {first / bare:.3f}   (target <= 1.10)")
    print(f"warm-cache re-run / first run                 : {warm / first:.4f}  (target <= 0.05)")
    print(f"perturbation share of first-run time          : {perturb / first:.3f}")


def rss_figures(args: argparse.Namespace) -> None:
    rows = []
    for n in args.rss_sizes:
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(n), "--model", args.model],
                             capture_output=True, text=True, check=True).stdout.split()[-4:]
        rows.append(tuple(float(x) for x in out))
    for n, loaded, peak, seconds in rows:
        print(f"  {int(n):5d} samples (clean + scale, streamed): RSS after model load {loaded:.0f} MB, "
              f"peak {peak:.0f} MB (+{peak - loaded:.0f} MB), {seconds:.1f} s")
    (n0, l0, p0, _), (n1, l1, p1, _) = rows[0], rows[-1]
    print(f"peak RSS {int(n1)} / {int(n0)} samples               : {p1 / p0:.3f}  "
          f"(growth over model load {p1 - l1:.0f} MB vs {p0 - l0:.0f} MB)")


def xdist_figures(args: argparse.Namespace) -> None:
    base = [sys.executable, "-m", "pytest", "robustness_tests/test_flip_rate.py", "-q", "-p", "no:cacheprovider",
            f"--vlmgate-limit={args.xdist_limit}", f"--vlmgate-model={args.model}",
            f"--vlmgate-benchmark={args.benchmark}"]
    times = {}
    # Each run starts with an empty cache: workers share forward passes through it (the
    # "any" case reads every family), as in a first CI run.
    for name, extra in (("1 process", ["-p", "no:xdist"]), ("-n 2", ["-n", "2"])):
        with tempfile.TemporaryDirectory() as folder:
            begin = time.perf_counter()
            subprocess.run(base + extra + [f"--vlmgate-cache={folder}"], cwd=REPO, capture_output=True, text=True)
            times[name] = time.perf_counter() - begin
    print(f"  flip-rate suite, {args.xdist_limit} samples, cold cache: 1 process {times['1 process']:.1f} s, "
          f"-n 2 {times['-n 2']:.1f} s (wall, startup included)")
    print(f"xdist 2-worker speedup                        : {times['1 process'] / times['-n 2']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="bundled:shapes-v1")
    parser.add_argument("--benchmark", default="bundled:shapes")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rss-sizes", type=int, nargs=2, default=[100, 2000])
    parser.add_argument("--xdist-limit", type=int, default=40)
    parser.add_argument("--skip", nargs="*", default=[], choices=["engine", "rss", "xdist"])
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.model, args.rss_child)
        return
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} (shared with other work); "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    for name, figures in (("engine", engine_figures), ("rss", rss_figures), ("xdist", xdist_figures)):
        if name not in args.skip:
            figures(args)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
