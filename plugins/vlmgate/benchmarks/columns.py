"""Where a benchmark's fields live in a published table: the column mapping of a spec.

Public benchmarks circulate in several exports of the same data (VLMEvalKit TSV, the
lmms-lab parquet, a team's own re-export) whose column names differ. A loader knows the
*fields* it needs (``question``, ``answer``, ...) and their commonly published column
names; the user renames any of them in the spec, after the path, as a query string::

    pope:/data/pope.parquet?question=prompt&answer=label
    seedbench:/data/SEEDBench_IMG.tsv?category=question_type
    mmmu:/data/mmmu_val_saved?split=validation

``split`` is not a column: it picks the split of a ``datasets`` folder that holds several.
``cluster`` names a column that no loader reads by default: the key (a video or document
id) of rows that are not independent though their images differ, so that rows with the
same key are one cluster in every clustered statistic (``benchmarks.image_groups``)::

    seedbench:/data/SEEDBench_video.tsv?cluster=video_id

An unknown field is an error that lists the fields the loader knows, so a typo never
silently falls back to the default column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from vlmgate.errors import DataError
from vlmgate.registry import unknown_name_message

#: Query key that selects a split instead of renaming a column.
SPLIT_KEY = "split"
#: Field of every table loader that is read only when the spec maps it to a column.
CLUSTER_FIELD = "cluster"


@dataclass(frozen=True)
class SourceSpec:
    """The path of a benchmark spec, its field -> column mapping, and the chosen split."""

    spec: str
    path: Path
    columns: tuple[tuple[str, str], ...]
    split: str | None = None
    #: Switches the loader takes besides columns (``mmmu:PATH?stitch=1``), as given.
    switches: tuple[tuple[str, str], ...] = ()

    def switch(self, name: str) -> bool:
        """Whether switch ``name`` is on (``1``/``true``/``yes``); off when not given."""
        return dict(self.switches).get(name, "0").lower() in ("1", "true", "yes")

    @property
    def meaning(self) -> dict[str, str]:
        """Everything in the spec that decides what the rows mean: the columns and the switches
        (a benchmark's fingerprint covers it)."""
        return {**self.column_map, **{f"?{name}": value for name, value in self.switches}}

    @property
    def column_map(self) -> dict[str, str]:
        return dict(self.columns)

    def column(self, field: str) -> str:
        return self.column_map[field]


def parse_source_spec(rest: str, *, spec: str, defaults: Mapping[str, str],
                      switches: Sequence[str] = ()) -> SourceSpec:
    """Split ``PATH[?field=column&...]`` and apply the overrides to ``defaults``; ``switches``
    are the loader's other query keys (``stitch=1``), taking ``1``/``0`` (or true/false, yes/no).

    The query starts at the last ``?`` so that paths keep any ``?`` of their own only when
    no mapping follows; write a path with a ``?`` as ``PATH?`` (empty query).
    """
    path_text, sep, query = rest.rpartition("?")
    if not sep:
        path_text, query = rest, ""
    if not path_text:
        raise DataError(f"benchmark spec {spec!r} has no path before '?'; write SCHEME:PATH?field=column")
    columns = dict(defaults)
    split = None
    given: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        field, eq, column = item.partition("=")
        if not eq or not field or not column:
            raise DataError(
                f"benchmark spec {spec!r}: column mapping {item!r} is not field=column; "
                f"write e.g. ?{next(iter(defaults))}=my_column"
            )
        if field == SPLIT_KEY:
            split = column
        elif field in switches:
            if column.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise DataError(f"benchmark spec {spec!r}: ?{field}={column} is not on or off; write ?{field}=1 or "
                                f"?{field}=0")
            given[field] = column
        elif field in defaults or field == CLUSTER_FIELD:
            columns[field] = column
        else:
            raise DataError(
                f"benchmark spec {spec!r}: "
                + unknown_name_message("column field", field,
                                       sorted({*defaults, SPLIT_KEY, CLUSTER_FIELD, *switches}))
            )
    return SourceSpec(spec, Path(path_text).expanduser(), tuple(sorted(columns.items())), split,
                      tuple(sorted(given.items())))


def require_columns(source: SourceSpec, fields: Sequence[str], available: Sequence[str], where: str) -> None:
    """Fail unless every field in ``fields`` maps to a column of the table, naming the fix."""
    missing = [(field, source.column(field)) for field in fields if source.column(field) not in available]
    if missing:
        described = ", ".join(f"{field!r} (column {column!r})" for field, column in missing)
        example = "&".join(f"{field}=COLUMN" for field, _ in missing)
        raise DataError(
            f"{where}: missing column(s) for {described}; the table has {', '.join(available)}. "
            f"Map them in the spec: {source.spec.partition('?')[0]}?{example}"
        )
