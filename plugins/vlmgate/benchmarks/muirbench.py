"""``muirbench:PATH`` — MuirBench (Wang et al., 2024) as its published parquet (``MUIRBENCH/MUIRBENCH``).

The hub holds the test split as shards (``data/test-00000-of-0000Y.parquet``); PATH is one
shard, the folder of shards or a ``datasets`` folder (``tables.read_table``).

Published columns: ``idx``, ``task`` (``Image-Text Matching``, ...), ``image_relation``,
``image_type``, ``question``, ``options`` (a list of strings; a list written as a string is
read too), ``answer`` (a letter), ``image_list`` (a list of the ``Image`` feature's
``{bytes, path}`` structs) and ``counterpart_idx`` (the item's answerable / unanswerable
counterpart). The question, and an option that is a picture, write a bare ``<image>`` token
where a picture goes, one per picture, in ``image_list`` order over the question and then
the options.

An item's pictures are its ``image_list`` in order: the first is ``Sample.image``, the rest
``Sample.more_images``. The k-th ``<image>`` token (question first, then the options in order)
is rewritten ``<image k>`` (``interleaving.marker``), so an adapter shows picture k where
MuirBench places it; fewer tokens than pictures leave the last pictures unplaced, and those
come before the text (``vlmgate.interleaving``). An item of one picture, which is not split,
has its token written ``[image 1]`` inline, as MMMU's loader does. ``task`` is the sample's
category (``base.CATEGORY_KEY``); ``meta`` also holds ``image_relation``, ``image_type``,
``counterpart_idx`` and ``images`` (the number of pictures).

An item and its counterpart are built from one another (the unanswerable variant changes
the question, an option or a picture of the answerable one), so they are not independent:
rows linked by ``counterpart_idx`` share one cluster key (``Sample.cluster``), their ids in
sorted order joined by ``|`` (``a|b`` for a pair; the ids of a longer chain of links, should
one occur, all in one key). A spec that maps ``?cluster=COLUMN`` keys a row by that column
instead where its cell is not empty.

Errors naming the row: more ``<image>`` tokens than pictures, an empty ``image_list`` or an
empty picture in it, a marker naming a picture the item does not have, an answer that is not
the letter of an option, fewer than two options (MuirBench is all multiple choice), two
options that read the same, a repeated ``idx``. Pictures are decoded only when their sample
is used (``tabular.TableBenchmark``), so a broken one is named then, not at load.

Fields and their default columns: ``id`` (``idx``), ``question``, ``options``, ``answer``,
``images`` (``image_list``), ``category`` (``task``), ``image_relation``, ``image_type``,
``counterpart`` (``counterpart_idx``); rename with ``muirbench:PATH?images=pictures``. ``id``,
``question``, ``options``, ``answer`` and ``images`` are required.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from vlmgate.benchmarks.base import CATEGORY_KEY, DEFAULT_OPTIONS, BenchmarkOptions, items_kind
from vlmgate.benchmarks.blink import placed_markers
from vlmgate.benchmarks.columns import parse_source_spec, require_columns
from vlmgate.benchmarks.image_cells import has_image, image_bytes
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
from vlmgate.interleaving import marker

DEFAULT_COLUMNS = {"id": "idx", "question": "question", "options": "options", "answer": "answer",
                   "images": "image_list", "category": "task", "image_relation": "image_relation",
                   "image_type": "image_type", "counterpart": "counterpart_idx"}
REQUIRED = ("id", "question", "options", "answer", "images")
#: Fields kept in ``meta`` under these keys.
META_FIELDS = {"category": CATEGORY_KEY, "image_relation": "image_relation", "image_type": "image_type",
               "counterpart": "counterpart_idx"}
#: Where MuirBench's text places a picture: the next one of ``image_list``.
IMAGE_TOKEN = re.compile(re.escape("<image>"))
#: Joins the ids of linked counterparts into one cluster key.
CLUSTER_JOIN = "|"


class ImageListBenchmark(TableBenchmark):
    """A ``TableBenchmark`` whose rows hold all their pictures in one list cell.

    Each row's ``images`` is the single ``(row, column)`` cell of its list; its pictures are
    decoded one by one when the sample is used, each message naming the cell and the
    picture's place in the list. ``clusters`` (table row -> key) are the loader's derived
    cluster keys; a key the spec declares (``?cluster=COLUMN``) takes precedence.
    """

    def __init__(self, spec: str, table: Table, rows: Sequence[TableRow], *, clusters: Mapping[int, str],
                 options: BenchmarkOptions = DEFAULT_OPTIONS, mapping: Mapping[str, str] | None = None):
        super().__init__(spec, table, rows, options=options, mapping=mapping)
        self._clusters = {**clusters, **self._clusters}

    def images(self, row: TableRow) -> list[Any]:
        pictures = []
        for r, column in row.images:
            where = self.table.where(r, column)
            for k, value in enumerate(self.table.cell(r, column) or ()):
                place = f"{where}, picture {k + 1}"

                def read(value: Any = value, place: str = place) -> bytes:
                    return image_bytes(value, place, self.table.folder)

                pictures.append(self._images.decode((r, column, k), read, place))
        return pictures


def _counted_images(value: Any, where: str) -> int:
    """How many pictures a list cell holds; an empty list, an empty picture or no list is an error."""
    if not isinstance(value, (list, tuple)):
        raise DataError(f"{where}: expected a list of images, got {type(value).__name__}; export the column as "
                        "a list of the Image feature (as the published parquet holds it)")
    if not value:
        raise DataError(f"{where}: the item has no picture (empty list); fill it or drop the row")
    for k, picture in enumerate(value):
        if not has_image(picture):
            raise DataError(f"{where}, picture {k + 1}: empty image; fill it or drop the row")
    return len(value)


def placed_tokens(texts: Sequence[str], n_images: int, where: str) -> list[str]:
    """``texts`` (question, then options) with their k-th ``<image>`` token, counted over all of
    them, written ``<image k>``; more tokens than pictures is an error naming ``where``."""
    tokens = sum(len(IMAGE_TOKEN.findall(text)) for text in texts)
    if tokens > n_images:
        raise DataError(f"{where}: the question and options hold {tokens} <image> tokens but the item has "
                        f"{n_images} picture(s); each token places the next picture of the list: fix the text "
                        "or the pictures")
    count = iter(range(tokens))
    return [IMAGE_TOKEN.sub(lambda _: marker(next(count)), text) for text in texts]


def counterpart_clusters(links: Mapping[int, tuple[str, str | None]]) -> dict[int, str]:
    """Table row -> the cluster key of the rows its ``(id, counterpart id)`` link joins.

    Links join ids into groups (a pair, as MuirBench pairs its items, or a longer chain); a
    group's key is its ids, sorted, joined by ``CLUSTER_JOIN``. A row without a counterpart
    has no key.
    """
    parent: dict[str, str] = {}

    def root(item: str) -> str:
        while parent.setdefault(item, item) != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for own, other in links.values():
        if other is not None:
            parent[root(own)] = root(other)
    members: dict[str, list[str]] = {}
    for item in list(parent):
        members.setdefault(root(item), []).append(item)
    keys = {group: CLUSTER_JOIN.join(sorted(items)) for group, items in members.items()}
    return {r: keys[root(own)] for r, (own, other) in links.items() if other is not None}


@items_kind("image", varied_questions=True, several_images=True)
def load_muirbench_benchmark(rest: str, *, spec: str,
                             options: BenchmarkOptions = DEFAULT_OPTIONS) -> ImageListBenchmark:
    source = parse_source_spec(rest, spec=spec, defaults=DEFAULT_COLUMNS)
    table = read_table(source.path, split=source.split)
    require_columns(source, REQUIRED, table.columns, str(table.source))
    col = source.column
    ids, questions, options_cells, answers = (table.column(col(f)) for f in ("id", "question", "options", "answer"))
    extra = {field: table.column(col(field)) if col(field) in table.columns else [None] * len(table)
             for field in META_FIELDS}
    rows, links = [], {}
    for r in range(len(table)):
        def where(column: str, r: int = r) -> str:
            return table.where(r, column)

        sample_id = text_cell(ids[r], where(col("id")))
        texts = required_options(options_cells[r], where(col("options")), "MuirBench")
        # Presence only, from this row's cell; the pictures are decoded when the sample is used.
        n_images = _counted_images(table.cell(r, col("images")), where(col("images")))
        question, *written = placed_tokens([text_cell(questions[r], where(col("question"))), *texts], n_images,
                                           table.where(r))
        question = placed_markers(question, n_images, where(col("question")))
        written = [placed_markers(option, n_images, where(col("options"))) for option in written]
        def options_cell(_: int, r: int = r) -> str:
            return where(col("options"), r)

        check_distinct(written, options_cell)
        meta: dict[str, Any] = {"images": n_images}
        for field, key in META_FIELDS.items():
            meta[key] = text_cell(extra[field][r], where(col(field)), required=False)
        links[r] = (sample_id, meta["counterpart_idx"])
        rows.append(TableRow(
            id=sample_id,
            question=question,
            options=tuple(written),
            answer=option_letter_index(answers[r], len(written), where(col("answer"))),
            kind="mcq",
            hint=None,
            meta=tuple(sorted((k, v) for k, v in meta.items() if v is not None)),
            images=((r, col("images")),),
            row=r,
        ))
    check_unique_ids(rows, table, col("id"))
    return ImageListBenchmark(spec, table, rows, clusters=counterpart_clusters(links), options=options,
                              mapping=source.meaning)
