"""``bundled:NAME`` — a benchmark split shipped under ``fixtures/benchmarks/NAME``.

A split holds image items (``manifest.jsonl``, read as ``jsonl:``) or text items
(``items.jsonl``, read as ``textqa:``, for the cross-modal suite); which file the folder
holds is its kind, so ``bundled:shapes`` and ``bundled:shapes-text`` need no scheme of
their own and the kind is known at collection from the folder alone. Whether an image
split's questions vary is read from its manifest's question texts (the bundled splits are
small: no image is opened), and so are whether it holds yes/no items and whether its rows
hold several pictures (``images``, as ``bundled:shapes-pairs``: ``jsonl``).
"""

from __future__ import annotations

import json
from pathlib import Path

from vlmgate.benchmarks.base import DEFAULT_OPTIONS, BenchmarkOptions, items_kind
from vlmgate.benchmarks.jsonl import JsonlBenchmark, manifest_has_several_images, manifest_has_yes_no_items
from vlmgate.benchmarks.textqa import TextQABenchmark
from vlmgate.errors import DataError, VlmgateError
from vlmgate.fixture_paths import bundled_entry

#: An image split's manifest (``jsonl:`` rows) and a text split's items (``textqa:`` rows).
IMAGE_MANIFEST = "manifest.jsonl"
TEXT_ITEMS = "items.jsonl"


def bundled_kind(name: str) -> str | None:
    """``text`` for a folder of text items, ``image`` otherwise; ``None`` when no such split exists."""
    try:
        folder = bundled_entry("benchmarks", name, DataError)
    except VlmgateError:
        return None
    return "text" if (folder / TEXT_ITEMS).is_file() else "image"


def bundled_questions_vary(name: str) -> bool | None:
    """Whether an image split asks more than one question text; ``None`` for a text or missing split."""
    if bundled_kind(name) != "image":
        return None
    manifest = bundled_entry("benchmarks", name, DataError) / IMAGE_MANIFEST
    try:
        questions = {json.loads(line).get("question") for line in manifest.read_text(encoding="utf-8").splitlines()
                     if line.strip()}
    except (OSError, ValueError, AttributeError):
        return None  # the load reports what is wrong with the manifest
    return len(questions) > 1


def bundled_yes_no_items(name: str) -> bool | None:
    """Whether an image split holds answered yes/no items (``jsonl.manifest_has_yes_no_items``)."""
    if bundled_kind(name) != "image":
        return None
    return manifest_has_yes_no_items(bundled_entry("benchmarks", name, DataError) / IMAGE_MANIFEST)


def bundled_several_images(name: str) -> bool | None:
    """Whether an image split holds rows of several pictures (``jsonl.manifest_has_several_images``);
    ``False`` for a text split, ``None`` for a missing one."""
    kind = bundled_kind(name)
    if kind != "image":
        return None if kind is None else False
    return manifest_has_several_images(bundled_entry("benchmarks", name, DataError) / IMAGE_MANIFEST)


@items_kind(bundled_kind, varied_questions=bundled_questions_vary, yes_no_items=bundled_yes_no_items,
            several_images=bundled_several_images)
def load_bundled_benchmark(name: str, *, spec: str,
                           options: BenchmarkOptions = DEFAULT_OPTIONS) -> JsonlBenchmark | TextQABenchmark:
    folder: Path = bundled_entry("benchmarks", name, DataError)
    if (folder / TEXT_ITEMS).is_file():
        return TextQABenchmark(folder / TEXT_ITEMS, spec)
    return JsonlBenchmark(folder / IMAGE_MANIFEST, spec, options)
