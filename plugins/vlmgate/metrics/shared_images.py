"""A case's results with the rows that share an image clustered as one image.

A suite clusters the units of a result by the sample they belong to (the instances of
one image, ``MetricResult.clusters``), or not at all where each unit is a sample. Where
several samples show one image (several questions asked of one picture, or a declared
``cluster`` key: ``benchmarks.image_groups``), those samples are not independent either,
so the framework, not each suite, moves every such result's units onto image clusters
and recomputes its interval with the clustered intervals (``metrics.clustered``) on the
metric's declared range. The value, ``n``, ``count``, ``worst`` and units stay as they
were; ``details["shared_images"]`` says how many of its rows shared images and how many
images they are. The diff's paired tests read ``clusters``, so they cluster by image too.

A result is left as it was (same object) when no two of its rows share an image, and so
is every result of a benchmark where no image is shared. A result that cannot be
re-clustered (no units, as for an interval over a confusion table; units that are not
the benchmark's samples; a value that is not the mean of its units) keeps its interval
and clusters, and on a benchmark with shared images says in ``details["shared_images"]``
that its interval counts them as independent rows, so it never claims a clustering it
does not have (unless its unit is the whole case, as the minimal-failure search's is).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Iterable, Sequence

from vlmgate.benchmarks.image_groups import ImageGroups, image_groups
from vlmgate.errors import NotApplicable
from vlmgate.metrics.clustered import Clustered, clustered_mean, clustered_proportion
from vlmgate.records import PROPORTION, MetricResult, MetricSpec, Sample

#: The details key every result touched here carries.
SHARED_IMAGES = "shared_images"
#: What a result that could not be re-clustered says of its interval.
NOT_RECLUSTERED = ("this interval treats rows that share an image as independent (the metric gives no units "
                   "on the benchmark's samples whose mean is its value, so they could not be clustered by "
                   "image): it may be narrower than the images support")
#: A metric's unit (``MetricSpec.unit``) that is the whole case, not rows: nothing to say of images.
WHOLE_CASE = "case"
#: Details a re-clustered interval replaces (its method and design effect).
_INTERVAL_DETAILS = ("interval", "design_effect")


def rows_of(result: MetricResult) -> dict[str, str]:
    """Unit -> the row (sample id) it belongs to: its cluster, or the unit itself."""
    return {unit: result.clusters.get(unit, unit) for unit in result.units}


def recluster(result: MetricResult, groups: ImageGroups, spec: MetricSpec) -> MetricResult | None:
    """``result`` with its units clustered by image; ``result`` itself when none of its rows
    share an image; ``None`` when it cannot be re-clustered (module docstring)."""
    rows = rows_of(result)
    if not rows or any(row not in groups.cluster_of for row in rows.values()):
        return None
    images = {unit: groups.cluster_of[row] for unit, row in rows.items()}
    if len(set(images.values())) == len(set(rows.values())):
        return result
    pooled = Clustered.of_units(result.units, result.clusters)
    if result.n != pooled.n or not math.isclose(result.value, pooled.value, rel_tol=1e-9, abs_tol=1e-12):
        return None
    details = {key: value for key, value in result.details.items() if key not in _INTERVAL_DETAILS}
    details[SHARED_IMAGES] = {**groups.summary(rows.values()), "reclustered": True}
    if result.kind == PROPORTION:
        made = clustered_proportion(result.name, result.units, images, better=result.better, details=details)
    else:
        made = clustered_mean(result.name, result.units, images, better=result.better, lowest=spec.lowest,
                              highest=spec.highest, details=details)
    return replace(made, value=result.value, n=result.n, count=result.count, worst=result.worst)


def cluster_by_image(results: Sequence[MetricResult], samples: Callable[[], Iterable[Sample]],
                     spec_of: Callable[[str], MetricSpec]) -> list[MetricResult]:
    """``results`` with rows that share an image clustered as one (module docstring).

    ``samples`` gives the case's samples (grouped once per sample set, see
    ``benchmarks.image_groups``); ``spec_of`` a metric's declaration (its range).
    A benchmark without samples of its own (text items) leaves the results as they are.
    """
    results = list(results)
    if not results:
        return results
    try:
        groups = image_groups(samples())
    except NotApplicable:
        return results
    if not groups.shared:
        return results
    out = []
    for result in results:
        spec = spec_of(result.name)
        made = recluster(result, groups, spec)
        if made is None and spec.unit != WHOLE_CASE:
            made = _said_not_clustered(result, groups)
        out.append(made if made is not None else result)
    return out


def _said_not_clustered(result: MetricResult, groups: ImageGroups) -> MetricResult:
    said: dict[str, Any] = {**groups.summary(), "reclustered": False, "note": NOT_RECLUSTERED}
    return replace(result, details={**result.details, SHARED_IMAGES: said})
