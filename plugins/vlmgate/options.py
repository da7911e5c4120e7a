"""Every run option once: the pytest plugin and the ``vlmgate`` command build theirs from here.

As pytest-benchmark does for its plugin and its ``compare`` command, one table
(``RUN_OPTIONS``) says each option's flag, type, metavar and help; ``add_options`` adds a
chosen set to pytest's option group (``--vlmgate-model``) or to an argparse parser
(``--model``), and ``values`` reads them back as the mapping ``settings.build_settings``
validates. So a command-line ``vlmgate accuracy --dtype bf16`` is refused exactly as
``pytest --vlmgate-dtype bf16`` is, and the defaults named in the help are the ones
``settings`` applies: this module imports its constants rather than restating them.

Only the standard library is imported here: the plugin reads this table for every
pytest session.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from vlmgate.models.prompt_formats import FORMAT_NAMES
from vlmgate.progress_display import LINE_INTERVAL_S
from vlmgate.settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CACHE_DIR,
    DEFAULT_CACHE_MAX_MB,
    DEFAULT_COUNTEREXAMPLES,
    DEFAULT_DEVICE,
    DEFAULT_DTYPE,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MODELS,
    DEFAULT_PROGRESS,
    DEFAULT_SEARCH_BUDGET,
    DEFAULT_SEED,
    DEFAULT_THRESHOLDS,
    DTYPES,
    PROGRESS_MODES,
)

#: Prefix of the options in pytest (``--vlmgate-model``); the command uses the bare flag.
PYTEST_PREFIX = "vlmgate-"


def whole_number(flag: str, example: int) -> Callable[[str], int]:
    """An argparse type: an integer, or one line naming the flag; ranges are the settings' to check."""
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; pass e.g. {flag} {example}") from None

    return parse


def real_number(flag: str, example: float) -> Callable[[str], float]:
    """An argparse type: a number (``0.5``), or one line naming the flag; ranges are the settings' to check."""
    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; pass e.g. {flag} {example:g}") from None

    return parse


@dataclass(frozen=True)
class RunOption:
    """One option: ``key`` is its ``build_settings`` key, ``flag`` the name after ``--`` (and the prefix)."""

    key: str
    flag: str
    help: str
    metavar: str | None = None
    #: An example value (for an integer option, what its type error suggests).
    integer: int | None = None
    #: An example value of a real-valued option (what its type error suggests).
    number: float | None = None
    repeat: bool = False
    switch: bool = False

    def add(self, add_argument: Callable[..., Any], prefix: str) -> None:
        """Add this option through ``add_argument`` (pytest's ``addoption`` or argparse's ``add_argument``)."""
        flag = f"--{prefix}{self.flag}"
        kwargs: dict[str, Any] = {"dest": self.dest(prefix), "help": self.help}
        if self.switch:
            kwargs.update(action="store_true", default=None)
        else:
            kwargs.update(metavar=self.metavar, default=None)
            if self.repeat:
                kwargs["action"] = "append"
            if self.integer is not None:
                kwargs["type"] = whole_number(flag, self.integer)
            if self.number is not None:
                kwargs["type"] = real_number(flag, self.number)
        add_argument(flag, **kwargs)

    def dest(self, prefix: str) -> str:
        return f"{prefix}{self.key}".replace("-", "_")


RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption("models", "model", "model to gate, e.g. hf:/path/to/ckpt or bundled:shapes-v1 (repeatable; default "
              f"from [tool.vlmgate] models, else {DEFAULT_MODELS[0]})", "SPEC", repeat=True),
    RunOption("benchmarks", "benchmark", "benchmark, e.g. jsonl:data/manifest.jsonl or bundled:shapes (repeatable)",
              "SPEC", repeat=True),
    RunOption("thresholds", "thresholds", f"threshold file (default {DEFAULT_THRESHOLDS}, else the defaults "
              "shipped with vlmgate)", "PATH"),
    RunOption("limit", "limit", "use only the first N samples of each benchmark", "N", integer=100),
    RunOption("seed", "seed", f"run seed (default {DEFAULT_SEED})", "N", integer=DEFAULT_SEED),
    RunOption("device", "device", f"torch device for models (default {DEFAULT_DEVICE})", "DEVICE"),
    RunOption("dtype", "dtype", f"model dtype: {', '.join(DTYPES)} (default {DEFAULT_DTYPE})", "DTYPE"),
    RunOption("device_map", "device-map", "shard each model over the visible GPUs, then CPU: auto (default: the "
              "whole model on --vlmgate-device, loaded straight onto it)", "auto"),
    RunOption("max_memory", "max-memory", "with --vlmgate-device-map auto: memory per device, e.g. "
              "0=20GiB,1=20GiB,cpu=64GiB", "DEV=SIZE,..."),
    RunOption("quantize", "quantize", "quantize the weights at load with bitsandbytes: 4bit (NF4) or 8bit "
              "(LLM.int8); CUDA only. Pre-quantized checkpoints (GPTQ, AWQ, ...) load as they are", "4bit|8bit"),
    RunOption("batch_size", "batch-size", f"inputs per forward batch (default {DEFAULT_BATCH_SIZE})", "N",
              integer=DEFAULT_BATCH_SIZE),
    RunOption("trust_remote_code", "trust-remote-code", "allow checkpoints to run their own modelling code "
              "(off by default)", switch=True),
    RunOption("allow_weight_keys", "allow-missing-weights", "weights matching GLOB (fnmatch, over the names "
              "transformers reports) may be missing from, unused by or mis-shaped in the checkpoint and are "
              "initialised at load; without it any such weight is a load error (repeatable)", "GLOB", repeat=True),
    RunOption("max_pixels", "max-pixels", "pixel budget of one benchmark image, read from its header: a larger "
              f"image is refused by name instead of decoded (default {DEFAULT_MAX_PIXELS})", "N",
              integer=DEFAULT_MAX_PIXELS),
    RunOption("prompt_format", "prompt-format", f"how checkpoints are prompted: {', '.join(FORMAT_NAMES)} (default: "
              "each checkpoint's own chat template; one without is a load error unless a format is named)", "NAME"),
    RunOption("cache_dir", "cache", f"observation cache folder (default {DEFAULT_CACHE_DIR} under the rootdir)",
              "DIR"),
    RunOption("no_cache", "no-cache", "neither read nor write the observation cache", switch=True),
    RunOption("cache_audit", "cache-audit", "recompute a seeded FRACTION of cache hits (0 < FRACTION <= 1; which "
              "ones depends on the entry and --vlmgate-seed only) and fail the case, naming the entry and both "
              "values, where the cache holds another value than a cold run computes: a stale or altered cache "
              "(e.g. 0.05 in a nightly job)", "FRACTION", number=0.05),
    RunOption("cache_max_mb", "cache-max-mb", "at the end of a run, delete least recently used cache entries "
              f"beyond MB (default {DEFAULT_CACHE_MAX_MB}; 0 = no cap)", "MB", integer=DEFAULT_CACHE_MAX_MB),
    RunOption("devices", "devices", "xdist workers take these torch devices round-robin, e.g. cuda:0,cuda:1",
              "DEV,DEV"),
    RunOption("backend", "backend", "where batches run: local (default) or ray (model replicas as Ray actors "
              "perturb and score them; RAY_ADDRESS names a cluster, else a local one starts on 127.0.0.1)", "NAME"),
    RunOption("ray_replicas", "ray-replicas", "with --vlmgate-backend ray: model replicas to start (default: as "
              "many as the cluster's CPUs, or GPUs / --vlmgate-ray-gpus-per-replica on a CUDA device, hold)", "N",
              integer=2),
    RunOption("ray_gpus_per_replica", "ray-gpus-per-replica", "with --vlmgate-backend ray on a CUDA device: GPUs "
              "each replica holds (default 1; 0.5 puts two replicas on a GPU; above 1, a whole number)", "G",
              number=0.5),
    RunOption("torch_threads", "torch-threads", "torch threads per process: auto (default: cores // xdist "
              "workers) or N", "N"),
    RunOption("strict", "strict", "a gate that cannot fail at this run's n (an inert gate: too few samples for its "
              "limit) fails its case instead of passing with a note", switch=True),
    RunOption("repeat_clean", "repeat-clean", "score the clean pass a second time, past memo and cache, and record "
              "the share of answers that differ (repeat_flip_rate) beside every flip rate: the model's own noise "
              "(on by itself for models that are not deterministic, such as served ones)", switch=True),
    RunOption("search", "search", "run the minimal-failure search (stored counterexamples are replayed "
              "without it)", switch=True),
    RunOption("search_budget", "search-budget", "most inputs one minimal-failure search scores (default "
              f"{DEFAULT_SEARCH_BUDGET})", "N", integer=DEFAULT_SEARCH_BUDGET),
    RunOption("counterexamples", "counterexamples", "counterexample store, replayed first and extended by the "
              f"search suite (default {DEFAULT_COUNTEREXAMPLES})", "PATH"),
    RunOption("progress", "progress", f"how a running case shows its progress: {'|'.join(PROGRESS_MODES)} "
              f"(default {DEFAULT_PROGRESS}: a refreshing bar on a terminal, a plain line every "
              f"{LINE_INTERVAL_S:g} s in CI or under xdist)", "MODE"),
    RunOption("shard", "shard", "run shard I of N of the selection (vlmgate cases' node ids sorted and dealt "
              "round-robin; other tests run in shard 1) and mark the run record as that shard; join the N records "
              "with vlmgate merge", "I/N"),
    RunOption("search_images", "search-images", "folder for the clean and perturbed PNGs of minimal failures "
              "(default: REPORT_DIR/minimal_failures with --vlmgate-report, else .vlmgate_failures)", "DIR"),
)
#: The options of a command that scores a benchmark with models (``vlmgate accuracy``, ``select``).
SCORING = ("limit", "batch_size", "device", "dtype", "trust_remote_code", "allow_weight_keys", "max_pixels",
           "prompt_format", "device_map", "max_memory", "quantize")


def add_options(add_argument: Callable[..., Any], *, prefix: str = "", keys: Iterable[str] | None = None) -> None:
    """Add the options named by ``keys`` (all by default), in table order."""
    wanted = None if keys is None else set(keys)
    for option in RUN_OPTIONS:
        if wanted is None or option.key in wanted:
            option.add(add_argument, prefix)


def values(namespace: Any, *, prefix: str = "", keys: Iterable[str] | None = None) -> dict[str, Any]:
    """The options' values as ``build_settings`` takes them (``None`` = not given on the command line)."""
    wanted = None if keys is None else set(keys)
    return {option.key: getattr(namespace, option.dest(prefix), None)
            for option in RUN_OPTIONS if wanted is None or option.key in wanted}


def flags(prefix: str = PYTEST_PREFIX) -> Mapping[str, str]:
    """Settings key -> the option that sets it (``--vlmgate-model``), for messages."""
    return {option.key: f"--{prefix}{option.flag}" for option in RUN_OPTIONS}
