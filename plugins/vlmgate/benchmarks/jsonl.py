"""``jsonl:PATH`` — the simplest real benchmark format: a JSON-lines manifest.

One object per line::

    {"id": "q1", "image": "images/q1.png", "question": "What colour is the shape?",
     "options": ["red", "green", "blue", "yellow"], "answer": "C",
     "kind": "mcq", "hint": null, "meta": {"type": "colour"}}

``image`` is relative to the manifest's folder (or absolute). ``answer`` is the correct
option's letter (``"C"``), its text, or its 0-based index; it may be ``null`` when
the benchmark has no ground truth. ``kind`` is ``"mcq"`` (default) or ``"yesno"``
(options ``["Yes", "No"]``). Rows are validated when the benchmark loads, and every
image path is checked then, so a broken manifest fails before any model is loaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from vlmgate.benchmarks.base import cap_size
from vlmgate.errors import DataError
from vlmgate.records import Sample

REQUIRED = ("id", "image", "question", "options")
KINDS = ("mcq", "yesno")


@dataclass(frozen=True)
class ManifestRow:
    """A validated manifest line; the image is read only when the sample is used."""

    id: str
    image_path: Path
    question: str
    options: tuple[str, ...]
    answer: int | None
    kind: str
    hint: str | None
    meta: tuple[tuple[str, Any], ...]
    line: int


def answer_index(value: Any, options: tuple[str, ...], kind: str, where: str) -> int | None:
    """The 0-based option index of ``value`` (a letter, an option text or an index); ``where`` names the row."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DataError(f"{where}: answer {value!r} must be a letter, an option text or an index")
    if isinstance(value, int):
        if 0 <= value < len(options):
            return value
        raise DataError(f"{where}: answer index {value} outside 0..{len(options) - 1}")
    text = str(value).strip()
    lowered = [o.lower() for o in options]
    if text.lower() in lowered and (kind == "yesno" or len(text) > 1):
        return lowered.index(text.lower())
    if kind == "mcq" and len(text) == 1 and "A" <= text.upper() < chr(ord("A") + len(options)):
        return ord(text.upper()) - ord("A")
    raise DataError(f"{where}: answer {value!r} is neither an option letter nor one of the options {list(options)}")


def require_keys(obj: Any, where: str, required: tuple[str, ...], what: str) -> dict:
    """``obj`` as a JSON object holding every ``required`` key, else a ``DataError`` at ``where``."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: a {what} must be a JSON object, got {type(obj).__name__}")
    missing = [key for key in required if key not in obj]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)}; every row needs {', '.join(required)}")
    return obj


def parse_row(obj: Any, line: int, manifest: Path) -> ManifestRow:
    obj = require_keys(obj, f"{manifest}:{line}", REQUIRED, "manifest row")
    sample_id = str(obj["id"])
    where = f"{manifest}:{line} (sample {sample_id!r})"
    options = obj["options"]
    if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) for o in options):
        raise DataError(f"{where}: options must be a list of at least two strings")
    kind = obj.get("kind", "mcq")
    if kind not in KINDS:
        raise DataError(f"{where}: kind {kind!r} must be one of {', '.join(KINDS)}")
    options_t = tuple(options)
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise DataError(f"{where}: meta must be a JSON object")
    image = Path(str(obj["image"]))
    return ManifestRow(
        id=sample_id,
        image_path=image if image.is_absolute() else manifest.parent / image,
        question=str(obj["question"]),
        options=options_t,
        answer=answer_index(obj.get("answer"), options_t, kind, where),
        kind=kind,
        hint=obj.get("hint"),
        meta=tuple(sorted(meta.items())),
        line=line,
    )


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, decoded object)`` of every non-blank line; bad JSON names file, line, column."""
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{line_no}: not valid JSON ({exc.msg} at column {exc.colno})") from None


def read_manifest(manifest: Path) -> list[ManifestRow]:
    """Parse and validate every row; duplicate ids and missing images are errors."""
    if not manifest.is_file():
        raise DataError(f"benchmark manifest {manifest} does not exist; check the path after 'jsonl:'")
    rows: list[ManifestRow] = []
    seen: dict[str, int] = {}
    for line_no, obj in json_lines(manifest):
        row = parse_row(obj, line_no, manifest)
        if row.id in seen:
            raise DataError(f"{manifest}:{line_no}: sample id {row.id!r} repeats line {seen[row.id]}; ids must be unique")
        seen[row.id] = line_no
        if not row.image_path.is_file():
            raise DataError(
                f"{manifest}:{line_no}: image of sample {row.id!r} not found at {row.image_path}; "
                "fix the 'image' path (relative paths are resolved from the manifest's folder)"
            )
        rows.append(row)
    if not rows:
        raise DataError(f"benchmark manifest {manifest} has no rows")
    return rows


def load_image(path: Path, sample_id: str):
    """Open and decode an image fully, turning decoder failures into a ``DataError``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return cap_size(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"image of sample {sample_id!r} at {path} cannot be decoded ({exc}); "
            "replace the file or drop the row from the manifest"
        ) from None


class JsonlBenchmark:
    """A manifest-backed benchmark; images are decoded lazily, one at a time."""

    def __init__(self, manifest: Path, spec: str):
        self.spec = spec
        self.manifest = manifest
        self.rows = read_manifest(manifest)
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def fingerprint(self) -> str:
        """sha256 of the manifest and every image's bytes (computed once, on demand)."""
        if self._fingerprint is None:
            digest = hashlib.sha256(self.manifest.read_bytes())
            for row in self.rows:
                digest.update(row.image_path.read_bytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def sample(self, row: ManifestRow) -> Sample:
        return Sample(row.id, load_image(row.image_path, row.id), row.question, row.options,
                      row.answer, row.kind, row.hint, row.meta)

    def samples(self) -> Iterator[Sample]:
        for row in self.rows:
            yield self.sample(row)


def load_jsonl_benchmark(path: str, *, spec: str) -> JsonlBenchmark:
    return JsonlBenchmark(Path(path).expanduser(), spec)
