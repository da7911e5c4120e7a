"""Threshold files: parsing, lookup precedence, verdicts, and errors that name file and key."""

import pytest

from vlmgate.errors import ConfigError
from vlmgate.records import MetricResult
from vlmgate.thresholds import Threshold, load_thresholds, parse_thresholds

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
    limits = load_thresholds(path, FAMILIES)
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
    limits = load_thresholds(path, [*FAMILIES, "rotation.ctx_open", "rotation.ctx_mcq"])
    assert limits.lookup("m", "drift_ratio", "rotation.ctx_open").max == 0.9
    assert limits.lookup("m", "drift_ratio", "rotation.ctx_mcq").max == 0.7
    assert limits.lookup("m", "drift_ratio", "translation.ctx_mcq").max == 0.5


def test_interval_mode_fails_only_when_interval_is_beyond():
    limit = Threshold("ifr", "*", max=0.2, source="f [ifr] *")
    assert limit.check(result(0.25, 0.19, 0.31)).passed          # point above, interval straddles
    failed = limit.check(result(0.30, 0.21, 0.39))
    assert not failed.passed and "exceeds max 0.2" in failed.message and "f [ifr] *" in failed.message
    low = Threshold("accuracy", "*", min=0.6)
    assert low.check(result(0.55, 0.5, 0.61, name="accuracy")).passed
    assert not low.check(result(0.5, 0.45, 0.59, name="accuracy")).passed


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
    ('[ifr]\n"*" = { max = "high" }', "*.max = 'high' must be a number"),
    ('[ifr]\n"*" = 0.2', "must be a table"),
    ('[ifr]\n"*" = { mode = "strict" }', "sets neither max nor min"),
    ('mode = "lenient"\n[ifr]\n"*" = { max = 0.2 }', "unknown mode 'lenient'"),
    ('[models."x".ifr]\nrotatio = { max = 0.2 }', '[models."x".ifr]: unknown family'),
    ('[ifr\n', "not valid TOML"),
])
def test_errors_name_file_and_key(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_thresholds(path, FAMILIES)
    message = str(info.value)
    assert str(path) in message and needle in message
    assert "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_thresholds(tmp_path / "nope.toml", FAMILIES)


def test_shipped_default_file_is_valid():
    from pathlib import Path


    default = Path(__file__).resolve().parents[1] / "thresholds" / "default.toml"
    from vlmgate.plugin import _threshold_families

    limits = load_thresholds(default, _threshold_families())
    assert limits.lookup("bundled:shapes-v1", "ifr", "translation") is not None
    assert limits.lookup("bundled:shapes-v1", "drift_ratio", "translation.ctx_mcq") is not None


def test_parse_from_mapping():
    limits = parse_thresholds("inline", {"iv": {"*": {"max": 0.4}}}, FAMILIES)
    assert limits.lookup("m", "iv", "rotation").describe() == "max 0.4 (interval)"
