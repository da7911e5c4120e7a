"""Case ids are filesystem-safe and unique; settings merge CLI over pyproject over defaults."""

import re

import pytest

from vlmgate.cases import CaseKey, case_id, safe_name, short_names
from vlmgate.errors import ConfigError
from vlmgate.settings import build_settings

SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


@pytest.mark.parametrize("spec,expected", [
    ("bundled:shapes-v1", "bundled_shapes-v1"),
    ("hf:/runs/exp 3/ckpt-100/", "hf_ckpt-100"),
    ("jsonl:data/seed bench.jsonl", "jsonl_seed_bench.jsonl"),
    ("hf:C:\\models\\qwen", "hf_qwen"),
])
def test_short_names(spec, expected):
    assert short_names([spec])[spec] == expected


def test_colliding_short_names_get_distinct_suffixes():
    names = short_names(["hf:/a/ckpt", "hf:/b/ckpt"])
    assert len(set(names.values())) == 2 and all(SAFE.match(n) for n in names.values())


def test_case_id_is_filesystem_safe():
    key = CaseKey("hf:/x/y:z", "jsonl:/d/m.jsonl", "textoverlay", "flip_rate")
    ident = case_id(key, short_names([key.model]), short_names([key.benchmark]))
    assert SAFE.match(ident) and ident.endswith("-textoverlay")
    assert safe_name("a/b:c") == "a_b_c"


def test_settings_precedence(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.vlmgate]\nmodels = ["hf:/m"]\nseed = 3\nbatch_size = 4\nthresholds = "t.toml"\n')
    settings = build_settings(tmp_path, {"seed": 5})
    assert settings.models == ("hf:/m",) and settings.seed == 5 and settings.batch_size == 4
    assert settings.thresholds == tmp_path / "t.toml"
    assert settings.benchmarks == ("bundled:shapes",)


def test_settings_reject_unknown_pyproject_key(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.vlmgate]\nmodel = ["hf:/m"]\n')
    with pytest.raises(ConfigError, match=r"unknown key 'model' \(did you mean 'models'\?\)"):
        build_settings(tmp_path, {})


@pytest.mark.parametrize("cli,needle", [
    ({"limit": 0}, "--vlmgate-limit"),
    ({"batch_size": -1}, "--vlmgate-batch-size"),
    ({"dtype": "fp8"}, "--vlmgate-dtype"),
])
def test_settings_validate_values(tmp_path, cli, needle):
    with pytest.raises(ConfigError, match=needle):
        build_settings(tmp_path, cli)
