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

A row with several pictures (an interleaved item: BLINK, MuirBench, two-image comparisons)
gives ``"images": ["a.png", "b.png", ...]``, two or more paths resolved as ``image`` is,
in place of ``image``: exactly one of the two keys, and a one-picture row keeps ``image``.
The question and options place picture k where they write ``<image k>`` (1-based; pictures
never named are shown first, ``vlmgate.interleaving``), and every marker must name a picture
the row has::

    {"id": "p1", "images": ["images/p1-1.png", "images/p1-2.png"],
     "question": "Image 1: <image 1> Image 2: <image 2> Which image has more shapes?",
     "options": ["The first image", "The second image"], "answer": "A"}

The sample holds the first picture as ``image`` and the others as ``more_images``
(``Sample.images``: all of them, in order), each decoded when the sample is made, as
``image`` is, under the same pixel budget. Every path is checked when the benchmark loads.
(The markers of an ``image`` row are not checked: such a row is shown as it always was.)
The loader declares ``several_images`` from the manifest's text alone
(``manifest_has_several_images``), so that only suites and models that take such items
get a case on it.

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
from vlmgate.interleaving import IMAGE_MARKER
from vlmgate.records import Sample

#: The keys every row has; its picture or pictures are ``IMAGE`` or ``IMAGES`` (exactly one).
REQUIRED = ("id", "question", "options")
IMAGE = "image"
IMAGES = "images"
#: Every key a row's fields are read from; any other key is kept as metadata (``extra_meta``).
KNOWN = REQUIRED + (IMAGE, IMAGES, "answer", "kind", "hint", "meta", "cluster")
KINDS = ("mcq", "yesno")
#: Where a row's pictures are resolved from when relative.
PATHS_FIX = "relative paths are resolved from the manifest's folder"


@dataclass(frozen=True)
class ManifestRow:
    """A validated manifest line; the images are read only when the sample is used.

    ``image_path`` is the row's picture (the first of an ``images`` row); ``more_image_paths``
    the later pictures of an ``images`` row, in order.
    """

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
    more_image_paths: tuple[Path, ...] = ()

    @property
    def image_paths(self) -> tuple[Path, ...]:
        """Every picture's path, in order."""
        return (self.image_path, *self.more_image_paths)

    def image_key(self, k: int) -> str:
        """Where picture ``k`` (0-based) is given in the row, for messages: ``'image'`` or ``'images'[k]``."""
        return repr(IMAGE) if not self.more_image_paths else f"{IMAGES!r}[{k}]"


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
    paths = [path if path.is_absolute() else manifest.parent / path for path in picture_paths(obj, where)]
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
    if len(paths) > 1:
        check_markers(question, options, len(paths), where)
    return ManifestRow(
        id=sample_id,
        image_path=paths[0],
        more_image_paths=tuple(paths[1:]),
        question=question,
        options=options,
        answer=answer,
        kind=kind,
        hint=hint,
        meta=tuple(sorted(meta.items())),
        line=line,
        cluster=cluster_key(obj.get("cluster"), where),
    )


def picture_paths(obj: dict, where: str) -> list[Path]:
    """The row's picture paths as written: ``image`` (one) or ``images`` (two or more), never both."""
    fix = f"give {IMAGE!r} (one path) or {IMAGES!r} (a list of two or more paths) per row; {PATHS_FIX}"
    if IMAGE in obj and IMAGES in obj:
        raise DataError(f"{where}: both {IMAGE!r} and {IMAGES!r} given; keep one: {fix}")
    if IMAGE in obj:
        return [Path(str(obj[IMAGE]))]
    if IMAGES not in obj:
        raise DataError(f"{where}: missing key {IMAGE!r} (or {IMAGES!r}); {fix}")
    value = obj[IMAGES]
    if not isinstance(value, list):
        raise DataError(f"{where}: {IMAGES!r} must be a list of two or more image paths, got {value!r}; {fix}")
    if not value:
        raise DataError(f"{where}: {IMAGES!r} is an empty list; list two or more image paths in it ({PATHS_FIX}), "
                        f"or give a row of one picture as {IMAGE!r}")
    if len(value) == 1:
        raise DataError(f"{where}: {IMAGES!r} lists one path; a row of one picture gives it as {IMAGE!r} "
                        f"(\"{IMAGE}\": {json.dumps(value[0])}), {IMAGES!r} lists two or more")
    for k, entry in enumerate(value):
        if not isinstance(entry, str) or not entry.strip():
            raise DataError(f"{where}: {IMAGES!r}[{k}] is {entry!r}, not a path; every entry of {IMAGES!r} must be "
                            f"a non-empty string, the image file's path ({PATHS_FIX})")
    return [Path(entry) for entry in value]


def check_markers(question: str, options: tuple[str, ...], n_images: int, where: str) -> None:
    """Every ``<image k>`` of the question and options names one of the row's ``n_images`` pictures."""
    for key, text in [("question", question), *((f"options[{i}]", o) for i, o in enumerate(options))]:
        for match in IMAGE_MARKER.finditer(text):
            if not 1 <= int(match.group(1)) <= n_images:
                raise DataError(f"{where}: {key} names {match.group(0)} but the row's {IMAGES!r} lists {n_images} "
                                f"pictures; number them <image 1> to <image {n_images}> in list order, or add the "
                                f"picture to {IMAGES!r}")


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
        for k, path in enumerate(row.image_paths):
            check_image_path(row, k, path, f"{manifest}:{line_no}")
        rows.append(row)
    if not rows:
        raise DataError(f"benchmark manifest {manifest} has no rows")
    return rows


def image_name(row: ManifestRow, k: int) -> str:
    """``image of sample 'q1'``, or ``image 2 of sample 'q1' ('images'[1])`` for a row of several."""
    if not row.more_image_paths:
        return f"image of sample {row.id!r}"
    return f"image {k + 1} of sample {row.id!r} ({row.image_key(k)})"


def check_image_path(row: ManifestRow, k: int, path: Path, where: str) -> None:
    """Picture ``k`` of ``row`` is a file, else a ``DataError`` naming the line, the sample and the key."""
    if path.is_dir():
        raise DataError(f"{where}: {image_name(row, k)} at {path} is a directory; point {row.image_key(k)} at an "
                        f"image file ({PATHS_FIX})")
    if not path.is_file():
        raise DataError(f"{where}: {image_name(row, k)} not found at {path}; fix the {row.image_key(k)} path "
                        f"({PATHS_FIX})")


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
                for path in row.image_paths:
                    digest.update(path.read_bytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def image(self, row: ManifestRow, k: int = 0):
        """Picture ``k`` (0-based) of ``row``, decoded under the pixel budget."""
        path = row.image_paths[k]
        where = f"{self.manifest}:{row.line}: {image_name(row, k)} at {path}"
        return self._images.decode(path, lambda: path, where)

    def sample(self, row: ManifestRow) -> Sample:
        images = [self.image(row, k) for k in range(len(row.image_paths))]
        return Sample(row.id, images[0], row.question, row.options, row.answer, row.kind, row.hint, row.meta,
                      row.cluster, more_images=tuple(images[1:]))

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


def manifest_has_several_images(path: str | Path) -> bool | None:
    """Whether a manifest holds a row of several pictures (an ``images`` key), read from its
    text alone (no image is opened); ``None`` when it cannot be read, so that the case is kept
    and the load reports what is wrong."""
    try:
        for _, obj in json_lines(Path(path).expanduser()):
            if isinstance(obj, dict) and IMAGES in obj:
                return True
    except (VlmgateError, OSError, ValueError):
        return None
    return False


@items_kind("image", yes_no_items=manifest_has_yes_no_items, several_images=manifest_has_several_images)
def load_jsonl_benchmark(path: str, *, spec: str, options: BenchmarkOptions = DEFAULT_OPTIONS) -> JsonlBenchmark:
    return JsonlBenchmark(Path(path).expanduser(), spec, options)
