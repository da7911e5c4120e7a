"""Robustness Alignment Score (RAS-style, reconstructed), spec §2 (Sui et al., Bench-C).

Accuracy under corruption hides *how* a model degrades: a model that stays right but
becomes unsure, or turns confidently wrong, loses nothing or everything on accuracy
alone. RAS compares, per sample, the option distribution on the clean image ``p_c``
with the one on the corrupted image ``p_k`` (softmax over the option log-likelihood
scores, K options):

* normalised entropy ``H(p) = -sum p log p / log K`` (0 certain, 1 uniform),
* confidence ``conf(p) = max p``, correctness ``y(p) = 1[argmax p = answer]``
  (the first option wins a tie, as in ``Observation.prediction``),
* ``RAS = 1 - |H(p_k) - H(p_c)| - |(conf(p_k) - y(p_k)) - (conf(p_c) - y(p_c))|``.

Identical distributions score 1. The published range is [-2, 1]; with K options the
lowest reachable value is ``-2 + 1/K`` (one distribution one-hot on a wrong option, the
other uniform with the tie resolved to the answer), so -2 is approached as K grows.
The exact formula of the paper is not public: this is the reconstruction of the spec,
and results carry ``"definition": "RAS-style, reconstructed"``.

The mean gets the clustered mean interval of ``metrics.clustered`` (Hall's skewness-
corrected t): with ``clusters`` naming the sample of each row (one sample scored at five
severities), the interval rests on the samples, not on correlated severities. The
destructive part is the mean over samples right on the clean image (what corruption can
only break), the corrective part the mean over samples wrong on the clean image.
"Erroneous confidence" counts samples wrong under corruption *and* more confident than on
the clean image; "hesitation" counts samples right under corruption but less confident.
Results declare ``kind = "mean"`` and ``better = "higher"`` (1 is perfect alignment) for
release comparisons, and with ``sample_ids`` the per-row scores as ``units`` for a paired
test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from vlmgate.errors import DataError
from vlmgate.metrics.clustered import clustered_mean
from vlmgate.records import HIGHER, MetricResult

DEFINITION = "RAS-style, reconstructed"
#: The published range of RAS (the lowest value reachable with K options is -2 + 1/K).
LOWEST, HIGHEST = -2.0, 1.0


def option_probabilities(scores: ArrayLike) -> np.ndarray:
    """Softmax of option log-likelihood scores (``-inf`` allowed for impossible options)."""
    return special.softmax(np.asarray(scores, dtype=np.float64))


def normalised_entropy(probabilities: np.ndarray) -> float:
    """Shannon entropy divided by ``log K``: 0 for a one-hot, 1 for the uniform distribution."""
    return float(special.entr(probabilities).sum() / math.log(probabilities.size))


@dataclass(frozen=True)
class RasTerms:
    """The per-sample quantities RAS is built from, clean (``_c``) and corrupted (``_k``)."""

    entropy_c: float
    entropy_k: float
    confidence_c: float
    confidence_k: float
    correct_c: bool
    correct_k: bool

    @property
    def score(self) -> float:
        """``1 - |dH| - |d(conf - y)|``, in [-2 + 1/K, 1]."""
        calibration_c = self.confidence_c - float(self.correct_c)
        calibration_k = self.confidence_k - float(self.correct_k)
        return 1.0 - abs(self.entropy_k - self.entropy_c) - abs(calibration_k - calibration_c)


def ras_terms(clean_scores: ArrayLike, corrupted_scores: ArrayLike, answer: int) -> RasTerms:
    """RAS terms of one sample from its clean and corrupted option scores."""
    p_c, p_k = option_probabilities(clean_scores), option_probabilities(corrupted_scores)
    return RasTerms(
        entropy_c=normalised_entropy(p_c),
        entropy_k=normalised_entropy(p_k),
        confidence_c=float(p_c.max()),
        confidence_k=float(p_k.max()),
        correct_c=int(np.argmax(p_c)) == answer,
        correct_k=int(np.argmax(p_k)) == answer,
    )


def _validated(
    clean: ArrayLike, corrupted: ArrayLike, answer: object, index: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Sample ``index``'s inputs as arrays, or a ``DataError`` naming the sample and the fix."""
    clean_arr = np.asarray(clean, dtype=np.float64)
    corrupted_arr = np.asarray(corrupted, dtype=np.float64)
    where = f"RAS input sample {index}"
    if clean_arr.ndim != 1 or clean_arr.shape != corrupted_arr.shape:
        raise DataError(f"{where}: clean scores {clean_arr.shape} and corrupted scores {corrupted_arr.shape} "
                        "must be 1-D and of equal length (one score per option, same option order)")
    if clean_arr.size < 2:
        raise DataError(f"{where}: {clean_arr.size} option(s); RAS needs at least 2 options "
                        "(normalised entropy divides by log K); drop single-option items")
    for name, arr in (("clean", clean_arr), ("corrupted", corrupted_arr)):
        if np.isnan(arr).any() or not np.isfinite(arr.max()):
            raise DataError(f"{where}: {name} scores {arr.tolist()} contain NaN or no finite maximum; "
                            "re-score the sample (scores are option log-likelihoods)")
    if isinstance(answer, bool) or not isinstance(answer, (int, np.integer)) or not 0 <= answer < clean_arr.size:
        raise DataError(f"{where}: answer {answer!r} is not an option index in [0, {clean_arr.size}); "
                        "RAS needs ground truth: pass the benchmark's answer indices")
    return clean_arr, corrupted_arr, int(answer)


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def ras(
    clean_scores: Sequence[ArrayLike],
    corrupted_scores: Sequence[ArrayLike],
    answers: Sequence[int | None],
    *,
    sample_ids: Sequence[str] | None = None,
    clusters: Sequence[str] | None = None,
    name: str = "ras",
) -> MetricResult:
    """Mean RAS over rows with its clustered interval, and its decomposition in ``details``.

    ``clean_scores[i]`` and ``corrupted_scores[i]`` are row i's option scores (rows may
    have different option counts); ``answers[i]`` is its correct option index.
    ``sample_ids`` name the rows' units (unique; the result's ``units``), ``clusters`` the
    sample each row belongs to (rows of one sample at several severities are one
    cluster); without them every row is its own.
    """
    if not len(clean_scores) == len(corrupted_scores) == len(answers):
        raise DataError(f"RAS input: {len(clean_scores)} clean, {len(corrupted_scores)} corrupted score rows and "
                        f"{len(answers)} answers; pass one of each per sample, in the same sample order")
    for given, what in ((sample_ids, "sample ids"), (clusters, "clusters")):
        if given is not None and len(given) != len(answers):
            raise DataError(f"RAS input: {len(given)} {what} for {len(answers)} samples; pass one per sample")
    rows = zip(clean_scores, corrupted_scores, answers)
    terms = [ras_terms(*_validated(c, k, a, i)) for i, (c, k, a) in enumerate(rows)]
    n = len(terms)
    scores = np.array([t.score for t in terms])
    correct_c = np.array([t.correct_c for t in terms], dtype=bool)
    correct_k = np.array([t.correct_k for t in terms], dtype=bool)
    confidence_c = np.array([t.confidence_c for t in terms])
    confidence_k = np.array([t.confidence_k for t in terms])
    accuracy_c = _mean_or_none(correct_c.astype(float))
    accuracy_k = _mean_or_none(correct_k.astype(float))
    details: dict[str, object] = {
        "definition": DEFINITION,
        "destructive": _mean_or_none(scores[correct_c]),
        "corrective": _mean_or_none(scores[~correct_c]),
        "n_destructive": int(correct_c.sum()),
        "n_corrective": int((~correct_c).sum()),
        "accuracy_clean": accuracy_c,
        "accuracy_corrupted": accuracy_k,
        "accuracy_change": None if accuracy_c is None or accuracy_k is None else accuracy_k - accuracy_c,
        "erroneous_confidence": int((~correct_k & (confidence_k > confidence_c)).sum()),
        "hesitation": int((correct_k & (confidence_k < confidence_c)).sum()),
    }
    keys = [str(key) for key in sample_ids] if sample_ids is not None else [str(i) for i in range(n)]
    groups = dict(zip(keys, map(str, clusters))) if clusters is not None else {}
    result = clustered_mean(name, dict(zip(keys, map(float, scores))), groups, better=HIGHER, lowest=LOWEST,
                            highest=HIGHEST, details=details)
    return result if sample_ids is not None else replace(result, units={}, clusters={})
