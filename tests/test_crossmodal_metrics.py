"""Cross-modal metrics on constructed correctness tables, CER against an independent edit distance."""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vlmgate.metrics.crossmodal import (
    ItemOutcome,
    cfr,
    character_error_rate,
    crossmodal_results,
    edit_distance,
    mmc,
    rer,
)


def outcome(item_id: str, answers, answer: int = 0, cer: float | None = 0.0) -> ItemOutcome:
    return ItemOutcome(item_id, tuple(answers), answer, cer)


#: (text, image, mixed) answers against answer 0; hand-counted below.
TABLE = [
    outcome("all-right", (0, 0, 0)),            # consistent, all correct
    outcome("all-wrong-same", (1, 1, 1)),       # consistent, none correct
    outcome("image-fails", (0, 2, 0)),          # correct in 2 of 3
    outcome("text-only", (0, 1, 2)),            # correct in 1 of 3
    outcome("all-wrong-mixed", (1, 2, 3)),      # none correct, inconsistent
    outcome("unparsable", (None, None, None)),  # no answer: wrong, and never consistent
    outcome("unparsable-right", (0, None, 0)),  # correct twice, one unparsable
]


def test_rer_cfr_mmc_on_a_constructed_table():
    n = len(TABLE)
    assert rer(TABLE).value == pytest.approx(2 / n)          # all-right, all-wrong-same
    assert mmc(TABLE).value == pytest.approx(4 / n)          # all-right, image-fails, text-only, unparsable-right
    result = cfr(TABLE)
    assert result.n == 4 and result.value == pytest.approx(3 / 4)
    assert result.details["all_correct"] == 1
    assert rer(TABLE).units["unparsable"] == 0
    for metric in (rer(TABLE), mmc(TABLE), cfr(TABLE)):
        assert 0.0 <= metric.ci_low <= metric.value <= metric.ci_high <= 1.0


def _random_table(rng: np.random.Generator, n: int) -> list[ItemOutcome]:
    choices = [None, 0, 1, 2]
    return [outcome(f"i{k}", [choices[c] for c in rng.integers(0, 4, size=3)]) for k in range(n)]


@pytest.mark.parametrize("seed", range(20))
def test_cfr_equals_one_minus_all_correct_over_mmc(seed):
    table = _random_table(np.random.default_rng(seed), 40)
    all_correct = sum(all(o.correct) for o in table) / len(table)
    coverage = mmc(table).value
    if coverage == 0:
        assert math.isnan(cfr(table).value)
    else:
        assert cfr(table).value == pytest.approx(1 - all_correct / coverage)


def test_every_correctness_pattern_counts_where_the_definitions_say():
    for pattern in itertools.product([True, False], repeat=3):
        table = [outcome("x", [0 if right else 1 for right in pattern])]
        k = sum(pattern)
        assert mmc(table).value == (1.0 if k else 0.0)
        assert rer(table).value == (1.0 if k in (0, 3) else 0.0)
        if k:
            assert cfr(table).value == (0.0 if k == 3 else 1.0)


@lru_cache(maxsize=None)
def reference_distance(a: str, b: str) -> int:
    """Levenshtein by its recursive definition (independent of the DP under test)."""
    if not a:
        return len(b)
    if not b:
        return len(a)
    return min(reference_distance(a[1:], b) + 1, reference_distance(a, b[1:]) + 1,
               reference_distance(a[1:], b[1:]) + (a[0] != b[0]))


@given(st.text(alphabet="AB12 +=", max_size=9), st.text(alphabet="AB12 +=x", max_size=9))
def test_edit_distance_matches_the_recursive_definition(a, b):
    assert edit_distance(a, b) == reference_distance(a, b)


def test_cer_is_edits_over_reference_length_after_whitespace_normalisation():
    reference = "3A + 2B = 13\nA + B = 5"
    assert character_error_rate(reference, "3A + 2B = 13 A + B = 5") == 0.0  # a line break is layout
    assert character_error_rate(reference, "3A + 2B = 13\n\nA  +  B = 5 ") == 0.0
    assert character_error_rate(reference, "3A + 2B = 18 A + B = 5") == pytest.approx(1 / 22)
    assert character_error_rate("AB", "") == 1.0 and character_error_rate("AB", "ABCDEF") == 2.0
    with pytest.raises(ValueError, match="empty"):
        character_error_rate(" ", "x")


def test_results_on_all_items_then_ocr_control_then_the_ocr_correct_subset():
    table = [ItemOutcome(o.item_id, o.answers, o.answer, 0.0 if k % 2 == 0 else 0.5) for k, o in enumerate(TABLE)]
    results = {r.name: r for r in crossmodal_results(table, rng=np.random.default_rng(0))}
    assert list(results)[:3] == ["rer", "cfr", "mmc"]
    assert {"accuracy_text", "accuracy_image", "accuracy_mixed", "cer", "ocr_exact", "rer_ocr", "cfr_ocr",
            "mmc_ocr", "accuracy_text_ocr", "accuracy_image_ocr", "accuracy_mixed_ocr"} <= set(results)
    subset = [o for k, o in enumerate(TABLE) if k % 2 == 0]
    assert results["rer_ocr"].n == len(subset) == results["ocr_exact"].count
    assert results["rer_ocr"].value == rer(subset).value
    assert results["cer"].value == pytest.approx(0.5 * 3 / 7)
    assert results["cer"].ci_low <= results["cer"].value <= results["cer"].ci_high
    assert results["accuracy_image"].details["unparsable"] == 2
    assert results["accuracy_text"].value == pytest.approx(4 / 7)


def test_an_empty_ocr_correct_subset_is_recorded_as_not_measured():
    table = [ItemOutcome(o.item_id, o.answers, o.answer, 1.0) for o in TABLE]
    results = {r.name: r for r in crossmodal_results(table, rng=np.random.default_rng(0))}
    assert results["rer_ocr"].n == 0 and math.isnan(results["rer_ocr"].value)
    assert (results["rer_ocr"].ci_low, results["rer_ocr"].ci_high) == (0.0, 1.0)
    assert results["ocr_exact"].value == 0.0
