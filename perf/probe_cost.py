"""The extra cost of probe embeddings over option scoring alone.

The drift and structure suites need, for every (sample, variant) the flip-rate suite
scores, the probe records of ``models.base.PROBES``: pooled hidden states of the context
for the multiple-choice and the open prompt, of the chosen answer, and of a free greedy
answer, plus the vision-token grid. This prints, from one run, the time of scoring a
family's grid (clean pass included) and the time of then probing the same grid, and
their ratio: what turning on ``-m drift`` costs on top of ``-m flip_rate``.

Usage::

    python perf/probe_cost.py [--model bundled:shapes-v1] [--benchmark bundled:shapes]
        [--limit 40] [--families translation rotation textoverlay]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bundled:shapes-v1")
    parser.add_argument("--benchmark", default="bundled:shapes")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--families", nargs="+", default=["translation", "rotation", "textoverlay"])
    args = parser.parse_args()

    from vlmgate.benchmarks.base import load_benchmark
    from vlmgate.engine import Engine
    from vlmgate.models.base import ModelOptions, load_model

    adapter = load_model(args.model, ModelOptions())
    engine = Engine(adapter, load_benchmark(args.benchmark), limit=args.limit, batch_size=args.batch_size)
    engine.samples()  # decoding the benchmark is part of neither figure

    begin = time.perf_counter()
    for name in args.families:
        engine.family(name)
    scoring = time.perf_counter() - begin
    begin = time.perf_counter()
    for name in args.families:
        engine.family_probes(name)
    probing = time.perf_counter() - begin

    print(f"model {args.model}, benchmark {args.benchmark}, {len(engine.samples())} samples, "
          f"families {', '.join(args.families)}")
    print(f"requests scored: {engine.requests_scored}, probed: {engine.requests_probed}")
    print(f"probing / scoring time: {probing / scoring:.2f}")
    print(f"drift run / flip-rate run (scoring + probing over scoring): {(scoring + probing) / scoring:.2f}")


if __name__ == "__main__":
    main()
