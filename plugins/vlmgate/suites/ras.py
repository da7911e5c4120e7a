"""The corruption-robustness suite: RAS per ImageNet-C corruption, pooled over severities.

Accuracy under corruption hides *how* a model degrades (spec §2, Sui et al., Bench-C):
staying right while becoming unsure, or turning confidently wrong, are different
failures. This suite judges each corruption family by RAS (``metrics.ras``, "RAS-style,
reconstructed": the paper's exact formula is not public), comparing every sample's option
distribution on the clean image with the one on each corrupted copy.

Cases: one per model × benchmark × corruption (the families tagged ``corruption``), ids
``{model}-{benchmark}-{corruption}``. Metrics, the primary first:

* ``ras``: the mean over (sample, severity) of the per-instance score, pooled over the
  family's five severities. Its units are the instances (``sample|variant``), clustered
  by sample, and its interval is the clustered mean interval (``metrics.clustered``), so
  it rests on independent images, not on five correlated copies of each; ``n`` counts
  instances, ``n_clusters`` samples. Details: the destructive and corrective parts, the
  accuracy change, erroneous-confidence and hesitation counts (over instances), the
  same figures per severity, and how many samples were skipped for lack of an answer.
* ``ras_destructive`` / ``ras_corrective``: the same mean restricted to samples right /
  wrong on the clean image (a sample's clean correctness is one fact, so the two parts
  split the samples, with all their severities), each with its own clustered interval.

Option probabilities are the softmax of the observation's option scores; the ground
truth is ``Sample.answer``. Samples without one cannot be judged and are skipped.

**Default grid.** A corruption case costs five forward passes per sample, nineteen cases
95 per sample: three times the whole flip-rate suite. Without ``--vlmgate-limit`` the suite
therefore judges the first ``DEFAULT_SAMPLES`` samples of each benchmark at all five
severities (the paper's pooling is kept; only the sample count, i.e. the interval width,
shrinks). An explicit ``--vlmgate-limit N`` replaces that default: the suite then judges
the first N samples like every other suite, so ``--vlmgate-limit`` at or above the
benchmark's size runs the full grid. Every result records the grid in its details.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

from vlmgate.errors import DataError
from vlmgate.records import HIGHER, MEAN, MetricResult, MetricSpec, Observation, Sample
from vlmgate.suites.base import CaseContext, Suite
from vlmgate.suites.sample_budget import SampleBudget

#: Samples judged per benchmark when the run sets no ``--vlmgate-limit`` (see module docstring).
DEFAULT_SAMPLES = 20
#: Per-severity figures copied from ``metrics.ras.ras``'s details into ``per_severity``.
SEVERITY_FIELDS = ("destructive", "corrective", "accuracy_corrupted", "accuracy_change",
                   "erroneous_confidence", "hesitation")


BUDGET = SampleBudget(DEFAULT_SAMPLES)


def judged_samples(case: CaseContext) -> tuple[tuple[Sample, ...], str]:
    """The samples the suite judges (the run's limit if set, else the first ``DEFAULT_SAMPLES``) and why."""
    samples, first = case.samples(), BUDGET.first(case.options)
    return tuple(samples if first is None else samples[:first]), BUDGET.rule(case.options)


@dataclass(frozen=True)
class CorruptionObservations:
    """One corruption family's observations on the judged samples that have an answer.

    ``corrupted[sample_id]`` follows the family's default grid (mildest severity first);
    ``skipped`` names the judged samples without ground truth, which RAS cannot score;
    ``sample_rule`` says which samples were judged and why (recorded in the details).
    """

    family: str
    samples: tuple[Sample, ...]
    skipped: tuple[str, ...]
    available: int
    sample_rule: str
    clean: Mapping[str, Observation]
    corrupted: Mapping[str, tuple[Observation, ...]]

    def severities(self) -> list[float]:
        """The severities of the grid, in grid order (every sample shares them)."""
        grids = {tuple(obs.variant.param_dict.get("severity") for obs in self.corrupted[s.id])
                 for s in self.samples}
        if len(grids) > 1:
            raise DataError(
                f"corruption {self.family!r}: samples have different severity grids {sorted(grids)}; "
                "a family's variants() must return the same severities for every sample"
            )
        grid = next(iter(grids), ())
        if any(isinstance(s, bool) or not isinstance(s, (int, float)) for s in grid):
            raise DataError(
                f"corruption {self.family!r}: variants lack a numeric 'severity' param ({grid}); "
                "a family in the ras suite must build its variants with a severity"
            )
        return [float(s) for s in grid if isinstance(s, (int, float))]  # every one, as checked above


def observe_corruption(case: CaseContext) -> CorruptionObservations:
    """Clean and corrupted observations of the case's corruption on the judged samples.

    The engine's own ``family`` scores every sample of the benchmark; this scores only
    the judged ones, on the engine's own grid (``Engine.variant_grid``), and observations
    go through the engine's memo, so a case shares every forward pass with any other case
    that asks for the same inputs.
    """
    engine, family = case.engine, case.family
    judged, sample_rule = judged_samples(case)
    samples = tuple(s for s in judged if s.answer is not None)
    skipped = tuple(s.id for s in judged if s.answer is None)
    if not samples:
        raise DataError(
            f"benchmark {engine.benchmark.spec}: none of the {len(judged)} judged samples has an answer, "
            "and RAS needs ground truth; add answers to the manifest or deselect with -m 'not ras'"
        )
    clean = engine.clean()  # the shared clean pass: the same batches whichever suite runs first
    grid = engine.variant_grid(family, samples)
    observed = iter(engine.observe([(s, v) for s in samples for v in grid[s.id]]))
    corrupted = {s.id: tuple(next(observed) for _ in grid[s.id]) for s in samples}
    return CorruptionObservations(family, samples, skipped, len(engine.samples()), sample_rule, clean, corrupted)


def _per_sample_means(result: MetricResult) -> dict[str, float]:
    """Each sample's mean score over its instances (``result.clusters`` names their samples)."""
    grouped: dict[str, list[float]] = {}
    for key, score in result.units.items():
        grouped.setdefault(result.clusters[key], []).append(score)
    return {sample_id: math.fsum(scores) / len(scores) for sample_id, scores in grouped.items()}


def _part(name: str, pooled: MetricResult, samples: set[str], shared: Mapping[str, Any]) -> MetricResult:
    """RAS over the instances of ``samples``, with its interval clustered by sample."""
    from vlmgate.metrics.clustered import clustered_mean
    from vlmgate.metrics.ras import HIGHEST, LOWEST

    units = {key: score for key, score in pooled.units.items() if pooled.clusters[key] in samples}
    return clustered_mean(name, units, {key: pooled.clusters[key] for key in units}, better=HIGHER,
                          lowest=LOWEST, highest=HIGHEST, details=shared)


def ras_results(observations: CorruptionObservations) -> list[MetricResult]:
    """``ras`` (pooled over severities), ``ras_destructive`` and ``ras_corrective``."""
    from vlmgate.metrics.ras import DEFINITION, ras

    family, samples = observations.family, observations.samples
    clean, corrupted = observations.clean, observations.corrupted
    rows = [(s, obs) for s in samples for obs in corrupted[s.id]]
    pooled = ras([clean[s.id].scores for s, _ in rows], [obs.scores for _, obs in rows], [s.answer for s, _ in rows],
                 sample_ids=[f"{s.id}|{obs.variant.label}" for s, obs in rows], clusters=[s.id for s, _ in rows])
    sample_means = _per_sample_means(pooled)
    severities = observations.severities()
    shared = {"family": family, "definition": DEFINITION,
              "severities": severities, "samples_judged": len(samples), "instances": len(rows),
              "samples_available": observations.available, "skipped_no_answer": len(observations.skipped),
              "grid": f"{observations.sample_rule} x severities {', '.join(f'{s:g}' for s in severities)}"}
    primary = replace(pooled, details={
        **pooled.details, **shared,
        "skipped_samples": list(observations.skipped),
        "per_severity": _per_severity(observations, severities),
        "lowest_samples": [{"sample": sid, "ras": score}
                           for sid, score in sorted(sample_means.items(), key=lambda item: (item[1], item[0]))[:5]],
    })
    right = {s.id for s in samples if clean[s.id].prediction == s.answer}
    wrong = {s.id for s in samples} - right
    return [primary, _part("ras_destructive", pooled, right, shared), _part("ras_corrective", pooled, wrong, shared)]


def _per_severity(observations: CorruptionObservations, severities: list[float]) -> dict[str, dict[str, Any]]:
    """RAS and its parts at each severity alone, keyed ``"1"`` .. ``"5"``; one sample per row."""
    from vlmgate.metrics.ras import ras

    samples, clean = observations.samples, observations.clean
    figures = {}
    for index, severity in enumerate(severities):
        key = f"{severity:g}"
        result = ras([clean[s.id].scores for s in samples],
                     [observations.corrupted[s.id][index].scores for s in samples],
                     [s.answer for s in samples])
        figures[key] = {"ras": result.value, "ci_low": result.ci_low, "ci_high": result.ci_high,
                        **{field: result.details[field] for field in SEVERITY_FIELDS}}
    return figures


class RasSuite(Suite):
    name = "ras"
    description = ("corruption robustness: RAS (RAS-style, reconstructed) per ImageNet-C corruption, "
                   "pooled over severities")
    metrics = (
        MetricSpec("ras", "RAS (RAS-style, reconstructed) under a corruption, pooled over its severities", MEAN,
                   HIGHER, lowest=-2.0, highest=1.0, unit="instance", cluster="sample"),
        MetricSpec("ras_destructive", "RAS over the samples right on the clean image", MEAN, HIGHER,
                   lowest=-2.0, highest=1.0, unit="instance", cluster="sample"),
        MetricSpec("ras_corrective", "RAS over the samples wrong on the clean image", MEAN, HIGHER,
                   lowest=-2.0, highest=1.0, unit="instance", cluster="sample"),
    )
    takes = frozenset({"corruption"})
    requires = frozenset({"scores"})

    def evaluate(self, case: CaseContext) -> list[MetricResult]:
        return ras_results(observe_corruption(case))
