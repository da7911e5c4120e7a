"""Prompt-side families: option order (CircularEval), option labels, typos; circular accuracy.

Stub adapters stand in for models whose behaviour is known: one scores an option by its
*text* (it must never flip under a reordering or a relabelling, which only holds if the
engine maps the shown order back), one always picks the first *shown* option (it must flip
on every rotation). The pytester run gates the bundled default with ``-m option_order``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pytest
from PIL import Image

from vlmgate.batches import WorkItem, in_sample_order, request
from vlmgate.cache import ObservationCache
from vlmgate.engine import Engine
from vlmgate.errors import ConfigError, ModelError
from vlmgate.metrics.flips import FlipPair, circular_accuracy, flip_pairs, flip_rate_results
from vlmgate.models.base import ScoreRequest
from vlmgate.perturbations import VariantContext, get_family
from vlmgate.perturbations.typos import WORD, editable_words
from vlmgate.records import CLEAN, NO_ANSWER, Sample, Variant
from vlmgate.seeding import rng_for

from support import ListBenchmark, junit_cases, outcomes

COLOURS = ("red", "green", "blue", "yellow")
#: How much the text-reading stub likes each option text (its answer is the highest).
LIKING = {"red": 0.1, "green": 0.9, "blue": 0.5, "yellow": 0.3, "Yes": 0.7, "No": 0.2}


def image() -> Image.Image:
    return Image.new("RGB", (32, 32), "gray")


def mcq(i: int, answer: int = 1, question: str = "What colour is the circle?") -> Sample:
    return Sample(f"s{i}", image(), question, COLOURS, answer)


YESNO = Sample("y0", image(), "Is there a red circle in the image?", ("Yes", "No"), 0, kind="yesno")


@dataclass
class ReadsText:
    """Scores each continuation by the option text after its label: a model that answers by content."""

    spec: str = "stub:text"
    fingerprint: str = "stub-text"
    requests: list[ScoreRequest] = field(default_factory=list)

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        self.requests.extend(requests)
        return [np.array([LIKING[c.split(". ", 1)[-1]] for c in r.continuations]) for r in requests]


@dataclass
class FirstShown:
    """Always prefers the first option shown, whatever it says: a model that answers by position."""

    spec: str = "stub:first"
    fingerprint: str = "stub-first"
    requests: list[ScoreRequest] = field(default_factory=list)

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        self.requests.extend(requests)
        return [np.array([-float(j) for j in range(len(r.continuations))]) for r in requests]


def rates(engine: Engine, family: str) -> dict[str, float]:
    return {r.name: r.value for r in flip_rate_results(flip_pairs(engine.family(family)))}


# -- option order: the engine maps the shown order back -------------------------------------------

def test_a_model_that_reads_the_options_never_flips_under_rotation_or_relabelling():
    engine = Engine(ReadsText(), ListBenchmark(tuple(mcq(i) for i in range(4)) + (YESNO,)))
    for family in ("option_order", "option_labels"):
        assert rates(engine, family) == {"ifr": 0.0, "iv": 0.0}, family
    observed = engine.family("option_order")
    assert all(obs.prediction == 1 for row in observed.perturbed.values() for obs in row)  # "green", as clean
    pairs = flip_pairs(observed)
    assert len(pairs) == 4 * 3 and circular_accuracy(pairs).value == 1.0


def test_a_model_that_picks_the_first_shown_option_flips_on_every_rotation():
    engine = Engine(FirstShown(), ListBenchmark(tuple(mcq(i, answer=0) for i in range(4))))
    pairs = flip_pairs(engine.family("option_order"))
    assert rates(engine, "option_order") == {"ifr": 1.0, "iv": 1.0}
    # under shift s the first shown option is the sample's option s: the prediction says so
    assert sorted({(p.variant_label, p.perturbed_prediction) for p in pairs}) == [
        ('option_order({"shift": 1})', 1), ('option_order({"shift": 2})', 2), ('option_order({"shift": 3})', 3)]
    result = circular_accuracy(pairs)
    assert (result.value, result.n, result.details["clean_accuracy"]) == (0.0, 4, 1.0)
    assert result.details["lost_to_rotation"] == 4 and result.worst[0].verb == "answered wrong"


def test_rotations_show_the_options_rotated_under_the_same_letters_and_map_scores_back():
    family, sample = get_family("option_order"), mcq(0, answer=2)
    variant = family.at_level(1)
    score = request("score", WorkItem(sample, variant), seed=0)
    assert score.continuations == ("A. green", "B. blue", "C. yellow", "D. red")
    assert "A. green\nB. blue\nC. yellow\nD. red" in score.prompt
    assert family.shown_order(sample, variant) == (1, 2, 3, 0)
    # the score shown at position j belongs to the sample's option order[j]
    assert in_sample_order("score", sample, variant, [10.0, 20.0, 30.0, 40.0]).tolist() == [40.0, 10.0, 20.0, 30.0]
    assert in_sample_order("score", sample, CLEAN, [1.0, 2.0]) == [1.0, 2.0]  # clean: as it came


def test_a_probe_teacher_forces_the_shown_position_of_the_predicted_option():
    sample, variant = mcq(0), get_family("option_order").at_level(2)
    probe = request("probe", WorkItem(sample, variant, option=3), seed=0)
    assert probe.continuations[probe.option] == "B. yellow"  # option 3 shown second
    assert request("probe", WorkItem(sample, variant, option=NO_ANSWER), seed=0).option == NO_ANSWER


def test_generation_is_refused_under_a_family_that_moves_or_relabels_the_options():
    for variant in (Variant.of("option_order", shift=1, max_new_tokens=4),
                    Variant.of("option_labels", style="digits", max_new_tokens=4)):
        with pytest.raises(ModelError, match="moves or relabels the options"):
            request("generate", WorkItem(mcq(0), variant), seed=0)
    assert request("generate", WorkItem(mcq(0), Variant.of("typos", edits=1, max_new_tokens=4)), seed=0)


def test_an_adapter_returning_the_wrong_number_of_scores_is_named():
    with pytest.raises(ModelError, match="returned 3 option scores for sample 's0'"):
        in_sample_order("score", mcq(0), get_family("option_order").at_level(1), [1.0, 2.0, 3.0])


def test_a_family_whose_present_and_shown_order_disagree_is_refused(monkeypatch):
    from vlmgate.perturbations.option_order import OptionOrder

    monkeypatch.setattr(OptionOrder, "present", lambda self, sample, variant, rng: sample)  # declares, never moves
    with pytest.raises(ConfigError, match="make present\\(\\) and shown_order\\(\\) agree"):
        request("score", WorkItem(mcq(0), get_family("option_order").at_level(1)), seed=0)


def test_yes_no_items_take_no_reordering_or_relabelling_but_take_typos():
    context = VariantContext(None, np.random.default_rng(0))
    assert get_family("option_order").variants(YESNO, context) == []
    assert get_family("option_labels").variants(YESNO, context) == []
    assert [v.param_dict for v in get_family("typos").variants(YESNO, context)] == [{"edits": n} for n in (1, 2, 3)]
    assert len(get_family("option_order").variants(mcq(0), context)) == 3  # K - 1 rotations


def test_the_cache_holds_scores_in_the_samples_order_and_serves_them_unchanged(tmp_path):
    benchmark = ListBenchmark(tuple(mcq(i, answer=0) for i in range(3)))
    cold = Engine(FirstShown(), benchmark, cache=ObservationCache(tmp_path))
    reference = cold.family("option_order").perturbed
    model = FirstShown()
    warm = Engine(model, benchmark, cache=ObservationCache(tmp_path))
    assert warm.family("option_order").perturbed == reference and model.requests == []  # never mapped twice
    sample = benchmark.items[0]
    variants = [*warm.variants("option_order", sample), *warm.variants("option_labels", sample),
                *warm.variants("typos", sample)]
    keys = {warm._cache_key(warm._scores, sample, v) for v in variants}
    assert len(keys) == len(variants) == 3 + 2 + 3


# -- option labels ----------------------------------------------------------------------------------

@pytest.mark.parametrize("style, labels", [("digits", ("1", "2", "3", "4")), ("lowercase", ("a", "b", "c", "d"))])
def test_option_labels_shows_and_scores_the_shown_labels_in_the_same_order(style, labels):
    family, sample = get_family("option_labels"), mcq(0)
    variant = family.at_level(1, style=style)
    score = request("score", WorkItem(sample, variant), seed=0)
    assert score.continuations == tuple(f"{label}. {text}" for label, text in zip(labels, COLOURS))
    assert f"\n{labels[1]}. green\n" in score.prompt and "A. red" not in score.prompt
    assert family.shown_order(sample, variant) is None
    assert family.at_level(0).param_dict == {"style": "letters"}
    with pytest.raises(ConfigError, match="style='roman'"):
        family.at_level(1, style="roman")


# -- typos ------------------------------------------------------------------------------------------

def changed_words(before: str, after: str) -> list[tuple[str, str]]:
    old, new = WORD.findall(before), WORD.findall(after)
    assert len(old) == len(new)  # an edit never splits, joins or removes a word
    return [(a, b) for a, b in zip(old, new) if a != b]


def test_typos_edit_only_question_words_outside_the_options_and_as_many_as_asked():
    typos = get_family("typos")
    # "blue" and "square" are option words, "is"/"the" too short: only What / Which / shape / object / drawn
    sample = Sample("t0", image(), "What shape is the blue object drawn as? Which square?", ("square", "blue circle"),
                    0, hint="a blue hint")
    assert [w for _, w in editable_words(sample)] == ["What", "shape", "object", "drawn", "Which"]
    for seed in range(40):
        for edits in (1, 2, 3):
            variant = typos.at_level(edits)
            shown = typos.present(sample, variant, rng_for(seed, "apply", sample.id, variant.label))
            changed = changed_words(sample.question, shown.question)
            assert len(changed) == edits
            assert all(a in {"What", "shape", "object", "drawn", "Which"} for a, _ in changed)
            assert all(len(b) == len(a) - 1 or sorted(b) == sorted(a) for a, b in changed)  # a drop or a swap
            assert (shown.options, shown.hint, shown.image) == (sample.options, sample.hint, sample.image)


def test_typos_are_reproducible_from_seed_sample_and_variant():
    sample = mcq(0, question="Which colour does the large circle have in this picture?")

    def shown(seed: int, sample_id: str, edits: int) -> str:
        one = Sample(sample_id, sample.image, sample.question, sample.options, sample.answer)
        variant = get_family("typos").at_level(edits)
        return request("score", WorkItem(one, variant), seed=seed).prompt

    assert shown(0, "s0", 2) == shown(0, "s0", 2)
    drawn = {shown(seed, sample_id, edits) for seed in (0, 1) for sample_id in ("s0", "s1") for edits in (1, 2)}
    assert len(drawn) == 8  # another seed, sample or variant draws other edits


def test_a_question_with_few_editable_words_gets_fewer_variants():
    context = VariantContext(None, np.random.default_rng(0))
    sample = Sample("t1", image(), "Is it red?", ("red", "blue"), 0)
    assert get_family("typos").variants(sample, context) == []  # no word of four letters outside the options
    two = Sample("t2", image(), "Which colour?", ("red", "blue"), 0)
    assert [v.param_dict["edits"] for v in get_family("typos").variants(two, context)] == [1, 2]


# -- circular accuracy, by hand ---------------------------------------------------------------------

def pair(sample: str, shift: int, clean: int, after: int, answer: int | None) -> FlipPair:
    return FlipPair(sample, f"option_order(shift={shift})", clean, after, answer)


def test_circular_accuracy_counts_an_item_only_if_right_clean_and_under_every_rotation():
    pairs = [
        *(pair("all_right", s, 2, 2, 2) for s in (1, 2, 3)),          # 1
        *(pair("one_rotation_wrong", s, 1, 1 if s != 2 else 3, 1) for s in (1, 2, 3)),  # 0
        *(pair("wrong_clean", s, 0, 1, 1) for s in (1, 2, 3)),        # 0: right under rotations only
        *(pair("no_answer", s, 0, NO_ANSWER, 0) for s in (1, 2, 3)),  # 0: an unanswered rotation is wrong
        *(pair("no_truth", s, 0, 1, None) for s in (1, 2, 3)),        # left out
    ]
    result = circular_accuracy(pairs)
    assert (result.value, result.n, result.count) == (0.25, 4, 1)
    assert result.units == {"all_right": 1, "one_rotation_wrong": 0, "wrong_clean": 0, "no_answer": 0}
    assert result.details == {"items": 4, "clean_accuracy": 0.75, "lost_to_rotation": 2}
    assert [w.sample for w in result.worst] == ["no_answer", "one_rotation_wrong"]  # right clean, lost to a rotation
    assert (result.ci_low, result.ci_high) == pytest.approx((0.0456, 0.6994), abs=1e-4)  # Wilson, 1 of 4
    assert result.better == "higher" and result.kind == "proportion"


def test_circular_accuracy_of_no_item_is_nan_never_a_pass():
    result = circular_accuracy([])
    assert result.n == 0 and np.isnan(result.value)


# -- the flip-rate suite --------------------------------------------------------------------------

def test_the_flip_rate_suite_takes_the_prompt_families_but_keeps_them_out_of_any():
    from vlmgate.suites.flip_rate import FlipRateSuite

    taken = FlipRateSuite().perturbation_families()
    assert {"option_order", "option_labels", "typos"} <= set(taken)
    assert all(get_family(name).prompt_side for name in ("option_order", "option_labels", "typos"))
    assert not any(get_family(name).prompt_side for name in ("translation", "textoverlay", "blank"))
    from vlmgate.suites.drift import DriftSuite

    assert not {"option_order", "option_labels", "typos"} & set(DriftSuite().perturbation_families())


def test_option_order_gates_ifr_and_circular_accuracy_on_the_bundled_default(pytester):
    """``-m option_order`` on the repository's default (bundled:shapes-v1 on bundled:shapes) with the
    shipped limits: one case, IFR primary, IV and circular accuracy beside it, in JUnit and the record."""
    from vlmgate.report.record import load_record

    from support import FLIP_TEST

    pytester.makepyfile(test_flip_rate=FLIP_TEST)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--strict-markers", "--vlmgate-model=bundled:shapes-v1",
        "--vlmgate-benchmark=bundled:shapes", "--vlmgate-limit=10", "--vlmgate-no-cache", "-m", "option_order",
        "--junitxml=out.xml", "--vlmgate-report=rep", "-rA")
    counts = outcomes(result)
    assert counts.pop("deselected") > 0 and sum(counts.values()) == 1, result.stdout.str()
    (props,) = junit_cases(pytester.path / "out.xml").values()
    assert props["vlmgate.metric"] == "ifr"
    assert {"vlmgate.iv.value", "vlmgate.circular_accuracy.value", "vlmgate.circular_accuracy.outcome"} <= set(props)
    assert int(props["vlmgate.circular_accuracy.n"]) == 8  # 10 shapes items, 2 of them yes/no
    (case,) = load_record(pytester.path / "rep").cases
    values = {metric.name: metric.value for metric in case.metrics}
    assert set(values) >= {"ifr", "iv", "circular_accuracy"}
    assert values["circular_accuracy"] <= min(1.0, 1.0 - values["iv"] + 1e-9)  # an item with a flip is not circular
    text = result.stdout.str()
    assert re.search(r"circular_accuracy", text), text
