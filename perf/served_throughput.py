"""Flip-rate throughput through a vLLM server (``openai:``) against ``hf:`` on the same checkpoint.

The flip-rate suite's requests (the clean pass and the default grid of every flip-rate
family on the first ``--limit`` samples of ``bundled:shapes``) run through the engine
once with ``hf:`` in this process and once per ``concurrency=`` setting through the server,
with a fresh engine and no cache each time. Printed per run: requests (one image, its
prompt and its options), option scores, seconds, requests per second, and the ratio to
``hf:``; and the largest difference between the served and the ``hf:`` scores (the exact
tier computes the same quantity, so it must stay below 1e-3).

The checkpoint is the served-model tests' tiny LLaVA (``tests/vllm_server.py``: head_dim 32,
which vLLM's CPU attention needs). By default the script builds it, starts a server from
``.venv-vllm`` (``make vllm-venv``) on 127.0.0.1 and stops it at the end; ``--url`` and
``--checkpoint`` use a running server and the folder it serves instead. One exact-tier
request per option is sent, so a request costs (options + 1) HTTP calls; the server
batches at most ``--max-num-seqs`` (8) sequences, so concurrency beyond that only queues.

Usage::

    .venv/bin/python perf/served_throughput.py [--limit 20] [--concurrency 1 4 8 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

#: The flip-rate suite's families (README, "Perturbation families").
FLIP_FAMILIES = ("translation", "padcrop", "scale", "scale_pad", "rotation", "textoverlay", "textoverlay_random",
                 "textoverlay_empty", "blank")


def flip_rate_pass(model, limit: int) -> tuple[dict, int, float]:
    """Scores of the clean pass and every flip-rate family; (scores, requests sent, seconds)."""
    from vlmgate.benchmarks.base import load_benchmark
    from vlmgate.engine import Engine

    engine = Engine(model, load_benchmark("bundled:shapes"), seed=0, limit=limit)
    begin = time.perf_counter()
    scores = {(sid, "clean"): np.array(obs.scores) for sid, obs in engine.clean().items()}
    for family in FLIP_FAMILIES:
        for sid, observed in engine.family(family).perturbed.items():
            scores.update({(sid, obs.variant.label): np.array(obs.scores) for obs in observed})
    return scores, engine.requests_scored, time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=20, help="samples of bundled:shapes (default 20)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--url", help="a running server's OpenAI base URL (http://127.0.0.1:PORT/v1)")
    parser.add_argument("--model", default="tiny-llava", help="served model name with --url")
    parser.add_argument("--checkpoint", type=Path, help="the folder the --url server serves (for hf:)")
    args = parser.parse_args()

    from vlmgate.models.base import ModelOptions, load_model

    import vllm_server

    with tempfile.TemporaryDirectory(prefix="vlmgate-served-bench-") as tmp:
        server = None
        if args.url:
            if args.checkpoint is None:
                parser.error("--url needs --checkpoint (the folder that server serves)")
            base, name, folder = args.url.rstrip("/"), args.model, args.checkpoint
        else:
            reason = vllm_server.skip_reason()
            if reason:
                raise SystemExit(reason)
            folder = vllm_server.build_served_checkpoint(Path(tmp) / "checkpoint")
            server = vllm_server.VllmServer(folder, log_path=Path(tmp) / "server.log").start()
            print(f"vLLM server up in {server.start_seconds:.1f} s at {server.base_url}")
            base, name = server.base_url, server.name
        try:
            hf = load_model(f"hf:{folder}", ModelOptions())
            flip_rate_pass(hf, 2)  # first-use costs (imports, fonts) are not measured, as for the server
            reference, n, seconds = flip_rate_pass(hf, args.limit)
            options = sum(v.size for v in reference.values())
            rows = [("hf: (in process)", n, options, seconds, 0.0)]
            warm = load_model(f"openai:{base}?model={name}&revision=bench", ModelOptions())
            flip_rate_pass(warm, 2)  # the server's first requests are slow (warm-up, not measured)
            warm.close()
            for concurrency in args.concurrency:
                served = load_model(f"openai:{base}?model={name}&revision=bench&concurrency={concurrency}",
                                    ModelOptions())
                scores, n, seconds = flip_rate_pass(served, args.limit)
                diff = max(float(np.abs(scores[key] - reference[key]).max()) for key in reference)
                rows.append((f"openai: concurrency={concurrency}", n, options, seconds, diff))
                served.close()
        finally:
            if server is not None:
                server.close()
    hf_rate = rows[0][1] / rows[0][3]
    print(f"\nflip-rate pass, bundled:shapes first {args.limit} samples (clean + {len(FLIP_FAMILIES)} families)")
    header = f"{'model':<26}{'requests':>9}{'options':>9}{'seconds':>9}{'req/s':>9}{'vs hf':>8}{'max|diff|':>11}"
    print(header)
    print("-" * len(header))
    for label, n, options, seconds, diff in rows:
        rate = n / seconds
        print(f"{label:<26}{n:>9}{options:>9}{seconds:>9.2f}{rate:>9.1f}{rate / hf_rate:>8.2f}{diff:>11.2g}")


if __name__ == "__main__":
    main()
