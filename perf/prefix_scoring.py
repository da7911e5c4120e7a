"""Option scoring at a compute-bound scale: the engine against its floor and a hand-written loop.

An option is ~5 tokens after a context of ~600 (576 image tokens at 336 px, patch 14), so
what scoring costs is the context. Prints, from one run (ratios, not absolute times, are
the figures to quote; the machine's cores and load are printed with them):

* engine / floor — the engine's first run (clean pass + every flip-rate family,
  perturbing and cache writes included) over one batched forward per (image, prompt)
  context with no options at all: no scorer can do less than that forward;
* engine / hand-written loop — over what a hand-written evaluation does: processor +
  forward over every (context + option) row, batched (``harness_overhead.bare_loop``);
* the same two for the engine on its row path (``prefix_sharing = False``: every option
  a whole row, as before prefix sharing), unless ``--skip-row-path``.

The checkpoint is built in code: a LLaVA-1.5-shaped random-weight model (CLIP vision
tower at 336 px, patch 14; Llama text model) of ~33 M parameters (``LLAVA15_SHAPED``),
saved and loaded through ``hf:`` like any checkpoint; ``--tiny`` shrinks it to 64 px for
a quick check that the script runs. ``--model SPEC`` measures a given model instead: with
``bundled:shapes-v1`` (100 image tokens, text-first template) the engine / hand-written
loop ratio is ``speed_and_scale.py``'s "suite / bare batched forward loop", and the
row-path figures say what it was before prefix sharing. ``gpu_check.py`` reuses
``measure`` at LLaVA-1.5 size on a GPU.

Usage: python perf/prefix_scoring.py [--samples 6] [--batch-size 8] [--threads N] [--tiny]
       [--model SPEC] [--skip-row-path]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from harness_overhead import bare_loop, on_device, synchronize  # noqa: E402

#: ``build_tiny_llava`` sizes of the compute-bound case: 576 image tokens, 33.8 M parameters.
LLAVA15_SHAPED: dict[str, int] = {"image_size": 336, "patch_size": 14, "hidden_size": 512,
                                  "intermediate_size": 1376, "num_layers": 8, "num_heads": 8,
                                  "vision_hidden_size": 384, "vision_layers": 6}
#: ``--tiny``: the tests' geometry (16 image tokens), for a start-up check in seconds.
TINY: dict[str, int] = {"image_size": 64, "patch_size": 16}
#: Targets of the compute-bound case.
FLOOR_TARGET, HAND_TARGET = 1.3, 0.35


def shapes_corpus(benchmark: Any, limit: int) -> list[str]:
    """The prompts and options the tokenizer should learn merges for (the benchmark's own)."""
    from vlmgate.prompts import open_prompt, option_continuations, prompt_for

    texts = []
    for sample in list(benchmark.samples())[:max(limit, 20)]:
        texts += [prompt_for(sample), open_prompt(sample), *option_continuations(sample)]
    return texts


def build_llava(folder: Path, corpus: Sequence[str], sizes: dict[str, int]) -> Path:
    """A random-weight LLaVA of ``sizes`` saved like a hub checkpoint under ``folder``."""
    from vlmgate.testing.tiny import build_tiny_llava, save_checkpoint

    return save_checkpoint(*build_tiny_llava(corpus, seed=0, **sizes), folder)


def context_floor(adapter: Any, requests: Sequence[Any], batch_size: int) -> float:
    """One batched forward per (image, prompt) context, no options: processor + model.

    Only the last position's logits are projected (the least any scorer computes).
    """
    processor, model = adapter.processor, adapter.model
    plain = adapter.prompt_format == "plain"
    start = time.perf_counter()
    with torch.inference_mode():
        for begin in range(0, len(requests), batch_size):
            batch = requests[begin:begin + batch_size]
            inputs = processor(text=[adapter._context_text(r.prompt) for r in batch], images=[r.image for r in batch],
                               padding=True, add_special_tokens=plain, return_tensors="pt")
            model(**on_device(adapter, inputs), logits_to_keep=1)
    synchronize(adapter)
    return time.perf_counter() - start


@dataclass(frozen=True)
class Timing:
    """One phase: wall seconds, this process's CPU seconds, and the device's peak memory.

    CPU time (all threads of the process) is what other work on a shared machine barely
    moves, where it stretches wall time by its load at that moment: on CPU both ratios are
    printed. ``peak_bytes`` is ``torch.cuda.max_memory_allocated`` (``None`` on CPU).
    """

    seconds: float
    cpu_seconds: float
    peak_bytes: int | None


class Stopwatch:
    """Started on creation (the device's peak memory reset); ``stop`` waits for the device."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> Timing:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
        return Timing(time.perf_counter() - self.wall, time.process_time() - self.cpu,
                      torch.cuda.max_memory_allocated(self.device) if cuda else None)


def timed(device: torch.device, run: Callable[[], Any]) -> Timing:
    """``run()`` under a ``Stopwatch``."""
    watch = Stopwatch(device)
    run()
    return watch.stop()


@dataclass(frozen=True)
class Figures:
    """One run's timings over the same requests."""

    requests: int
    option_rows: int
    engine: Timing
    floor: Timing
    hand: Timing
    row_engine: Timing | None


def engine_run(adapter: Any, benchmark: Any, limit: int, batch_size: int) -> tuple[Timing, list[Any]]:
    """The engine's first run (temporary cache) over clean + flip-rate families, and its requests.

    Only the run is timed; the requests are rebuilt (perturbed again) afterwards.
    """
    from vlmgate.cache import ObservationCache
    from vlmgate.engine import Engine
    from vlmgate.suites import get_suite

    families = get_suite("flip_rate").perturbation_families()
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(adapter, benchmark, limit=limit, batch_size=batch_size, cache=ObservationCache(Path(folder)))
        watch = Stopwatch(adapter.device)
        engine.clean()
        for name in families:
            engine.family(name)
        timing = watch.stop()
    samples = {s.id: s for s in engine.samples()}
    return timing, [engine._score_request(samples[sample_id], variant) for sample_id, variant in engine._memo]


def measure(adapter: Any, benchmark: Any, limit: int, batch_size: int, *, row_path: bool) -> Figures:
    """Engine (prefix-shared), floor, hand-written loop and optionally the engine's row path.

    An untimed engine run over one sample first pays the one-time costs (imports of the
    perturbation families, fonts, the first forward), which belong to no phase.
    """
    engine_run(adapter, benchmark, 1, batch_size)
    shared, requests = engine_run(adapter, benchmark, limit, batch_size)
    row_engine = None
    if row_path:
        adapter.prefix_sharing = False
        try:
            row_engine = engine_run(adapter, benchmark, limit, batch_size)[0]
        finally:
            adapter.prefix_sharing = None
    return Figures(
        requests=len(requests),
        option_rows=sum(len(r.continuations) for r in requests),
        engine=shared,
        floor=timed(adapter.device, lambda: context_floor(adapter, requests, batch_size)),
        hand=timed(adapter.device, lambda: bare_loop(adapter, requests, batch_size)),
        row_engine=row_engine,
    )


def print_figures(figures: Figures, *, targets: bool) -> None:
    """The timings, then the ratios (with their targets when ``targets``): of wall time, and
    of CPU time where the model runs on the CPU."""
    f = figures
    phases = [("engine", f.engine), ("floor (one pass per context)", f.floor),
              ("hand-written per-option loop", f.hand)] + ([("engine on its row path", f.row_engine)]
                                                           if f.row_engine else [])
    print(f"  {f.requests} requests, {f.option_rows} option rows; wall (CPU) seconds: " + ", ".join(
        f"{label} {t.seconds:.1f} ({t.cpu_seconds:.1f})" for label, t in phases))
    clocks = [("wall", lambda t: t.seconds)] + ([("CPU", lambda t: t.cpu_seconds)] if f.engine.peak_bytes is None
                                               else [])
    for clock, read in clocks:
        floor_note = f"   (target <= {FLOOR_TARGET})" if targets else ""
        hand_note = f"   (target <= {HAND_TARGET})" if targets else ""
        print(f"[{clock}] engine / one-context-pass floor        : {read(f.engine) / read(f.floor):.3f}{floor_note}")
        print(f"[{clock}] engine / hand-written per-option loop  : {read(f.engine) / read(f.hand):.3f}{hand_note}")
        if f.row_engine:
            row = read(f.row_engine)
            print(f"[{clock}] row-path engine / floor (before)       : {row / read(f.floor):.3f}")
            print(f"[{clock}] row-path engine / hand-written loop    : {row / read(f.hand):.3f}")
            print(f"[{clock}] prefix-shared / row-path engine        : {read(f.engine) / row:.3f}")
    print(f"engine requests per second (wall)             : {f.requests / f.engine.seconds:.1f}")
    per_request = f"{1000 * f.engine.seconds / f.requests:.1f} ms"
    if f.row_engine:
        per_request += f" (row path {1000 * f.row_engine.seconds / f.requests:.1f} ms)"
    print(f"engine time per request (wall)                : {per_request}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--benchmark", default="bundled:shapes")
    parser.add_argument("--tiny", action="store_true", help="64 px, 16 image tokens: checks the script runs")
    parser.add_argument("--model", help="measure this model spec (e.g. bundled:shapes-v1) instead of building one")
    parser.add_argument("--skip-row-path", action="store_true", help="leave out the engine's row path")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    from vlmgate.benchmarks.base import load_benchmark
    from vlmgate.models.base import ModelOptions, load_model

    benchmark = load_benchmark(args.benchmark)
    sizes = TINY if args.tiny else LLAVA15_SHAPED
    if args.model:
        adapter, described = load_model(args.model, ModelOptions()), args.model
    else:
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = build_llava(Path(folder) / "llava", shapes_corpus(benchmark, args.samples), sizes)
            adapter = load_model(f"hf:{checkpoint}", ModelOptions())
        described = f"random LLaVA {sizes['image_size']} px / patch {sizes['patch_size']}"
    vision = adapter.model.config.vision_config
    parameters = sum(p.numel() for p in adapter.model.parameters())
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} (shared with other work); torch threads "
          f"{torch.get_num_threads()}")
    print(f"model: {described} ({(vision.image_size // vision.patch_size) ** 2} image tokens), "
          f"{parameters / 1e6:.1f} M parameters, prefix sharing {adapter.prefix_sharing}; benchmark "
          f"{args.benchmark}, {args.samples} samples, flip-rate families, batch {args.batch_size}")
    print_figures(measure(adapter, benchmark, args.samples, args.batch_size, row_path=not args.skip_row_path),
                  targets=not (args.tiny or args.model))


if __name__ == "__main__":
    main()
