"""``seedbench:PATH`` — SEED-Bench (image part) as VLMEvalKit's TSV.

Published columns: ``index, image, question, A, B, C, D, answer, category`` (base64
images; ``answer`` a letter). VLMEvalKit stores an image once and lets later rows whose
``image`` cell holds another row's ``index`` (a short text) refer to it; that is followed
here too. Option columns run from ``A`` while they are present and non-empty, so exports
with E / F options load as well; an optional ``hint`` column becomes the prompt's hint.

Fields and their default columns (rename with ``seedbench:PATH?question=q&answer=gt``):
``id`` ← index, ``image``, ``question``, ``answer``, ``category``, ``hint``. Sample ids are
the ``index`` values, so report diffs across releases join on SEED-Bench's own ids.
Options that read the same are refused with their row and column (``benchmarks.options``).
"""

from __future__ import annotations

from vlmgate.benchmarks.base import DEFAULT_OPTIONS, BenchmarkOptions, items_kind
from vlmgate.benchmarks.columns import parse_source_spec, require_columns
from vlmgate.benchmarks.options import check_distinct
from vlmgate.benchmarks.tables import read_table
from vlmgate.benchmarks.tabular import (
    TableBenchmark,
    TableRow,
    check_unique_ids,
    option_letter_index,
    text_cell,
)
from vlmgate.errors import DataError

DEFAULT_COLUMNS = {"id": "index", "image": "image", "question": "question", "answer": "answer",
                   "category": "category", "hint": "hint"}
REQUIRED = ("id", "image", "question", "answer")
#: A cell this short is a reference to another row's index, never a base64 image.
MAX_REFERENCE_LENGTH = 64
OPTION_LETTERS = tuple(chr(ord("A") + i) for i in range(26))


@items_kind("image", varied_questions=True)
def load_seedbench_benchmark(rest: str, *, spec: str, options: BenchmarkOptions = DEFAULT_OPTIONS) -> TableBenchmark:
    source = parse_source_spec(rest, spec=spec, defaults=DEFAULT_COLUMNS)
    table = read_table(source.path, split=source.split)
    require_columns(source, REQUIRED, table.columns, str(table.source))
    letters = [letter for letter in OPTION_LETTERS[:2] if letter in table.columns]
    if len(letters) < 2:
        raise DataError(f"{table.source}: option columns A and B are required (VLMEvalKit layout: A, B, C, D); "
                        f"the table has {', '.join(table.columns)}")
    letters = [letter for letter in OPTION_LETTERS if letter in table.columns]
    col = source.column
    ids = table.column(col("id"))
    images = table.column(col("image"))
    questions = table.column(col("question"))
    answers = table.column(col("answer"))
    categories = table.column(col("category")) if col("category") in table.columns else [None] * len(table)
    hints = table.column(col("hint")) if col("hint") in table.columns else [None] * len(table)
    option_cells = {letter: table.column(letter) for letter in letters}
    row_of_id: dict[str, int] = {}
    rows = []
    for r in range(len(table)):
        sample_id = text_cell(ids[r], table.where(r, col("id")))
        row_of_id.setdefault(sample_id, r)
        texts: list[str] = []
        for letter in letters:
            text = text_cell(option_cells[letter][r], table.where(r, letter), required=False)
            if text is None:
                break
            texts.append(text)
        if len(texts) < 2:
            raise DataError(f"{table.where(r, letters[len(texts)])}: an item needs at least options A and B")

        def option_cell(i: int, r: int = r) -> str:
            return table.where(r, letters[i])

        check_distinct(texts, option_cell)
        image_cell = text_cell(images[r], table.where(r, col("image")))
        image_row = r
        if len(image_cell) <= MAX_REFERENCE_LENGTH:
            if image_cell not in row_of_id or row_of_id[image_cell] == r:
                raise DataError(f"{table.where(r, col('image'))}: {image_cell!r} is neither base64 image data "
                                "nor the index of an earlier row; fix the cell")
            image_row = row_of_id[image_cell]
        category = text_cell(categories[r], table.where(r, col("category")), required=False)
        rows.append(TableRow(
            id=sample_id,
            question=text_cell(questions[r], table.where(r, col("question"))),
            options=tuple(texts),
            answer=option_letter_index(answers[r], len(texts), table.where(r, col("answer"))),
            kind="mcq",
            hint=text_cell(hints[r], table.where(r, col("hint")), required=False),
            meta=(("category", category),) if category else (),
            images=((image_row, col("image")),),
            row=r,
        ))
    check_unique_ids(rows, table, col("id"))
    return TableBenchmark(spec, table, rows, options=options, mapping=source.column_map)
