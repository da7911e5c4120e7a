"""A baseline that judges nothing, or judges on other draws, says so: a run against the wrong
record must not stay green without a word, and the family of gated changes is named."""

from __future__ import annotations

import json

from support import gate_args

SELECT = ("-m", "translation", "-p", "no:xdist")
CHANGE = 'inherit = false\n[ifr]\n"*" = { max = 0.99, max_increase = 0.02 }\n[iv]\n"*" = { gated = false }\n'


def test_a_baseline_that_pairs_nothing_and_one_of_another_seed_are_named(suite_dir, tiny_llava_checkpoint, manifest,
                                                                         tmp_path):
    suite_dir.makefile(".toml", change=CHANGE)
    args = gate_args(tiny_llava_checkpoint, manifest, *SELECT, "--vlmgate-thresholds=change.toml")
    first = suite_dir.runpytest_subprocess(*args, "--vlmgate-report=first")
    assert first.ret == 0, first.stdout.str()

    same = suite_dir.runpytest_subprocess(*args, "--vlmgate-baseline=first/run.json")
    assert same.ret == 0
    same.stdout.fnmatch_lines(["*vlmgate: baseline*",
                               "1 gated changes against first/run.json, each decided at alpha / 1 = 0.05 *"])
    assert "WARNING" not in same.stdout.str()

    other_seed = suite_dir.runpytest_subprocess(*args, "--vlmgate-seed=7", "--vlmgate-baseline=first/run.json")
    other_seed.stdout.fnmatch_lines(["WARNING: first/run.json was recorded with seed 0, this run uses seed 7*"
                                     "--vlmgate-seed 0"])

    # A record of other cases (another suite file's): nothing of this run pairs with it.
    record = json.loads((suite_dir.path / "first" / "run.json").read_text())
    for case in record["cases"]:
        case["test"] = "test_other.py::test_other"
    (suite_dir.path / "foreign.json").write_text(json.dumps(record))
    foreign = suite_dir.runpytest_subprocess(*args, "--vlmgate-baseline=foreign.json")
    foreign.stdout.fnmatch_lines(["0 gated changes against foreign.json*",
                                  "WARNING: foreign.json pairs no gated metric of this run*no change was judged*"])
