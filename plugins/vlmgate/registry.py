"""Name -> object registries backed by entry points.

Built-in perturbation families, model adapters, benchmark loaders and gating suites register through
the same ``pyproject.toml`` entry-point groups a third-party package would use, so a
plugin distribution is a first-class citizen. Listing names reads package metadata only;
an object is imported the first time it is asked for, which keeps ``import
vlmgate.plugin`` (run for every pytest session) free of torch and PIL.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from vlmgate.errors import RegistryError

PERTURBATIONS = "vlmgate.perturbations"
MODELS = "vlmgate.models"
BENCHMARKS = "vlmgate.benchmarks"
SUITES = "vlmgate.suites"
#: Default limits a distribution ships for its suites: each entry point names a threshold file
#: (a path, or a function returning one), layered over vlmgate's own (``thresholds.compose``).
THRESHOLDS = "vlmgate.thresholds"


@lru_cache(maxsize=None)
def _entry_points(group: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        # The first distribution to claim a name wins; a shadowing duplicate would make
        # results depend on install order, so it is an error.
        if ep.name in found and found[ep.name].value != ep.value:
            raise RegistryError(
                f"entry point {ep.name!r} in group {group!r} is registered twice "
                f"({found[ep.name].value} and {ep.value}); uninstall one of the packages"
            )
        found[ep.name] = ep
    return found


def names(group: str) -> list[str]:
    """Registered names in ``group``, sorted, without importing any of them."""
    return sorted(_entry_points(group))


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; known: {', '.join(known) or 'none'}"


@lru_cache(maxsize=None)
def load(group: str, name: str) -> Any:
    """Import and return the object registered as ``name`` in ``group``."""
    eps = _entry_points(group)
    if name not in eps:
        kind = group.rsplit(".", 1)[-1].rstrip("s")
        raise RegistryError(
            unknown_name_message(kind, name, sorted(eps))
            + f". Register it under the entry-point group {group!r}, or reinstall "
            "vlmgate (`pip install -e .`) if a built-in is missing."
        )
    return eps[name].load()


def split_spec(spec: str, kind: str, error: type[Exception]) -> tuple[str, str]:
    """Split ``scheme:rest``; a spec without a scheme raises ``error`` with the fix."""
    scheme, sep, rest = spec.partition(":")
    if not sep or not scheme or not rest:
        raise error(
            f"{kind} spec {spec!r} has no scheme; write it as SCHEME:PATH "
            "(e.g. hf:/path/to/checkpoint, bundled:shapes-v1, jsonl:data/manifest.jsonl)"
        )
    return scheme, rest
