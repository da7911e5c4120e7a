"""Case ids are filesystem-safe and unique; settings merge CLI over pyproject over defaults."""

import re

import pytest

from vlmgate.cases import CaseKey, case_id, safe_name, short_names
from vlmgate.errors import ConfigError
from vlmgate.placement import Accelerators
from vlmgate.settings import build_settings

SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


@pytest.mark.parametrize("spec,expected", [
    ("bundled:shapes-v1", "bundled_shapes-v1"),
    ("hf:/runs/exp 3/ckpt-100/", "hf_ckpt-100"),
    ("jsonl:data/seed bench.jsonl", "jsonl_seed_bench.jsonl"),
    ("hf:C:\\models\\qwen", "hf_qwen"),
    ("jsonl:/data/pets/manifest.jsonl", "jsonl_pets"),  # a folder's conventional file: named by the folder
    ("jsonl:/data/pets/manifest.jsonl?name=Pets v2", "Pets_v2"),  # chosen
    ("seedbench:/d/SEED.tsv?question=q&name=seed", "seed"),
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
    ({"limit": 0}, "--vlmgate-limit must be an integer >= 1, got 0; pass e.g. --vlmgate-limit 100"),
    ({"batch_size": -1}, "--vlmgate-batch-size must be an integer >= 1, got -1"),
    ({"dtype": "fp8"}, "--vlmgate-dtype must be one of float32, float16, bfloat16, got 'fp8'"),
    ({"models": ["hf:/m", ""]}, "--vlmgate-model must hold non-empty strings, got ['hf:/m', '']"),
    ({"device": "gpu"}, "--vlmgate-device 'gpu' is not a device vlmgate can place a model on"),
    ({"backend": "rai"}, "--vlmgate-backend 'rai' must be one of local, ray (did you mean 'ray'?)"),
    ({"torch_threads": "0"}, "--vlmgate-torch-threads '0' must be 'auto' or an integer >= 1; pass auto or an integer"),
])
def test_settings_validate_values(tmp_path, cli, needle):
    with pytest.raises(ConfigError) as info:
        build_settings(tmp_path, cli)
    assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("body,needle", [
    ('search = "false"', '[tool.vlmgate] search = "false" must be true or false, not a string; '
                         'write search = true or search = false'),
    ("search = 1", "[tool.vlmgate] search = 1 must be true or false"),
    ('models = "bundled:x"',
     '[tool.vlmgate] models = "bundled:x" must be a list of strings; write models = ["bundled:x"]'),
    ("models = []", '[tool.vlmgate] models = [] must name at least one; write models = ["hf:/path/to/checkpoint"]'),
    ('benchmarks = ["jsonl:a", 3]', '[tool.vlmgate] benchmarks = ["jsonl:a", 3] must hold non-empty strings'),
    ("seed = true", "[tool.vlmgate] seed = true must be an integer, not a boolean; write seed = 0"),
    ("seed = 1.5", "[tool.vlmgate] seed = 1.5 must be an integer; write seed = 0"),
    ("limit = 0", "[tool.vlmgate] limit = 0 must be an integer >= 1; write limit = 100"),
    ('batch_size = "8"', '[tool.vlmgate] batch_size = "8" must be an integer; write batch_size = 8'),
    ("search_budget = 0", "[tool.vlmgate] search_budget = 0 must be an integer >= 1"),
    ("cache_max_mb = -1", "[tool.vlmgate] cache_max_mb = -1 must be an integer >= 0"),
    ("thresholds = 3", '[tool.vlmgate] thresholds = 3 must be a string; write thresholds = "thresholds/default.toml"'),
    ('thresholds = ""', '[tool.vlmgate] thresholds = "" must not be empty'),
    ('counterexamples = ["a.toml"]', "[tool.vlmgate] counterexamples = [\"a.toml\"] must be a string"),
    ("device = 0", '[tool.vlmgate] device = 0 must be a string; write device = "cpu"'),
    ('dtype = "fp8"',
     '[tool.vlmgate] dtype = "fp8" must be one of float32, float16, bfloat16; write dtype = "float32"'),
    ('device = "cuda:0"', '[tool.vlmgate] device = "cuda:0" asks for a CUDA device, but torch sees none'),
])
def test_pyproject_values_are_type_checked(tmp_path, body, needle):
    (tmp_path / "pyproject.toml").write_text(f"[tool.vlmgate]\n{body}\n")
    with pytest.raises(ConfigError) as info:
        build_settings(tmp_path, {"models": ["hf:/cli"]}, accelerators=Accelerators())  # a CLI value does not hide it
    message = str(info.value)
    assert f"{tmp_path / 'pyproject.toml'}: " in message and needle in message and "\n" not in message


@pytest.mark.parametrize("text,needle", [
    (b"[tool.vlmgate]\n# caf\xe9\n", "not UTF-8 (byte 0xe9 at offset 20); save it as UTF-8"),
    (b"[tool.vlmgate\n", "not valid TOML"),
    (b"[tool]\nvlmgate = 3\n", "[tool.vlmgate] = 3 must be a table; write it as a [tool.vlmgate] table"),
    (b"tool = 3\n", "tool = 3 must be a table; write it as a [tool.vlmgate] table"),
])
def test_unreadable_pyproject_is_one_line(tmp_path, text, needle):
    (tmp_path / "pyproject.toml").write_bytes(text)
    with pytest.raises(ConfigError) as info:
        build_settings(tmp_path, {})
    assert "pyproject.toml" in str(info.value) and needle in str(info.value)


def test_valid_pyproject_values_are_kept(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.vlmgate]\nsearch = false\nlimit = 5\ncache_max_mb = 0\nbenchmarks = ["jsonl:a", "jsonl:b"]\n')
    settings = build_settings(tmp_path, {})
    assert (settings.search, settings.limit, settings.cache_max_mb) == (False, 5, 0)
    assert settings.benchmarks == ("jsonl:a", "jsonl:b")
    assert build_settings(tmp_path, {"search": True}).search is True


GPUS = Accelerators(cuda=2)


@pytest.mark.parametrize("cli", [
    {"device": "cuda"}, {"device": "cuda:1"}, {"devices": "cpu,cuda:0,cuda:1"}, {"device": "cpu", "devices": "cpu"},
])
def test_devices_the_machine_has_are_accepted(tmp_path, cli):
    settings = build_settings(tmp_path, cli, accelerators=GPUS)
    assert settings.device == cli["device"] if "device" in cli else settings.devices == tuple(cli["devices"].split(","))


@pytest.mark.parametrize("cli,accelerators,needle", [
    ({"device": "cuda"}, Accelerators(), "--vlmgate-device 'cuda' asks for a CUDA device, but torch sees none"),
    ({"device": "cuda:2"}, GPUS, "--vlmgate-device 'cuda:2' asks for CUDA device 2, but torch sees 2 "
                                 "(cuda:0 to cuda:1); use one of cpu, cuda, cuda:0, cuda:1"),
    ({"devices": "cpu,cuda:7"}, GPUS, "--vlmgate-devices entry 'cuda:7' asks for CUDA device 7"),
    ({"device": "mps"}, GPUS, "--vlmgate-device 'mps' asks for Apple's MPS, but torch sees none"),
    ({"device": "cuda:x"}, GPUS, "--vlmgate-device 'cuda:x' is not a device vlmgate can place a model on "
                                 "(cpu, cuda, cuda:N, mps)"),
])
def test_devices_the_machine_lacks_are_refused_at_start(tmp_path, cli, accelerators, needle):
    with pytest.raises(ConfigError) as info:
        build_settings(tmp_path, cli, accelerators=accelerators)
    assert needle in str(info.value)


def test_ray_devices_are_the_clusters_not_this_machines(tmp_path):
    """Under ``--vlmgate-backend ray`` replicas run on the cluster's GPUs (checked when it starts)."""
    settings = build_settings(tmp_path, {"device": "cuda", "backend": "ray"}, accelerators=Accelerators())
    assert (settings.device, settings.backend) == ("cuda", "ray")


def test_a_cpu_run_does_not_import_torch(tmp_path):
    """Only a non-cpu device is worth importing torch for at configure time."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from vlmgate.settings import build_settings; "
            f"build_settings(Path({str(tmp_path)!r}), {{'devices': 'cpu,cpu'}}); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_chosen_name_is_not_part_of_what_the_loader_reads():
    from vlmgate.cases import without_chosen_name

    assert without_chosen_name("jsonl:/d/manifest.jsonl?name=pets") == "jsonl:/d/manifest.jsonl"
    assert without_chosen_name("pope:/d/p.parquet?name=p&question=q") == "pope:/d/p.parquet?question=q"
    assert without_chosen_name("jsonl:/d/a?b/manifest.jsonl") == "jsonl:/d/a?b/manifest.jsonl"
