"""A benchmark backed by a published table: validated rows up front, images on demand.

The SEED-Bench, POPE and MMMU loaders each turn their table's text columns into
``TableRow``s (raising ``DataError`` with row and column for a malformed one) and hand
them to ``TableBenchmark``, which decodes a row's image cells only when its sample is
used, so memory stays flat in the number of items (``benchmarks.image_decoding``: the
pixel budget, every PIL mode, large images decoded once). Rows a loader leaves out on purpose
(MMMU's open questions) are counted in ``skipped`` by reason, never dropped silently. A
spec that maps ``?cluster=COLUMN`` (``benchmarks.columns``) gives each row with a non-empty
cell there that key as its declared cluster (``Sample.cluster``).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence, overload

from vlmgate.benchmarks.base import DEFAULT_OPTIONS, BenchmarkOptions
from vlmgate.benchmarks.columns import CLUSTER_FIELD
from vlmgate.benchmarks.image_cells import image_bytes
from vlmgate.benchmarks.image_decoding import ImageDecoder
from vlmgate.benchmarks.tables import Table
from vlmgate.errors import DataError
from vlmgate.records import Sample

#: Joins several decoded images of one item into a single picture (only where asked to).
Combine = Callable[[Sequence[Any]], Any]


@dataclass(frozen=True)
class TableRow:
    """A validated row; ``images`` are the (row, column) cells holding its image(s)."""

    id: str
    question: str
    options: tuple[str, ...]
    answer: int | None
    kind: str
    hint: str | None
    meta: tuple[tuple[str, Any], ...]
    images: tuple[tuple[int, str], ...]
    row: int


def option_letter_index(value: Any, n_options: int, where: str) -> int:
    """``"B"`` -> 1; anything but a letter among the first ``n_options`` is an error."""
    text = "" if value is None else str(value).strip().upper()
    if len(text) == 1 and "A" <= text < chr(ord("A") + n_options):
        return ord(text) - ord("A")
    letters = ", ".join(chr(ord("A") + i) for i in range(n_options))
    raise DataError(f"{where}: answer {value!r} is not one of the option letters {letters}; fix the cell")


@overload
def text_cell(value: Any, where: str, *, required: Literal[True] = True) -> str: ...
@overload
def text_cell(value: Any, where: str, *, required: bool) -> str | None: ...
def text_cell(value: Any, where: str, *, required: bool = True) -> str | None:
    """A cell as stripped text; empty (or a pandas NaN written as ``nan``) is ``None``."""
    if value is None or (isinstance(value, float) and value != value):
        text = ""
    else:
        text = str(value).strip()
    if not text or text.lower() == "nan":
        if required:
            raise DataError(f"{where}: empty cell; fill it or drop the row")
        return None
    return text


def check_unique_ids(rows: Sequence[TableRow], table: Table, column: str) -> None:
    seen: dict[str, int] = {}
    for row in rows:
        if row.id in seen:
            raise DataError(f"{table.where(row.row, column)}: id {row.id!r} repeats row {seen[row.id] + 1}; "
                            "ids must be unique (report diffs join on them)")
        seen[row.id] = row.row


def declared_clusters(table: Table, rows: Sequence[TableRow], column: str | None) -> dict[int, str]:
    """Table row -> the cluster key its ``column`` declares, for each row whose cell is not empty."""
    if column is None:
        return {}
    if column not in table.columns:
        raise DataError(f"{table.source}: ?{CLUSTER_FIELD}={column} names no column of the table, which has "
                        f"{', '.join(table.columns)}; map {CLUSTER_FIELD} to one of them or drop it from the spec")
    cells = table.column(column)
    keys = {row.row: text_cell(cells[row.row], table.where(row.row, column), required=False) for row in rows}
    return {row: key for row, key in keys.items() if key is not None}


class TableBenchmark:
    """``Benchmark`` over validated rows of a ``Table``; images decoded one sample at a time."""

    def __init__(self, spec: str, table: Table, rows: Sequence[TableRow], *,
                 options: BenchmarkOptions = DEFAULT_OPTIONS, skipped: Mapping[str, int] | None = None,
                 combine: Combine | None = None, mapping: Mapping[str, str] | None = None):
        if not rows:
            raise DataError(f"{table.source}: no usable rows (skipped: {dict(skipped or {})}); "
                            "check the file and the column mapping in the spec")
        self.spec = spec
        self.table = table
        self.rows = tuple(rows)
        self.skipped: dict[str, int] = dict(skipped or {})
        self._combine = combine
        self._images = ImageDecoder(options.max_pixels)
        self._clusters = declared_clusters(table, self.rows, (mapping or {}).get(CLUSTER_FIELD))
        # The mapping decides what the rows mean, so it is part of the content.
        self.fingerprint = hashlib.sha256(
            f"{table.fingerprint}\0{sorted((mapping or {}).items())}".encode("utf-8")).hexdigest()
        if any(self.skipped.values()):
            warnings.warn(f"benchmark {spec}: skipped rows {self.skipped} ({len(self.rows)} used)", stacklevel=2)

    def __len__(self) -> int:
        return len(self.rows)

    def cell_image(self, r: int, column: str):
        """The picture of one image cell (several rows may refer to it, as in SEED-Bench)."""
        where = self.table.where(r, column)
        return self._images.decode(
            (r, column), lambda: image_bytes(self.table.cell(r, column), where, self.table.folder), where)

    def images(self, row: TableRow) -> list[Any]:
        """The row's pictures in order: each on its own (an interleaved item), or joined into one
        where the loader was asked to (``combine``: MMMU's ``?stitch=1``)."""
        images = [self.cell_image(r, column) for r, column in row.images]
        if len(images) > 1 and self._combine is not None:
            return [self._combine(images)]
        return images

    def sample(self, row: TableRow) -> Sample:
        first, *more = self.images(row)
        return Sample(row.id, first, row.question, row.options, row.answer, row.kind, row.hint, row.meta,
                      self._clusters.get(row.row), more_images=tuple(more))

    def samples(self) -> Iterator[Sample]:
        for row in self.rows:
            yield self.sample(row)
