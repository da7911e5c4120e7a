"""Cross-modal consistency (spec §3, REST / REST+): pure functions over per-item outcomes.

For every item the model answered three forms (``MODALITIES``: text, image, mixed); an
answer is an option index or a parsed integer, ``None`` when a generated reply had no
parsable answer (counted as wrong, spec §3). With C(q, m) = 1 when form m of item q was
answered correctly:

* ``rer`` (render-equivalence rate): share of items answered *identically* in all three
  forms, right or wrong: ``|{q: f(text) = f(image) = f(mixed)}| / N``. An unparsable
  answer agrees with nothing (not even another unparsable one): no answer is not a
  consistent answer.
* ``mmc`` (multi-modal coverage): ``N_c / N``, with N_c the items correct in at least one form.
* ``cfr`` (cross-modal failure rate): ``|{q: 1 <= Σ_m C(q, m) < 3}| / N_c``: among the
  items the model can answer in some form, the share it fails in another. Identity:
  ``cfr = 1 - AllCorrect / MMC`` with AllCorrect the share of all N items correct in
  every form.
* ``accuracy_{text,image,mixed}``: per-form accuracy.
* ``cer``: the OCR control, the mean character error rate ``(S + D + I) / N_ref``
  (Levenshtein distance over reference length) of the model's transcription of the
  image form; ``ocr_exact`` the share of items transcribed exactly (CER = 0).

Every metric is also computed on the OCR-correct subset (CER = 0), suffix ``_ocr``,
where the paper reports its headline: there a failure cannot be blamed on reading.
Proportions carry Wilson intervals, the CER mean a seeded bootstrap over items.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from vlmgate.metrics.flips import proportion
from vlmgate.metrics.stats import bootstrap_interval
from vlmgate.modalities import MODALITIES
from vlmgate.records import LOWER, MEAN, MetricResult

#: Suffix of the metrics on the OCR-correct subset (CER = 0).
OCR_SUFFIX = "_ocr"
#: Unparsable answers listed in the details, for reading a failure.
LISTED = 5
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ItemOutcome:
    """One item's answers in the three forms (``MODALITIES`` order), its truth and its CER.

    ``answers[m]`` is ``None`` when the form's reply could not be parsed; ``replies``
    keeps the generated texts (empty strings for scored MCQ forms) so that an unparsable
    answer is recorded as what the model said. ``cer`` is ``None`` when no OCR ran.
    """

    item_id: str
    answers: tuple[int | None, ...]
    answer: int
    cer: float | None = None
    replies: tuple[str, ...] = ("", "", "")

    @property
    def correct(self) -> tuple[bool, ...]:
        return tuple(a is not None and a == self.answer for a in self.answers)

    @property
    def consistent(self) -> bool:
        """Same answer in every form (right or wrong); an unparsable answer never agrees."""
        return None not in self.answers and len(set(self.answers)) == 1

    @property
    def ocr_correct(self) -> bool:
        return self.cer == 0.0


# -- OCR ---------------------------------------------------------------------------------

def edit_distance(reference: str, hypothesis: str) -> int:
    """Levenshtein distance: the fewest substitutions, deletions and insertions (unit costs)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_char in enumerate(reference, start=1):
        current = [i]
        for j, hyp_char in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_char != hyp_char)))
        previous = current
    return previous[-1]


def normalise_transcript(text: str) -> str:
    """Runs of whitespace to one space, trimmed: word wrap and line breaks are layout, not content."""
    return _WHITESPACE.sub(" ", text).strip()


def character_error_rate(reference: str, hypothesis: str) -> float:
    """``(S + D + I) / N_ref`` over whitespace-normalised texts (may exceed 1)."""
    reference, hypothesis = normalise_transcript(reference), normalise_transcript(hypothesis)
    if not reference:
        raise ValueError("the OCR reference is empty, so its character error rate is undefined")
    return edit_distance(reference, hypothesis) / len(reference)


# -- consistency -------------------------------------------------------------------------

def _units(outcomes: Sequence[ItemOutcome], flag) -> dict[str, int]:
    return {o.item_id: int(flag(o)) for o in outcomes}


def rer(outcomes: Sequence[ItemOutcome], name: str = "rer") -> MetricResult:
    """Share of items answered identically in all three forms."""
    agree = sum(o.consistent for o in outcomes)
    return proportion(name, agree, len(outcomes), better="higher", units=_units(outcomes, lambda o: o.consistent),
                      details={"definition": "|{q: f(text) = f(image) = f(mixed)}| / N"})


def mmc(outcomes: Sequence[ItemOutcome], name: str = "mmc") -> MetricResult:
    """Share of items correct in at least one form (N_c / N)."""
    covered = sum(any(o.correct) for o in outcomes)
    return proportion(name, covered, len(outcomes), better="higher",
                      units=_units(outcomes, lambda o: any(o.correct)), details={"definition": "N_c / N"})


def cfr(outcomes: Sequence[ItemOutcome], name: str = "cfr") -> MetricResult:
    """Among items correct in some form, the share wrong in another; 1 - AllCorrect / MMC."""
    covered = [o for o in outcomes if any(o.correct)]
    failing = sum(not all(o.correct) for o in covered)
    all_correct = sum(all(o.correct) for o in outcomes)
    return proportion(name, failing, len(covered), better="lower",
                      units=_units(covered, lambda o: not all(o.correct)),
                      details={"definition": "|{q: 1 <= sum_m C(q,m) < 3}| / N_c", "all_correct": all_correct,
                               "n_items": len(outcomes)})


def modality_accuracy(outcomes: Sequence[ItemOutcome], modality: str, suffix: str = "") -> MetricResult:
    m = MODALITIES.index(modality)
    unparsable = [o for o in outcomes if o.answers[m] is None]
    return proportion(f"accuracy_{modality}{suffix}", sum(o.correct[m] for o in outcomes), len(outcomes),
                      better="higher", units=_units(outcomes, lambda o: o.correct[m]),
                      details={"unparsable": len(unparsable),
                               "unparsable_replies": [{"item": o.item_id, "reply": o.replies[m]}
                                                      for o in unparsable[:LISTED]]})


def ocr_results(outcomes: Sequence[ItemOutcome], *, rng: np.random.Generator) -> list[MetricResult]:
    """``cer`` (mean, bootstrap interval over items) and ``ocr_exact`` (share with CER = 0)."""
    measured = [o for o in outcomes if o.cer is not None]
    values = np.array([o.cer for o in measured], dtype=np.float64)
    low, high = bootstrap_interval(values, rng=rng)
    mean = float(values.mean()) if values.size else math.nan
    cer_result = MetricResult("cer", mean, low, high, int(values.size), {
        "definition": "(S + D + I) / N_ref, whitespace-normalised",
        "median": float(np.median(values)) if values.size else math.nan,
    }, kind=MEAN, better=LOWER, units={o.item_id: float(o.cer) for o in measured if o.cer is not None})
    exact = proportion("ocr_exact", sum(o.ocr_correct for o in measured), len(measured), better="higher",
                       units=_units(measured, lambda o: o.ocr_correct))
    return [cer_result, exact]


def consistency_results(outcomes: Sequence[ItemOutcome], suffix: str = "") -> list[MetricResult]:
    """RER, CFR, MMC and the per-form accuracies, names ending in ``suffix``."""
    patterns: dict[str, int] = {}
    for o in outcomes:
        key = "".join("R" if c else "W" for c in o.correct)
        patterns[key] = patterns.get(key, 0) + 1
    first = rer(outcomes, f"rer{suffix}")
    first = replace(first, details={**first.details, "patterns": dict(sorted(patterns.items())),
                                    "pattern_order": ",".join(MODALITIES)})
    return [first, cfr(outcomes, f"cfr{suffix}"), mmc(outcomes, f"mmc{suffix}"),
            *(modality_accuracy(outcomes, m, suffix) for m in MODALITIES)]


def crossmodal_results(outcomes: Sequence[ItemOutcome], *, rng: np.random.Generator) -> list[MetricResult]:
    """Every cross-modal metric, ``rer`` first: on all items, the OCR control, then ``_ocr``.

    The OCR-correct subset may be empty (a model that cannot transcribe); its metrics
    then have ``n = 0`` and value ``nan``: recorded, and judged only if a limit names them.
    """
    subset = [o for o in outcomes if o.ocr_correct]
    return [*consistency_results(outcomes), *ocr_results(outcomes, rng=rng),
            *consistency_results(subset, OCR_SUFFIX)]
