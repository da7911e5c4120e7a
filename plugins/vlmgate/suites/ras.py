"""The corruption-robustness suite: RAS per ImageNet-C corruption, pooled over severities.

Accuracy under corruption hides *how* a model degrades (spec §2, Sui et al., Bench-C):
staying right while becoming unsure, or turning confidently wrong, are different
failures. This suite judges each corruption family by RAS (``metrics.ras``, "RAS-style,
reconstructed": the paper's exact formula is not public), comparing every sample's option
distribution on the clean image with the one on each corrupted copy.

Cases: one per model × benchmark × corruption (the families tagged ``corruption``), ids
``{model}-{benchmark}-{corruption}``. Metrics, the primary first:

* ``ras``: the mean over (sample, severity) of the per-instance score, pooled over the
  family's five severities, with a bootstrap interval over *samples* (a sample's
  severities are averaged first, so the interval rests on independent images, not on
  five correlated copies of each). Details: the destructive and corrective parts, the
  accuracy change, erroneous-confidence and hesitation counts (over instances), the
  same figures per severity, and how many samples were skipped for lack of an answer.
* ``ras_destructive`` / ``ras_corrective``: the same mean restricted to samples right /
  wrong on the clean image (a sample's clean correctness is one fact, so the two parts
  split the samples), each with its own bootstrap interval over samples.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from vlmgate.errors import DataError
from vlmgate.records import HIGHER, MEAN, MetricResult, MetricSpec, Observation, Sample
from vlmgate.suites.base import CaseContext, Suite

if TYPE_CHECKING:
    import numpy as np

#: Samples judged per benchmark when the run sets no ``--vlmgate-limit`` (see module docstring).
DEFAULT_SAMPLES = 20
#: Per-severity figures copied from ``metrics.ras.ras``'s details into ``per_severity``.
SEVERITY_FIELDS = ("destructive", "corrective", "accuracy_corrupted", "accuracy_change",
                   "erroneous_confidence", "hesitation")


def judged_samples(case: CaseContext) -> tuple[tuple[Sample, ...], str]:
    """The samples the suite judges (the run's limit if set, else the first ``DEFAULT_SAMPLES``) and why."""
    samples = case.samples()
    if case.options.limit is not None:
        return tuple(samples), f"first {case.options.limit} samples (--vlmgate-limit)"
    return samples[:DEFAULT_SAMPLES], f"first {DEFAULT_SAMPLES} samples (the suite's default without --vlmgate-limit)"


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
        return [float(s) for s in grid]


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


def _per_sample_means(units: Mapping[str, float], instances: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Each sample's mean score over its instances (``instances[sample_id]`` are keys of ``units``)."""
    import numpy as np

    return {sample_id: float(np.mean([units[key] for key in keys])) for sample_id, keys in instances.items()}


def _part(name: str, value: float | None, sample_means: dict[str, float], *, rng: "np.random.Generator",
          shared: Mapping[str, Any]) -> MetricResult:
    """A RAS part over the samples in ``sample_means``, bootstrapped over those samples."""
    import numpy as np

    from vlmgate.metrics.stats import bootstrap_interval

    values = np.array(list(sample_means.values()))
    low, high = bootstrap_interval(values, rng=rng)
    return MetricResult(name, math.nan if value is None else float(value), low, high, values.size, dict(shared),
                        kind=MEAN, better=HIGHER, units=sample_means)


def ras_results(observations: CorruptionObservations, case: CaseContext) -> list[MetricResult]:
    """``ras`` (pooled over severities), ``ras_destructive`` and ``ras_corrective``."""
    import numpy as np

    from vlmgate.metrics.ras import DEFINITION, ras
    from vlmgate.metrics.stats import bootstrap_interval

    family, samples = observations.family, observations.samples
    clean, corrupted = observations.clean, observations.corrupted
    instances = {s.id: [f"{s.id}|{obs.variant.label}" for obs in corrupted[s.id]] for s in samples}
    rows = [(clean[s.id].scores, obs.scores, s.answer) for s in samples for obs in corrupted[s.id]]
    clean_rows, corrupted_rows, answers = (list(column) for column in zip(*rows))
    pooled = ras(clean_rows, corrupted_rows, answers, rng=case.rng("bootstrap", "ras-instances", family),
                 sample_ids=[key for s in samples for key in instances[s.id]])
    sample_means = _per_sample_means(pooled.units, instances)
    low, high = bootstrap_interval(np.array(list(sample_means.values())), rng=case.rng("bootstrap", "ras", family))
    severities = observations.severities()
    shared = {"family": family, "definition": DEFINITION,
              "severities": severities, "samples_judged": len(samples), "instances": len(rows),
              "samples_available": observations.available, "skipped_no_answer": len(observations.skipped),
              "interval": "bootstrap over samples (a sample's severities averaged first)",
              "grid": f"{observations.sample_rule} x severities {', '.join(f'{s:g}' for s in severities)}"}
    primary = MetricResult("ras", pooled.value, low, high, len(samples), {
        **pooled.details, **shared,
        "skipped_samples": list(observations.skipped),
        "per_severity": _per_severity(observations, severities, case),
        "lowest_samples": [{"sample": sid, "ras": score}
                           for sid, score in sorted(sample_means.items(), key=lambda item: (item[1], item[0]))[:5]],
    }, kind=MEAN, better=HIGHER, units=sample_means)
    right = {s.id for s in samples if clean[s.id].prediction == s.answer}
    parts = [
        _part("ras_destructive", pooled.details["destructive"],
              {sid: m for sid, m in sample_means.items() if sid in right},
              rng=case.rng("bootstrap", "ras_destructive", family), shared=shared),
        _part("ras_corrective", pooled.details["corrective"],
              {sid: m for sid, m in sample_means.items() if sid not in right},
              rng=case.rng("bootstrap", "ras_corrective", family), shared=shared),
    ]
    return [primary, *parts]


def _per_severity(observations: CorruptionObservations, severities: list[float], case: CaseContext
                  ) -> dict[str, dict[str, Any]]:
    """RAS and its parts at each severity alone, keyed ``"1"`` .. ``"5"``; one sample per row."""
    from vlmgate.metrics.ras import ras

    samples, clean = observations.samples, observations.clean
    figures = {}
    for index, severity in enumerate(severities):
        key = f"{severity:g}"
        result = ras([clean[s.id].scores for s in samples],
                     [observations.corrupted[s.id][index].scores for s in samples],
                     [s.answer for s in samples],
                     rng=case.rng("bootstrap", "ras", observations.family, key))
        figures[key] = {"ras": result.value, "ci_low": result.ci_low, "ci_high": result.ci_high,
                        **{field: result.details[field] for field in SEVERITY_FIELDS}}
    return figures


class RasSuite(Suite):
    name = "ras"
    description = "corruption robustness: RAS (RAS-style, reconstructed) per ImageNet-C corruption, pooled over severities"
    metrics = (
        MetricSpec("ras", "RAS (RAS-style, reconstructed) under a corruption, pooled over its severities", MEAN,
                   HIGHER, lowest=-2.0, highest=1.0),
        MetricSpec("ras_destructive", "RAS over the samples right on the clean image", MEAN, HIGHER,
                   lowest=-2.0, highest=1.0),
        MetricSpec("ras_corrective", "RAS over the samples wrong on the clean image", MEAN, HIGHER,
                   lowest=-2.0, highest=1.0),
    )
    takes = frozenset({"corruption"})
    requires = frozenset({"scores"})

    def evaluate(self, case: CaseContext) -> list[MetricResult]:
        return ras_results(observe_corruption(case), case)
