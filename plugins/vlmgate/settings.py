"""Run settings: command-line options over ``[tool.vlmgate]`` in pyproject over defaults.

One frozen record is built at configure time and stored in ``config.stash``; everything
else reads it from there, so a worker process and the controller agree on it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from vlmgate.errors import ConfigError

DEFAULT_MODELS = ("bundled:shapes-v1",)
DEFAULT_BENCHMARKS = ("bundled:shapes",)
DEFAULT_THRESHOLDS = "thresholds/default.toml"
# The repository root of an editable install; its thresholds/ apply when a project has none.
CHECKOUT_ROOT = Path(__file__).resolve().parents[2]
DTYPES = ("float32", "float16", "bfloat16")
#: The observation cache, under the rootdir and apart from ``.pytest_cache`` so that
#: ``--cache-clear`` (often used to reset last-failed) does not discard forward passes.
DEFAULT_CACHE_DIR = ".vlmgate_cache"
#: The cache folder's cap: least recently used entries go at the end of a run beyond it
#: (the bundled main job writes ~130 MB per checkpoint). 0 = no cap.
DEFAULT_CACHE_MAX_MB = 2048
PYPROJECT_KEYS = ("models", "benchmarks", "thresholds", "seed", "limit", "batch_size", "device", "dtype",
                  "search", "search_budget", "counterexamples", "cache_max_mb")
#: The committed store of minimal failures (``vlmgate.search.counterexamples``).
DEFAULT_COUNTEREXAMPLES = "thresholds/counterexamples.toml"
#: Where minimal failures' PNGs go without ``--vlmgate-search-images`` or ``--vlmgate-report``.
DEFAULT_SEARCH_IMAGES = ".vlmgate_failures"
#: Inputs one minimal-failure search may score (``--vlmgate-search-budget``).
DEFAULT_SEARCH_BUDGET = 200


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...] = DEFAULT_MODELS
    benchmarks: tuple[str, ...] = DEFAULT_BENCHMARKS
    thresholds: Path = Path(DEFAULT_THRESHOLDS)
    seed: int = 0
    limit: int | None = None
    batch_size: int = 8
    device: str = "cpu"
    dtype: str = "float32"
    trust_remote_code: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: Minimal-failure search: whether to search (stored counterexamples replay regardless),
    #: inputs scored per search, the counterexample store, the PNG folder.
    search: bool = False
    search_budget: int = DEFAULT_SEARCH_BUDGET
    counterexamples: Path = Path(DEFAULT_COUNTEREXAMPLES)
    search_images: Path = Path(DEFAULT_SEARCH_IMAGES)
    #: Observation cache folder; ``None`` = no cache (``--vlmgate-no-cache``).
    cache_dir: Path | None = None
    #: Cap of the cache folder in MB (``--vlmgate-cache-max-mb``); 0 = no cap.
    cache_max_mb: int = DEFAULT_CACHE_MAX_MB
    #: ``--vlmgate-devices``: xdist workers take these round-robin (``None`` = ``device`` everywhere).
    devices: tuple[str, ...] | None = None
    #: ``local`` or ``ray`` (see ``vlmgate.dispatch``).
    backend: str = "local"
    #: Torch threads per process; ``None`` = ``auto`` (cores split among xdist workers).
    torch_threads: int | None = None


def read_pyproject_table(rootpath: Path) -> tuple[Path | None, dict[str, Any]]:
    """``[tool.vlmgate]`` of ``rootpath/pyproject.toml`` (empty when absent)."""
    path = rootpath / "pyproject.toml"
    if not path.is_file():
        return None, {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    table = data.get("tool", {}).get("vlmgate", {})
    for key in table:
        if key not in PYPROJECT_KEYS:
            import difflib

            close = difflib.get_close_matches(key, PYPROJECT_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{path}: [tool.vlmgate] unknown key {key!r}{hint}; known: {', '.join(PYPROJECT_KEYS)}")
    return path, table


def _positive(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def build_settings(rootpath: Path, cli: Mapping[str, Any]) -> Settings:
    """Merge CLI values (``None`` = not given) over pyproject over defaults, validated."""
    source, table = read_pyproject_table(rootpath)

    def pick(key: str, default: Any) -> Any:
        value = cli.get(key)
        return value if value is not None else table.get(key, default)

    models = tuple(pick("models", DEFAULT_MODELS))
    benchmarks = tuple(pick("benchmarks", DEFAULT_BENCHMARKS))
    if not models or not benchmarks:
        raise ConfigError("at least one --vlmgate-model and one --vlmgate-benchmark are needed")
    thresholds = cli.get("thresholds")
    if thresholds is not None:
        thresholds_path = Path(thresholds)
    else:
        thresholds_path = rootpath / table.get("thresholds", DEFAULT_THRESHOLDS)
        if "thresholds" not in table and not thresholds_path.is_file():
            # Outside the checkout (a pytester dir, a user's own repo) the checkout's
            # defaults apply; a missing file is reported when the gate loads it.
            thresholds_path = CHECKOUT_ROOT / DEFAULT_THRESHOLDS
    dtype = pick("dtype", "float32")
    if dtype not in DTYPES:
        raise ConfigError(f"--vlmgate-dtype {dtype!r} must be one of {', '.join(DTYPES)}")
    limit = pick("limit", None)
    from vlmgate.dispatch import check_backend
    from vlmgate.placement import AUTO, parse_devices, parse_torch_threads

    cache = cli.get("cache_dir")
    devices = cli.get("devices")
    return Settings(
        models=models,
        benchmarks=benchmarks,
        thresholds=thresholds_path,
        seed=_positive("--vlmgate-seed", pick("seed", 0), 0),
        limit=None if limit is None else _positive("--vlmgate-limit", limit, 1),
        batch_size=_positive("--vlmgate-batch-size", pick("batch_size", 8), 1),
        device=str(pick("device", "cpu")),
        dtype=dtype,
        trust_remote_code=bool(cli.get("trust_remote_code")),
        search=bool(pick("search", False)),
        search_budget=_positive("--vlmgate-search-budget", pick("search_budget", DEFAULT_SEARCH_BUDGET), 1),
        counterexamples=rootpath / pick("counterexamples", DEFAULT_COUNTEREXAMPLES),
        search_images=rootpath / (cli.get("search_images") or DEFAULT_SEARCH_IMAGES),
        cache_dir=None if cli.get("no_cache") else rootpath / DEFAULT_CACHE_DIR if cache is None else Path(cache),
        cache_max_mb=_positive("--vlmgate-cache-max-mb", pick("cache_max_mb", DEFAULT_CACHE_MAX_MB), 0),
        devices=None if devices is None else parse_devices(devices),
        backend=check_backend(cli.get("backend") or "local"),
        torch_threads=parse_torch_threads(cli.get("torch_threads") or AUTO),
    )
