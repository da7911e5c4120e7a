"""Fault battery, second pass: inputs that used to give a wrong or misleading answer.

* an item with more than 26 options (prompts label options A to Z; the 27th was ``[``);
* a run record nested too deeply for Python's recursion (``vlmgate diff`` crashed with
  exit 1, the code that means "regression");
* a safetensors file given where the spec takes the checkpoint folder ("does not exist");
* a stored counterexample whose sample the benchmark does not hold ("nothing was
  measured", and a run that read GO);
* a run record whose proportion contradicts its own units (accepted by ``vlmgate diff``).

Each is run as a user would (the gate through pytest, the ``vlmgate`` command, or the
loader), and answered with one message naming the file, the key or sample and the fix.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from support import SEARCH_TEST

#: The flip-rate gate of one family: enough to load the benchmark and the model.
ONE_CASE = ("-m", "rotation")


def rows_of(manifest: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def write_rows(manifest: Path, rows: list[dict[str, Any]]) -> Path:
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def with_options(manifest: Path, count: int) -> Path:
    """``manifest`` with sample s0 asking its question over ``count`` options, the first correct."""
    rows = rows_of(manifest)
    rows[0].update(options=[f"colour {i}" for i in range(count)], answer="colour 0")
    return write_rows(manifest, rows)


# -- more options than letters ------------------------------------------------------------------


def test_an_item_with_27_options_fails_the_gate_naming_the_sample(gate, manifest):
    with_options(manifest, 27)
    gate(*ONE_CASE, "--vlmgate-no-cache", manifest=manifest).refused(
        1, "DataError", str(manifest), "sample 's0'", "27 options",
        fix=r"at most 26; split the item or drop options beyond Z")


@pytest.mark.parametrize("scheme", ["jsonl", "textqa"])
def test_the_loaders_refuse_27_options_and_keep_26(manifest, scheme):
    from vlmgate.benchmarks.base import load_benchmark
    from vlmgate.errors import DataError

    rows = [{"id": f"q{count}", "question": "Which colour?", "options": [f"colour {i}" for i in range(count)],
             "answer": 0, **({"image": "images/s0.png"} if scheme == "jsonl" else {})} for count in (26, 27)]
    path = manifest.parent / f"{scheme}.jsonl"
    write_rows(path, rows[:1])
    benchmark = load_benchmark(f"{scheme}:{path}")
    (item,) = benchmark.samples() if scheme == "jsonl" else benchmark.items()
    assert item.labels[-1] == "Z"
    write_rows(path, rows)
    with pytest.raises(DataError) as info:
        benchmark = load_benchmark(f"{scheme}:{path}")
        list(benchmark.samples() if scheme == "jsonl" else benchmark.items())
    message = str(info.value)
    assert f"{path}:2" in message and "'q27'" in message and "27 options" in message
    assert "at most 26" in message and "\n" not in message


# -- run records: nesting and proportions -------------------------------------------------------


#: The run record the tests below read, written once per session (see ``record``).
_RECORDS: dict[str, Path] = {}


@pytest.fixture
def record(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run record: the flip-rate gate of rotation on the tiny checkpoint, as run.json.

    Written by the first test that asks and kept read-only; a test that edits it writes a copy.
    """
    if "run" not in _RECORDS:
        said = request.getfixturevalue("gate")(*ONE_CASE, "--vlmgate-report=report",
                                               manifest=request.getfixturevalue("manifest"))
        assert said.exit_code == 0, said.output
        kept = tmp_path_factory.mktemp("record") / "run.json"
        kept.write_bytes((request.getfixturevalue("suite_dir").path / "report" / "run.json").read_bytes())
        _RECORDS["run"] = kept
    return _RECORDS["run"]


def test_a_deeply_nested_file_is_not_a_run_record(cli, record, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)  # beyond json's recursion limit
    cli("diff", str(record), str(deep)).refused(
        2, str(deep), "not a vlmgate run record: nesting too deep", fix=r"pass the run\.json pytest --vlmgate-report")


def test_a_record_with_deeply_nested_details_is_refused_not_crashed(cli, record, tmp_path):
    """900 levels parse, but copying or hashing them recursed past the limit (exit 1, a traceback)."""
    data = json.loads(record.read_text())
    nested: Any = 1
    for _ in range(900):
        nested = {"a": nested}
    data["cases"][0]["metrics"][0]["details"]["nested"] = nested
    deep = tmp_path / "run.json"
    deep.write_text(json.dumps(data))
    cli("diff", str(record), str(deep)).refused(
        2, str(deep), "nesting too deep", fix=r"pass the run\.json pytest --vlmgate-report")


def _proportion(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first case and its first proportion that counts its units (``n`` of them)."""
    for case in data["cases"]:
        for metric in case["metrics"]:
            if metric["kind"] == "proportion" and metric.get("units") and metric.get("count") is not None \
                    and metric["n"] == len(metric["units"]):
                return case, metric
    raise AssertionError("the record holds no proportion with units")


def test_the_writer_keeps_every_proportion_consistent_with_its_units(cli, record):
    data = json.loads(record.read_text())
    case, metric = _proportion(data)
    assert metric["count"] == sum(metric["units"].values())
    assert metric["value"] == metric["count"] / metric["n"]
    said = cli("diff", str(record), str(record))
    assert said.exit_code == 0, said.output


@pytest.mark.parametrize("edit, problem", [
    (lambda m: m.update(count=m["count"] + 1), "is not the sum of its"),
    (lambda m: m.update(value=m["value"] + 0.125), "is not count / n"),
], ids=["count", "value"])
def test_a_proportion_that_contradicts_its_units_is_refused(cli, record, tmp_path, edit, problem):
    data = json.loads(record.read_text())
    case, metric = _proportion(data)
    edit(metric)
    edited = tmp_path / "run.json"
    edited.write_text(json.dumps(data))
    cli("diff", str(record), str(edited)).refused(
        2, str(edited), f"case {case['id']!r}", f"metric {metric['name']!r}", problem,
        fix=r"edited or damaged: restore it, or re-run the suite with pytest --vlmgate-report")


# -- a file given as the checkpoint -------------------------------------------------------------


def test_a_weights_file_as_the_checkpoint_names_the_folder_to_pass(gate, tiny_llava_checkpoint):
    weights = tiny_llava_checkpoint / "model.safetensors"
    folder = tiny_llava_checkpoint.resolve()
    gate(*ONE_CASE, "--vlmgate-no-cache", checkpoint=weights).refused(
        1, "ModelError", f"{folder / 'model.safetensors'} is a file, not a checkpoint folder",
        fix=rf"pass hf:{re.escape(str(folder))}")


# -- a stored counterexample on a sample the benchmark does not hold ----------------------------


STORE = """version = 1

[[counterexample]]
model = "hf:/releases/41"
benchmark = "jsonl:{manifest}"
family = "rotation"
sample = "gone"
level = 3
choices = {{ sign = 1 }}
"""


def test_a_counterexample_on_a_missing_sample_fails_its_case(gate, suite_dir, manifest):
    suite_dir.makepyfile(test_minimal_failures=SEARCH_TEST)
    store = suite_dir.path / "store.toml"
    store.write_text(STORE.format(manifest=manifest))
    before = store.read_text()
    said = gate("-m", "search and rotation", "--vlmgate-counterexamples=store.toml", manifest=manifest)
    said.refused(1, "ConfigError", str(store), "on sample 'gone'", f"benchmark jsonl:{manifest} holds no sample",
                 fix=r"remove the entry from \S+store\.toml, or run on the benchmark it was found on")
    assert "nothing was measured" not in said.output
    assert store.read_text() == before  # the entry is kept for the user to decide
