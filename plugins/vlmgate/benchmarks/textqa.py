"""``textqa:PATH`` — text-only question answering from a JSON-lines file (spec §3).

Local exports of MMLU, ARC or GSM-style items become cross-modal items. One object per
line::

    {"id": "arc-1", "question": "Which gas do plants take in?", "options": ["O2", "CO2"], "answer": "B"}
    {"id": "gsm-7", "context": "Tom has 3 apples and buys 4 more.", "question": "How many apples does he have?",
     "answer": 7}

With ``options`` the item is multiple choice (``answer`` a letter, an option text or a
0-based index, as in ``jsonl:`` manifests) and judged by option log-likelihood; without,
it is numeric (``answer`` an integer, or a string holding one) and judged by greedy
generation. ``context`` (optional) is the stem the mixed form renders, ``question`` then
stays text; without a context the question itself is the stem.

Rows are text only: a row with an ``image`` key is an image manifest given to the wrong
loader, refused with a pointer to ``jsonl:`` rather than read with its picture dropped.
Options must be distinct (``benchmarks.options``); the file must be UTF-8.

As in the paper, items whose full text is longer than ``MAX_CHARS`` characters or that
contain LaTeX are dropped: a long page does not fit one rendering, and LaTeX renders
differently from how it reads as text. Both are counted (``dropped``) and reported.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Iterator

from vlmgate.benchmarks.base import DEFAULT_OPTIONS, BenchmarkOptions, items_kind, text_only_samples
from vlmgate.benchmarks.jsonl import (
    json_lines,
    option_texts,
    question_text,
    require_keys,
    row_id,
)
from vlmgate.benchmarks.options import answer_index
from vlmgate.benchmarks.text_files import require_file
from vlmgate.errors import DataError
from vlmgate.modalities import full_text
from vlmgate.records import Sample, TextItem

#: Items whose full text (stem, query, options) is longer are dropped (spec §3).
MAX_CHARS = 800
#: LaTeX markup: a backslash command (``\\frac``), ``\\(`` / ``\\[`` delimiters, ``$$``, or a
#: ``$…$`` span holding ``^ _ { } \\``. A bare dollar amount (``$5``) is not LaTeX.
LATEX = re.compile(r"\\[A-Za-z]+|\\[(\[]|\$\$|\$[^$\n]*[\\^_{}][^$\n]*\$")
REQUIRED = ("id", "question", "answer")


def has_latex(text: str) -> bool:
    return LATEX.search(text) is not None


def _numeric_answer(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise DataError(f"{where}: answer {value!r} must be an integer for an item without options")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value.replace(",", "")):
        return int(value.replace(",", ""))
    raise DataError(
        f"{where}: answer {value!r} is not an integer; items without options need an integer answer "
        "(add 'options' to make the item multiple choice, or drop the row)"
    )


def parse_item(obj: Any, line: int, path: Path) -> TextItem:
    """Validate one row into a ``TextItem``; every problem names the file, line and key."""
    if isinstance(obj, dict) and "image" in obj:
        raise DataError(f"{path}:{line}: this row has an 'image' key, but textqa: items are text-only (the "
                        "cross-modal suite renders them itself); it is an image manifest: load it with jsonl:PATH")
    obj = require_keys(obj, f"{path}:{line}", REQUIRED, "textqa row")
    item_id = row_id(obj, f"{path}:{line}")
    where = f"{path}:{line} (item {item_id!r})"
    question, context = question_text(obj["question"], where), obj.get("context")
    if context is not None and not isinstance(context, str):
        raise DataError(f"{where}: context must be a string (or absent)")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise DataError(f"{where}: meta must be a JSON object")
    options = obj.get("options")
    options_t: tuple[str, ...]
    answer: int | None
    if options is None:
        kind, options_t = "numeric", ()
        answer = _numeric_answer(obj["answer"], where)
    else:
        kind, options_t = "mcq", option_texts(options, where)
        answer = answer_index(obj["answer"], options_t, "mcq", where)
        if answer is None:
            raise DataError(f"{where}: answer is null; cross-modal metrics need the correct option")
    stem, query = (context, question) if context else (question, "")
    return TextItem(item_id, stem, query, options_t, answer, kind, tuple(sorted(meta.items())))


def drop_reason(item: TextItem) -> str | None:
    """``too_long`` / ``latex`` when the paper's filter drops ``item``, else ``None``."""
    text = full_text(item)
    if len(text) > MAX_CHARS:
        return "too_long"
    if has_latex(text):
        return "latex"
    return None


class TextQABenchmark:
    """Text items read from a JSON-lines file, filtered as the paper filters them."""

    def __init__(self, path: Path, spec: str):
        require_file(path, "textqa file", directory_fix="pass the JSON-lines file itself after 'textqa:'",
                     missing_fix="check the path after 'textqa:'")
        self.spec = spec
        self.path = path
        self._items, self.dropped, self.dropped_ids = self._read()

    def _read(self) -> tuple[list[TextItem], dict[str, int], dict[str, list[str]]]:
        items: list[TextItem] = []
        dropped: dict[str, list[str]] = {"too_long": [], "latex": []}
        seen: dict[str, int] = {}
        for line_no, obj in json_lines(self.path):
            item = parse_item(obj, line_no, self.path)
            if item.id in seen:
                raise DataError(f"{self.path}:{line_no}: item id {item.id!r} repeats line {seen[item.id]}; "
                                "ids must be unique")
            seen[item.id] = line_no
            reason = drop_reason(item)
            if reason is None:
                items.append(item)
            else:
                dropped[reason].append(item.id)
        if not items:
            raise DataError(
                f"textqa file {self.path} has no usable items ({len(dropped['too_long'])} longer than "
                f"{MAX_CHARS} characters, {len(dropped['latex'])} with LaTeX, the rest empty); "
                "add plain-text items"
            )
        return items, {reason: len(ids) for reason, ids in dropped.items()}, dropped

    def __len__(self) -> int:
        return len(self._items)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def items(self) -> Iterator[TextItem]:
        yield from self._items

    def samples(self) -> Iterator[Sample]:
        raise text_only_samples(self.spec)


@items_kind("text")
def load_textqa_benchmark(path: str, *, spec: str, options: BenchmarkOptions = DEFAULT_OPTIONS) -> TextQABenchmark:
    """Text items hold no images, so ``options`` (the pixel budget) do not apply."""
    return TextQABenchmark(Path(path).expanduser(), spec)
