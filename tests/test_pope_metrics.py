"""POPE metrics against hand-computed confusion counts, and the Yes−No margin shift."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scipy import stats

from vlmgate.metrics.pope import Confusion, confusion_cells, f1_of_cells, margin_shift, pope_metrics, yes_no_margins

Y, N = 0, 1


def test_hand_computed_case():
    # gold:  Y Y Y Y N N N N N N ; pred: Y Y Y N Y Y N N N N
    # TP=3 FN=1 FP=2 TN=4 -> acc 7/10, precision 3/5, recall 3/4, F1 2/3, yes-rate 5/10
    gold = [Y, Y, Y, Y, N, N, N, N, N, N]
    pred = [Y, Y, Y, N, Y, Y, N, N, N, N]
    assert Confusion.of(pred, gold) == Confusion(tp=3, fp=2, tn=4, fn=1)
    acc, precision, recall, f1, yes_rate = pope_metrics(pred, gold, rng=np.random.default_rng(0))
    assert [m.name for m in (acc, precision, recall, f1, yes_rate)] == [
        "pope_accuracy", "pope_precision", "pope_recall", "pope_f1", "pope_yes_rate"]
    assert acc.value == pytest.approx(0.7) and acc.n == 10
    assert precision.value == pytest.approx(0.6) and precision.n == 5
    assert recall.value == pytest.approx(0.75) and recall.n == 4
    assert f1.value == pytest.approx(2 * 0.6 * 0.75 / 1.35) == pytest.approx(2 / 3)
    assert yes_rate.value == pytest.approx(0.5)
    assert acc.ci_low < 0.7 < acc.ci_high
    values_only = pope_metrics(pred, gold, rng=None)  # the per-category breakdown: no bootstrap
    assert values_only[3].value == f1.value and math.isnan(values_only[3].ci_low)


def test_always_no_has_undefined_precision():
    acc, precision, recall, f1, yes_rate = pope_metrics([N, N, N, N], [Y, N, Y, N], rng=np.random.default_rng(0))
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
    f1 = pope_metrics(pred, gold, rng=np.random.default_rng(11))[3]

    def f1_from_pairs(p, g, axis=-1):
        tp = ((p == Y) & (g == Y)).sum(axis)
        precision, recall = tp / (p == Y).sum(axis), tp / (g == Y).sum(axis)
        return 2 * precision * recall / (precision + recall)

    reference = stats.bootstrap((pred, gold), f1_from_pairs, paired=True, n_resamples=2000,
                                method="percentile", rng=np.random.default_rng(11)).confidence_interval
    assert (f1.ci_low, f1.ci_high) == pytest.approx((reference.low, reference.high), abs=1e-12)
    assert f1.ci_low < f1.value < f1.ci_high and f1.ci_high - f1.ci_low > 0.1  # 60 items: a real spread


def test_bad_labels_are_refused():
    with pytest.raises(ValueError, match="0 \\(yes\\) or 1 \\(no\\)"):
        pope_metrics([2], [0], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="predictions but"):
        pope_metrics([0, 1], [0], rng=np.random.default_rng(0))


def test_margin_shift_towards_yes():
    clean = np.array([[-1.0, -3.0], [-2.0, -1.0], [-4.0, -1.0]])  # margins 2, -1, -3
    blank = np.array([[-1.0, -2.0], [-1.0, -1.5], [-2.0, -1.0]])  # margins 1, 0.5, -1
    np.testing.assert_allclose(yes_no_margins(clean), [2.0, -1.0, -3.0])
    result = margin_shift(clean, blank, rng=np.random.default_rng(0), sample_ids=["a", "b", "c"])
    assert result.value == pytest.approx((-1.0 + 1.5 + 2.0) / 3)
    assert result.details["towards_yes"] == pytest.approx(2 / 3)
    assert result.details["mean_abs_shift"] == pytest.approx(1.5)
    assert result.units == {"a": -1.0, "b": 1.5, "c": 2.0}
    assert result.ci_low <= result.value <= result.ci_high
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        yes_no_margins(np.zeros((3, 3)))


def test_pope_suite_on_a_pope_parquet(tmp_path):
    """The suite on lmms-lab-style parquet with the bundled model: clean metrics and the blank shift."""
    pq = pytest.importorskip("pyarrow.parquet")
    from test_public_benchmarks import _pope_table

    from vlmgate.benchmarks.base import load_benchmark
    from vlmgate.engine import Engine
    from vlmgate.models.base import ModelOptions, load_model
    from vlmgate.testing import evaluate_case

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
    expected = np.mean([yes_no_margins(np.array([blank.perturbed[s.id][0].scores]))[0]
                        - yes_no_margins(np.array([engine.clean()[s.id].scores]))[0] for s in engine.samples()])
    assert shift.name == "pope_margin_shift" and shift.value == pytest.approx(expected) and shift.n == 3
