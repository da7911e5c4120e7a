"""POPE metrics against hand-computed confusion counts, and the Yes−No margin shift.

"Yes" and "No" are read from each item's option texts, so an item built with its options
in the other order (a third-party loader, a hand-made sample) measures the same.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from vlmgate.metrics.pope import (
    Confusion,
    confusion_cells,
    f1_of_cells,
    margin_shift,
    pope_metrics,
    yes_no_codes,
    yes_no_margins,
)

Y, N = 0, 1  # option indices of an item whose options are ("Yes", "No")
YES_NO = ("Yes", "No")


def _options(n: int, order: tuple[str, str] = YES_NO) -> list[tuple[str, str]]:
    return [order] * n


def test_hand_computed_case():
    # gold:  Y Y Y Y N N N N N N ; pred: Y Y Y N Y Y N N N N
    # TP=3 FN=1 FP=2 TN=4 -> acc 7/10, precision 3/5, recall 3/4, F1 2/3, yes-rate 5/10
    gold = [Y, Y, Y, Y, N, N, N, N, N, N]
    pred = [Y, Y, Y, N, Y, Y, N, N, N, N]
    assert Confusion.of(pred, gold) == Confusion(tp=3, fp=2, tn=4, fn=1)
    acc, precision, recall, f1, yes_rate = pope_metrics(pred, gold, options=_options(10), rng=np.random.default_rng(0))
    assert [m.name for m in (acc, precision, recall, f1, yes_rate)] == [
        "pope_accuracy", "pope_precision", "pope_recall", "pope_f1", "pope_yes_rate"]
    assert acc.value == pytest.approx(0.7) and acc.n == 10
    assert precision.value == pytest.approx(0.6) and precision.n == 5
    assert recall.value == pytest.approx(0.75) and recall.n == 4
    assert f1.value == pytest.approx(2 * 0.6 * 0.75 / 1.35) == pytest.approx(2 / 3)
    assert yes_rate.value == pytest.approx(0.5)
    assert acc.ci_low < 0.7 < acc.ci_high
    values_only = pope_metrics(pred, gold, options=_options(10), rng=None)  # the per-category breakdown: no bootstrap
    assert values_only[3].value == f1.value and math.isnan(values_only[3].ci_low)


def test_always_no_has_undefined_precision():
    acc, precision, recall, f1, yes_rate = pope_metrics([N, N, N, N], [Y, N, Y, N], options=_options(4),
                                                        rng=np.random.default_rng(0))
    assert acc.value == 0.5 and recall.value == 0.0 and yes_rate.value == 0.0
    assert precision.n == 0 and math.isnan(precision.value) and math.isnan(f1.value)
    assert math.isnan(f1.ci_low) and math.isnan(f1.ci_high)


def test_f1_cells_match_the_confusion_counts():
    gold = [Y, Y, Y, Y, N, N, N, N, N, N]
    pred = [Y, Y, Y, N, Y, Y, N, N, N, N]
    cells = confusion_cells(pred, gold)
    assert cells.tolist() == [0, 0, 0, 3, 1, 1, 2, 2, 2, 2]  # TP TP TP FN FP FP TN TN TN TN
    assert f1_of_cells(cells) == pytest.approx(2 / 3)
    assert f1_of_cells(np.array([[2, 2], [0, 3]])).tolist() == [0.0, pytest.approx(2 / 3)]  # all-TN resample -> 0


def test_f1_interval_is_a_paired_bootstrap_over_items():
    """Against scipy's own paired bootstrap of (prediction, answer) with F1 from P and R."""
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 2, 60)
    pred = np.where(rng.random(60) < 0.75, gold, 1 - gold)
    f1 = pope_metrics(pred, gold, options=_options(60), rng=np.random.default_rng(11))[3]

    def f1_from_pairs(p, g, axis=-1):
        tp = ((p == Y) & (g == Y)).sum(axis)
        precision, recall = tp / (p == Y).sum(axis), tp / (g == Y).sum(axis)
        return 2 * precision * recall / (precision + recall)

    reference = stats.bootstrap((pred, gold), f1_from_pairs, paired=True, n_resamples=2000,
                                method="percentile", rng=np.random.default_rng(11)).confidence_interval
    assert (f1.ci_low, f1.ci_high) == pytest.approx((reference.low, reference.high), abs=1e-12)
    assert f1.ci_low < f1.value < f1.ci_high and f1.ci_high - f1.ci_low > 0.1  # 60 items: a real spread


def test_bad_labels_are_refused():
    with pytest.raises(ValueError, match=r"option 2 of item 0.*2 options"):
        pope_metrics([2], [0], options=_options(1), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="predictions but"):
        pope_metrics([0, 1], [0], options=_options(2), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"item 1 has options \('Yes', 'Maybe'\).*yes and no"):
        pope_metrics([0, 0], [0, 0], options=[YES_NO, ("Yes", "Maybe")], rng=None)


def test_margin_shift_towards_yes():
    clean = np.array([[-1.0, -3.0], [-2.0, -1.0], [-4.0, -1.0]])  # margins 2, -1, -3
    blank = np.array([[-1.0, -2.0], [-1.0, -1.5], [-2.0, -1.0]])  # margins 1, 0.5, -1
    np.testing.assert_allclose(yes_no_margins(clean, _options(3)), [2.0, -1.0, -3.0])
    result = margin_shift(clean, blank, options=_options(3), rng=np.random.default_rng(0), sample_ids=["a", "b", "c"])
    assert result.value == pytest.approx((-1.0 + 1.5 + 2.0) / 3)
    assert result.details["towards_yes"] == pytest.approx(2 / 3)
    assert result.details["mean_abs_shift"] == pytest.approx(1.5)
    assert result.units == {"a": -1.0, "b": 1.5, "c": 2.0}
    assert result.ci_low <= result.value <= result.ci_high
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        yes_no_margins(np.zeros((3, 3)), _options(3))


def test_pope_suite_on_a_pope_parquet(tmp_path):
    """The suite on lmms-lab-style parquet with the bundled model: clean metrics and the blank shift."""
    pq = pytest.importorskip("pyarrow.parquet")
    from vlmgate.benchmarks.base import load_benchmark
    from vlmgate.engine import Engine
    from vlmgate.models.base import ModelOptions, load_model
    from vlmgate.testing import evaluate_case

    from test_public_benchmarks import _pope_table

    path = tmp_path / "pope.parquet"
    pq.write_table(_pope_table(), path)
    engine = Engine(load_model("bundled:shapes-v1", ModelOptions()), load_benchmark(f"pope:{path}"))
    clean = evaluate_case("pope", engine, "clean")
    assert [r.name for r in clean][0] == "pope_accuracy" and clean[0].n == 3
    assert set(clean[0].details["by_category"]) == {"adversarial", "popular", "random"}
    predictions = [engine.clean()[s.id].prediction for s in engine.samples()]
    assert clean[4].value == pytest.approx(predictions.count(0) / 3)  # yes-rate from the predictions
    (shift,) = evaluate_case("pope", engine, "blank")
    blank = engine.family("blank")
    expected = np.mean([yes_no_margins(np.array([blank.perturbed[s.id][0].scores]), [s.options])[0]
                        - yes_no_margins(np.array([engine.clean()[s.id].scores]), [s.options])[0]
                        for s in engine.samples()])
    assert shift.name == "pope_margin_shift" and shift.value == pytest.approx(expected) and shift.n == 3


# -- yes and no by option text --------------------------------------------------------------
#: Gold and predicted words of twelve items: yes-rate 9/12 = 0.75 (TP 5, FP 4, TN 2, FN 1).
GOLD = ["yes"] * 6 + ["no"] * 6
SAID = ["yes"] * 5 + ["no"] + ["yes"] * 4 + ["no"] * 2


def _indices(words, order):
    return [[o.lower() for o in order].index(w) for w in words]


def test_metrics_read_yes_and_no_from_the_option_texts_in_either_order():
    results = {}
    for order in (("Yes", "No"), ("No", "Yes"), ("no", "YES")):
        results[order] = pope_metrics(_indices(SAID, order), _indices(GOLD, order), options=_options(12, order),
                                      rng=np.random.default_rng(5))
    first, *others = results.values()
    assert first[4].name == "pope_yes_rate" and first[4].value == 0.75 and first[2].value == 5 / 6
    for other in others:
        assert [(r.name, r.value, r.ci_low, r.ci_high, r.n, r.count) for r in other] == \
               [(r.name, r.value, r.ci_low, r.ci_high, r.n, r.count) for r in first]
    mixed = [("Yes", "No") if i % 2 else ("No", "Yes") for i in range(12)]
    said = [_indices([w], order)[0] for w, order in zip(SAID, mixed)]
    gold = [_indices([w], order)[0] for w, order in zip(GOLD, mixed)]
    assert [r.value for r in pope_metrics(said, gold, options=mixed, rng=None)] == [r.value for r in first]
    np.testing.assert_array_equal(yes_no_codes(said, mixed), [0 if w == "yes" else 1 for w in SAID])


def test_margin_shift_reads_the_yes_column_from_the_option_texts():
    clean = np.array([[-1.0, -3.0], [-2.0, -1.0], [-4.0, -1.0]])  # (yes, no): margins 2, -1, -3
    blank = np.array([[-1.0, -2.0], [-1.0, -1.5], [-2.0, -1.0]])
    forward = margin_shift(clean, blank, options=_options(3), rng=np.random.default_rng(0))
    swapped = margin_shift(clean[:, ::-1], blank[:, ::-1], options=_options(3, ("No", "Yes")),
                           rng=np.random.default_rng(0))
    assert (swapped.value, swapped.ci_low, swapped.ci_high, dict(swapped.details)) == \
           (forward.value, forward.ci_low, forward.ci_high, dict(forward.details))
    np.testing.assert_allclose(yes_no_margins(clean[:, ::-1], _options(3, ("No", "Yes"))), [2.0, -1.0, -3.0])


class _SaysWhatItSees:
    """Answers "Yes" (whatever its index) to an image brighter than a quarter and "No" to a darker
    one; the Yes-No margin grows with the brightness, so a white image moves every margin towards yes."""

    spec = "stub:eyes"
    fingerprint = "stub-eyes"

    def score(self, requests):
        out = []
        for request in requests:
            brightness = float(np.asarray(request.image, dtype=np.float64).mean()) / 255
            out.append(np.array([-2.0 + 2.0 * brightness if option.lower().endswith("yes") else -1.5
                                 for option in request.continuations]))
        return out


def _pope_samples(order):
    from PIL import Image

    from vlmgate.records import Sample

    levels = (250, 10, 240, 200, 30, 220, 15, 180)
    answers = ("yes", "no", "yes", "no", "no", "yes", "yes", "yes")
    return tuple(Sample(f"p{i}", Image.new("RGB", (16, 16), (level,) * 3), "Is there a dog in the image?",
                        order, answer=[o.lower() for o in order].index(answer), kind="yesno",
                        meta=(("category", "random"),))
                 for i, (level, answer) in enumerate(zip(levels, answers)))


def test_the_pope_suite_measures_the_same_whatever_the_option_order():
    from vlmgate.engine import Engine
    from vlmgate.testing import evaluate_case

    from support import ListBenchmark

    measured = []
    for order in (("Yes", "No"), ("No", "Yes")):
        engine = Engine(_SaysWhatItSees(), ListBenchmark(_pope_samples(order)))
        clean = evaluate_case("pope", engine, "clean")
        (shift,) = evaluate_case("pope", engine, "blank")
        measured.append([(r.name, r.value, r.ci_low, r.ci_high, r.n) for r in (*clean, shift)])
    assert measured[0] == measured[1]
    values = {name: value for name, value, *_ in measured[0]}
    assert values["pope_yes_rate"] == 5 / 8 and values["pope_accuracy"] == 6 / 8
    assert values["pope_margin_shift"] > 0  # the white image pulls every answer towards yes


def test_a_yes_no_item_without_yes_and_no_options_is_refused_by_name():
    from vlmgate.engine import Engine
    from vlmgate.errors import DataError
    from vlmgate.records import Sample
    from vlmgate.testing import evaluate_case

    from support import ListBenchmark

    bad = Sample("odd", _pope_samples(YES_NO)[0].image, "Is there a dog?", ("Yes", "Maybe"), answer=0, kind="yesno")
    engine = Engine(_SaysWhatItSees(), ListBenchmark((*_pope_samples(YES_NO), bad)))
    with pytest.raises(DataError, match=r"sample 'odd'.*\('Yes', 'Maybe'\)"):
        evaluate_case("pope", engine, "clean")
