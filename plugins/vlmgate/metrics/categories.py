"""A metric's value per category of its samples: where a release got worse, not only whether.

Published multiple-choice sets label every item (VLMEvalKit's ``category`` column,
POPE's three settings), and a flip rate that holds overall can hide one category that
doubled. So a result whose units belong to samples of two or more categories carries
``details["by_category"]``: per category, the same statistic over that category's units
alone, with the same kind of interval (clustered as the whole is, so instances of one image
still count as one), and ``n``. These figures describe; they are not gates and enter no
multiplicity family: the gate is the whole result.

A unit is a sample id (sample-level metrics) or ``sample|variant`` (instance-level ones,
``metrics.flips.FlipPair.unit``); units that name no sample of the benchmark (text items)
leave the result as it is.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from vlmgate.metrics.clustered import clustered_mean, clustered_proportion
from vlmgate.records import PROPORTION, MetricResult, MetricSpec

#: Where a result carries its split.
DETAILS_KEY = "by_category"


def unit_sample(unit: str, categories: Mapping[str, str | None]) -> str | None:
    """The sample a unit belongs to: the unit itself, else the part before its first ``|``."""
    if unit in categories:
        return unit
    sample, sep, _ = unit.partition("|")
    return sample if sep and sample in categories else None


def split_by_category(result: MetricResult, spec: MetricSpec,
                      categories: Mapping[str, str | None]) -> MetricResult:
    """``result`` with ``details["by_category"]`` when its units span two or more categories."""
    if not result.units or not categories:
        return result
    grouped: dict[str, dict[str, float]] = {}
    for unit, value in result.units.items():
        sample = unit_sample(unit, categories)
        category = categories.get(sample) if sample is not None else None
        if category is None:
            return result  # a unit outside the categories: a split would silently leave it out
        grouped.setdefault(category, {})[unit] = value
    if len(grouped) < 2:
        return result
    split: dict[str, Any] = {}
    for category in sorted(grouped):
        units = grouped[category]
        clusters = {unit: result.clusters.get(unit, unit) for unit in units}
        part = (clustered_proportion(result.name, units, clusters, better=result.better)
                if result.kind == PROPORTION else
                clustered_mean(result.name, units, clusters, better=result.better,
                               lowest=spec.lowest, highest=spec.highest))
        split[category] = {"value": part.value, "ci_low": part.ci_low, "ci_high": part.ci_high, "n": part.n,
                           "clusters": part.n_clusters if result.clusters else part.n}
    return replace(result, details={**result.details, DETAILS_KEY: split})
