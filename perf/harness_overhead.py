"""Harness overhead: the gating engine against a bare batched forward loop.

Prints, from one run on one machine (ratios, not absolute times, are the figures to quote):

* suite / bare  — engine time for the clean pass plus every flip-rate family (perturbing
  included) over the time of a bare loop that feeds the very same inputs (already
  perturbed images, the same prompts and options) to processor + model in batches;
* perturbation share — time spent perturbing images / engine time;
* warm re-run / first run — a second pass of the same engine (memoised observations).

``speed_and_scale.py`` prints these with the cache, memory and xdist figures in one run.

Usage: python perf/harness_overhead.py [--model bundled:shapes-v1] [--benchmark bundled:shapes]
       [--limit 100] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import time

import torch


def on_device(adapter, inputs) -> dict:
    """Processor output on the adapter's device, pixels in its dtype (what a forward takes)."""
    moved = {k: v.to(adapter.device) for k, v in inputs.items() if k != "token_type_ids"}
    if "pixel_values" in moved:
        moved["pixel_values"] = moved["pixel_values"].to(adapter.pixel_dtype)
    return moved


def synchronize(adapter) -> None:
    """Wait for queued device work, so that a wall-clock time covers it (no-op on CPU)."""
    if adapter.device.type == "cuda":
        torch.cuda.synchronize(adapter.device)


def bare_loop(adapter, requests, batch_size: int) -> float:
    """processor(full texts, images) + model(**inputs) per batch: what a hand-written eval does."""
    processor, model = adapter.processor, adapter.model
    start = time.perf_counter()
    with torch.inference_mode():
        for begin in range(0, len(requests), batch_size):
            batch = requests[begin:begin + batch_size]
            texts, images = [], []
            for request in batch:
                for option in request.continuations:
                    texts.append(adapter._render(request.prompt, option))
                    images.append(request.image)
            inputs = processor(text=texts, images=images, padding=True, return_tensors="pt")
            logits = model(**on_device(adapter, inputs)).logits
            torch.log_softmax(logits.float(), dim=-1)
    synchronize(adapter)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="bundled:shapes-v1")
    parser.add_argument("--benchmark", default="bundled:shapes")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    from vlmgate.benchmarks.base import load_benchmark
    from vlmgate.engine import Engine
    from vlmgate.models.base import ModelOptions, ScoreRequest, load_model
    from vlmgate.perturbations.base import get_family
    from vlmgate.prompts import option_continuations, prompt_for
    from vlmgate.records import CLEAN
    from vlmgate.suites import get_suite

    adapter = load_model(args.model, ModelOptions())
    benchmark = load_benchmark(args.benchmark)
    families = get_suite("flip_rate").perturbation_families()

    def run_engine(engine):
        begin = time.perf_counter()
        for name in families:
            engine.family(name)
        return time.perf_counter() - begin

    engine = Engine(adapter, benchmark, limit=args.limit, batch_size=args.batch_size)
    suite_time = run_engine(engine)
    warm_time = run_engine(engine)

    # The very same inputs, perturbed up front (timed separately as the perturbation cost).
    samples = {s.id: s for s in engine.samples()}  # the engine streams samples; keep them here
    begin = time.perf_counter()
    requests = []
    for (sample_id, variant), _ in engine._memo.items():
        sample = samples[sample_id]
        family = None if variant == CLEAN else get_family(variant.family)
        shown = engine.perturb(sample, variant, family)
        requests.append(ScoreRequest(shown.image, prompt_for(shown), option_continuations(shown)))
    perturb_time = time.perf_counter() - begin
    bare_time = bare_loop(adapter, requests, args.batch_size)

    print(f"model {args.model}  benchmark {args.benchmark}  samples {len(engine.samples())}  "
          f"requests {len(requests)}  families {len(families)}  torch threads {torch.get_num_threads()}")
    print(f"suite / bare batched forward loop : {suite_time / bare_time:.3f}")
    print(f"perturbation share of suite time  : {perturb_time / suite_time:.3f}")
    print(f"warm re-run / first run           : {warm_time / suite_time:.4f}")


if __name__ == "__main__":
    main()
