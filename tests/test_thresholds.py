"""Threshold files: parsing, lookup precedence, verdicts, and errors that name file and key."""

import pytest

from vlmgate.errors import ConfigError
from vlmgate.records import MetricResult
from vlmgate.thresholds import Threshold, Vocabulary, load_thresholds, parse_thresholds

FAMILIES = ["translation", "rotation", "textoverlay", "clean", "any"]


def write(tmp_path, text, name="limits.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def result(value, low, high, n=100, name="ifr"):
    return MetricResult(name, value, low, high, n)


def test_lookup_precedence(tmp_path):
    path = write(tmp_path, """
mode = "interval"
[ifr]
"*" = { max = 0.2 }
rotation = { max = 0.3 }
[models."hf:*candidate*".ifr]
"*" = { max = 0.5 }
[models."hf:*candidate*".iv]
textoverlay = { max = 0.9, mode = "strict" }
""")
    limits = load_thresholds(path, Vocabulary.uniform(FAMILIES))
    assert limits.lookup("hf:/a/release", "ifr", "translation").max == 0.2
    assert limits.lookup("hf:/a/release", "ifr", "rotation").max == 0.3
    assert limits.lookup("hf:/a/candidate-2", "ifr", "rotation").max == 0.5  # model override wins
    override = limits.lookup("hf:/a/candidate-2", "iv", "textoverlay")
    assert (override.max, override.mode) == (0.9, "strict")
    assert limits.lookup("hf:/a/release", "iv", "textoverlay") is None
    assert limits.lookup("hf:/a/release", "accuracy", "clean") is None


def test_qualified_case_family_falls_back_to_its_family(tmp_path):
    path = write(tmp_path, """
[drift_ratio]
"*" = { max = 0.5 }
rotation = { max = 0.7 }
"rotation.ctx_open" = { max = 0.9 }
""")
    limits = load_thresholds(path, Vocabulary.uniform([*FAMILIES, "rotation.ctx_open", "rotation.ctx_mcq"]))
    assert limits.lookup("m", "drift_ratio", "rotation.ctx_open").max == 0.9
    assert limits.lookup("m", "drift_ratio", "rotation.ctx_mcq").max == 0.7
    assert limits.lookup("m", "drift_ratio", "translation.ctx_mcq").max == 0.5


def test_interval_mode_is_three_way():
    """PASS only with the whole interval within the limit, FAIL only with it wholly past it, and
    INCONCLUSIVE (never a pass) when it straddles the limit."""
    limit = Threshold("ifr", "*", max=0.2, source="f [ifr] *")
    straddles = limit.check(result(0.25, 0.19, 0.31))             # point above, interval straddles
    assert straddles.outcome == "inconclusive" and not straddles.passed and straddles.failed_limits == ()
    assert "straddles max 0.2" in straddles.message
    failed = limit.check(result(0.30, 0.21, 0.39))
    assert failed.outcome == "fail" and "exceeds max 0.2" in failed.message and "f [ifr] *" in failed.message
    assert failed.failed_limits == ("value",)
    within = limit.check(result(0.1, 0.05, 0.15))
    assert within.outcome == "pass" and within.passed and within.failed_limits == ()
    assert limit.check(result(0.15, 0.1, 0.2)).outcome == "pass"  # an interval ending on the limit is within it
    low = Threshold("accuracy", "*", min=0.6)
    assert low.check(result(0.55, 0.5, 0.61, name="accuracy")).outcome == "inconclusive"
    below = low.check(result(0.5, 0.45, 0.59, name="accuracy"))
    assert below.outcome == "fail" and below.failed_limits == ("value",)


def test_an_inconclusive_verdict_says_how_many_units_would_decide_it():
    """The half-width shrinks as 1 / sqrt(k): at the observed 0.25 against max 0.2, a half-width
    of 0.06 on 100 samples clears the 0.05 distance from (0.06 / 0.05)^2 * 100 = 144 samples on."""
    verdict = Threshold("ifr", "*", max=0.2).check(result(0.25, 0.19, 0.31))
    assert verdict.needed_n == 144 or verdict.needed_n == 145  # ceil of 144.0000x in floating point
    assert f"about {verdict.needed_n} samples would decide it" in verdict.message
    on_the_limit = Threshold("ifr", "*", max=0.25).check(result(0.25, 0.19, 0.31))
    assert on_the_limit.outcome == "inconclusive" and on_the_limit.needed_n is None
    assert "the value sits on the limit" in on_the_limit.message


def test_strict_mode_compares_the_point_value():
    limit = Threshold("ifr", "*", max=0.2, mode="strict")
    assert not limit.check(result(0.25, 0.19, 0.31)).passed
    assert limit.check(result(0.2, 0.1, 0.3)).passed  # equal to the limit passes


def test_nothing_measured_never_passes():
    verdict = Threshold("ifr", "*", max=0.2).check(MetricResult("ifr", float("nan"), 0.0, 1.0, 0))
    assert not verdict.passed and "nothing was measured" in verdict.message


@pytest.mark.parametrize("text,needle", [
    ('[ifr]\nrotaton = { max = 0.2 }', "unknown family 'rotaton' (did you mean 'rotation'?)"),
    ('[ifrr]\n"*" = { max = 0.2 }', "unknown metric 'ifrr' (did you mean 'ifr'?)"),
    ('[ifr]\n"*" = { maxx = 0.2 }', "unknown limit key 'maxx' (did you mean 'max'?)"),
    ('[ifr]\n"*" = { max = "high" }', "[ifr] *.max = 'high' must be a number; write max = 0.2"),
    ('[ifr]\n"*" = { max = "0.3" }', "[ifr] *.max = '0.3' must be a number; write max = 0.3 (without quotes)"),
    ('[ifr]\n"*" = 0.2', "must be a table"),
    ('ifr = 0.2', "[ifr] = 0.2 must be a table of families; write [ifr] then"),
    ('models = 3', "models = 3 must be a table of model-spec globs"),
    ('[ifr]\n"*" = {}', "names no key"),
    ('[ifr]\n"*" = { max = 1 }', "write gated = false"),
    ('[ras]\n"*" = { min = -2 }', "can never fail"),
    ('[ifr]\n"*" = { max = 0.1, tier = "blocking" }', "tier"),
    ('[ifr]\n"*" = { max = 0.1, gated = "no" }', "must be true or false"),
    ('[tiers]\nurgent = { fail = "stop" }', "policy"),
    ('mode = "lenient"\n[ifr]\n"*" = { max = 0.2 }', "unknown mode 'lenient'"),
    ('[models."hf:x".ifr]\nrotatio = { max = 0.2 }', '[models."hf:x".ifr]: unknown family'),
    ('[ifr\n', "not valid TOML"),
    # Values that would silently turn a gate off (never fails) or make it unpassable.
    ('[ifr]\n"*" = { max = nan }', "[ifr] *.max = nan is not a finite number"),
    ('[ifr]\n"*" = { max = inf }', "[ifr] *.max = inf is not a finite number"),
    ('[accuracy]\n"*" = { min = -inf }', "write a number in [0, 1]"),
    ('[ifr]\n"*" = { max = 0.2, max_increase = nan }', "[ifr] *.max_increase = nan is not a finite number"),
    ('[accuracy]\n"*" = { min = 0.8, max = 0.2 }',
     "[accuracy] *: min 0.8 is above max 0.2, so every value fails; swap them"),
    ('[ifr]\nrotation = { max = -0.1 }',
     "[ifr] rotation.max = -0.1 is below the lowest possible ifr (0), so every run fails; write a max in [0, 1]"),
    ('[accuracy]\n"*" = { min = 1.5 }',
     "[accuracy] *.min = 1.5 is above the highest possible accuracy (1), so every run fails; write a min in [0, 1]"),
    ('[ifr]\n"*" = { max = 15 }', "[ifr] *.max = 15 is above the highest possible ifr (1), so the gate can never fail "
                                  "(a share, not a percentage?); write a max in [0, 1]"),
    ('[accuracy]\n"*" = { min = -0.5 }', "below the lowest possible accuracy (0), so the gate can never fail"),
    ('[ras]\n"*" = { min = -3 }', "write a min in [-2, 1]"),
    ('[drift_ratio]\n"*" = { max = -1 }', "write a max in [0, inf)"),
    ('[ifr]\n"*" = { max_increase = 2 }', "[ifr] *.max_increase = 2 is above the largest possible change of ifr (1), "
                                          "so it can never fail; write a number in [0, 1]"),
    ('[ifr]\n"*" = { max = 0.2, mode = 3 }', "[ifr] *.mode: unknown mode '3'"),
    ('[models]\n"hf:*" = 3', '[models] "hf:*" = 3 must be a table of metric tables; write [models."hf:*".ifr]'),
    ('[models."hf:*[cand".ifr]\n"*" = { max = 0.2 }', '[models] "hf:*[cand": \'[\' opens a character class that is '
                                                      'never closed; close the bracket'),
    ('[models."candidate".ifr]\n"*" = { max = 0.2 }', '[models] "candidate": matches no model spec'),
    ('[models.""]\nifr = { "*" = { max = 0.2 } }', '[models] "": matches no model spec'),
])
def test_errors_name_file_and_key(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_thresholds(path, Vocabulary.uniform(FAMILIES))
    message = str(info.value)
    assert str(path) in message and needle in message
    assert "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_thresholds(tmp_path / "nope.toml", Vocabulary.uniform(FAMILIES))


def test_unreadable_files_are_one_line_errors(tmp_path, monkeypatch):
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'# caf\xe9\n[ifr]\n"*" = { max = 0.2 }\n')
    with pytest.raises(ConfigError, match=r"latin1.toml: not UTF-8 \(byte 0xe9 at offset 5\); save it as UTF-8"):
        load_thresholds(latin1, Vocabulary.uniform(FAMILIES))
    with pytest.raises(ConfigError, match=r"is a directory, not a threshold file; pass the threshold file itself"):
        load_thresholds(tmp_path, Vocabulary.uniform(FAMILIES))
    locked = write(tmp_path, '[ifr]\n"*" = { max = 0.2 }\n')

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(locked), "read_bytes", denied)
    with pytest.raises(ConfigError, match=r"limits.toml: cannot be read \(Permission denied\); make it readable"):
        load_thresholds(locked, Vocabulary.uniform(FAMILIES))


@pytest.mark.parametrize("text", [
    '[ifr]\n"*" = { max = 0, mode = "strict" }',   # the lowest flip rate: no flip allowed
    '[ifr]\n"*" = { gated = false }',              # recorded, not gated
    '[ifr]\n"*" = { max = 0.999 }',
    '[accuracy]\n"*" = { min = 0.9, max = 0.95 }',
    '[ras]\n"*" = { min = -1.9 }',
    '[drift_ratio]\n"*" = { max = 50 }',
    '[dirichlet_delta]\n"*" = { max = -5, min = -10 }',
    '[cer]\n"*" = { max = 2.5 }',
    '[ifr]\n"*" = { max_increase = 0, max_decrease = 1 }',
    '[models."hf:*[0-9]".ifr]\n"*" = { max = 0.2 }',
    '[models."*candidate*".ifr]\n"*" = { max = 0.2 }',
])
def test_limits_within_the_metric_range_load(tmp_path, text):
    limits = load_thresholds(write(tmp_path, text), Vocabulary.uniform(FAMILIES))
    assert limits.defaults or limits.overrides


def test_every_declared_metric_has_its_possible_range():
    from vlmgate.suites import declared_metrics

    metrics = declared_metrics()
    for name, metric in metrics.items():
        assert metric.name == name and metric.description and metric.lowest < metric.highest
    ranges = {name: (m.lowest, m.highest) for name, m in metrics.items()}
    inf = float("inf")
    assert ranges["ifr"] == ranges["accuracy"] == ranges["pope_f1"] == (0.0, 1.0)
    assert ranges["ras"] == (-2.0, 1.0)
    assert ranges["drift_ratio"] == ranges["cer"] == (0.0, inf)
    assert ranges["dirichlet_delta"] == ranges["spectral_high_rel"] == (-inf, inf)
    assert metrics["ifr"].describe_range() == "[0, 1]"
    assert metrics["cer"].describe_range() == "[0, inf)"
    assert metrics["dirichlet_delta"].describe_range() == "(-inf, inf)"


def test_shipped_default_file_is_valid():
    from vlmgate.plugin import _threshold_vocabulary
    from vlmgate.settings import packaged_thresholds

    limits = load_thresholds(packaged_thresholds(), _threshold_vocabulary())
    assert limits.lookup("bundled:shapes-v1", "ifr", "translation") is not None
    assert limits.lookup("bundled:shapes-v1", "drift_ratio", "translation.ctx_mcq") is not None


def test_a_family_no_case_of_the_metric_has_is_refused(tmp_path):
    """Per metric, only the families its suite's cases have: a RAS limit on a flip-rate family never judges."""
    from vlmgate.plugin import _threshold_vocabulary

    path = write(tmp_path, '[ras]\nrotation = { min = 0.5 }\n')
    with pytest.raises(ConfigError, match=r"\[ras\]: unknown family 'rotation'"):
        load_thresholds(path, _threshold_vocabulary())
    assert load_thresholds(write(tmp_path, '[ifr]\nrotation = { max = 0.5 }\n'), _threshold_vocabulary())


def test_parse_from_mapping():
    limits = parse_thresholds("inline", {"iv": {"*": {"max": 0.4}}}, Vocabulary.uniform(FAMILIES))
    assert limits.lookup("m", "iv", "rotation").describe() == "max 0.4 (interval)"


def test_a_clustered_result_says_how_many_images_its_interval_rests_on():
    from vlmgate.gate import Judgement, properties

    units = {f"s{i}|shift={j}": int(i < 3) for i in range(10) for j in range(8)}
    from vlmgate.metrics.clustered import KORN_GRAUBARD

    clusters = {k: k.split("|")[0] for k in units}
    clustered = MetricResult("ifr", 0.3, 0.16, 0.5, 80, {"interval": KORN_GRAUBARD}, units=units, clusters=clusters)
    limit = Threshold("ifr", "*", max=0.1, source="f [ifr] *")
    verdict = limit.check(clustered)
    assert not verdict.passed and verdict.message.startswith("ifr = 0.3000 [95% CI 0.1600, 0.5000] (n=80) exceeds max")
    assert verdict.message.endswith("; 80 instances in 10 images, interval clustered by image")
    # The same units with an interval vlmgate did not make: never called clustered.
    own = limit.check(MetricResult("ifr", 0.3, 0.2, 0.4, 80, {"interval": "Wilson"}, units=units, clusters=clusters))
    assert own.message.endswith("; 80 instances in 10 images, interval: Wilson")
    assert "clustered by image" not in own.message
    assert "images" not in limit.check(result(0.3, 0.16, 0.5)).message  # independent units: n says it all
    props = dict(properties([Judgement(clustered, limit, verdict)]))
    assert (props["vlmgate.n"], props["vlmgate.n_clusters"], props["vlmgate.ifr.n_clusters"]) == ("80", "10", "10")


def test_change_limits_count_only_where_the_resolved_limit_has_one():
    """An override with ``gated = false`` hides the default's change bound for its models: a
    baseline would judge nothing for them, and --vlmgate-baseline must say so."""
    limits = parse_thresholds("t.toml", {"ifr": {"*": {"max": 0.15, "max_increase": 0.02}},
                                         "models": {"hf:*cand*": {"ifr": {"*": {"gated": False}}}}},
                              Vocabulary.uniform([]))
    assert limits.has_change_limits(["hf:/runs/release"])
    assert not limits.has_change_limits(["hf:/runs/cand-3"])
    assert limits.has_change_limits(["hf:/runs/cand-3", "hf:/runs/release"])


def test_entries_compose_key_by_key_model_over_family_over_star():
    """A family entry overrides only the keys it names (translation keeps "*"'s max_increase),
    a model override only its own, and every key says where it came from."""
    limits = parse_thresholds("t.toml", {
        "ifr": {"*": {"max": 0.15, "max_increase": 0.02, "tier": "supporting"},
                "translation": {"max": 0.085}, "rotation": {"max": 0.25, "tier": "critical"}},
        "models": {"hf:*cand*": {"ifr": {"*": {"max_increase": 0.05}, "rotation": {"max": 0.3}}}}},
        Vocabulary.uniform(["translation", "rotation"]))
    translation = limits.lookup("bundled:shapes-v1", "ifr", "translation")
    assert (translation.max, translation.max_increase, translation.tier) == (0.085, 0.02, "supporting")
    assert dict(translation.sources) == {"max": "t.toml [ifr] translation", "max_increase": "t.toml [ifr] *",
                                         "tier": "t.toml [ifr] *"}
    assert "max_increase = 0.02  <- t.toml [ifr] *" in translation.explain()
    rotation = limits.lookup("hf:/runs/cand-2", "ifr", "rotation")
    assert (rotation.max, rotation.max_increase, rotation.tier) == (0.3, 0.05, "critical")
    assert dict(rotation.sources)["max"] == 't.toml [models."hf:*cand*".ifr] rotation'
    assert dict(rotation.sources)["max_increase"] == 't.toml [models."hf:*cand*".ifr] *'
    assert limits.lookup("bundled:x", "iv", "rotation") is None


def test_composed_limits_that_contradict_each_other_are_refused():
    limits = parse_thresholds("t.toml", {"accuracy": {"*": {"min": 0.5}, "rotation": {"max": 0.4}}},
                              Vocabulary.uniform(["rotation"]))
    with pytest.raises(ConfigError, match=r"min 0.5 \(from t.toml \[accuracy\] \*\) is above max 0.4"):
        limits.lookup("bundled:x", "accuracy", "rotation")


def test_gated_false_records_without_judging_and_hides_inherited_change_bounds():
    limits = parse_thresholds("t.toml", {"ifr": {"*": {"max": 0.15, "max_increase": 0.02},
                                                 "blank": {"gated": False}}}, Vocabulary.uniform(["blank"]))
    blank = limits.lookup("bundled:x", "ifr", "blank")
    assert not blank.judges and not blank.gates_change and blank.describe() == "recorded (gated = false)"
    assert blank.check(result(0.9, 0.8, 1.0)).outcome == "recorded"


def test_tiers_ship_defaults_and_a_file_may_redefine_them():
    from vlmgate.decision import BLOCKS, HOLDS, WARNS

    shipped = parse_thresholds("t.toml", {"ifr": {"*": {"max": 0.1}}}, Vocabulary.uniform([]))
    assert shipped.lookup("m:x", "ifr", "f").tier == "critical"
    assert (shipped.tiers["critical"].on_fail, shipped.tiers["critical"].on_inconclusive) == (BLOCKS, HOLDS)
    assert (shipped.tiers["advisory"].on_fail, shipped.tiers["advisory"].on_inconclusive) == (WARNS, WARNS)
    custom = parse_thresholds("t.toml", {"tiers": {"critical": {"inconclusive": "no-go"}, "watch": {"fail": "warn"}},
                                         "ifr": {"*": {"max": 0.1, "tier": "watch"}}}, Vocabulary.uniform([]))
    assert custom.tiers["critical"].on_inconclusive == BLOCKS and custom.tiers["critical"].on_fail == BLOCKS
    assert custom.lookup("m:x", "ifr", "f").tier == "watch" and custom.tiers["watch"].on_fail == WARNS


def test_the_shipped_file_change_gates_translation_and_rotation():
    """A family entry of the shipped file names only its own keys, so the flagship families keep
    the "*" entry's change limit (the shipped file's comment says every flip rate is change-gated)."""
    from vlmgate.settings import packaged_thresholds
    from vlmgate.thresholds import load_thresholds

    limits = load_thresholds(packaged_thresholds(), Vocabulary.of_catalogues())
    for family in ("translation", "rotation", "scale", "any"):
        assert limits.lookup("bundled:shapes-v1", "ifr", family).max_increase == 0.02, family


def test_a_typo_in_a_top_level_setting_is_named_as_one():
    with pytest.raises(ConfigError, match=r"t.toml: mdoe = 'strict': unknown top-level key 'mdoe' \(did you mean "
                                          r"'mode'\?\)"):
        parse_thresholds("t.toml", {"mdoe": "strict", "ifr": {"*": {"max": 0.2}}}, Vocabulary.uniform([]))


def test_a_suite_that_supplies_its_own_interval_is_never_described_as_clustered():
    """A gate that returns clustered units with a plain interval of its own (a third party's
    Wilson interval over instances) has it named as its own in the record and the verdict;
    one built with vlmgate's helper keeps the helper's clustered interval and says so."""
    from vlmgate.api import LOWER, PROPORTION, MetricSpec, Suite, clustered_proportion
    from vlmgate.metrics.stats import wilson_interval

    class Grayscale(Suite):
        name = "grayscale"
        metrics = (MetricSpec("gray_ifr", "flips under grayscale", PROPORTION, LOWER, unit="instance",
                              cluster="sample"),)

        def evaluate(self, case):  # pragma: no cover - not run here
            raise AssertionError

    units = {f"s{i}|{j}": int(i < 4 and j < 3) for i in range(10) for j in range(4)}
    clusters = {k: k.split("|")[0] for k in units}
    low, high = wilson_interval(12, 40)
    own = MetricResult("gray_ifr", 0.3, low, high, 40, kind=PROPORTION, units=units, clusters=clusters)
    helped = clustered_proportion("gray_ifr", units, clusters, better=LOWER)
    stamped, kept = Grayscale().conform([own, helped])
    assert stamped.details["interval"].startswith("the grayscale suite's own: not computed by vlmgate")
    assert (stamped.ci_low, stamped.ci_high) == (low, high)
    assert kept.details["interval"] == helped.details["interval"] and "clustered by image" in kept.details["interval"]
    assert (kept.ci_low, kept.ci_high) != (low, high)  # the clustered interval is wider than Wilson's here
    limit = Threshold("gray_ifr", "*", max=0.9, source="f")
    assert "interval clustered by image" not in limit.check(stamped).message
    assert limit.check(kept).message.endswith("interval clustered by image")


def test_threshold_files_compose_in_layers_each_overriding_only_what_it_names():
    from vlmgate.thresholds import compose

    vocabulary = Vocabulary.uniform(FAMILIES)
    shipped = parse_thresholds("shipped.toml", {
        "mode": "interval",
        "ifr": {"*": {"max": 0.15, "max_increase": 0.02, "tier": "supporting"}, "rotation": {"max": 0.25}},
        "accuracy": {"*": {"min": 0.5}},
        "models": {"hf:*": {"ifr": {"*": {"max": 0.3}}}},
    }, vocabulary)
    project = parse_thresholds("project.toml", {
        "strict": True,
        "ifr": {"*": {"max": 0.10}, "translation": {"tier": "critical"}},
        "models": {"hf:*": {"ifr": {"rotation": {"max": 0.5}}}, "hf:*/big-*": {"ifr": {"*": {"max": 0.4}}}},
    }, vocabulary)
    layered = compose([shipped, project])
    assert layered.layers == ("shipped.toml", "project.toml") and layered.strict and layered.mode == "interval"
    translation = layered.lookup("bundled:x", "ifr", "translation")
    assert (translation.max, translation.max_increase, translation.tier) == (0.10, 0.02, "critical")
    assert dict(translation.sources)["max"].startswith("project.toml") and \
        dict(translation.sources)["max_increase"].startswith("shipped.toml")
    # The shipped family entry is more specific than the project's "*": the project did not name it.
    assert layered.lookup("bundled:x", "ifr", "rotation").max == 0.25
    assert layered.lookup("bundled:x", "accuracy", "clean").min == 0.5  # untouched by the project
    # A glob both name composes; a glob only the project names is more specific than the shipped ones.
    assert layered.lookup("hf:/m", "ifr", "rotation").max == 0.5 and layered.lookup("hf:/m", "ifr", "scale").max == 0.3
    assert layered.lookup("hf:/ckpt/big-1", "ifr", "scale").max == 0.4
    replacing = parse_thresholds("alone.toml", {"inherit": False, "ifr": {"*": {"max": 0.9}}}, vocabulary)
    alone = compose([shipped, project, replacing])
    assert alone.lookup("bundled:x", "accuracy", "clean") is None
    assert alone.lookup("hf:/m", "ifr", "rotation").max == 0.9
    assert not alone.strict and alone.layers == ("shipped.toml", "project.toml", "alone.toml")
    with pytest.raises(ConfigError, match="inherit = 'no' must be true or false"):
        parse_thresholds("bad.toml", {"inherit": "no"}, vocabulary)
