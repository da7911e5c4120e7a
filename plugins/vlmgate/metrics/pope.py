"""POPE metrics: yes/no hallucination scores and the drift of the Yes−No margin (spec §1).

POPE asks "Is there a {object} in the image?" for present and absent objects. "Yes" is
the positive class, so

* accuracy = (TP + TN) / N; precision = TP / (TP + FP); recall = TP / (TP + FN);
* F1 = 2·P·R / (P + R); yes-rate = (TP + FP) / N (a model biased to "yes" hallucinates).

Each proportion carries a Wilson interval over its own denominator. F1 is not a
proportion of trials, so its interval is a percentile bootstrap over items: each item is
coded as its confusion cell (TP / FP / TN / FN), which keeps prediction and answer paired
when items are resampled, and F1 = 2·TP / (2·TP + FP + FN) is read off the resampled cells
(a resample of true negatives only counts as F1 0). ``details`` give the counts behind it.
Undefined ratios (no predicted or no actual positive) are ``nan``, with a ``nan`` interval.

**Yes and no by text.** Predictions and answers are option indices, and an item's
options may come in either order (loaders write ("Yes", "No"), a third-party loader or a
hand-built ``Sample`` may write ("No", "Yes")), so every function that reads indices takes
each item's option texts and finds "yes" and "no" there (case and surrounding space
ignored); the class codes ``YES`` / ``NO`` are what the confusion counts are built on.

**Drift to prior.** With ``m = s(Yes) − s(No)`` (summed log-likelihoods), a model that
stops reading the image falls back to its prior answer, so its margins move together
towards that prior under a perturbation that destroys evidence (e.g. ``blank``). The
margin shift is ``mean_i (m_i(pert) − m_i(clean))`` with a paired bootstrap interval;
``details`` also hold the share of samples whose margin moved towards "yes" and the
mean |shift|.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from vlmgate.metrics.stats import bootstrap_interval, wilson_interval
from vlmgate.records import HIGHER, LOWER, MEAN, NO_ANSWER, PROPORTION, MetricResult

#: Class codes of a yes/no answer (not option indices: see ``yes_no_codes``); "yes" is positive.
YES, NO = 0, 1
#: The option texts of a yes/no item, lower-cased, in code order.
YES_NO_TEXTS = ("yes", "no")


def yes_no_columns(options: Sequence[str]) -> tuple[int, int] | None:
    """(index of the "yes" option, index of the "no" option) of an item, read from its texts;
    ``None`` when the options are not exactly yes and no (in any order, any case)."""
    texts = [str(option).strip().lower() for option in options]
    if sorted(texts) != sorted(YES_NO_TEXTS):
        return None
    return texts.index(YES_NO_TEXTS[YES]), texts.index(YES_NO_TEXTS[NO])


def _columns(options: Sequence[Sequence[str]], n: int) -> np.ndarray:
    """``(n, 2)`` yes / no option indices of every item; a ``ValueError`` names an item that has none."""
    if len(options) != n:
        raise ValueError(f"{n} items but {len(options)} option lists; pass each item's options, in item order")
    columns = []
    for item, texts in enumerate(options):
        found = yes_no_columns(texts)
        if found is None:
            raise ValueError(f"POPE item {item} has options {tuple(texts)!r}, not yes and no; pass yes/no items only")
        columns.append(found)
    return np.array(columns, dtype=np.int64).reshape(n, 2)


def yes_no_codes(indices: Sequence[int | None], options: Sequence[Sequence[str]]) -> np.ndarray:
    """``YES`` / ``NO`` of each item's option index, read through that item's own option texts."""
    chosen = np.asarray(indices)
    columns = _columns(options, chosen.size)
    for item, (index, texts) in enumerate(zip(chosen.tolist(), options)):
        if not isinstance(index, int) or not 0 <= index < len(texts):
            raise ValueError(f"option {index!r} of item {item} is not one of its {len(texts)} options {tuple(texts)!r}")
    return np.where(chosen == columns[:, YES], YES, NO)


@dataclass(frozen=True)
class Confusion:
    """Counts with "yes" as the positive class."""

    tp: int
    fp: int
    tn: int
    fn: int

    @classmethod
    def of(cls, predictions: Sequence[int], answers: Sequence[int]) -> "Confusion":
        """Counts of ``YES`` / ``NO`` codes (``yes_no_codes`` turns option indices into codes)."""
        return cls.of_cells(confusion_cells(predictions, answers))

    @classmethod
    def of_cells(cls, cells: np.ndarray) -> "Confusion":
        """Counts of the per-item cells of ``confusion_cells``."""
        tp, fp, tn, fn = (int((cells == cell).sum()) for cell in (TP, FP, TN, FN))
        return cls(tp, fp, tn, fn)

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn


#: Confusion cell of one item, the unit the F1 bootstrap resamples.
TP, FP, TN, FN = range(4)


def confusion_cells(predictions: Sequence[int] | np.ndarray, answers: Sequence[int] | np.ndarray) -> np.ndarray:
    """Each item's confusion cell (``TP``, ``FP``, ``TN`` or ``FN``) from ``YES`` / ``NO`` codes."""
    pred, gold = np.asarray(predictions), np.asarray(answers)
    if pred.shape != gold.shape:
        raise ValueError(f"{pred.shape[0]} predictions but {gold.shape[0]} answers")
    if not np.isin(pred, (YES, NO)).all() or not np.isin(gold, (YES, NO)).all():
        raise ValueError("POPE confusion cells take the codes YES (0) and NO (1); turn option indices into codes "
                         "with yes_no_codes(indices, options)")
    return np.where(pred == YES, np.where(gold == YES, TP, FP), np.where(gold == NO, TN, FN))


def f1_of_cells(cells: np.ndarray, axis: int = -1) -> np.ndarray:
    """F1 = 2·TP / (2·TP + FP + FN) along ``axis`` (vectorised for scipy's bootstrap)."""
    tp, fp, fn = ((cells == cell).sum(axis=axis) for cell in (TP, FP, FN))
    denominator = 2 * tp + fp + fn
    return np.divide(2.0 * tp, denominator, out=np.zeros(np.shape(denominator)), where=denominator > 0)


def _ratio(name: str, hits: int, n: int, confusion: Confusion) -> MetricResult:
    low, high = wilson_interval(hits, n)
    counts = {"tp": confusion.tp, "fp": confusion.fp, "tn": confusion.tn, "fn": confusion.fn}
    return MetricResult(name, hits / n if n else float("nan"), low, high, n, counts, kind=PROPORTION,
                        better=LOWER if name.endswith("yes_rate") else HIGHER, count=hits)


def pope_metrics(predictions: Sequence[int], answers: Sequence[int | None], *, options: Sequence[Sequence[str]],
                 rng: np.random.Generator | None, prefix: str = "pope_") -> list[MetricResult]:
    """Accuracy, precision, recall, F1 and yes-rate, in that order.

    ``predictions`` and ``answers`` are option indices into each item's ``options`` (read
    for "yes" and "no" by text). ``rng`` draws F1's bootstrap; ``None`` skips it (F1's
    interval is ``nan``) where only the values are wanted, as for the per-category breakdown.
    """
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions but {len(answers)} answers")
    gold = yes_no_codes(answers, options)
    # No answer (``NO_ANSWER``) is scored as the wrong one: a false negative where the truth
    # is yes, a false positive where it is no, so accuracy, precision, recall and F1 never
    # gain from a reply that cannot be read.
    unanswered = np.array([p == NO_ANSWER for p in predictions], dtype=bool)
    chosen = yes_no_codes([0 if missing else p for p, missing in zip(predictions, unanswered)], options)
    cells = confusion_cells(np.where(unanswered, NO + YES - gold, chosen), gold)
    c = Confusion.of_cells(cells)
    precision = _ratio(f"{prefix}precision", c.tp, c.tp + c.fp, c)
    recall = _ratio(f"{prefix}recall", c.tp, c.tp + c.fn, c)
    p, r = precision.value, recall.value
    f1 = 2 * p * r / (p + r) if np.isfinite(p) and np.isfinite(r) and p + r > 0 else float("nan")
    low, high = (bootstrap_interval(cells, f1_of_cells, rng=rng)
                 if rng is not None and np.isfinite(f1) else (float("nan"), float("nan")))
    return [
        _ratio(f"{prefix}accuracy", c.tp + c.tn, c.n, c),
        precision,
        recall,
        MetricResult(f"{prefix}f1", f1, low, high, c.n,
                     {"interval": "percentile bootstrap over items",
                      "tp": c.tp, "fp": c.fp, "tn": c.tn, "fn": c.fn}, kind=MEAN, better=HIGHER),
        _ratio(f"{prefix}yes_rate", c.tp + c.fp, c.n, c),
    ]


def yes_no_margins(scores: np.ndarray, options: Sequence[Sequence[str]]) -> np.ndarray:
    """``s(Yes) − s(No)`` per row of ``(N, 2)`` option scores, each row in its item's ``options`` order."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != 2:
        raise ValueError(f"yes/no scores must be (N, 2), got {scores.shape}")
    rows, columns = np.arange(scores.shape[0]), _columns(options, scores.shape[0])
    return scores[rows, columns[:, YES]] - scores[rows, columns[:, NO]]


def margin_shift(clean_scores: np.ndarray, perturbed_scores: np.ndarray, *, options: Sequence[Sequence[str]],
                 rng: np.random.Generator, sample_ids: Sequence[str] | None = None,
                 name: str = "pope_margin_shift") -> MetricResult:
    """Mean paired change of the Yes−No margin under a perturbation, with a bootstrap interval."""
    shift = yes_no_margins(perturbed_scores, options) - yes_no_margins(clean_scores, options)
    if shift.size == 0:
        return MetricResult(name, float("nan"), float("nan"), float("nan"), 0, kind=MEAN, better=LOWER)
    low, high = bootstrap_interval(shift, rng=rng)
    details = {
        "towards_yes": float((shift > 0).mean()),
        "mean_abs_shift": float(np.abs(shift).mean()),
    }
    units = {} if sample_ids is None else {sid: float(v) for sid, v in zip(sample_ids, shift)}
    return MetricResult(name, float(shift.mean()), low, high, int(shift.size), details, kind=MEAN, better=LOWER,
                        units=units)
