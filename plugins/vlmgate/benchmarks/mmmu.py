"""``mmmu:PATH`` — MMMU as its published parquet (or a ``datasets`` folder).

Published columns: ``id, question, options, answer, image_1 .. image_7`` (plus
explanation, img_type, question_type, subfield, ...). ``options`` is a Python list
*written as a string* (``"['4', '5', '<image 2>']"``), parsed with ``ast.literal_eval``;
``answer`` is a letter. Text refers to images by ``<image k>`` placeholders.

An item's images reach the model as several images, interleaved where the text places
them (``Sample.more_images``, ``vlmgate.interleaving``): they are numbered in the order
their placeholders first appear (question, then options; unreferenced images after), each
placeholder is rewritten ``<image k>`` with k that position, and an adapter shows picture
k at its first placeholder. An item with one image has its placeholder written inline as
``[image 1]``, as a single-image item is not split. ``mmmu:PATH?stitch=1`` instead places an
item's images side by side in one picture, as VLMEvalKit does for single-image models, each
placeholder written ``[image k]`` with k its panel's position from the left; the switch is
part of the spec, so the run record says which form was gated. The rewrite also keeps the
text from ever containing a processor's ``<image>`` token.

Skipped and counted in ``TableBenchmark.skipped`` (a warning at load): items with fewer
than two options (MMMU's open questions) and items with no image. A malformed row (an
``options`` string that is not a list of strings, a placeholder naming an empty image
column, an answer that is not an option letter, two options that read the same) is an
error naming row and column.

Fields and their default columns: ``id``, ``question``, ``options``, ``answer``,
``image_1`` .. ``image_7``, ``subfield``, ``question_type``; rename with
``mmmu:PATH?options=choices``. The one switch is ``stitch``.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Sequence

from vlmgate.benchmarks.base import DEFAULT_OPTIONS, BenchmarkOptions, cap_size, items_kind
from vlmgate.benchmarks.columns import parse_source_spec, require_columns
from vlmgate.benchmarks.image_cells import has_image
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
from vlmgate.interleaving import marker

MAX_IMAGES = 7
IMAGE_FIELDS = tuple(f"image_{k}" for k in range(1, MAX_IMAGES + 1))
DEFAULT_COLUMNS = {"id": "id", "question": "question", "options": "options", "answer": "answer",
                   "subfield": "subfield", "question_type": "question_type",
                   **{field: field for field in IMAGE_FIELDS}}
REQUIRED = ("id", "question", "options", "answer")
PLACEHOLDER = re.compile(r"<image (\d+)>")
#: Gap between panels of a combined image, white like the canvas.
PANEL_GAP = 8
SKIP_FEW_OPTIONS = "fewer than 2 options"
SKIP_NO_IMAGE = "no image"
#: The switch that places an item's images side by side in one picture.
STITCH = "stitch"


def parse_options(value: Any, where: str) -> list[str]:
    """``"['a', 'b']"`` (or an actual list) -> ``['a', 'b']``; anything else is an error."""
    if isinstance(value, (list, tuple)):
        parsed: Any = list(value)
    else:
        text = text_cell(value, where, required=False) or "[]"
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise DataError(f"{where}: {text[:80]!r} is not a list written as a string (e.g. \"['4', '5']\"); "
                            "fix the cell") from None
    if not isinstance(parsed, list) or not all(isinstance(o, (str, int, float)) for o in parsed):
        raise DataError(f"{where}: options must be a list of strings, got {type(parsed).__name__}; fix the cell")
    return [str(o).strip() for o in parsed]


def required_options(value: Any, where: str, benchmark: str, noun: str = "option") -> list[str]:
    """The options of an item of a benchmark that is all multiple choice (BLINK, MuirBench):
    ``parse_options``, and fewer than two is an error naming the cell (``noun``: what the
    benchmark calls them)."""
    texts = parse_options(value, where)
    if len(texts) < 2:
        raise DataError(f"{where}: {len(texts)} {noun}(s); {benchmark} items are multiple choice with at least "
                        "2 options: fix the cell or drop the row")
    return texts


def combine_side_by_side(images: Sequence[Any]):
    """Panels left to right on a white canvas, top-aligned, ``PANEL_GAP`` px apart."""
    from PIL import Image

    width = sum(image.width for image in images) + PANEL_GAP * (len(images) - 1)
    canvas = Image.new("RGB", (width, max(image.height for image in images)), "white")
    x = 0
    for image in images:
        canvas.paste(image, (x, 0))
        x += image.width + PANEL_GAP
    return cap_size(canvas)


def _panel_order(texts: Sequence[str], present: Sequence[int]) -> list[int]:
    """Image numbers in first-reference order, then the unreferenced present ones."""
    order: list[int] = []
    for text in texts:
        for match in PLACEHOLDER.finditer(text):
            k = int(match.group(1))
            if k not in order:
                order.append(k)
    return order + [k for k in present if k not in order]


def mmmu_several_images(rest: str) -> bool:
    """Whether the spec gates items of several images: unless it stitches them (``?stitch=1``)."""
    query = rest.rpartition("?")[2]
    return not any(item.split("=", 1)[0] == STITCH and item.split("=", 1)[-1].lower() in ("1", "true", "yes")
                   for item in query.split("&"))


@items_kind("image", varied_questions=True, several_images=mmmu_several_images)
def load_mmmu_benchmark(rest: str, *, spec: str, options: BenchmarkOptions = DEFAULT_OPTIONS) -> TableBenchmark:
    source = parse_source_spec(rest, spec=spec, defaults=DEFAULT_COLUMNS, switches=(STITCH,))
    stitched = source.switch(STITCH)
    table = read_table(source.path, split=source.split)
    require_columns(source, REQUIRED, table.columns, str(table.source))
    col = source.column
    image_columns = {k: col(field) for k, field in enumerate(IMAGE_FIELDS, start=1) if col(field) in table.columns}
    # Presence only (a null or empty struct means "no image k"); bytes are read per sample.
    present_by_column = {k: [has_image(v) for v in table.column(column)] for k, column in image_columns.items()}
    ids, questions, options_cells, answers = (table.column(col(f)) for f in ("id", "question", "options", "answer"))
    extra = {field: table.column(col(field)) if col(field) in table.columns else [None] * len(table)
             for field in ("subfield", "question_type")}
    rows, skipped = [], {SKIP_FEW_OPTIONS: 0, SKIP_NO_IMAGE: 0}
    for r in range(len(table)):
        sample_id = text_cell(ids[r], table.where(r, col("id")))
        texts = parse_options(options_cells[r], table.where(r, col("options")))
        if len(texts) < 2:
            skipped[SKIP_FEW_OPTIONS] += 1
            continue

        def options_cell(_: int, r: int = r) -> str:
            return table.where(r, col("options"))

        check_distinct(texts, options_cell)
        present = [k for k in image_columns if present_by_column[k][r]]
        if not present:
            skipped[SKIP_NO_IMAGE] += 1
            continue
        question = text_cell(questions[r], table.where(r, col("question")))
        order = _panel_order([question, *texts], present)
        for k in order:
            if k not in present:
                column = image_columns.get(k, f"image_{k}")
                raise DataError(f"{table.where(r, column)}: the text refers to <image {k}> but the cell is empty "
                                "or the column is missing; fill it or fix the placeholder")
        position = {k: i for i, k in enumerate(order)}
        placed = not stitched and len(order) > 1

        def inline(text: str, position: dict[int, int] = position, placed: bool = placed) -> str:
            def written(match: re.Match[str]) -> str:
                k = position[int(match.group(1))]
                return marker(k) if placed else f"[image {k + 1}]"

            return PLACEHOLDER.sub(written, text)

        meta = {"images": len(order), **{f: text_cell(extra[f][r], table.where(r, col(f)), required=False)
                                         for f in extra}}
        rows.append(TableRow(
            id=sample_id,
            question=inline(question),
            options=tuple(inline(o) for o in texts),
            answer=option_letter_index(answers[r], len(texts), table.where(r, col("answer"))),
            kind="mcq",
            hint=None,
            meta=tuple(sorted((k, v) for k, v in meta.items() if v is not None)),
            images=tuple((r, image_columns[k]) for k in order),
            row=r,
        ))
    check_unique_ids(rows, table, col("id"))
    return TableBenchmark(spec, table, rows, options=options, skipped=skipped,
                          combine=combine_side_by_side if stitched else None, mapping=source.meaning)

