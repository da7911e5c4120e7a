"""``blink:PATH`` — BLINK (Fu et al., 2024) as its published parquet (``BLINK-Benchmark/BLINK``).

The hub holds one parquet per subtask and split (``Jigsaw/val-00000-of-00001.parquet``);
PATH is such a file, a folder of shards (several subtasks' files copied into one folder
load as one benchmark) or a ``datasets`` folder (``tables.read_table``).

Published columns: ``idx`` (``val_Jigsaw_1``), ``question``, ``sub_task``, ``image_1`` ..
``image_4`` (the ``Image`` feature's ``{bytes, path}`` struct, null where the item has fewer
pictures), ``choices`` (a list of strings; a list written as a string, as a TSV export holds
it, is read too), ``answer`` (``(A)``, ``(B)``, ...), ``prompt`` (the question with the
choices written out) and ``explanation``. ``prompt`` and ``explanation`` are not read: the
prompt is built from ``question`` and the options like every other benchmark's.

An item's pictures are its non-empty image columns in column order: ``image_1`` is
``Sample.image``, the rest ``Sample.more_images``. BLINK's questions do not place their
pictures, so they all come before the text (``vlmgate.interleaving``); a question or choice
that writes MMMU-style ``<image k>`` markers keeps them as they are, k checked against the
item's pictures (an item of one picture, which is not split, has them written ``[image 1]``
inline, as MMMU's loader does). The answer is the letter inside the parentheses. ``sub_task``
is the sample's category (``base.CATEGORY_KEY``), so results split per subtask; ``meta``
also holds ``images``, the item's number of pictures.

The test split's answers are hidden (``hidden`` or empty): a table whose answers are all
hidden is refused with one message saying so (score the val split). Errors naming row and
column: an answer that is not the letter of an option, fewer than two choices (BLINK is all
multiple choice), two choices that read the same, no picture, a picture after an empty image
column (the text counts pictures from ``image_1``), a marker naming a picture the item does
not have, a bare ``<image>`` token (a processor's image token, never sent as text), a
repeated ``idx``. Pictures are decoded only when their sample is used
(``tabular.TableBenchmark``), so a broken one is named then, not at load.

Fields and their default columns: ``id`` (``idx``), ``question``, ``options`` (``choices``),
``answer``, ``category`` (``sub_task``), ``image_1`` .. ``image_4``; rename with
``blink:PATH?options=my_choices``. ``id``, ``question``, ``options``, ``answer`` and
``image_1`` are required.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from vlmgate.benchmarks.base import CATEGORY_KEY, DEFAULT_OPTIONS, BenchmarkOptions, items_kind
from vlmgate.benchmarks.columns import parse_source_spec, require_columns
from vlmgate.benchmarks.image_cells import has_image
from vlmgate.benchmarks.mmmu import required_options
from vlmgate.benchmarks.options import check_distinct
from vlmgate.benchmarks.tables import Table, read_table
from vlmgate.benchmarks.tabular import (
    TableBenchmark,
    TableRow,
    check_unique_ids,
    option_letter_index,
    text_cell,
)
from vlmgate.errors import DataError
from vlmgate.interleaving import IMAGE_MARKER

MAX_IMAGES = 4
IMAGE_FIELDS = tuple(f"image_{k}" for k in range(1, MAX_IMAGES + 1))
DEFAULT_COLUMNS = {"id": "idx", "question": "question", "options": "choices", "answer": "answer",
                   "category": "sub_task", **{field: field for field in IMAGE_FIELDS}}
REQUIRED = ("id", "question", "options", "answer", "image_1")
#: What the test split holds in place of an answer (compared stripped and case-blind).
HIDDEN_ANSWERS = ("", "hidden")
#: A processor's image token: text holding it would reach the model as a picture slot.
BARE_IMAGE_TOKEN = "<image>"


def placed_markers(text: str, n_images: int, where: str) -> str:
    """``text`` with its ``<image k>`` markers checked against the item's ``n_images`` pictures.

    An item of one picture is not split (``interleaving``), so its markers are written
    ``[image 1]`` inline, as MMMU's loader writes them; several pictures keep their markers.
    """
    for match in IMAGE_MARKER.finditer(text):
        k = int(match.group(1))
        if not 1 <= k <= n_images:
            raise DataError(f"{where}: the text names <image {k}> but the item has {n_images} picture(s); "
                            "fix the marker or the item's pictures")
    if n_images == 1:
        return IMAGE_MARKER.sub(lambda match: f"[image {match.group(1)}]", text)
    return text


def blink_answer_index(value: Any, n_options: int, where: str) -> int:
    """``"(B)"`` (or ``"B"``) -> 1; anything else is an error naming ``where``."""
    text = "" if value is None else str(value).strip()
    if len(text) == 3 and text[0] == "(" and text[2] == ")":
        text = text[1]
    try:
        return option_letter_index(text, n_options, where)
    except DataError:
        letters = ", ".join(f"({chr(ord('A') + i)})" for i in range(n_options))
        raise DataError(f"{where}: answer {value!r} is not one of the option letters {letters}; "
                        "fix the cell") from None


def _is_hidden(value: Any) -> bool:
    return (text_cell(value, "", required=False) or "").lower() in HIDDEN_ANSWERS


def _refuse_hidden_split(table: Table, answers: Sequence[Any], column: str) -> None:
    if len(answers) and all(_is_hidden(value) for value in answers):
        raise DataError(
            f"{table.source}: every answer in column {column!r} is hidden ('hidden' or empty): BLINK's test split "
            "has no public answers (it is scored on the EvalAI server), so nothing here can be scored; "
            "use the val split (e.g. blink:/data/BLINK/Jigsaw/val-00000-of-00001.parquet)")


def _present_images(table: Table, r: int, columns: Sequence[str], where: Callable[[str], str]) -> list[str]:
    """The columns holding row ``r``'s pictures, in order: ``image_1`` first, no gap after it.

    Presence is read one cell at a time (the bytes of one row, then dropped), never decoded.
    """
    present: list[str] = []
    empty: str | None = None
    for column in columns:
        if not (column in table.columns and has_image(table.cell(r, column))):
            empty = empty or column
            continue
        if empty is not None:
            raise DataError(f"{where(column)}: holds a picture but column {empty!r} before it is empty; "
                            "BLINK counts an item's pictures from image_1 without gaps: move the pictures up")
        present.append(column)
    if not present:
        raise DataError(f"{where(columns[0])}: the item has no picture (every image column is empty); "
                        "fill it or drop the row")
    return present


@items_kind("image", varied_questions=True, several_images=True)
def load_blink_benchmark(rest: str, *, spec: str, options: BenchmarkOptions = DEFAULT_OPTIONS) -> TableBenchmark:
    source = parse_source_spec(rest, spec=spec, defaults=DEFAULT_COLUMNS)
    table = read_table(source.path, split=source.split)
    require_columns(source, REQUIRED, table.columns, str(table.source))
    col = source.column
    ids, questions, choices, answers = (table.column(col(f)) for f in ("id", "question", "options", "answer"))
    categories = table.column(col("category")) if col("category") in table.columns else [None] * len(table)
    _refuse_hidden_split(table, answers, col("answer"))
    image_columns = [col(field) for field in IMAGE_FIELDS]
    rows = []
    for r in range(len(table)):
        def where(column: str, r: int = r) -> str:
            return table.where(r, column)

        sample_id = text_cell(ids[r], where(col("id")))
        texts = required_options(choices[r], where(col("options")), "BLINK", "choice")
        def options_cell(_: int, r: int = r) -> str:
            return where(col("options"), r)

        check_distinct(texts, options_cell)
        present = _present_images(table, r, image_columns, where)
        question = text_cell(questions[r], where(col("question")))
        for text, field in ((question, "question"), *((option, "options") for option in texts)):
            if BARE_IMAGE_TOKEN in text:
                raise DataError(f"{where(col(field))}: the text holds a bare {BARE_IMAGE_TOKEN} token, a "
                                "processor's image token; write <image k> markers to place the pictures")
        category = text_cell(categories[r], where(col("category")), required=False)
        meta = {"images": len(present), CATEGORY_KEY: category}
        rows.append(TableRow(
            id=sample_id,
            question=placed_markers(question, len(present), where(col("question"))),
            options=tuple(placed_markers(option, len(present), where(col("options"))) for option in texts),
            answer=blink_answer_index(answers[r], len(texts), where(col("answer"))),
            kind="mcq",
            hint=None,
            meta=tuple(sorted((k, v) for k, v in meta.items() if v is not None)),
            images=tuple((r, column) for column in present),
            row=r,
        ))
    check_unique_ids(rows, table, col("id"))
    return TableBenchmark(spec, table, rows, options=options, mapping=source.meaning)
