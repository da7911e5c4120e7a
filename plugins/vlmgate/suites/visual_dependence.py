"""The visual-dependence suite: does the model answer differently when the image is gone?

Every perturbation gate asks whether an answer *changes*; a model that never looks at
its image changes none and passes them all (flip rates 0, RAS 1, decay C 1). This suite
asks the opposite question, with the blank image as its control (spec §1's diagnostic;
an all-white image of the same size takes away every visual cue and leaves the prior)
and the blur decay (spec §5) beside it. Cases: one per model × benchmark × family tagged
``blank`` (the built-in ``blank``), ids ``{model}-{benchmark}-blank``. Metrics
(``vlmgate.metrics.visual_dependence``), the primary first:

* ``blank_agreement``: the share of clean answers the blank image leaves unchanged;
* ``prior_persistence``: the share of answers that survive every blur level of
  ``blur_decay`` *and* are the blank-image answer (answered without looking, by both
  controls), with decay C and the answers read from what a blur leaves in the details;
* ``blank_accuracy_gain``: clean minus blank-image accuracy, paired per image.

All three read only the predicted option, so any adapter qualifies. The clean pass,
the blank family and the decay family are the engine's shared passes: with the flip-rate,
POPE and decay suites in the same run they cost no forward pass of their own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

from vlmgate.errors import DataError
from vlmgate.records import HIGHER, LOWER, MEAN, PROPORTION, MetricResult, MetricSpec
from vlmgate.suites.base import CaseContext, Suite
from vlmgate.suites.unanswered import UNANSWERED_RATE

if TYPE_CHECKING:
    from vlmgate.observations import FamilyObservations

#: The decay family judged against each blank control (``perturbations.blur_decay``).
DECAY_FAMILY = "blur_decay"


def control_predictions(observations: "FamilyObservations", sample_ids: Sequence[str]) -> list[int]:
    """Each sample's prediction under the control, in ``sample_ids`` order: one control image per sample."""
    predictions = []
    for sample_id in sample_ids:
        shown = observations.perturbed[sample_id]
        if len(shown) != 1:
            raise DataError(f"control family {observations.family!r} gave {len(shown)} images for sample "
                            f"{sample_id!r}; a blank control replaces each image by exactly one")
        predictions.append(shown[0].prediction)
    return predictions


class VisualDependenceSuite(Suite):
    name = "visual_dependence"
    description = ("visual dependence: answers the blank image leaves unchanged, prior answers that survive "
                   "every blur level, and what the image adds to accuracy (a blind model fails)")
    metrics = (
        MetricSpec("blank_agreement", "share of clean answers unchanged when the image is replaced by a blank "
                   "one (1 = the model ignores its image)", PROPORTION, LOWER),
        MetricSpec("prior_persistence", "share of answers unchanged at every blur level that are also the "
                   "blank-image answer (answered without looking)", PROPORTION, LOWER),
        MetricSpec("blank_accuracy_gain", "clean minus blank-image accuracy, paired per image (what the image "
                   "adds)", MEAN, HIGHER, lowest=-1.0, highest=1.0),
        UNANSWERED_RATE,
    )
    takes = frozenset({"blank"})

    def evaluate(self, case: CaseContext) -> list[MetricResult]:
        import numpy as np

        from vlmgate.metrics.visual_dependence import accuracy_gain, blank_agreement, prior_persistence
        from vlmgate.suites.decay import decay_matrix

        engine = case.engine
        control = engine.family(case.family)
        ids, option_counts = [], []
        for sample in control.samples:  # one decoding pass
            ids.append(sample.id)
            option_counts.append(len(sample.options))
        if not ids:
            raise DataError(f"benchmark {engine.benchmark.spec} gave no samples; check the benchmark spec and "
                            "--vlmgate-limit")
        clean = np.array([control.clean[sid].prediction for sid in ids], dtype=np.int64)
        blank = np.array(control_predictions(control, ids), dtype=np.int64)
        matrix, levels = decay_matrix(engine.family(DECAY_FAMILY))
        shared = {"family": case.family, "decay_family": DECAY_FAMILY, "decay_levels": levels}
        results = [
            blank_agreement(clean, blank, option_counts, sample_ids=ids),
            prior_persistence(clean, blank, matrix[:, 1:], sample_ids=ids),
            accuracy_gain(clean, blank, [control.answers[sid] for sid in ids], sample_ids=ids),
        ]
        return [replace(r, details={**r.details, **shared}) for r in results]
