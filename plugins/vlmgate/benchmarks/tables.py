"""Reading a published benchmark table: VLMEvalKit TSV, parquet, or a ``datasets`` folder.

The three public benchmark loaders (SEED-Bench, POPE, MMMU) differ in their fields, not
in how their files are read, so reading lives here once. A ``Table`` gives whole text
columns (validated up front, so a malformed row fails before any model loads) and single
cells on demand (image bytes are read one row at a time, when the sample is used).

* ``.tsv``: tab-separated with a header row, read with the ``csv`` module (VLMEvalKit's
  format: images as base64 text). Row ``r`` is on line ``r + 1`` of the file, which must
  be UTF-8 (``benchmarks.text_files``).
* ``.parquet``: read with ``pyarrow`` (the optional ``data`` extra); images are the
  Hugging Face ``Image`` feature's struct ``{bytes, path}``.
* a folder written by ``datasets.Dataset.save_to_disk`` (or ``DatasetDict``), read with
  ``datasets`` (the optional ``datasets`` extra) as the underlying arrow table, so images
  stay undecoded structs exactly as in parquet.

Rows are numbered from 1 in every message, as a spreadsheet would show them. ``?split=``
names a split of a ``datasets`` folder; given with a single file it is refused rather than
ignored.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from vlmgate.benchmarks.text_files import utf8_lines
from vlmgate.errors import DataError

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True, eq=False)
class Table:
    """Columns of one benchmark table; ``cell`` reads a single value lazily.

    ``data`` is a list of dict rows (TSV) or a ``pyarrow.Table``; callers use only the
    methods, never ``data``.
    """

    source: Path
    kind: str  # "tsv" | "parquet" | "datasets"
    columns: tuple[str, ...]
    data: Any
    fingerprint: str

    def __len__(self) -> int:
        return len(self.data) if self.kind == "tsv" else self.data.num_rows

    def column(self, name: str) -> list[Any]:
        if self.kind == "tsv":
            return [row.get(name) for row in self.data]
        return self.data.column(name).to_pylist()

    def cell(self, row: int, name: str) -> Any:
        if self.kind == "tsv":
            return self.data[row].get(name)
        return self.data.column(name)[row].as_py()

    def where(self, row: int, column: str | None = None) -> str:
        """``FILE: row N[ (line L)][, column 'c']`` for messages (``row`` is 0-based here)."""
        line = f" (line {row + 2})" if self.kind == "tsv" else ""
        col = f", column {column!r}" if column else ""
        return f"{self.source}: row {row + 1}{line}{col}"


def read_table(path: Path, *, split: str | None = None) -> Table:
    """Read ``path`` by its form: a ``.tsv`` file, a ``.parquet`` file or a ``datasets`` folder."""
    if path.is_dir():
        return _read_datasets_folder(path, split)
    if not path.is_file():
        raise DataError(f"benchmark file {path} does not exist; check the path in the benchmark spec")
    if split is not None:
        raise DataError(f"benchmark file {path} is a file, but ?split={split} selects a split of a folder written "
                        "by datasets' save_to_disk; drop ?split or pass the datasets folder")
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab"):
        return _read_tsv(path)
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path)
    raise DataError(
        f"benchmark file {path}: unknown table format {suffix or '(no suffix)'!r}; pass a .tsv "
        "(VLMEvalKit), a .parquet file or a folder written by datasets' save_to_disk"
    )


def _file_digest(paths: Sequence[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(paths):
        digest.update(str(file.relative_to(root)).encode("utf-8") + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _read_tsv(path: Path) -> Table:
    # Base64 images are one long field each; lift csv's 128 KiB default field limit.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.DictReader((text for _, text in utf8_lines(path)), delimiter="\t", quoting=csv.QUOTE_NONE)
    try:
        columns = tuple(reader.fieldnames or ())
        if not columns:
            raise DataError(f"{path}: empty TSV; the first line must be the header (index, image, question, ...)")
        rows = []
        for number, row in enumerate(reader):
            if None in row:  # more fields than the header names
                raise DataError(
                    f"{path}: row {number + 1} (line {number + 2}) has {len(columns) + len(row[None])} "
                    f"tab-separated fields but the header has {len(columns)}; a field contains a tab"
                )
            rows.append(row)
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: not readable as TSV ({exc}); fix the line") from None
    return Table(path, "tsv", columns, rows, _file_digest([path], path.parent))


def _require(module: str, extra: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(
            f"{what} needs the {module!r} package, which is not installed; "
            f"pip install 'pytest-vlmgate[{extra}]' (or pip install {module})"
        ) from None


def _read_parquet(path: Path) -> Table:
    parquet = _require("pyarrow.parquet", "data", f"reading the parquet file {path}")
    try:
        table = parquet.read_table(path)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid / OSError family
        raise DataError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from None
    return Table(path, "parquet", tuple(table.column_names), table, _file_digest([path], path.parent))


def _read_datasets_folder(path: Path, split: str | None) -> Table:
    datasets = _require("datasets", "datasets", f"reading the datasets folder {path}")
    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(
            f"{path}: not a folder written by datasets' save_to_disk ({exc}); pass a .tsv, a .parquet "
            "file or such a folder"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if split is None and len(loaded) == 1:
            split = next(iter(loaded))
        if split not in loaded:
            raise DataError(
                f"{path}: a DatasetDict with splits {', '.join(loaded)}; choose one in the spec with "
                f"?split=NAME (e.g. ?split={next(iter(loaded))})"
            )
        loaded = loaded[split]
    elif split is not None:
        raise DataError(f"{path}: ?split={split} given, but the folder holds a single Dataset; drop ?split")
    # The rows as arrow (a selected / shuffled view included): images stay undecoded
    # {bytes, path} structs, exactly as in the parquet export.
    table = loaded.with_format("arrow")[:]
    files = [file for file in path.rglob("*") if file.is_file()]
    return Table(path, "datasets", tuple(table.column_names), table, _file_digest(files, path))
