"""vlmgate's public API: everything a separate distribution needs to extend it, and nothing else.

A perturbation family, a suite, a model adapter or a benchmark loader that imports only from
here keeps working across vlmgate releases with the same ``API_VERSION``; every other module
is internal and may move (the package's folders follow its layers, not its promises). The
extension guide (docs/how-to/extend.md) imports from nowhere else, and a test reads its examples and
fails if one does.

What the contract covers besides the names:

* **Stable unit ids.** A metric's ``units`` are keyed by ids that stay the same across
  releases (a sample id, ``sample id + variant label``): ``vlmgate diff`` and a baseline gate
  pair two runs' units by them, so a suite that renamed its units between releases would
  have nothing to compare. Sample ids come from the benchmark (``Sample.id``), variant labels
  from the family (``Variant.label``); bump a family's ``version`` when its output changes.
* **Statistics.** A suite returns units, their clusters and the metric's kind; the interval
  helpers here (``clustered_mean``, ``clustered_proportion``) compute the interval every
  built-in gate uses (Korn-Graubard for proportions, Hall's t for means, clustered by image),
  so a third-party gate is judged exactly as a built-in one.
* **Entry points.** The catalogues are the entry-point groups named in ``CATALOGUES``; a
  distribution registers its classes and loaders there, as vlmgate registers its own.

Bumped (``API_VERSION``) only when a name here is removed or changes meaning.
"""

from __future__ import annotations

from vlmgate.benchmarks.base import Benchmark, BenchmarkOptions, items_kind
from vlmgate.benchmarks.image_decoding import ImageDecoder
from vlmgate.errors import ConfigError, DataError, ModelError, NotApplicable, VlmgateError
from vlmgate.metrics.clustered import clustered_mean, clustered_proportion
from vlmgate.models.base import (
    GenerateRequest,
    ModelAdapter,
    ModelOptions,
    ProbeRecord,
    ProbeRequest,
    ScoreRequest,
)
from vlmgate.models.offers import offering
from vlmgate.perturbations.base import PerturbationFamily, VariantContext
from vlmgate.records import HIGHER, LOWER, MEAN, PROPORTION, MetricResult, MetricSpec, Sample, Variant
from vlmgate.registry import BENCHMARKS, MODELS, PERTURBATIONS, SUITES
from vlmgate.suites.base import CaseContext, Suite

#: The version of this contract (not of the package): bumped when a name here is removed or
#: changes meaning, never when one is added.
API_VERSION = 1

#: The entry-point groups a distribution registers in, by what they hold.
CATALOGUES = {"perturbation families": PERTURBATIONS, "suites": SUITES, "model adapters": MODELS,
              "benchmark loaders": BENCHMARKS}

__all__ = [
    "API_VERSION", "CATALOGUES",
    # records
    "Sample", "Variant", "MetricResult", "MetricSpec", "HIGHER", "LOWER", "MEAN", "PROPORTION",
    # perturbation families
    "PerturbationFamily", "VariantContext",
    # suites and their statistics
    "Suite", "CaseContext", "clustered_mean", "clustered_proportion",
    # model adapters
    "ModelAdapter", "ModelOptions", "ScoreRequest", "ProbeRequest", "ProbeRecord", "GenerateRequest", "offering",
    # benchmark loaders
    "Benchmark", "BenchmarkOptions", "ImageDecoder", "items_kind",
    # errors a loader or suite raises
    "VlmgateError", "ConfigError", "DataError", "ModelError", "NotApplicable",
]
