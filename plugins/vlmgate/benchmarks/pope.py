"""``pope:PATH`` — POPE object-hallucination probes as lmms-lab's parquet (or a ``datasets`` folder).

Published columns: ``question_id, question, answer, image_source, image, category``;
``answer`` is ``yes`` / ``no`` (any case), ``category`` one of ``adversarial``, ``popular``,
``random`` (how the absent objects were drawn). Items become yes/no samples with options
``base.YES_NO`` (``("Yes", "No")``), the answer indexing into them; the category and image source go to ``meta``
(``meta["category"]`` lets reports split the three POPE settings).

Fields and their default columns (rename with ``pope:PATH?question=text&answer=label``):
``id`` ← question_id, ``question``, ``answer``, ``image``, ``category``, ``image_source``.
Add ``?category=...`` only to rename; to evaluate one setting, export that subset.
"""

from __future__ import annotations

from vlmgate.benchmarks.base import DEFAULT_OPTIONS, YES_NO, BenchmarkOptions, items_kind
from vlmgate.benchmarks.columns import parse_source_spec, require_columns
from vlmgate.benchmarks.tables import read_table
from vlmgate.benchmarks.tabular import (
    TableBenchmark,
    TableRow,
    check_unique_ids,
    text_cell,
)
from vlmgate.errors import DataError

DEFAULT_COLUMNS = {"id": "question_id", "question": "question", "answer": "answer", "image": "image",
                   "category": "category", "image_source": "image_source"}
REQUIRED = ("id", "question", "answer", "image")
CATEGORIES = ("adversarial", "popular", "random")


@items_kind("image", varied_questions=True, yes_no_items=True)
def load_pope_benchmark(rest: str, *, spec: str, options: BenchmarkOptions = DEFAULT_OPTIONS) -> TableBenchmark:
    source = parse_source_spec(rest, spec=spec, defaults=DEFAULT_COLUMNS)
    table = read_table(source.path, split=source.split)
    require_columns(source, REQUIRED, table.columns, str(table.source))
    col = source.column
    optional = {field: table.column(col(field)) if col(field) in table.columns else [None] * len(table)
                for field in ("category", "image_source")}
    ids, questions, answers = (table.column(col(field)) for field in ("id", "question", "answer"))
    rows = []
    for r in range(len(table)):
        answer = text_cell(answers[r], table.where(r, col("answer"))).lower()
        if answer not in [o.lower() for o in YES_NO]:
            raise DataError(f"{table.where(r, col('answer'))}: answer {answers[r]!r} is not yes or no; fix the cell "
                            "(POPE answers are yes/no)")
        category = text_cell(optional["category"][r], table.where(r, col("category")), required=False)
        if category is not None and category.lower() not in CATEGORIES:
            raise DataError(f"{table.where(r, col('category'))}: category {category!r} is not one of "
                            f"{', '.join(CATEGORIES)}; fix the cell or map another column with ?category=")
        source_name = text_cell(optional["image_source"][r], table.where(r, col("image_source")), required=False)
        meta = {"category": category.lower() if category else None, "image_source": source_name}
        rows.append(TableRow(
            id=text_cell(ids[r], table.where(r, col("id"))),
            question=text_cell(questions[r], table.where(r, col("question"))),
            options=YES_NO,
            answer=[o.lower() for o in YES_NO].index(answer),
            kind="yesno",
            hint=None,
            meta=tuple(sorted((k, v) for k, v in meta.items() if v is not None)),
            images=((r, col("image")),),
            row=r,
        ))
    check_unique_ids(rows, table, col("id"))
    return TableBenchmark(spec, table, rows, options=options, mapping=source.column_map)
