"""Visual-dependence metrics under progressive blur, spec §5 (Zhou et al.).

Input is a (samples x levels) matrix of predicted option indices, level 0 being the clean
image and levels 1..L-1 ever stronger blur (``perturbations.blur_decay``). A model that
reads the image changes its answer as the image dissolves; an answer that survives total
blur was available without seeing.

* ``E_l = mean_i 1[y_i(l) = y_i(0)]`` - agreement with the clean answer at level l;
  ``E_bar = mean_{l>=1} E_l``.
* ``C = mean_i prod_{l>=1} 1[y_i(l) = y_i(0)]`` - the share of items whose answer never
  changes (answerable without seeing; the paper finds 20-40 %).
* ``Acc_l`` - accuracy per level; ``Acc|C`` - accuracy on the never-changing items.
* Chance level of C: a uniform guesser over K_i options keeps its answer at all L-1
  blurred levels with probability ``K_i^-(L-1)``; over samples, ``mean_i K_i^-(L-1)``.

For release comparisons the results declare ``better = "lower"`` (an answer that ignores
the blur is the failure this gate looks for) and their ``kind``; with ``sample_ids`` they
carry each outcome as ``units`` for a paired test: one per sample for C (a Wilson
interval: samples are independent), one per (sample, blurred level) for E-bar, which
pools the levels of one image and so gets the interval clustered by image
(``metrics.clustered``): the blurred copies of one image are not independent trials.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from vlmgate.errors import DataError
from vlmgate.metrics.clustered import clustered_proportion
from vlmgate.metrics.stats import wilson_interval
from vlmgate.records import LOWER, PROPORTION, MetricResult


def _predictions(predictions: ArrayLike) -> np.ndarray:
    matrix = np.asarray(predictions)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise DataError(f"decay input: predictions have shape {matrix.shape}; pass a (samples x levels) matrix "
                        "with level 0 = clean and at least one blurred level")
    if matrix.size and not np.issubdtype(matrix.dtype, np.integer):
        raise DataError(f"decay input: predictions have dtype {matrix.dtype}; pass option indices as integers")
    return matrix


def _option_counts(option_counts: ArrayLike, predictions: np.ndarray) -> np.ndarray:
    counts = np.asarray(option_counts)
    if counts.shape != (predictions.shape[0],) or (counts.size and not np.issubdtype(counts.dtype, np.integer)):
        raise DataError(f"decay input: option_counts has shape {counts.shape}, expected one integer per sample "
                        f"({predictions.shape[0]},)")
    bad = np.flatnonzero((counts < 1) | (predictions.max(axis=1, initial=0) >= counts)
                         | (predictions.min(axis=1, initial=0) < 0))
    if bad.size:
        i = bad[0]
        raise DataError(f"decay input sample {i}: predictions {predictions[i].tolist()} are not option indices "
                        f"in [0, {counts[i]}); check the option count or the prediction matrix's sample order")
    return counts


def sample_id_list(sample_ids: Sequence[str], size: int, *, what: str = "decay input", row: str = "row",
                   rows: str = "prediction rows") -> list[str]:
    """``sample_ids`` as strings, one per row of ``size`` rows, each once: a short or repeated
    list would pair outcomes with the wrong samples (or merge two) without a word."""
    ids = [str(sample_id) for sample_id in sample_ids]
    if len(ids) != size:
        raise DataError(f"{what}: {len(ids)} sample ids for {size} {rows}; pass one id per {row}, in {row} order")
    if len(set(ids)) != len(ids):
        repeated = sorted({sample_id for sample_id in ids if ids.count(sample_id) > 1})
        raise DataError(f"{what}: sample ids {', '.join(map(repr, repeated[:3]))} repeat; pass each sample once")
    return ids


def per_sample_units(sample_ids: Sequence[str] | None, values: np.ndarray, cast: type, **wording: str
                     ) -> dict[str, float]:
    """Sample id -> ``cast(value)`` (``{}`` without ids), checked by ``sample_id_list``."""
    if sample_ids is None:
        return {}
    return dict(zip(sample_id_list(sample_ids, values.size, **wording), map(cast, values)))


def _answers(answers: ArrayLike, predictions: np.ndarray) -> np.ndarray:
    values = np.asarray(answers)
    if values.shape != (predictions.shape[0],) or (values.size and not np.issubdtype(values.dtype, np.integer)):
        raise DataError(f"decay input: answers have shape {values.shape}, expected one option index per sample "
                        f"({predictions.shape[0]},)")
    return values


def agreement_by_level(predictions: ArrayLike) -> np.ndarray:
    """``E_l`` for l = 1..L-1: the share of samples answering as on the clean image."""
    matrix = _predictions(predictions)
    return (matrix[:, 1:] == matrix[:, :1]).mean(axis=0)


def persistent(predictions: ArrayLike) -> np.ndarray:
    """Per sample: True when every blurred level gives the clean answer (``C_i = 1``)."""
    matrix = _predictions(predictions)
    return (matrix[:, 1:] == matrix[:, :1]).all(axis=1)


def accuracy_by_level(predictions: ArrayLike, answers: ArrayLike) -> np.ndarray:
    """``Acc_l`` for l = 0..L-1."""
    matrix = _predictions(predictions)
    return (matrix == _answers(answers, matrix)[:, np.newaxis]).mean(axis=0)


def chance_persistence(option_counts: Sequence[int] | np.ndarray, levels: int) -> float:
    """Expected C of a uniform guesser: ``mean_i K_i^-(L-1)`` over ``levels`` = L levels."""
    counts = np.asarray(option_counts, dtype=np.float64)
    if levels < 2 or counts.size == 0 or (counts < 1).any():
        raise DataError(f"decay chance level: need levels >= 2 and option counts >= 1, got levels={levels}, "
                        f"option_counts={counts.tolist()[:5]}")
    return float(np.mean(counts ** -(levels - 1)))


def decay_persistence(
    predictions: ArrayLike,
    option_counts: ArrayLike,
    answers: ArrayLike | None = None,
    *,
    sample_ids: Sequence[str] | None = None,
    name: str = "decay_persistence",
) -> MetricResult:
    """C, the share of answers that survive every blur level, with its Wilson interval.

    ``count`` is the number of persistent samples; ``details`` hold the whole decay curve:
    ``agreement_by_level`` (E_1..E_{L-1}),
    ``mean_agreement`` (E_bar), ``chance`` (the uniform guesser's C), and with answers
    ``accuracy_by_level`` (Acc_0..Acc_{L-1}) and ``accuracy_given_persistent`` (Acc|C,
    None when no answer persists).
    """
    matrix = _predictions(predictions)
    counts = _option_counts(option_counts, matrix)
    n = matrix.shape[0]
    kept = persistent(matrix)
    low, high = wilson_interval(int(kept.sum()), n)
    agreement = agreement_by_level(matrix) if n else np.zeros(0)
    details: dict[str, object] = {
        "levels": int(matrix.shape[1]),
        "agreement_by_level": [float(e) for e in agreement],
        "mean_agreement": float(agreement.mean()) if n else None,
        "chance": chance_persistence(counts, matrix.shape[1]) if n else None,
    }
    if answers is not None:
        truth = _answers(answers, matrix)
        correct = matrix == truth[:, np.newaxis]
        details["accuracy_by_level"] = [float(a) for a in correct.mean(axis=0)] if n else []
        details["accuracy_given_persistent"] = float(correct[kept, 0].mean()) if kept.any() else None
    value = float(kept.mean()) if n else float("nan")
    return MetricResult(name, value, low, high, n, details, kind=PROPORTION, better=LOWER,
                        units=per_sample_units(sample_ids, kept, int), count=int(kept.sum()))


def decay_agreement(
    predictions: ArrayLike,
    *,
    sample_ids: Sequence[str] | None = None,
    levels: Sequence[int] | None = None,
    name: str = "decay_agreement",
) -> MetricResult:
    """E_bar, the share of (sample, blurred level) answers equal to the clean one, clustered by sample.

    ``E_bar = mean_l mean_i 1[y_i(l) = y_i(0)]`` pools the L-1 blurred levels of every
    sample: its units are ``"sample|level=l"`` (``levels`` name the matrix's blurred
    columns, 1..L-1 by default; rows are named by ``sample_ids``, else by index) and its
    interval treats the samples, not the levels, as the independent draws.
    """
    matrix = _predictions(predictions)
    ids = sample_id_list(sample_ids, len(matrix)) if sample_ids is not None else list(map(str, range(len(matrix))))
    columns = list(range(1, matrix.shape[1])) if levels is None else [int(level) for level in levels]
    if len(columns) != matrix.shape[1] - 1:
        raise DataError(f"decay input: {len(columns)} level names for {matrix.shape[1] - 1} blurred columns; "
                        "name every column after the clean one")
    agree = matrix[:, 1:] == matrix[:, :1]
    units, clusters = {}, {}
    for row, sample_id in enumerate(ids):
        for column, level in enumerate(columns):
            key = f"{sample_id}|level={level}"
            units[key], clusters[key] = int(agree[row, column]), sample_id
    details = {"levels": int(matrix.shape[1]),
               "agreement_by_level": [float(e) for e in agreement_by_level(matrix)] if matrix.shape[0] else []}
    return clustered_proportion(name, units, clusters, better=LOWER, details=details)
