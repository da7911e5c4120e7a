"""``hfparquet:PATH`` — a multiple-choice VQA set as a Hugging Face parquet export, columns inferred.

Sets on the Hub (ScienceQA, AI2D, A-OKVQA, the lmms-lab re-exports, a team's own) share a
form but not their column names, so instead of one loader per set this one infers each
field from the spellings in common use, taking a column when exactly one of the file's
columns is among them (case aside):

* ``id`` ← id, index, question_id, qid, sample_id. With none of them the id is the row
  number (from 1, across shards in name order), so report diffs join on row order: map
  ``?id=COLUMN`` when the file has a stable id under another name.
* ``image`` ← image, img, image_1, picture: the ``Image`` feature's struct
  ``{bytes, path}``, raw bytes or base64 text (``benchmarks.image_cells``). One image per
  item: a table with other image columns is refused unless the spec names the one to read
  (``?image=image_1``), since the item's other images would go unseen (``mmmu:``,
  ``blink:`` and ``muirbench:`` show an item's several pictures).
* ``question`` ← question, query, prompt, text; ``hint`` ← hint, context (optional).
* ``options`` ← options, choices, candidates, answers, answer_choices: a list column or a
  list written as a string (``mmmu.parse_options``); without such a column, letter
  columns ``A``, ``B``, ... as in VLMEvalKit (``vlmevalkit.letter_options``; ``?options=A``
  picks them where both exist).
* ``answer`` ← answer, label, gt, ground_truth, correct_answer, answer_idx,
  correct_choice_idx: an option letter, a 0-based index (an integer or its digits) or the
  option's text (``options.answer_index``). Digits that are one option's text and another
  option's index are refused: say which by writing the answer as a letter. An empty answer
  cell is an item without ground truth (``Sample.answer`` ``None``): a split whose answers
  are withheld still gates flip rates, and accuracy counts only the answered items.

Two matching columns are an error naming both and the fix (``?question=query``); a
mapping in the spec always wins over inference. Items whose options are Yes and No are
``yesno`` items holding ``base.YES_NO`` (``options.yes_no``), which the POPE suite judges;
whether a file holds any is read at collection from its option and answer columns alone.
Every other column holding text or numbers is kept as the sample's metadata under its
own name, as text (``category``, ``subject``); columns of bytes, structs or lists are not
metadata. ``PATH`` is a ``.parquet`` file or a folder of parquet shards
(``data/test-00000-of-00003.parquet`` ...), read in name order (``benchmarks.tables``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from vlmgate.benchmarks.base import DEFAULT_OPTIONS, YES_NO, BenchmarkOptions, items_kind
from vlmgate.benchmarks.columns import CLUSTER_FIELD, SourceSpec, parse_source_spec, require_columns
from vlmgate.benchmarks.image_cells import has_image
from vlmgate.benchmarks.mmmu import parse_options
from vlmgate.benchmarks.options import answer_index, are_yes_no, check_distinct, yes_no
from vlmgate.benchmarks.tables import Table, parquet_columns, read_table
from vlmgate.benchmarks.tabular import TableBenchmark, TableRow, check_unique_ids, text_cell
from vlmgate.benchmarks.vlmevalkit import OPTION_LETTERS, extra_meta, letter_options
from vlmgate.errors import DataError, VlmgateError

#: Each field's common column names, in the order a message lists them.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "id": ("id", "index", "question_id", "qid", "sample_id"),
    "image": ("image", "img", "image_1", "picture"),
    "question": ("question", "query", "prompt", "text"),
    "options": ("options", "choices", "candidates", "answers", "answer_choices"),
    "answer": ("answer", "label", "gt", "ground_truth", "correct_answer", "answer_idx", "correct_choice_idx"),
    "hint": ("hint", "context"),
}
REQUIRED = ("image", "question", "options", "answer")
#: The ``options`` mapping that picks the letter columns A, B, ...
LETTERS = OPTION_LETTERS[0]


@dataclass(frozen=True)
class Fields:
    """The column each field is read from; ``options`` ``None``: the letter columns ``letters``."""

    id: str | None
    image: str
    question: str
    options: str | None
    letters: tuple[str, ...]
    answer: str
    hint: str | None

    def read(self) -> list[str]:
        """Every column read as a field (the rest is metadata)."""
        named = [self.id, self.image, self.question, self.options, self.answer, self.hint]
        return [column for column in named if column is not None] + list(self.letters)

    def mapping(self) -> dict[str, str]:
        """The resolved field -> column mapping (part of the fingerprint: it decides what rows mean)."""
        return {"id": self.id or "(row number)", "image": self.image, "question": self.question,
                "options": self.options or "A..", "answer": self.answer, "hint": self.hint or ""}


def infer_column(source: SourceSpec, field: str, columns: Sequence[str], where: str) -> str | None:
    """The column of ``field``: the spec's mapping, else the one column among its common names."""
    if source.column(field):
        if field == "options" and source.column(field) == LETTERS:
            return None
        require_columns(source, (field,), columns, where)
        return source.column(field)
    names = CANDIDATES[field]
    matches = [column for column in columns if column.lower() in names]
    if len(matches) > 1:
        raise DataError(f"{where}: columns {' and '.join(map(repr, matches))} could each be the {field!r}; "
                        f"name one in the spec: {source.spec.partition('?')[0]}?{field}={matches[0]}")
    if matches:
        return matches[0]
    if field in REQUIRED and not (field == "options" and LETTERS in columns):
        raise DataError(f"{where}: no column for {field!r}: none of {', '.join(names)} is among the columns "
                        f"({', '.join(columns)}); name it in the spec: {source.spec.partition('?')[0]}?{field}=COLUMN")
    return None


def option_fields(source: SourceSpec, columns: Sequence[str], where: str) -> tuple[str | None, tuple[str, ...]]:
    """Where the options are: a list column, or (``None``, the letter columns)."""
    options = infer_column(source, "options", columns, where)
    letters = tuple(letter for letter in OPTION_LETTERS if letter in columns)
    if options is not None:
        if LETTERS in columns and not source.column("options"):
            raise DataError(f"{where}: the column {options!r} and the letter columns {', '.join(letters)} could each "
                            f"be the options; name them in the spec: {source.spec.partition('?')[0]}?options={options} "
                            f"or ?options={LETTERS}")
        return options, ()
    if not {OPTION_LETTERS[0], OPTION_LETTERS[1]} <= set(columns):
        raise DataError(f"{where}: ?options={LETTERS} picks the letter columns, but the table has no columns A and B "
                        f"({', '.join(columns)}); name the options column instead")
    return None, letters


def infer_fields(source: SourceSpec, columns: Sequence[str], where: str) -> Fields:
    options, letters = option_fields(source, columns, where)
    found = {field: infer_column(source, field, columns, where) for field in ("id", "image", "question", "answer",
                                                                              "hint")}
    return Fields(found["id"], str(found["image"]), str(found["question"]), options, letters, str(found["answer"]),
                  found["hint"])


def parse_source(rest: str, spec: str) -> SourceSpec:
    """The spec's path and mapping; a field left unmapped has the column ``""`` (inferred)."""
    return parse_source_spec(rest, spec=spec, defaults={field: "" for field in CANDIDATES})


def row_options(table: Table, fields: Fields, cells: dict[str, list[Any]], r: int) -> tuple[str, ...]:
    """Row ``r``'s options, at least two and distinct."""
    if fields.options is None:
        return letter_options(table, {letter: cells[letter] for letter in fields.letters}, r)
    where = table.where(r, fields.options)
    texts = parse_options(cells[fields.options][r], where)
    if len(texts) < 2 or not all(texts):
        raise DataError(f"{where}: an item needs at least two options, none empty, got {texts}; fix the cell "
                        "or drop the row")
    check_distinct(texts, lambda _: where)
    return tuple(texts)


def answer_position(value: Any, options: Sequence[str], where: str) -> int:
    """The 0-based option index of an answer given as a letter, an index (or its digits) or the option text."""
    text_cell(value, where)  # an empty cell is an error
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        index = int(value)
        texts = [" ".join(o.split()).casefold() for o in options]
        by_text = texts.index(value.strip()) if value.strip() in texts else None
        if by_text is not None and by_text != index and index < len(options):
            raise DataError(f"{where}: answer {value!r} is the text of option {OPTION_LETTERS[by_text]} and also the "
                            f"0-based index of option {OPTION_LETTERS[index]}; write the answer as a letter")
        value = index if by_text is None else options[by_text]
    found = answer_index(value, options, "mcq", where)
    assert found is not None  # the cell is not empty
    return found


def read_rows(table: Table, fields: Fields, cluster: str | None) -> list[TableRow]:
    """Validated rows of an export under the resolved ``fields`` (``cluster``: a mapped cluster column)."""
    cells = {column: table.column(column) for column in fields.read()}
    nothing = [None] * len(table)
    metas = extra_meta(table, fields.read() + ([cluster] if cluster else []))
    rows = []
    for r in range(len(table)):
        options = row_options(table, fields, cells, r)
        given = text_cell(cells[fields.answer][r], "", required=False) is not None  # empty: no ground truth
        answer = answer_position(cells[fields.answer][r], options, table.where(r, fields.answer)) if given else None
        kind: str = "mcq"
        if are_yes_no(options):
            if answer is not None:
                answer = _yes_no_answer(options, answer, table.where(r, fields.answer))
            kind, options = "yesno", YES_NO
        if not has_image(cells[fields.image][r]):
            raise DataError(f"{table.where(r, fields.image)}: no image (empty cell); fill it or drop the row")
        rows.append(TableRow(
            id=text_cell(cells[fields.id][r], table.where(r, fields.id)) if fields.id else str(r + 1),
            question=text_cell(cells[fields.question][r], table.where(r, fields.question)),
            options=options,
            answer=answer,
            kind=kind,
            hint=text_cell((cells[fields.hint] if fields.hint else nothing)[r], table.where(r, fields.hint),
                           required=False),
            meta=tuple(sorted(metas[r].items())),
            images=((r, fields.image),),
            row=r,
        ))
    check_unique_ids(rows, table, fields.id or "(row number)")
    return rows


def _yes_no_answer(options: Sequence[str], answer: int, where: str) -> int:
    """The answer of a yes/no item as an index into ``base.YES_NO``."""
    index = yes_no(options, answer, where)
    assert index is not None  # the answer is given
    return index



def yes_no_items(rest: str) -> bool | None:
    """Whether an export holds an answered item with options Yes and No, read from its option and
    answer columns alone; ``None`` when it is not parquet or cannot be read, so that the case is
    kept and the load reports what is wrong."""
    try:
        source = parse_source(rest, f"hfparquet:{rest}")
        columns = parquet_columns(source.path)
        if columns is None:
            return None
        where = str(source.path)
        options, letters = option_fields(source, columns, where)
        answer = infer_column(source, "answer", columns, where)
        fields = Fields(None, "", "", options, letters, str(answer), None)
        table = read_table(source.path, columns=[*letters, *([options] if options else []), str(answer)])
        cells = {column: table.column(column) for column in table.columns}
        return any(text_cell(cells[fields.answer][r], "", required=False) is not None
                   and are_yes_no(row_options(table, fields, cells, r)) for r in range(len(table)))
    except (VlmgateError, OSError, ValueError):
        return None


@items_kind("image", varied_questions=True, yes_no_items=yes_no_items)
def load_hfparquet_benchmark(rest: str, *, spec: str, options: BenchmarkOptions = DEFAULT_OPTIONS) -> TableBenchmark:
    source = parse_source(rest, spec)
    table = read_table(source.path, split=source.split)
    fields = infer_fields(source, table.columns, str(table.source))
    others = [column for column in table.columns if column != fields.image and table.holds_images(column)]
    if others and not source.column("image"):  # an item's other images would go unseen without a word
        raise DataError(f"{table.source}: the image is read from {fields.image!r}, but {', '.join(others)} hold "
                        "images too, and hfparquet: shows one image per item (mmmu: places an item's images side by "
                        "side); to gate on that one image, name it: "
                        f"{spec.partition('?')[0]}?image={fields.image}")
    cluster = source.column_map.get(CLUSTER_FIELD)
    rows = read_rows(table, fields, cluster)
    mapping = {**fields.mapping(), **({CLUSTER_FIELD: cluster} if cluster else {})}
    return TableBenchmark(spec, table, rows, options=options, mapping=mapping)
