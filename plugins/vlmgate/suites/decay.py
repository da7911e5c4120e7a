"""The visual-decay suite: does the answer survive when the image is blurred away?

Spec §5 (Zhou et al.): an answer that stays the same from the clean image down to a 61 px
blur was not read from the image. Cases: one per model × benchmark × decay family (the
families tagged ``decay``: ``blur_decay``), ids
``{model}-{benchmark}-blur_decay``. Metrics, the primary first:

* ``decay_c``: C, the share of samples whose answer is identical at every blur level
  (answered without looking), with its Wilson interval. Details hold the decay curve:
  E_l per level, E-bar, Acc_l per level (level 0 = clean), Acc|C, and the chance level
  ``mean_i K_i^-(L-1)`` of a uniform guesser over each sample's K_i options.
* ``decay_agreement``: E-bar, the share of (sample, blurred level) answers equal to the
  clean one, a proportion over the 7 levels of every sample with its interval clustered
  by sample (``n`` counts levels x samples, ``n_clusters`` samples).

Level 0 is the engine's shared clean pass; levels 1..L-1 are the family's default grid,
placed by their integer ``level`` param, not by grid order. Accuracy figures use the
samples that have an answer (samples without one still count for C and E).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from vlmgate.errors import ConfigError, DataError
from vlmgate.records import LOWER, PROPORTION, MetricResult, MetricSpec
from vlmgate.suites.base import CaseContext, Suite
from vlmgate.suites.unanswered import UNANSWERED_RATE

if TYPE_CHECKING:
    import numpy as np

    from vlmgate.observations import FamilyObservations

#: Details copied from the answered-subset result when some samples lack an answer.
ACCURACY_FIELDS = ("accuracy_by_level", "accuracy_given_persistent")


def decay_matrix(observations: "FamilyObservations") -> tuple["np.ndarray", list[int]]:
    """``(samples x levels)`` predictions, column 0 clean, then levels 1..L-1 in level order.

    Each perturbed observation is placed by its variant's ``level`` param, so the matrix
    does not depend on the order in which a family lists its grid. Every sample must
    have the same levels, each once, none of them 0 (the clean column).
    """
    import numpy as np

    family = observations.family
    rows, level_sets = [], set()
    for sample_id in observations.answers:  # ids in benchmark order, no image decoded again
        by_level = {}
        for obs in observations.perturbed[sample_id]:
            level = obs.variant.param_dict.get("level")
            if isinstance(level, bool) or not isinstance(level, int) or level < 1 or level in by_level:
                raise ConfigError(
                    f"decay family {family!r}: variant {obs.variant.label} of sample {sample_id!r} needs a "
                    "distinct integer 'level' >= 1 (level 0 is the clean pass); build the grid with at_level()"
                )
            by_level[level] = obs.prediction
        level_sets.add(tuple(sorted(by_level)))
        rows.append([observations.clean[sample_id].prediction, *(by_level[k] for k in sorted(by_level))])
    if len(level_sets) != 1 or not next(iter(level_sets)):
        raise DataError(
            f"decay family {family!r}: samples have blur levels {sorted(level_sets)}; the decay curve needs "
            "the same non-empty set of levels for every sample"
        )
    return np.array(rows, dtype=np.int64), [0, *next(iter(level_sets))]


def decay_results(observations: "FamilyObservations") -> list[MetricResult]:
    """``decay_c`` (C with its decay curve) and ``decay_agreement`` (E-bar)."""
    import numpy as np

    from vlmgate.metrics.decay import decay_agreement, decay_persistence

    family, samples = observations.family, observations.samples
    if not samples:
        raise DataError(f"decay family {family!r}: the benchmark gave no samples; check the benchmark spec "
                        "and --vlmgate-limit")
    matrix, levels = decay_matrix(observations)
    sample_ids = [s.id for s in samples]
    option_counts = np.array([len(s.options) for s in samples])
    answered = np.array([s.answer is not None for s in samples])
    answers = np.array([s.answer if s.answer is not None else -1 for s in samples])
    persistence = decay_persistence(matrix, option_counts, answers if answered.all() else None,
                                    sample_ids=sample_ids, name="decay_c")
    details = dict(persistence.details)
    if not answered.all():
        details.update({field: None for field in ACCURACY_FIELDS})
        if answered.any():
            subset = decay_persistence(matrix[answered], option_counts[answered], answers[answered])
            details.update({field: subset.details[field] for field in ACCURACY_FIELDS})
    kernel_at = {obs.variant.param_dict["level"]: obs.variant.param_dict.get("kernel")
                 for obs in observations.perturbed[samples[0].id]}
    kernels = [kernel_at[level] for level in levels[1:]]
    shared = {"family": family, "level_order": levels}
    c_details = {**details, **shared, "kernels": [1, *kernels] if all(k is not None for k in kernels) else None,
                 "accuracy_n": int(answered.sum()), "chance_formula": "mean_i K_i^-(L-1)"}
    agreement = decay_agreement(matrix, sample_ids=sample_ids, levels=levels[1:], name="decay_agreement")
    return [replace(persistence, details=c_details),
            replace(agreement, details={**agreement.details, **shared})]


class DecaySuite(Suite):
    name = "decay"
    description = "visual dependence: share of answers unchanged under progressive blur (C), per decay family"
    metrics = (
        MetricSpec("decay_c", "share of answers unchanged at every blur level (answered without looking)",
                   PROPORTION, LOWER),
        MetricSpec("decay_agreement", "share of answers equal to the clean one over the blur levels (E-bar)",
                   PROPORTION, LOWER, unit="instance", cluster="sample"),
        UNANSWERED_RATE,
    )
    takes = frozenset({"decay"})

    def evaluate(self, case: CaseContext) -> list[MetricResult]:
        return decay_results(case.engine.family(case.family))
