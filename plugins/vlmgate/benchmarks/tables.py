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
* any other folder holding ``.parquet`` (or ``.tsv``) files: shards of one table, as a
  Hugging Face export splits a set (``test-00000-of-00003.parquet``), read in sorted name
  order and concatenated. Messages name the shard file and the row within it, so a row is
  found where it is; the fingerprint covers every shard. Shards must have the same
  columns and be of one format, or the folder is refused naming the odd shard.

Rows are numbered from 1 in every message, as a spreadsheet would show them. ``?split=``
names a split of a ``datasets`` folder; given with a single file it is refused rather than
ignored.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from vlmgate.benchmarks.text_files import utf8_lines
from vlmgate.errors import DataError, require_package

_HASH_CHUNK = 1 << 20
#: Files that mark a folder written by ``datasets``' ``save_to_disk`` (a Dataset / a DatasetDict).
DATASETS_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
#: Table files a folder of shards may hold, by format.
SHARD_SUFFIXES = {"tsv": (".tsv", ".tab"), "parquet": (".parquet", ".pq")}


@dataclass(frozen=True, eq=False)
class Table:
    """Columns of one benchmark table; ``cell`` reads a single value lazily.

    ``data`` is a list of dict rows (TSV) or a ``pyarrow.Table``; callers use only the
    methods, never ``data``. ``shards`` (a folder of shards only) holds each shard's first
    row and file, so that ``where`` names the file a row came from.
    """

    source: Path
    kind: str  # "tsv" | "parquet" | "datasets"
    columns: tuple[str, ...]
    data: Any
    fingerprint: str
    shards: tuple[tuple[int, Path], ...] = ()

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

    def holds_scalars(self, name: str) -> bool:
        """Whether column ``name`` holds text or numbers, not bytes, structs or lists (an image)."""
        if self.kind == "tsv":
            return True
        types = _require("pyarrow.types", "data", f"reading {self.source}")
        kind = self.data.schema.field(name).type
        return not (types.is_nested(kind) or types.is_binary(kind) or types.is_large_binary(kind)
                    or types.is_fixed_size_binary(kind) or types.is_binary_view(kind))

    def holds_images(self, name: str) -> bool:
        """Whether column ``name`` holds encoded images: bytes, or the ``Image`` feature's
        ``{bytes, path}`` struct (a TSV's base64 text cannot be told from text: ``False``)."""
        if self.kind == "tsv":
            return False
        types = _require("pyarrow.types", "data", f"reading {self.source}")
        kind = self.data.schema.field(name).type
        if types.is_struct(kind):
            return kind.get_field_index("bytes") >= 0
        return bool(types.is_binary(kind) or types.is_large_binary(kind) or types.is_binary_view(kind))

    @property
    def folder(self) -> Path:
        """Where a relative image path in the table is read from: the table file's folder, or the
        folder itself for a folder of shards or a ``datasets`` folder."""
        return self.source if self.source.is_dir() else self.source.parent

    def where(self, row: int, column: str | None = None) -> str:
        """``FILE: row N[ (line L)][, column 'c']`` for messages (``row`` is 0-based here); in a
        folder of shards, FILE is the shard and N the row within it."""
        source = self.source
        if self.shards:
            first, source = self.shards[bisect_right([start for start, _ in self.shards], row) - 1]
            row -= first
        line = f" (line {row + 2})" if self.kind == "tsv" else ""
        col = f", column {column!r}" if column else ""
        return f"{source}: row {row + 1}{line}{col}"


def parquet_columns(path: Path) -> tuple[str, ...] | None:
    """The column names of a parquet file or a folder of parquet shards (the first shard's), read
    from the file footer alone; ``None`` for anything else (a TSV or a ``datasets`` folder, whose
    columns cannot be read without reading the table, images included)."""
    files = [path] if path.is_file() else table_files(path) if path.is_dir() else []
    if not files or any(file.suffix.lower() not in SHARD_SUFFIXES["parquet"] for file in files) or (
            path.is_dir() and any((path / marker).is_file() for marker in DATASETS_MARKERS)):
        return None
    parquet = _require("pyarrow.parquet", "data", f"reading the parquet file {files[0]}")
    try:
        return tuple(parquet.read_schema(files[0]).names)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid / OSError family
        raise DataError(f"{files[0]}: not a readable parquet file ({type(exc).__name__}: {exc})") from None


def read_table(path: Path, *, split: str | None = None, columns: Sequence[str] | None = None) -> Table:
    """Read ``path`` by its form: a ``.tsv`` file, a ``.parquet`` file, a ``datasets`` folder or a
    folder of shards. ``columns`` limits what parquet reads (the text columns alone, without
    the images); a TSV or a ``datasets`` folder is read whole."""
    if path.is_dir():
        shards = table_files(path)
        if shards and not any((path / marker).is_file() for marker in DATASETS_MARKERS):
            if split is not None:
                raise DataError(f"{path}: ?split={split} selects a split of a folder written by datasets' "
                                "save_to_disk, but this folder holds table shards; drop ?split, or pass the "
                                "folder of the split's shards")
            return _read_shards(path, shards, columns)
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
        return _read_parquet(path, columns)
    raise DataError(
        f"benchmark file {path}: unknown table format {suffix or '(no suffix)'!r}; pass a .tsv "
        "(VLMEvalKit), a .parquet file or a folder written by datasets' save_to_disk"
    )


def table_files(folder: Path) -> list[Path]:
    """The ``.tsv`` / ``.parquet`` files directly in ``folder``, in sorted name order."""
    suffixes = tuple(suffix for group in SHARD_SUFFIXES.values() for suffix in group)
    return sorted(file for file in folder.iterdir() if file.is_file() and file.suffix.lower() in suffixes)


def _read_shards(folder: Path, files: Sequence[Path], columns: Sequence[str] | None) -> Table:
    """The shards ``files`` of ``folder`` as one table, rows in file order."""
    formats = {kind for file in files for kind, suffixes in SHARD_SUFFIXES.items() if file.suffix.lower() in suffixes}
    if len(formats) > 1:
        raise DataError(f"{folder}: holds both .tsv and .parquet files; a folder of shards must be of one format "
                        "(move the others out, or pass one file)")
    parts = [read_table(file, columns=columns) for file in files]
    for file, part in zip(files, parts):
        if part.columns != parts[0].columns:
            raise DataError(f"{file}: columns {', '.join(part.columns)} differ from those of the first shard "
                            f"{files[0].name} ({', '.join(parts[0].columns)}); shards of one table need the same "
                            "columns in the same order")
    starts, start = [], 0
    for part in parts:
        starts.append(start)
        start += len(part)
    if parts[0].kind == "tsv":
        data: Any = [row for part in parts for row in part.data]
    else:
        pyarrow = _require("pyarrow", "data", f"reading the parquet shards of {folder}")
        try:
            data = pyarrow.concat_tables([part.data for part in parts], promote_options="permissive")
        except Exception as exc:  # ArrowInvalid / ArrowTypeError: a column's type differs between shards
            raise DataError(f"{folder}: the shards' column types differ ({type(exc).__name__}: {exc}); "
                            "re-export them with one schema") from None
    return Table(folder, parts[0].kind, parts[0].columns, data, _file_digest(files, folder),
                 tuple(zip(starts, files)))


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
    """An optional package a table format needs (``errors.require_package``), as a ``DataError``."""
    return require_package(module, extra, what, DataError)


def _read_parquet(path: Path, columns: Sequence[str] | None = None) -> Table:
    parquet = _require("pyarrow.parquet", "data", f"reading the parquet file {path}")
    try:
        table = parquet.read_table(path, columns=None if columns is None else list(columns))
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
