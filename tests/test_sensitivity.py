"""Inert gates: a limit that cannot fail at the run's n says so, and is an error under strict."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from vlmgate.decision import EXIT_CODES, UNDECIDED
from vlmgate.metrics.flips import proportion
from vlmgate.records import MEAN, MetricResult
from vlmgate.sensitivity import sensitivity
from vlmgate.thresholds import Threshold

from support import gate_args, junit_cases, outcomes


def share(successes: int, n: int) -> MetricResult:
    return proportion("decay_c", successes, n, better="lower", units={f"s{i}": int(i < successes) for i in range(n)})


def test_a_max_that_even_all_ones_cannot_clear_is_inert_and_says_how_many_samples_it_needs():
    limit = Threshold("decay_c", "*", max=0.95)
    at_50 = sensitivity(limit, share(50, 50))
    assert at_50.inert and at_50.n_clusters == 50
    # Independent samples: Wilson's lower bound at 100 % is n / (n + z^2) > 0.95 from n = 73.
    z2 = stats.norm.ppf(0.975) ** 2
    assert at_50.needs_clusters == math.ceil(0.95 * z2 / 0.05 + 1e-9) == 73
    assert "cannot fail at n = 50 images" in at_50.describe(limit) and "at least 73" in at_50.describe(limit)
    assert not sensitivity(limit, share(10, 100)).inert


def test_a_live_gate_reports_the_smallest_share_it_catches():
    limit = Threshold("decay_c", "*", max=0.5)
    reach = sensitivity(limit, share(20, 50))
    assert not reach.inert and reach.fails_from is not None
    smallest = round(reach.fails_from * 50)
    # Exactly the count from which the judged interval clears the limit.
    assert share(smallest, 50).ci_low > 0.5 >= share(smallest - 1, 50).ci_low


def test_a_min_gate_is_inert_when_even_all_zeros_cannot_fall_below():
    assert sensitivity(Threshold("accuracy", "*", min=0.05), share(0, 20)).inert
    assert not sensitivity(Threshold("accuracy", "*", min=0.5), share(0, 20)).inert


def test_recorded_limits_strict_mode_and_means():
    recorded = Threshold("ifr", "blank", max=1.0)
    assert not sensitivity(recorded, share(3, 3)).inert  # a limit at the range's edge records, by choice
    assert not sensitivity(Threshold("decay_c", "*", max=0.95, mode="strict"), share(3, 3)).inert
    one = MetricResult("ras", 0.5, -2.0, 1.0, 1, kind=MEAN, units={"s0": 0.5})
    assert sensitivity(Threshold("ras", "*", min=0.8), one, -2.0, 1.0).inert
    two = MetricResult("ras", 0.5, 0.1, 0.9, 2, kind=MEAN, units={"s0": 0.4, "s1": 0.6})
    assert not sensitivity(Threshold("ras", "*", min=0.8), two, -2.0, 1.0).inert


DECAY_TEST = '''
import pytest


@pytest.mark.decay
def test_visual_decay(vlmgate_case, vlmgate):
    vlmgate.assert_within_thresholds(vlmgate.evaluate())
'''


def test_inert_gates_are_reported_and_fail_under_strict(pytester, tiny_llava_checkpoint, manifest):
    pytester.makepyfile(test_visual_decay=DECAY_TEST)
    pytester.makefile(".toml", limits='inherit = false\n[decay_c]\n"*" = { max = 0.95 }\n')
    args = gate_args(tiny_llava_checkpoint, manifest, "--junitxml=out.xml", "--vlmgate-no-cache")
    relaxed = pytester.runpytest_subprocess(*args)
    # Every answer kept at 7 images: [0.65, 1] straddles the limit, which no 7 images could fail.
    # Never a pass: the case is inconclusive (a critical gate holds the release), and the gate is named inert.
    assert outcomes(relaxed) == {"inconclusive": 1} and relaxed.ret == EXIT_CODES[UNDECIDED]
    relaxed.stdout.fnmatch_lines(["*vlmgate: inert gates*", "*test_visual_decay*: decay_c limit max 0.95 (interval)"])
    assert "straddles max 0.95: inconclusive" in relaxed.stdout.str()
    props = next(iter(junit_cases(pytester.path / "out.xml").values()))
    assert props["vlmgate.decay_c.inert"] == "true" and props["vlmgate.inert"] == "true"
    assert (props["vlmgate.decay_c.outcome"], props["vlmgate.standing"]) == ("inconclusive", "inconclusive")

    strict = pytester.runpytest_subprocess(*args, "--vlmgate-strict")
    strict.assert_outcomes(failed=1)
    assert "cannot fail at n = 7 images" in strict.stdout.str()
    assert "(an error under --vlmgate-strict)" in strict.stdout.str()
    pytester.makefile(".toml", limits='inherit = false\nstrict = true\n[decay_c]\n"*" = { max = 0.95 }\n')
    pytester.runpytest_subprocess(*args).assert_outcomes(failed=1)


def test_a_baseline_without_any_change_limit_is_a_usage_error(pytester, tiny_llava_checkpoint, manifest):
    pytester.makefile(".toml", limits='inherit = false\n[ifr]\n"*" = { max = 0.5 }\n')
    (pytester.path / "run.json").write_text("{}")
    result = pytester.runpytest_inprocess(*gate_args(tiny_llava_checkpoint, manifest, "--vlmgate-baseline=run.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "sets no change limit for the gated models, so the baseline would judge nothing" in result.stderr.str()
