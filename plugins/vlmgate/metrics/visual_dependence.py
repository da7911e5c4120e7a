"""Visual dependence: does a model's answer need its image? (spec §1's blank control with §5's decay)

A model that ignores its image answers every item exactly as it would with no image at
all. Such a model is "robust" by every perturbation metric (nothing it does not look at
can change its answer: flip rates 0, RAS 1, decay C 1), so robustness is only evidence
beside a measure of whether the model looks. The blank image (all white, same size) is
that measure's control: it removes every piece of visual evidence and leaves the
question, so its answer is the model's *prior*. Per sample i, with clean prediction c_i,
blank-image prediction b_i, predictions y_i(l) at the blur levels l = 1..L-1 and answer a_i:

* **agreement** ``A = mean_i 1[c_i = b_i]``: the share of answers the image did not
  decide. A model that ignores the image has A = 1 on any benchmark. A model that reads it
  agrees with its (fixed) prior only where the image's answer happens to be the prior's:
  on items whose answers are spread over K options, about 1/K of them (``chance`` in the
  details is the uniform guesser's ``mean_i 1/K_i``). Wilson interval.
* **prior persistence** ``P = mean_i 1[c_i = b_i and y_i(l) = c_i for every l]``: spec §5's
  C ("answerable without seeing") with the blank control separating the two reasons an
  answer survives total blur: it is the prior (counted here), or it was read from what a
  blur leaves, such as colour and position (``persistent_not_prior`` in the details, not
  counted). Wilson interval.
* **accuracy gain** ``G = acc(clean) - acc(blank)`` over the answered samples, paired
  per image: unit ``1[c_i = a_i] - 1[b_i = a_i]``. A model that ignores the image gains
  exactly nothing; one that reads it gains what the image is worth. The interval is
  Newcombe's square-and-add interval for a difference of paired proportions (Newcombe
  1998, Stat Med 17:2635, with its continuity-adjusted correlation): a percentile
  bootstrap of a table without discordant pairs would claim a zero-width interval.

Predictions are option indices; every function validates its arrays and names the fix.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from vlmgate.errors import DataError
from vlmgate.metrics.decay import per_sample_units, sample_id_list
from vlmgate.metrics.flips import proportion
from vlmgate.metrics.stats import Z95, wilson_interval
from vlmgate.records import HIGHER, LOWER, MEAN, MetricResult


def _indices(values: ArrayLike, what: str, n: int | None = None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or (n is not None and array.size != n) or (array.size and not np.issubdtype(array.dtype,
                                                                                                   np.integer)):
        expected = "one integer option index per sample" + ("" if n is None else f" ({n},)")
        raise DataError(f"visual dependence input: {what} have shape {array.shape} and dtype {array.dtype}; "
                        f"pass {expected}, in sample order")
    return array


#: How this module's inputs are named in a message about their sample ids.
_WORDING = {"what": "visual dependence input", "row": "sample", "rows": "samples"}


def _proportion(name: str, hits: np.ndarray, better: str, details: dict[str, object],
                sample_ids: Sequence[str] | None) -> MetricResult:
    return proportion(name, int(hits.sum()), int(hits.size), better=better, details=details,
                      units=per_sample_units(sample_ids, hits, int, **_WORDING))


def blank_agreement(clean: ArrayLike, blank: ArrayLike, option_counts: ArrayLike, *,
                    sample_ids: Sequence[str] | None = None, name: str = "blank_agreement") -> MetricResult:
    """A: the share of samples whose clean answer is the blank-image answer, with its Wilson interval.

    ``details``: ``chance`` (a uniform guesser's agreement, ``mean_i 1/K_i``) and an
    ``explanation`` a failing gate prints.
    """
    clean = _indices(clean, "clean predictions")
    blank = _indices(blank, "blank predictions", clean.size)
    counts = _indices(option_counts, "option counts", clean.size)
    agree = clean == blank
    chance = float(np.mean(1.0 / counts)) if counts.size else None
    details: dict[str, object] = {
        "chance": chance,
        "explanation": [
            f"the clean answer equals the answer to an all-white image on {int(agree.sum())} of {agree.size} samples "
            "(a model that answers with the image as without it agrees on every one"
            + ("" if chance is None else f"; a uniform guesser on {chance:.2f} of them") + "): these answers come from "
            "the question, not the image"],
    }
    return _proportion(name, agree, LOWER, details, sample_ids)


def prior_persistence(clean: ArrayLike, blank: ArrayLike, blurred: ArrayLike, *,
                      sample_ids: Sequence[str] | None = None, name: str = "prior_persistence") -> MetricResult:
    """P: the share of samples whose answer survives every blur level and is the blank-image answer.

    ``blurred`` is the ``(samples x blurred levels)`` prediction matrix (level 0, the clean
    image, excluded). ``details``: ``decay_c`` (spec §5's C) and ``persistent_not_prior``
    (answers that survive the blur but not the blank image: read from what a blur leaves).
    """
    clean = _indices(clean, "clean predictions")
    blank = _indices(blank, "blank predictions", clean.size)
    levels = np.asarray(blurred)
    if levels.ndim != 2 or levels.shape[0] != clean.size or levels.shape[1] < 1:
        raise DataError(f"visual dependence input: blurred predictions have shape {levels.shape}; pass a "
                        f"({clean.size} samples x blurred levels) matrix without the clean column")
    persist = (levels == clean[:, np.newaxis]).all(axis=1)
    prior = persist & (clean == blank)
    n = max(clean.size, 1)
    details: dict[str, object] = {"blurred_levels": int(levels.shape[1]), "decay_c": float(persist.sum() / n),
                                  "persistent_not_prior": float((persist & ~prior).sum() / n)}
    return _proportion(name, prior, LOWER, details, sample_ids)


def paired_difference_interval(both: int, first_only: int, second_only: int, neither: int,
                               z: float = Z95) -> tuple[float, float]:
    """Newcombe's square-and-add interval for ``p1 - p2`` of paired proportions.

    The 2 x 2 table of the pairs: ``both`` right, right in the ``first_only``, in the
    ``second_only``, in ``neither``. Wilson intervals of ``p1`` and ``p2`` are combined with
    the pairs' correlation, its cross-product reduced by n/2 when positive (Newcombe's
    continuity adjustment). ``n = 0`` gives ``(nan, nan)``.
    """
    n = both + first_only + second_only + neither
    if n == 0:
        return math.nan, math.nan
    first, second = both + first_only, both + second_only
    p1, p2 = first / n, second / n
    l1, u1 = wilson_interval(first, n, z)
    l2, u2 = wilson_interval(second, n, z)
    margins = first * (n - first) * second * (n - second)
    cross = both * neither - first_only * second_only
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    else:
        phi = (cross - n / 2 if cross > n / 2 else cross) / math.sqrt(margins)
    below = (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)
    above = (p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)
    return max(-1.0, p1 - p2 - math.sqrt(max(below, 0.0))), min(1.0, p1 - p2 + math.sqrt(max(above, 0.0)))


def accuracy_gain(clean: ArrayLike, blank: ArrayLike, answers: Sequence[int | None], *,
                  sample_ids: Sequence[str] | None = None, name: str = "blank_accuracy_gain") -> MetricResult:
    """G: clean minus blank-image accuracy on the answered samples, paired, with Newcombe's interval.

    ``units`` hold each answered sample's ``1[clean right] - 1[blank right]``; ``details``
    both accuracies and the four cells of the paired table.
    """
    clean = _indices(clean, "clean predictions")
    blank = _indices(blank, "blank predictions", clean.size)
    if len(answers) != clean.size:
        raise DataError(f"visual dependence input: {len(answers)} answers for {clean.size} samples; pass one "
                        "answer (an option index, or None) per sample, in sample order")
    judged = np.array([a is not None for a in answers], dtype=bool)
    truth = np.array([-1 if a is None else a for a in answers], dtype=np.int64)
    right_clean, right_blank = (clean == truth)[judged], (blank == truth)[judged]
    helps = int((right_clean & ~right_blank).sum())
    hurts = int((~right_clean & right_blank).sum())
    both = int((right_clean & right_blank).sum())
    n = int(judged.sum())
    low, high = paired_difference_interval(both, helps, hurts, n - both - helps - hurts)
    details = {"interval": "Newcombe square-and-add, paired",
               "accuracy_clean": float(right_clean.mean()) if n else None,
               "accuracy_blank": float(right_blank.mean()) if n else None, "image_helps": helps,
               "image_hurts": hurts, "both_right": both, "both_wrong": n - both - helps - hurts,
               "unanswered": int((~judged).sum())}  # samples without an answer: not in n
    per_sample = right_clean.astype(np.float64) - right_blank.astype(np.float64)
    ids = (None if sample_ids is None else
           [sid for sid, keep in zip(sample_id_list(sample_ids, judged.size, **_WORDING), judged) if keep])
    return MetricResult(name, (helps - hurts) / n if n else float("nan"), low, high, n, details, kind=MEAN,
                        better=HIGHER, units=per_sample_units(ids, per_sample, float, **_WORDING))
