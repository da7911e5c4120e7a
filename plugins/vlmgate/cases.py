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


#: The query key that names a spec's cases: ``jsonl:/data/pets/manifest.jsonl?name=pets``.
NAME_KEY = "name"
#: A file with this stem is the conventional file of a benchmark folder (``pets/manifest.jsonl``):
#: named by its folder, or every such benchmark would get one name and two releases gated on
#: different benchmarks would pair in ``vlmgate diff``.
FOLDER_FILE_STEM = "manifest"


def _query(spec: str) -> tuple[str, list[str]]:
    """``spec`` before its last ``?`` and the ``key=value`` items after it (none without ``?``)."""
    head, sep, query = spec.rpartition("?")
    return (head, query.split("&")) if sep else (spec, [])


def chosen_name(spec: str) -> str | None:
    """The name a spec sets with ``?name=NAME``, if any."""
    _, items = _query(spec)
    names = [item.partition("=")[2].strip() for item in items if item.partition("=")[0] == NAME_KEY]
    return (names[-1] or None) if names else None


def without_chosen_name(spec: str) -> str:
    """``spec`` without its ``name=`` query item: what a loader reads (the name is not content)."""
    head, items = _query(spec)
    if not items:
        return spec
    kept = [item for item in items if item.partition("=")[0] != NAME_KEY]
    return f"{head}?{'&'.join(kept)}" if kept else head


def short_name(spec: str) -> str:
    """The name a spec's cases carry: ``?name=NAME`` when set, else ``scheme_basename``
    (``hf:/a/b/ckpt`` -> ``hf_ckpt``), a folder's ``manifest.*`` named by its folder
    (``jsonl:/data/pets/manifest.jsonl`` -> ``jsonl_pets``)."""
    named = chosen_name(spec)
    if named is not None:
        return safe_name(named)
    scheme, _, rest = spec.partition(":")
    path = PurePosixPath(rest.replace("\\", "/").rstrip("/"))
    tail = path.name or rest
    if PurePosixPath(tail).stem == FOLDER_FILE_STEM and path.parent.name:
        tail = path.parent.name
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
