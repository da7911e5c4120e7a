"""Device check: a LLaVA-1.5-sized random checkpoint in bfloat16 on CUDA, through ``hf:``.

For a session with a GPU. The checkpoint has LLaVA-1.5's shapes at 1.1 B text parameters
(``LLAVA15_1B``): a CLIP ViT-L/14-336 vision tower (24 layers, width 1024, 576 image
tokens), the two-layer GELU projector, and a TinyLlama-shaped Llama (22 layers, width
2048, 32 heads over 4 key/value heads, vocabulary 32,000), random weights. It is built on
the device, saved like a hub checkpoint and loaded back through ``hf:`` (straight onto
the device in its dtype), then ``prefix_scoring.measure`` prints, from one run:

* load time and the peak device memory after loading (no float32 or CPU copy);
* engine / one-context-pass floor and engine / hand-written per-option loop, and the
  same for the engine's row path (``prefix_sharing = False``), as ``prefix_scoring.py``;
* requests per second of the engine, and the peak device memory
  (``torch.cuda.max_memory_allocated``) of each phase.

About 2-3 minutes on an H200 at the default 20 samples (620 requests); ``--samples``
scales it. ``--tiny`` runs the same script on CPU with tiny widths in seconds, so that
the project's tests check it starts (``tests/test_prefix_scoring.py``).

Usage: python perf/gpu_check.py [--samples 20] [--batch-size 8] [--tiny] [--skip-row-path]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from prefix_scoring import Stopwatch, measure, print_figures, shapes_corpus  # noqa: E402

#: LLaVA-1.5's vision tower and projector with a 1.1 B TinyLlama-shaped text model.
LLAVA15_1B: dict[str, Any] = {
    "image_size": 336, "patch_size": 14,
    "vision": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16},
    "text": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
             "num_key_value_heads": 4, "vocab_size": 32000},
}
#: ``--tiny``: the same layout at test widths, for CPU.
TINY: dict[str, Any] = {
    "image_size": 64, "patch_size": 16,
    "vision": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4},
    "text": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 512},
}


def build(folder: Path, corpus: list[str], sizes: dict[str, Any], device: torch.device, dtype: torch.dtype) -> Path:
    """A random LLaVA of ``sizes`` made on ``device`` in ``dtype`` and saved under ``folder``.

    The processor (tokenizer, chat template, CLIP image processor) is the tiny builder's
    at the same geometry; only the model is built here at full width.
    """
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    from vlmgate.testing.tiny import IMAGE_TOKEN, build_tiny_llava, save_checkpoint

    _, processor = build_tiny_llava(corpus, image_size=sizes["image_size"], patch_size=sizes["patch_size"],
                                    num_layers=1)
    tokenizer = processor.tokenizer
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(image_size=sizes["image_size"], patch_size=sizes["patch_size"],
                                       projection_dim=sizes["vision"]["hidden_size"], **sizes["vision"]),
        text_config=LlamaConfig(max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id,
                                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                tie_word_embeddings=False, **sizes["text"]),
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default", vision_feature_layer=-2, projector_hidden_act="gelu",
    )
    cuda_ids = [torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_ids), torch.device(device):
        torch.manual_seed(0)
        model = LlavaForConditionalGeneration(config).to(dtype).eval()
    path = save_checkpoint(model, processor, folder)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=None, help="default 20 (2 with --tiny)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--benchmark", default="bundled:shapes")
    parser.add_argument("--tiny", action="store_true", help="tiny widths on CPU: checks that the script starts")
    parser.add_argument("--skip-row-path", action="store_true", help="leave out the engine's row path")
    args = parser.parse_args()

    from vlmgate.benchmarks.base import load_benchmark
    from vlmgate.models.base import ModelOptions, load_model

    cuda = torch.cuda.is_available() and not args.tiny
    if not cuda and not args.tiny:
        parser.error("no CUDA device: run with --tiny on CPU (tiny widths), or on a machine with a GPU")
    device = torch.device("cuda" if cuda else "cpu")
    dtype, dtype_name = (torch.bfloat16, "bfloat16") if cuda else (torch.float32, "float32")
    sizes = TINY if args.tiny else LLAVA15_1B
    samples = args.samples or (2 if args.tiny else 20)
    benchmark = load_benchmark(args.benchmark)
    with tempfile.TemporaryDirectory() as folder:
        begin = time.perf_counter()
        checkpoint = build(Path(folder) / "llava", shapes_corpus(benchmark, samples), sizes, device, dtype)
        built = time.perf_counter() - begin
        watch = Stopwatch(device)
        adapter = load_model(f"hf:{checkpoint}", ModelOptions(device=str(device), dtype=dtype_name))
        loading = watch.stop()
    parameters = sum(p.numel() for p in adapter.model.parameters())
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"device: {name}; model: random LLaVA {sizes['image_size']} px / patch {sizes['patch_size']} "
          f"({(sizes['image_size'] // sizes['patch_size']) ** 2} image tokens), {parameters / 1e6:,.1f} M parameters, "
          f"{dtype_name}, prefix sharing {adapter.prefix_sharing}; benchmark {args.benchmark}, {samples} samples, "
          f"flip-rate families, batch {args.batch_size}")
    print(f"  built and saved in {built:.1f} s; loaded through hf: in {loading.seconds:.1f} s"
          + (f", peak device memory after loading {loading.peak_bytes / 2**30:.2f} GiB "
             f"(weights {parameters * dtype.itemsize / 2**30:.2f} GiB)" if loading.peak_bytes is not None else ""))
    figures = measure(adapter, benchmark, samples, args.batch_size, row_path=not args.skip_row_path)
    print_figures(figures, targets=not args.tiny)
    if cuda:
        phases = [("engine", figures.engine), ("floor", figures.floor), ("hand-written loop", figures.hand)]
        if figures.row_engine:
            phases.append(("row-path engine", figures.row_engine))
        print("peak device memory (max_memory_allocated)    : " + ", ".join(
            f"{label} {timing.peak_bytes / 2**30:.2f} GiB" for label, timing in phases))


if __name__ == "__main__":
    main()
