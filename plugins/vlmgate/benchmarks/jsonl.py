"""``jsonl:PATH`` — the simplest real benchmark format: a JSON-lines manifest.

One object per line::

    {"id": "q1", "image": "images/q1.png", "question": "What colour is the shape?",
     "options": ["red", "green", "blue", "yellow"], "answer": "C",
     "kind": "mcq", "hint": null, "meta": {"type": "colour"}, "cluster": "video-7"}

``image`` is relative to the manifest's folder (or absolute). ``answer`` is the correct
option's letter (``"C"``), its text, or its 0-based index; it may be ``null`` when
the benchmark has no ground truth. ``kind`` is ``"mcq"`` (default) or ``"yesno"``
(options Yes and No, any order or case; the sample holds ``("Yes", "No")``, see
``benchmarks.options``). Rows are validated when the benchmark loads, and every image
path is checked then, so a broken manifest fails before any model is loaded: ``id`` a
string or integer, ``question`` a non-empty string (a ``null`` question would otherwise
be asked as the text "None"), options distinct non-empty strings, ``hint`` a string or
``null``. The file must be UTF-8 (``benchmarks.text_files``); images are decoded by
``benchmarks.image_decoding`` under the run's pixel budget.

Any other key of a row (``category``, ``l2-category``, ``source``) is kept as metadata, as if
it were in ``meta``: ``vlmgate accuracy --by category`` groups by it.

``cluster`` (optional: a string, an integer or ``null``) declares rows that are not
independent though their images differ (the frames of one video, the pages of one
document): rows with the same ``cluster`` are one cluster in every clustered statistic,
as rows whose images decode to the same pixels are without it (``benchmarks.image_groups``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from vlmgate.benchmarks.base import DEFAULT_OPTIONS, YES_NO, BenchmarkOptions, items_kind
from vlmgate.benchmarks.image_decoding import ImageDecoder
from vlmgate.benchmarks.options import answer_index, are_yes_no, check_distinct, yes_no
from vlmgate.benchmarks.text_files import require_file, utf8_lines
from vlmgate.errors import DataError, VlmgateError
from vlmgate.records import Sample

REQUIRED = ("id", "image", "question", "options")
#: Every key a row's fields are read from; any other key is kept as metadata (``extra_meta``).
KNOWN = REQUIRED + ("answer", "kind", "hint", "meta", "cluster")
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
    cluster: str | None = None


def require_keys(obj: Any, where: str, required: tuple[str, ...], what: str) -> dict:
    """``obj`` as a JSON object holding every ``required`` key, else a ``DataError`` at ``where``."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: a {what} must be a JSON object, got {type(obj).__name__}")
    missing = [key for key in required if key not in obj]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)}; every row needs {', '.join(required)}")
    return obj


def row_id(obj: dict, where: str) -> str:
    """The row's ``id`` as text; ``null`` (or a list, ...) would become an id such as "None"."""
    value = obj["id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise DataError(f"{where}: id must be a string or an integer, got {value!r}; give the row a unique id")
    return str(value)


def question_text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: question must be a non-empty string, got {value!r}; give the question text "
                        "or drop the row")
    return value


def option_texts(value: Any, where: str, *, distinct: bool = True) -> tuple[str, ...]:
    """At least two non-empty option strings, distinct unless the caller checks more strictly."""
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(o, str) and o.strip() for o in value):
        raise DataError(f"{where}: options must be a list of at least two strings, none empty")
    if distinct:
        check_distinct(value, lambda _: where)
    return tuple(value)


def parse_row(obj: Any, line: int, manifest: Path) -> ManifestRow:
    obj = require_keys(obj, f"{manifest}:{line}", REQUIRED, "manifest row")
    sample_id = row_id(obj, f"{manifest}:{line}")
    where = f"{manifest}:{line} (sample {sample_id!r})"
    question = question_text(obj["question"], where)
    kind = obj.get("kind", "mcq")
    if kind not in KINDS:
        raise DataError(f"{where}: kind {kind!r} must be one of {', '.join(KINDS)}")
    options = option_texts(obj["options"], where, distinct=kind != "yesno")  # yes_no() checks more
    if kind == "yesno":
        answer = yes_no(options, obj.get("answer"), where)
        options = YES_NO
    else:
        answer = answer_index(obj.get("answer"), options, kind, where)
    hint = obj.get("hint")
    if hint is not None and not isinstance(hint, str):
        raise DataError(f"{where}: hint must be a string or null, got {hint!r}")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise DataError(f"{where}: meta must be a JSON object")
    meta = {**meta, **extra_meta(obj, meta, where)}
    image = Path(str(obj["image"]))
    return ManifestRow(
        id=sample_id,
        image_path=image if image.is_absolute() else manifest.parent / image,
        question=question,
        options=options,
        answer=answer,
        kind=kind,
        hint=hint,
        meta=tuple(sorted(meta.items())),
        line=line,
        cluster=cluster_key(obj.get("cluster"), where),
    )


def extra_meta(obj: dict, meta: dict, where: str) -> dict:
    """A row's keys outside ``KNOWN`` (``category``, ``source``, ...), kept as metadata.

    Manifests converted from other formats carry such keys at the top level; dropping them
    lost per-category results without a word. A key given both at the top level and in
    ``meta`` with different values is ambiguous, so it is an error.
    """
    extra = {key: value for key, value in obj.items() if key not in KNOWN}
    clash = sorted(key for key in extra if key in meta and meta[key] != extra[key])
    if clash:
        raise DataError(f"{where}: {', '.join(map(repr, clash))} given both as a key of the row and in meta, with "
                        "different values; keep one")
    return extra


def cluster_key(value: Any, where: str) -> str | None:
    """A row's declared ``cluster`` as text (``None`` when not declared); a string or an integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise DataError(f"{where}: cluster must be a non-empty string or an integer (a video or document id), "
                        f"got {value!r}; fix it or leave the key out")
    return str(value)


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, decoded object)`` of every non-blank line; bad JSON names file, line, column."""
    for line_no, line in utf8_lines(path):
        if not line.strip():
            continue
        try:
            yield line_no, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line_no}: not valid JSON ({exc.msg} at column {exc.colno})") from None


def read_manifest(manifest: Path) -> list[ManifestRow]:
    """Parse and validate every row; duplicate ids and missing images are errors."""
    require_file(manifest, "benchmark manifest",
                 directory_fix=f"pass the manifest file itself after 'jsonl:' (e.g. {manifest / 'manifest.jsonl'})",
                 missing_fix="check the path after 'jsonl:'")
    rows: list[ManifestRow] = []
    seen: dict[str, int] = {}
    for line_no, obj in json_lines(manifest):
        row = parse_row(obj, line_no, manifest)
        if row.id in seen:
            raise DataError(f"{manifest}:{line_no}: sample id {row.id!r} repeats line {seen[row.id]}; "
                            "ids must be unique")
        seen[row.id] = line_no
        if row.image_path.is_dir():
            raise DataError(f"{manifest}:{line_no}: image of sample {row.id!r} at {row.image_path} is a directory; "
                            "point 'image' at an image file (relative paths are resolved from the manifest's folder)")
        if not row.image_path.is_file():
            raise DataError(
                f"{manifest}:{line_no}: image of sample {row.id!r} not found at {row.image_path}; "
                "fix the 'image' path (relative paths are resolved from the manifest's folder)"
            )
        rows.append(row)
    if not rows:
        raise DataError(f"benchmark manifest {manifest} has no rows")
    return rows


class JsonlBenchmark:
    """A manifest-backed benchmark; images are decoded lazily, one at a time."""

    def __init__(self, manifest: Path, spec: str, options: BenchmarkOptions = DEFAULT_OPTIONS):
        self.spec = spec
        self.manifest = manifest
        self.rows = read_manifest(manifest)
        self._images = ImageDecoder(options.max_pixels)
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

    def image(self, row: ManifestRow):
        where = f"{self.manifest}:{row.line}: image of sample {row.id!r} at {row.image_path}"
        return self._images.decode(row.image_path, lambda: row.image_path, where)

    def sample(self, row: ManifestRow) -> Sample:
        return Sample(row.id, self.image(row), row.question, row.options, row.answer, row.kind, row.hint, row.meta,
                      row.cluster)

    def samples(self) -> Iterator[Sample]:
        for row in self.rows:
            yield self.sample(row)


def manifest_has_yes_no_items(path: str | Path) -> bool | None:
    """Whether a manifest holds an answered yes/no item (``kind: yesno``, or options that are
    yes and no), read from its text alone; ``None`` when it cannot be read, so that the
    case is kept and the load reports what is wrong.

    Declared so that the POPE suite, which judges only such items, has no case on a
    benchmark without them, instead of one that skips in every run.
    """
    try:
        for _, obj in json_lines(Path(path).expanduser()):
            if not isinstance(obj, dict) or obj.get("answer") is None:
                continue
            options = obj.get("options")
            if obj.get("kind") == "yesno" or (isinstance(options, list) and are_yes_no(options)):
                return True
    except (VlmgateError, OSError, ValueError):
        return None
    return False


@items_kind("image", yes_no_items=manifest_has_yes_no_items)
def load_jsonl_benchmark(path: str, *, spec: str, options: BenchmarkOptions = DEFAULT_OPTIONS) -> JsonlBenchmark:
    return JsonlBenchmark(Path(path).expanduser(), spec, options)
