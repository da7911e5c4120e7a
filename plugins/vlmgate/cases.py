"""Case keys and their pytest ids.

A case is one test item: a model × benchmark × perturbation family × suite (the kind of
gate: ``flip_rate``, ``drift``, ...). Its id is built from short, filesystem-safe names
so that snapshot files and JUnit reports can use it directly, whatever characters the
user's specs contain (``hf:/runs/ckpt-3`` -> ``hf_ckpt-3``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterable

from vlmgate.records import CLEAN_FAMILY  # noqa: F401  (cases that judge unperturbed inputs: clean accuracy)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, order=True)
class CaseKey:
    """What one parametrized test judges."""

    model: str
    benchmark: str
    family: str
    suite: str


def safe_name(text: str) -> str:
    """Reduce ``text`` to ``[A-Za-z0-9._-]`` (runs of other characters become ``_``)."""
    return _UNSAFE.sub("_", text).strip("_") or "_"


def short_name(spec: str) -> str:
    """``scheme_basename`` of a spec: ``hf:/a/b/ckpt`` -> ``hf_ckpt``."""
    scheme, _, rest = spec.partition(":")
    tail = PurePosixPath(rest.replace("\\", "/").rstrip("/")).name or rest
    return safe_name(f"{scheme}_{tail}" if rest else scheme)


def short_names(specs: Iterable[str]) -> dict[str, str]:
    """Short names for ``specs``, made unique with a hash suffix where two collide."""
    specs = list(dict.fromkeys(specs))
    names = {spec: short_name(spec) for spec in specs}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {
        spec: name if counts[name] == 1 else f"{name}.{hashlib.sha1(spec.encode()).hexdigest()[:6]}"
        for spec, name in names.items()
    }


def case_id(key: CaseKey, model_names: dict[str, str], benchmark_names: dict[str, str]) -> str:
    """``{model}-{benchmark}-{family}``, filesystem-safe."""
    return "-".join((model_names[key.model], benchmark_names[key.benchmark], safe_name(key.family)))
