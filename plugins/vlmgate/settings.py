"""Run settings: command-line options over ``[tool.vlmgate]`` in pyproject over defaults.

One frozen record is built at configure time and stored in ``config.stash``; everything
else reads it from there, so a worker process and the controller agree on it.

Nothing may silently mean something else, so every value is checked before it is used:
each ``[tool.vlmgate]`` key against its ``TableKey`` (type, range, choices) when the file
is read, even when an option overrides it; each command-line value against the same
record; and the device(s) against what this machine's torch can see (``vlmgate.placement``).
A wrong value is one ``ConfigError`` naming the file and key (or the option) and the fix.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from vlmgate.batches import DEFAULT_BATCH_SIZE
from vlmgate.benchmarks.base import DEFAULT_MAX_PIXELS
from vlmgate.errors import ConfigError
from vlmgate.models.base import DEVICE_MAPS, QUANTIZE_MODES, parse_max_memory
from vlmgate.models.prompt_formats import FORMAT_NAMES
from vlmgate.placement import AUTO, Accelerators, needs_accelerators, parse_devices, parse_torch_threads
from vlmgate.progress_display import DEFAULT_MODE as DEFAULT_PROGRESS
from vlmgate.progress_display import MODES as PROGRESS_MODES
from vlmgate.shards import Shard
from vlmgate.tomlfile import read_toml

if TYPE_CHECKING:
    from vlmgate.benchmarks.base import BenchmarkOptions
    from vlmgate.models.base import ModelOptions

DEFAULT_MODELS = ("bundled:shapes-v1",)
DEFAULT_BENCHMARKS = ("bundled:shapes",)
#: A project's own threshold file, relative to the rootdir; without one the limits shipped
#: with vlmgate apply (``packaged_thresholds``), so a non-editable install gates too.
DEFAULT_THRESHOLDS = "thresholds/default.toml"
#: The limits shipped as package data, with the reasoning of each written beside it.
PACKAGED_THRESHOLDS = "default_thresholds.toml"
DEFAULT_SEED = 0
DEFAULT_DEVICE = "cpu"
DEFAULT_DTYPE = "float32"
DTYPES = ("float32", "float16", "bfloat16")
#: The observation cache, under the rootdir and apart from ``.pytest_cache`` so that
#: ``--cache-clear`` (often used to reset last-failed) does not discard forward passes.
DEFAULT_CACHE_DIR = ".vlmgate_cache"
#: The cache folder's cap: least recently used entries go at the end of a run beyond it
#: (the bundled main job writes ~130 MB per checkpoint). 0 = no cap.
DEFAULT_CACHE_MAX_MB = 2048
#: Inside the cache folder: side-car records of checkpoint file digests
#: (``models.checkpoint.file_sha256``), so a multi-GB checkpoint is hashed once, not per process.
DIGESTS_DIR = "file-digests"
#: The committed store of minimal failures (``vlmgate.search.counterexamples``).
DEFAULT_COUNTEREXAMPLES = "thresholds/counterexamples.toml"
#: Where minimal failures' PNGs go without ``--vlmgate-search-images`` or ``--vlmgate-report``.
DEFAULT_SEARCH_IMAGES = ".vlmgate_failures"
#: Inputs one minimal-failure search may score (``--vlmgate-search-budget``).
DEFAULT_SEARCH_BUDGET = 200


class Kind(Enum):
    """The TOML type a ``[tool.vlmgate]`` key takes (the value is how a message names it)."""

    STRINGS = "a list of strings"
    STRING = "a string"
    INTEGER = "an integer"
    NUMBER = "a positive number"
    BOOLEAN = "true or false"


@dataclass(frozen=True)
class TableKey:
    """A ``[tool.vlmgate]`` key: its type, the option that overrides it, and a valid example.

    Every value of the table is checked against its key when the file is read, whether or
    not an option overrides it, because a value of the wrong type silently means something
    else: ``search = "false"`` is a non-empty string, so truthy, and turns the search on; a
    bare ``models = "hf:x"`` would be iterated character by character. Command-line values
    (already typed by their option) go through the same checks for range and emptiness.
    """

    name: str
    kind: Kind
    option: str
    example: Any
    minimum: int | None = None
    choices: tuple[str, ...] = ()

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value``, phrased to follow it (``must be ...``), or ``None``."""
        if self.kind is Kind.BOOLEAN:
            if isinstance(value, bool):
                return None
            return "must be true or false" + (", not a string" if isinstance(value, str) else "")
        if self.kind is Kind.STRINGS:
            if not isinstance(value, (list, tuple)):
                return "must be a list of strings"
            if not value:
                return "must name at least one"
            return None if all(isinstance(item, str) and item for item in value) else "must hold non-empty strings"
        if self.kind is Kind.STRING:
            if not isinstance(value, str):
                return "must be a string"
            if not value:
                return "must not be empty"
            return None if not self.choices or value in self.choices else f"must be one of {', '.join(self.choices)}"
        if self.kind is Kind.NUMBER:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return "must be a number"
            return None if math.isfinite(value) and value > 0 else "must be a positive number"
        if isinstance(value, bool):
            return "must be an integer, not a boolean"
        if not isinstance(value, int):
            return "must be an integer"
        return None if self.minimum is None or value >= self.minimum else f"must be an integer >= {self.minimum}"

    def table_fix(self, value: Any) -> str:
        """How to write this key in ``[tool.vlmgate]`` instead of ``value``."""
        if self.kind is Kind.BOOLEAN:
            return f"write {self.name} = true or {self.name} = false"
        if self.kind is Kind.STRINGS and isinstance(value, str) and value:
            return f"write {self.name} = {_as_toml([value])}"  # the common slip: one spec, not a list
        return f"write {self.name} = {_as_toml(self.example)}"

    def option_fix(self) -> str:
        """How to pass this key's option instead."""
        example = self.example[0] if isinstance(self.example, list) else self.example
        return f"pass e.g. {self.option} {example}"


def _as_toml(value: Any) -> str:
    """``value`` as it reads in TOML (JSON's scalars and arrays are TOML's, ``true`` not ``True``)."""
    return json.dumps(value, default=str)


#: Every ``[tool.vlmgate]`` key. A new setting read from pyproject gets its record here.
TABLE_KEYS: Mapping[str, TableKey] = {key.name: key for key in (
    TableKey("models", Kind.STRINGS, "--vlmgate-model", ["hf:/path/to/checkpoint"]),
    TableKey("benchmarks", Kind.STRINGS, "--vlmgate-benchmark", ["jsonl:/path/to/manifest.jsonl"]),
    TableKey("thresholds", Kind.STRING, "--vlmgate-thresholds", DEFAULT_THRESHOLDS),
    TableKey("seed", Kind.INTEGER, "--vlmgate-seed", DEFAULT_SEED, minimum=0),
    TableKey("limit", Kind.INTEGER, "--vlmgate-limit", 100, minimum=1),
    TableKey("batch_size", Kind.INTEGER, "--vlmgate-batch-size", DEFAULT_BATCH_SIZE, minimum=1),
    TableKey("device", Kind.STRING, "--vlmgate-device", DEFAULT_DEVICE),
    TableKey("dtype", Kind.STRING, "--vlmgate-dtype", DEFAULT_DTYPE, choices=DTYPES),
    TableKey("device_map", Kind.STRING, "--vlmgate-device-map", "auto", choices=DEVICE_MAPS),
    TableKey("max_memory", Kind.STRING, "--vlmgate-max-memory", "0=20GiB,1=20GiB,cpu=64GiB"),
    TableKey("quantize", Kind.STRING, "--vlmgate-quantize", "4bit", choices=QUANTIZE_MODES),
    TableKey("strict", Kind.BOOLEAN, "--vlmgate-strict", True),
    TableKey("repeat_clean", Kind.BOOLEAN, "--vlmgate-repeat-clean", True),
    TableKey("search", Kind.BOOLEAN, "--vlmgate-search", True),
    TableKey("search_budget", Kind.INTEGER, "--vlmgate-search-budget", DEFAULT_SEARCH_BUDGET, minimum=1),
    TableKey("counterexamples", Kind.STRING, "--vlmgate-counterexamples", DEFAULT_COUNTEREXAMPLES),
    TableKey("cache_max_mb", Kind.INTEGER, "--vlmgate-cache-max-mb", DEFAULT_CACHE_MAX_MB, minimum=0),
    TableKey("max_pixels", Kind.INTEGER, "--vlmgate-max-pixels", DEFAULT_MAX_PIXELS, minimum=1),
    TableKey("prompt_format", Kind.STRING, "--vlmgate-prompt-format", "llava-plain", choices=FORMAT_NAMES),
    TableKey("ray_replicas", Kind.INTEGER, "--vlmgate-ray-replicas", 2, minimum=1),
    TableKey("ray_gpus_per_replica", Kind.NUMBER, "--vlmgate-ray-gpus-per-replica", 0.5),
    TableKey("progress", Kind.STRING, "--vlmgate-progress", "lines", choices=PROGRESS_MODES),
)}
PYPROJECT_KEYS = tuple(TABLE_KEYS)


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...] = DEFAULT_MODELS
    benchmarks: tuple[str, ...] = DEFAULT_BENCHMARKS
    #: The topmost threshold file (``threshold_layers[-1]``) and every layer, lowest first.
    thresholds: Path = Path(DEFAULT_THRESHOLDS)
    threshold_layers: tuple[Path, ...] = ()
    seed: int = DEFAULT_SEED
    limit: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str = DEFAULT_DEVICE
    dtype: str = DEFAULT_DTYPE
    #: Big checkpoints: ``--vlmgate-device-map auto`` (shard over GPUs), its per-device
    #: budgets (``--vlmgate-max-memory``), bitsandbytes at load (``--vlmgate-quantize``).
    device_map: str | None = None
    max_memory: tuple[tuple[str, str], ...] = ()
    quantize: str | None = None
    trust_remote_code: bool = False
    #: ``--vlmgate-allow-missing-weights``: globs of weights that may be initialised at load.
    allow_weight_keys: tuple[str, ...] = ()
    #: Minimal-failure search: whether to search (stored counterexamples replay regardless),
    #: inputs scored per search, the counterexample store, the PNG folder.
    #: ``--vlmgate-strict``: an inert gate (one that cannot fail at the run's n) fails its case.
    strict: bool = False
    #: ``--vlmgate-repeat-clean``: score the clean pass twice and record how often answers differ
    #: (on by itself for a model that says it is not deterministic, e.g. a served one).
    repeat_clean: bool = False
    search: bool = False
    search_budget: int = DEFAULT_SEARCH_BUDGET
    counterexamples: Path = Path(DEFAULT_COUNTEREXAMPLES)
    search_images: Path = Path(DEFAULT_SEARCH_IMAGES)
    #: Observation cache folder; ``None`` = no cache (``--vlmgate-no-cache``).
    cache_dir: Path | None = None
    #: Cap of the cache folder in MB (``--vlmgate-cache-max-mb``); 0 = no cap.
    cache_max_mb: int = DEFAULT_CACHE_MAX_MB
    #: Fraction of cache hits recomputed and compared (``--vlmgate-cache-audit``); 0 = none.
    cache_audit: float = 0.0
    #: ``--vlmgate-devices``: xdist workers take these round-robin (``None`` = ``device`` everywhere).
    devices: tuple[str, ...] | None = None
    #: ``local`` or ``ray`` (see ``vlmgate.dispatch``).
    backend: str = "local"
    #: Torch threads per process; ``None`` = ``auto`` (cores split among xdist workers).
    torch_threads: int | None = None
    #: ``--vlmgate-progress``: how a running case shows its passes (``vlmgate.progress_display``).
    progress: str = DEFAULT_PROGRESS
    #: Pixel budget of one benchmark image (``--vlmgate-max-pixels``; ``benchmarks.image_decoding``).
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: ``--vlmgate-prompt-format``: how checkpoints are prompted (``None``: each one's chat template).
    prompt_format: str | None = None
    #: Ray backend: replicas to start (``None`` = as many as the cluster holds) and GPUs each
    #: holds (1 on a CUDA device unless set; 0, i.e. one CPU each, on a CPU device).
    ray_replicas: int | None = None
    ray_gpus_per_replica: float = 0.0
    #: ``--vlmgate-shard I/N``: the share of the selection this job runs (``None``: all of it).
    #: Command line only: one pyproject is shared by every job of a split run.
    shard: Shard | None = None

    def model_options(self, device: str | None = None) -> "ModelOptions":
        """How models load under these settings (on ``device`` when given: a worker's own)."""
        from vlmgate.models.base import ModelOptions

        return ModelOptions(device or self.device, self.dtype, self.trust_remote_code, self.allow_weight_keys,
                            self.prompt_format, device_map=self.device_map, max_memory=self.max_memory,
                            quantize=self.quantize,
                            digest_dir=None if self.cache_dir is None else str(self.cache_dir / DIGESTS_DIR))

    def benchmark_options(self) -> "BenchmarkOptions":
        """How benchmarks load under these settings (the pixel budget)."""
        from vlmgate.benchmarks.base import BenchmarkOptions

        return BenchmarkOptions(max_pixels=self.max_pixels)


def threshold_files(rootpath: Path, table: Mapping[str, Any], given: str | None) -> tuple[Path, ...]:
    """The threshold layers of a run, lowest first (``thresholds.compose``): the limits shipped
    with vlmgate, those installed distributions ship for their suites, the project's own file
    (``thresholds/default.toml``, or ``[tool.vlmgate] thresholds``; a file the project names
    but lacks is reported when it loads), then ``--vlmgate-thresholds``."""
    from vlmgate.thresholds import distribution_thresholds

    layers = [packaged_thresholds(), *distribution_thresholds()]
    project = rootpath / table.get("thresholds", DEFAULT_THRESHOLDS)
    if "thresholds" in table or project.exists():
        layers.append(project)
    if given is not None:
        layers.append(Path(given))
    return tuple(layers)


def packaged_thresholds() -> Path:
    """The default threshold file shipped inside the package (``PACKAGED_THRESHOLDS``)."""
    from importlib.resources import files

    return Path(str(files("vlmgate").joinpath(PACKAGED_THRESHOLDS)))


def read_pyproject_table(rootpath: Path) -> tuple[Path | None, dict[str, Any]]:
    """``[tool.vlmgate]`` of ``rootpath/pyproject.toml`` (empty when absent), every key checked."""
    path = rootpath / "pyproject.toml"
    if not path.is_file():
        return None, {}
    tool = read_toml(path, "pyproject.toml").get("tool", {})
    if not isinstance(tool, Mapping):
        raise ConfigError(f"{path}: tool = {_as_toml(tool)} must be a table; write it as a [tool.vlmgate] table")
    table = tool.get("vlmgate", {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path}: [tool.vlmgate] = {_as_toml(table)} must be a table; "
                          "write it as a [tool.vlmgate] table")
    for name, value in table.items():
        key = TABLE_KEYS.get(name)
        if key is None:
            close = difflib.get_close_matches(name, PYPROJECT_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{path}: [tool.vlmgate] unknown key {name!r}{hint}; known: {', '.join(PYPROJECT_KEYS)}")
        problem = key.problem(value)
        if problem:
            raise ConfigError(f"{path}: [tool.vlmgate] {name} = {_as_toml(value)} {problem}; {key.table_fix(value)}")
    return path, dict(table)


@dataclass(frozen=True)
class _Layers:
    """The command line over ``[tool.vlmgate]`` of ``source`` (already checked) over the defaults."""

    cli: Mapping[str, Any]
    source: Path | None
    table: Mapping[str, Any]

    def pick(self, name: str, default: Any) -> Any:
        """The value of ``name``: a command-line value is checked here, a table value was at read."""
        value = self.cli.get(name)
        if value is None:
            return self.table.get(name, default)
        key = TABLE_KEYS[name]
        problem = key.problem(value)
        if problem:
            raise ConfigError(f"{key.option} {problem}, got {value!r}; {key.option_fix()}")
        return value

    def subject(self, name: str, value: Any) -> str:
        """How a message names ``value`` of ``name``: as the option, or as the pyproject line."""
        if self.cli.get(name) is not None or name not in self.table:
            return f"{TABLE_KEYS[name].option} {value!r}"
        return f"{self.source}: [tool.vlmgate] {name} = {_as_toml(value)}"


def _check_devices(layers: _Layers, device: str, devices: tuple[str, ...] | None,
                   accelerators: Accelerators | None) -> None:
    """Refuse a device this machine's torch cannot see, at start-up rather than in every case.

    Only the devices the local backend will use are checked (``--vlmgate-devices``
    replaces ``device``), and torch is imported for it only when one of them is not ``cpu``.
    """
    if devices:
        asked = [(f"--vlmgate-devices entry {entry!r}", entry) for entry in devices]
    else:
        asked = [(layers.subject("device", device), device)]
    if not needs_accelerators(tuple(entry for _, entry in asked)):
        return
    machine = accelerators or Accelerators.detect()
    for subject, entry in asked:
        problem = machine.problem(entry)
        if problem:
            raise ConfigError(f"{subject} {problem}; use one of {', '.join(machine.available())}")


def _ray_placement(layers: _Layers, backend: str, device: str) -> tuple[int | None, float]:
    """Replicas and GPUs per replica of the Ray backend, refused where they would be ignored.

    A command-line value with the local backend, or GPUs for replicas of a model that runs
    on the CPU, would change nothing: an error rather than silence. More than one GPU per
    replica must be whole (Ray places fractions of one GPU only).
    """
    replicas = layers.pick("ray_replicas", None)
    gpus = layers.pick("ray_gpus_per_replica", None)
    for name in ("ray_replicas", "ray_gpus_per_replica"):
        if backend != "ray" and layers.cli.get(name) is not None:
            raise ConfigError(f"{TABLE_KEYS[name].option} applies to --vlmgate-backend ray only; "
                              "pass --vlmgate-backend ray or drop it")
    cuda = device.startswith("cuda")
    if gpus is not None and not cuda:
        raise ConfigError(f"{layers.subject('ray_gpus_per_replica', gpus)} needs a CUDA model device, but "
                          f"{layers.subject('device', device)} runs the replicas on CPUs (one each); drop it or "
                          "pass --vlmgate-device cuda")
    if gpus is not None and gpus > 1 and gpus != int(gpus):
        raise ConfigError(f"{layers.subject('ray_gpus_per_replica', gpus)} must be a fraction of one GPU or a "
                          "whole number of GPUs (Ray places no 1.5 GPUs); pass e.g. 0.5, 1 or 2")
    return replicas, float(gpus) if gpus is not None else (1.0 if cuda else 0.0)


def _big_checkpoint(layers: _Layers, devices: tuple[str, ...] | None
                    ) -> tuple[str | None, tuple[tuple[str, str], ...], str | None]:
    """``device_map``, ``max_memory`` and ``quantize``, refused where they would be ignored or clash.

    A budget without ``auto`` sharding would change nothing; sharding one model over every
    GPU and giving each xdist worker a GPU of its own (``--vlmgate-devices``) contradict.
    """
    device_map, quantize = layers.pick("device_map", None), layers.pick("quantize", None)
    text = layers.pick("max_memory", None)
    try:
        max_memory = () if text is None else parse_max_memory(text)
    except ValueError as exc:
        raise ConfigError(f"{layers.subject('max_memory', text)}: {exc}; "
                          f"{TABLE_KEYS['max_memory'].option_fix()}") from None
    if max_memory and device_map is None:
        raise ConfigError(f"{layers.subject('max_memory', text)} budgets the devices of a sharded model; "
                          "pass --vlmgate-device-map auto with it")
    if device_map is not None and devices:
        raise ConfigError(f"{layers.subject('device_map', device_map)} shards each model over every visible GPU, "
                          "but --vlmgate-devices gives each xdist worker its own; drop one of them")
    return device_map, max_memory, quantize


def _cache_audit(cli: Mapping[str, Any], cache_dir: Path | None) -> float:
    """``--vlmgate-cache-audit``: a fraction in (0, 1] of a cache that is read (0.0 when not given)."""
    value = cli.get("cache_audit")
    if value is None:
        return 0.0
    if not (math.isfinite(value) and 0 < value <= 1):
        raise ConfigError(f"--vlmgate-cache-audit must be a fraction of cache hits in (0, 1], got {value!r}; "
                          "pass e.g. --vlmgate-cache-audit 0.05")
    if cache_dir is None:
        raise ConfigError("--vlmgate-cache-audit audits the observation cache, which --vlmgate-no-cache turns off; "
                          "drop one of them")
    return float(value)


def build_settings(rootpath: Path, cli: Mapping[str, Any], accelerators: Accelerators | None = None) -> Settings:
    """Merge CLI values (``None`` = not given) over pyproject over defaults, validated.

    ``accelerators`` is what the machine offers; by default it is detected (importing
    torch) only when a device other than ``cpu`` is asked for.
    """
    layers = _Layers(cli, *read_pyproject_table(rootpath))
    table, pick = layers.table, layers.pick
    models = tuple(pick("models", DEFAULT_MODELS))
    benchmarks = tuple(pick("benchmarks", DEFAULT_BENCHMARKS))
    threshold_layers = threshold_files(rootpath, table, cli.get("thresholds"))
    limit = pick("limit", None)
    from vlmgate.dispatch import check_backend

    cache = cli.get("cache_dir")
    device = pick("device", DEFAULT_DEVICE)
    devices = None if cli.get("devices") is None else parse_devices(cli["devices"])
    backend = check_backend(cli.get("backend") or "local")
    if backend == "local":  # Ray replicas use the cluster's devices, checked when it starts
        _check_devices(layers, device, devices, accelerators)
    ray_replicas, gpus_per_replica = _ray_placement(layers, backend, device)
    device_map, max_memory, quantize = _big_checkpoint(layers, devices)
    cache_dir = None if cli.get("no_cache") else rootpath / DEFAULT_CACHE_DIR if cache is None else Path(cache)
    return Settings(
        models=models,
        benchmarks=benchmarks,
        thresholds=threshold_layers[-1], threshold_layers=threshold_layers,
        seed=pick("seed", DEFAULT_SEED),
        limit=limit,
        batch_size=pick("batch_size", DEFAULT_BATCH_SIZE),
        device=device,
        dtype=pick("dtype", DEFAULT_DTYPE),
        device_map=device_map,
        max_memory=max_memory,
        quantize=quantize,
        trust_remote_code=bool(cli.get("trust_remote_code")),
        allow_weight_keys=tuple(cli.get("allow_weight_keys") or ()),
        strict=pick("strict", False),
        repeat_clean=pick("repeat_clean", False),
        search=pick("search", False),
        search_budget=pick("search_budget", DEFAULT_SEARCH_BUDGET),
        counterexamples=rootpath / pick("counterexamples", DEFAULT_COUNTEREXAMPLES),
        search_images=rootpath / (cli.get("search_images") or DEFAULT_SEARCH_IMAGES),
        cache_dir=cache_dir,
        cache_max_mb=pick("cache_max_mb", DEFAULT_CACHE_MAX_MB),
        cache_audit=_cache_audit(cli, cache_dir),
        devices=devices,
        backend=backend,
        torch_threads=parse_torch_threads(cli.get("torch_threads") or AUTO),
        progress=pick("progress", DEFAULT_PROGRESS),
        max_pixels=pick("max_pixels", DEFAULT_MAX_PIXELS),
        prompt_format=pick("prompt_format", None),
        ray_replicas=ray_replicas,
        ray_gpus_per_replica=gpus_per_replica,
        shard=None if cli.get("shard") is None else Shard.parse(cli["shard"]),
    )
