"""``vlmevalkit:PATH`` — any benchmark in VLMEvalKit's table layout (MMBench, MMStar, SEED-Bench, AI2D, ...).

VLMEvalKit ships its multiple-choice sets in one layout, so one loader reads them all:
one row per item, ``index``, a base64 ``image``, ``question``, option columns ``A``,
``B``, ... and ``answer`` (a letter), with an optional ``hint`` and metadata columns that
differ from set to set (``category``, ``l2-category``, ``split``, ``source``).

* Options run from ``A`` while non-empty: MMBench rows with only ``A`` / ``B`` filled have
  two options. A non-empty option after an empty one is an error (it would be lost).
* VLMEvalKit stores an image once and lets a later row whose ``image`` cell holds another
  row's ``index`` (a short text) refer to it; that is followed here.
* Every column the loader does not read as a field (id, image, question, answer, hint,
  the option letters, a mapped cluster) is kept as the sample's metadata under its own
  name, as text, empty cells left out: ``meta["l2-category"]`` reaches the report and
  ``vlmgate accuracy --by l2-category``. ``category`` is a field only so it can be renamed.
* ``PATH`` is a ``.tsv`` (or a parquet of the same layout), or a folder of such shards read
  in name order (``benchmarks.tables``).
* An empty ``answer`` cell is an item without ground truth (``Sample.answer`` ``None``, as
  ``null`` in a ``jsonl:`` manifest): a test split whose answers are withheld (MMBench's)
  still gates flip rates, and accuracy counts only the answered items. An answer that is not
  an option letter is an error naming row and column.

Fields and their default columns (rename with ``vlmevalkit:PATH?question=q&answer=gt``):
``id`` ← index, ``image``, ``question``, ``answer``, ``category``, ``hint``. Sample ids are
the ``index`` values, so report diffs across releases join on the benchmark's own ids.
Options that read the same are refused with their row and column (``benchmarks.options``).
``seedbench:`` is this loader under SEED-Bench's name.

Items keep their options as written (MCQ, as VLMEvalKit asks them), Yes/No ones included;
the POPE suite judges those by their options. Whether a file holds such items is read at
collection from a parquet's text columns; a TSV would be read whole, images included, so
there it is not declared.
"""

from __future__ import annotations

from typing import Any, Sequence

from vlmgate.benchmarks.base import DEFAULT_OPTIONS, BenchmarkOptions, items_kind
from vlmgate.benchmarks.columns import CLUSTER_FIELD, SourceSpec, parse_source_spec, require_columns
from vlmgate.benchmarks.options import are_yes_no, check_distinct
from vlmgate.benchmarks.tables import Table, parquet_columns, read_table
from vlmgate.benchmarks.tabular import (
    TableBenchmark,
    TableRow,
    check_unique_ids,
    option_letter_index,
    text_cell,
)
from vlmgate.errors import DataError, VlmgateError

DEFAULT_COLUMNS = {"id": "index", "image": "image", "question": "question", "answer": "answer",
                   "category": "category", "hint": "hint"}
REQUIRED = ("id", "image", "question", "answer")
#: Fields whose cell becomes the sample's metadata under the field's name.
META_FIELDS = ("category",)
#: A cell this short is a reference to another row's index, never a base64 image.
MAX_REFERENCE_LENGTH = 64
OPTION_LETTERS = tuple(chr(ord("A") + i) for i in range(26))


def option_letter_columns(table_columns: Sequence[str], where: str) -> list[str]:
    """The option columns ``A``, ``B``, ... of a table; ``A`` and ``B`` are required."""
    if not all(letter in table_columns for letter in OPTION_LETTERS[:2]):
        raise DataError(f"{where}: option columns A and B are required (VLMEvalKit layout: A, B, C, D); "
                        f"the table has {', '.join(table_columns)}")
    return [letter for letter in OPTION_LETTERS if letter in table_columns]


def letter_options(table: Table, cells: dict[str, list[Any]], r: int) -> tuple[str, ...]:
    """Row ``r``'s options from its letter columns ``cells``: from ``A`` while non-empty, distinct."""
    letters = list(cells)
    texts = [text_cell(cells[letter][r], table.where(r, letter), required=False) for letter in letters]
    count = texts.index(None) if None in texts else len(texts)
    if count < 2:
        raise DataError(f"{table.where(r, letters[count])}: an item needs at least options A and B")
    stray = next((letter for letter, text in zip(letters[count:], texts[count:]) if text is not None), None)
    if stray is not None:
        raise DataError(f"{table.where(r, stray)}: option {stray} follows the empty option {letters[count]}; "
                        f"options run from A while non-empty, so fill {letters[count]} or move {stray} up")
    options = tuple(text for text in texts[:count] if text is not None)
    check_distinct(options, lambda i: table.where(r, letters[i]))
    return options


def extra_meta(table: Table, read: Sequence[str]) -> list[dict[str, str]]:
    """Per row, the text of every scalar column outside ``read`` (the columns read as fields),
    keyed by column name, empty cells left out. Columns of bytes, structs or lists (images)
    are not metadata."""
    kept = [name for name in table.columns if name not in read and table.holds_scalars(name)]
    cells = {name: table.column(name) for name in kept}
    return [{name: text for name in kept
             if (text := text_cell(cells[name][r], table.where(r, name), required=False)) is not None}
            for r in range(len(table))]


def read_columns(source: SourceSpec, table: Table, fields: Sequence[str]) -> list[str]:
    """The columns the spec's ``fields`` (and a mapped cluster) name in ``table``."""
    mapped = [source.column(field) for field in fields if source.column(field) in table.columns]
    cluster = source.column_map.get(CLUSTER_FIELD)
    return mapped + ([cluster] if cluster else [])


def merged_meta(fields: dict[str, str | None], extra: dict[str, str], where: str) -> tuple[tuple[str, Any], ...]:
    """A row's meta: its meta fields and its other columns; a column named like a renamed field is
    ambiguous, so it is an error rather than one silently replacing the other."""
    given = {key: value for key, value in fields.items() if value is not None}
    clash = sorted(key for key in fields if key in extra)
    if clash:
        raise DataError(f"{where}: column {clash[0]!r} and the column mapped to the field {clash[0]!r} would both "
                        f"be meta {clash[0]!r}; map ?{clash[0]}={clash[0]} or drop one of the columns")
    return tuple(sorted({**given, **extra}.items()))


def vlmevalkit_rows(table: Table, source: SourceSpec) -> list[TableRow]:
    """Validated rows of a VLMEvalKit-layout table under ``source``'s column mapping."""
    require_columns(source, REQUIRED, table.columns, str(table.source))
    letters = option_letter_columns(table.columns, str(table.source))
    col = source.column
    ids, images, questions, answers = (table.column(col(field)) for field in REQUIRED)
    optional = {field: table.column(col(field)) if col(field) in table.columns else [None] * len(table)
                for field in ("hint", *META_FIELDS)}
    option_cells = {letter: table.column(letter) for letter in letters}
    metas = extra_meta(table, [*read_columns(source, table, list(DEFAULT_COLUMNS)), *letters])
    row_of_id: dict[str, int] = {}
    rows = []
    for r in range(len(table)):
        sample_id = text_cell(ids[r], table.where(r, col("id")))
        row_of_id.setdefault(sample_id, r)
        texts = letter_options(table, option_cells, r)
        rows.append(TableRow(
            id=sample_id,
            question=text_cell(questions[r], table.where(r, col("question"))),
            options=texts,
            answer=None if text_cell(answers[r], "", required=False) is None
            else option_letter_index(answers[r], len(texts), table.where(r, col("answer"))),
            kind="mcq",
            hint=text_cell(optional["hint"][r], table.where(r, col("hint")), required=False),
            meta=merged_meta({field: text_cell(optional[field][r], table.where(r, col(field)), required=False)
                              for field in META_FIELDS}, metas[r], table.where(r)),
            images=((_image_row(table, images[r], r, col("image"), row_of_id), col("image")),),
            row=r,
        ))
    check_unique_ids(rows, table, col("id"))
    return rows


def _image_row(table: Table, cell: Any, r: int, column: str, row_of_id: dict[str, int]) -> int:
    """The row whose ``column`` holds row ``r``'s image: ``r``, or the earlier row its short cell names."""
    if cell is not None and not isinstance(cell, str):
        return r  # bytes or an image struct (a parquet export): the image itself
    text = text_cell(cell, table.where(r, column))
    if len(text) > MAX_REFERENCE_LENGTH:
        return r
    if text not in row_of_id or row_of_id[text] == r:
        raise DataError(f"{table.where(r, column)}: {text!r} is neither base64 image data "
                        "nor the index of an earlier row; fix the cell")
    return row_of_id[text]


def load_vlmevalkit_table(rest: str, *, spec: str, options: BenchmarkOptions = DEFAULT_OPTIONS) -> TableBenchmark:
    """The VLMEvalKit-layout benchmark ``rest`` names (a file or a folder of shards, a column mapping)."""
    source = parse_source_spec(rest, spec=spec, defaults=DEFAULT_COLUMNS)
    table = read_table(source.path, split=source.split)
    return TableBenchmark(spec, table, vlmevalkit_rows(table, source), options=options, mapping=source.column_map)


def parquet_yes_no_items(rest: str) -> bool | None:
    """Whether a VLMEvalKit-layout parquet holds an answered item with options Yes and No, read from
    its option and answer columns alone; ``None`` for a TSV (read whole, images included) or a
    table that cannot be read, so that the case is kept and the load reports what is wrong."""
    try:
        source = parse_source_spec(rest, spec=f"vlmevalkit:{rest}", defaults=DEFAULT_COLUMNS)
        columns = parquet_columns(source.path)
        if columns is None or source.column("answer") not in columns:
            return None
        letters = option_letter_columns(columns, str(source.path))
        table = read_table(source.path, columns=[*letters, source.column("answer")])
        cells = {letter: table.column(letter) for letter in letters}
        answers = table.column(source.column("answer"))
        return any(text_cell(answers[r], "", required=False) is not None and are_yes_no(letter_options(table, cells, r))
                   for r in range(len(table)))
    except (VlmgateError, OSError, ValueError):
        return None


@items_kind("image", varied_questions=True, yes_no_items=parquet_yes_no_items)
def load_vlmevalkit_benchmark(rest: str, *, spec: str,
                              options: BenchmarkOptions = DEFAULT_OPTIONS) -> TableBenchmark:
    return load_vlmevalkit_table(rest, spec=spec, options=options)
