"""A run split with ``--vlmgate-shard I/N`` and joined with ``vlmgate merge`` is the unsplit run.

The end-to-end test gates the tiny LLaVA on the seven-image manifest (``conftest``) with a
small selection, once whole and once as three shards, in subprocesses without xdist, and
merges the shards' records: the merged run.json must equal the whole run's (everything but
the environment block), its JUnit file must carry the same properties, and its decision
must be the same. Then it hands ``vlmgate merge`` what a CI matrix gets wrong (a missing
shard, a shard twice, a shard of another run) and ``vlmgate diff`` / ``--vlmgate-baseline``
a shard's record, each of which must be refused by name.
"""

from __future__ import annotations

import random
import shutil
import time

import pytest

from vlmgate.cli import main
from vlmgate.errors import ConfigError, RecordError
from vlmgate.report.record import load_record
from vlmgate.report.verdicts import record_decision
from vlmgate.settings import build_settings
from vlmgate.shards import Shard, assign

from support import gate_args, junit_cases

#: Three flip-rate cases: the clean pass and two families, judged (ifr has a limit), not only recorded.
SELECTION = ("-k", "clean or translation or rotation")
LIMITS = 'inherit = false\nmode = "interval"\n[ifr]\n"*" = { max = 0.95 }\n[iv]\n"*" = { gated = false }\n'


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_the_shards_cover_every_case_once_whatever_the_order(count):
    ids = [f"robustness_tests/test_{suite}.py::test_{suite}[hf_ckpt-jsonl_b-{family}]"
           for suite in ("flip_rate", "drift") for family in ("clean", "any", "blur", "rotation", "padcrop", "jpeg")]
    shuffled = random.Random(count).sample(ids, len(ids))
    owned = [Shard(index, count).owns(shuffled) for index in range(1, count + 1)]
    assert sorted(case for share in owned for case in share) == sorted(ids)  # each case once
    assert max(map(len, owned)) - min(map(len, owned)) <= 1  # dealt round-robin: sizes differ by one at most
    assert assign(ids, count) == assign(shuffled, count) == assign(reversed(ids), count)  # order does not matter


@pytest.mark.parametrize("text,problem", [
    ("4/3", "I must lie in 1..N"), ("0/3", "I must lie in 1..N"), ("1/0", "N be at least 1"),
    ("2", "must be I/N"), ("a/3", "must be I/N"), ("1.5/3", "must be I/N"),
])
def test_a_bad_shard_is_one_message_naming_the_option(tmp_path, text, problem):
    with pytest.raises(ConfigError, match=problem) as raised:
        build_settings(tmp_path, {"shard": text})
    assert "--vlmgate-shard" in str(raised.value) and "pass e.g. --vlmgate-shard" in str(raised.value)
    assert build_settings(tmp_path, {"shard": " 2 / 3 "}).shard == Shard(2, 3)


def _timed(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, float]:
    started = time.perf_counter()
    result = pytester.runpytest_subprocess(*args)
    return result, time.perf_counter() - started


def test_three_shards_merge_into_the_unsplit_run(suite_dir, tiny_llava_checkpoint, manifest, capsys):
    suite_dir.makefile(".toml", limits=LIMITS)
    # No observation cache: every run computes its own, so the timings compare like with like.
    args = gate_args(tiny_llava_checkpoint, manifest, *SELECTION, "-p", "no:xdist", "--vlmgate-no-cache")
    whole, whole_s = _timed(suite_dir, *args, "--vlmgate-report=whole", "--junitxml=whole.xml")
    assert whole.ret == pytest.ExitCode.OK, whole.stdout.str()
    shard_s = []
    for index in (1, 2, 3):
        shard, seconds = _timed(suite_dir, *args, f"--vlmgate-shard={index}/3", f"--vlmgate-report=s{index}")
        assert shard.ret == pytest.ExitCode.OK, shard.stdout.str()
        shard.stdout.fnmatch_lines([f"*shard {index}/3: this decision covers this shard's cases only*"])
        shard_s.append(seconds)
    # The closing note's measurement (printed, not asserted: it depends on the machine).
    unsplit = load_record(suite_dir.path / "whole")
    shards = [load_record(suite_dir.path / f"s{index}") for index in (1, 2, 3)]
    sessions = [record.environment.timings["session_s"] for record in (unsplit, *shards)]
    with capsys.disabled():
        print(f"\nwall (process): unsplit {whole_s:.1f} s; shards {', '.join(f'{s:.1f}' for s in shard_s)} s "
              f"(longest {max(shard_s):.1f} s); pytest session (run.json session_s): unsplit {sessions[0]:.1f} s, "
              f"shards {', '.join(f'{s:.1f}' for s in sessions[1:])} s; command: pytest {' '.join(args)} "
              "[--vlmgate-shard=I/3]")
    assert [len(s.cases) for s in shards] == [1, 1, 1] and len(unsplit.cases) == 3
    assert all(s.shard is not None and s.shard.run_cases == shards[0].shard.run_cases for s in shards)
    assert {s.shard.index for s in shards if s.shard} == {1, 2, 3}
    assert unsplit.shard is None and "shard" not in unsplit.to_dict()

    capsys.readouterr()
    assert main(["merge", *(str(suite_dir.path / f"s{i}") for i in (3, 1, 2)),
                 "--out", str(suite_dir.path / "merged")]) == 0
    said = capsys.readouterr().out
    merged = load_record(suite_dir.path / "merged")
    assert merged.shard is None
    assert merged.comparable() == unsplit.comparable()  # cases, metric values, intervals, verdicts, completeness
    assert [c.id for c in merged.cases] == [c.id for c in unsplit.cases]
    assert record_decision(merged) == record_decision(unsplit)
    assert record_decision(merged).headline() in said and "written: " in said
    assert junit_cases(suite_dir.path / "merged" / "junit.xml") == junit_cases(suite_dir.path / "whole.xml")
    assert any("vlmgate.ifr.ci_high" in props for props in junit_cases(suite_dir.path / "whole.xml").values())
    assert (suite_dir.path / "merged" / "report.html").is_file()
    # A shard's own report says its verdict is its share's; the merged one is the run's.
    assert "shard 2/3: this report covers this shard's cases only" in (
        suite_dir.path / "s2" / "report.html").read_text()
    assert "this report covers this shard" not in (suite_dir.path / "merged" / "report.html").read_text()

    def refused(*argv: str) -> str:
        capsys.readouterr()
        assert main(list(argv)) == 2
        return capsys.readouterr().err

    s1, s2, s3 = (str(suite_dir.path / f"s{i}" / "run.json") for i in (1, 2, 3))
    out = ["--out", str(suite_dir.path / "bad")]
    assert "shard 3/3 missing" in refused("merge", s1, s2, *out)
    copy = shutil.copytree(suite_dir.path / "s2", suite_dir.path / "s2-again")
    doubled = refused("merge", s1, s2, str(copy / "run.json"), s3, *out)
    assert f"{s2} and {copy / 'run.json'} are both shard 2/3" in doubled
    # Another run's shard (another seed): collected only, which writes its marked record cheaply.
    other = suite_dir.runpytest_inprocess(*args, "--vlmgate-seed=1", "--vlmgate-shard=3/3",
                                           "--vlmgate-report=seed1", "--collect-only", "-q")
    assert other.ret == pytest.ExitCode.OK, other.stdout.str()
    foreign = refused("merge", s1, s2, str(suite_dir.path / "seed1"), *out)
    assert "seed1 (shard 3/3) is a shard of another run" in foreign and "shard.identity.seed is 1" in foreign
    assert not (suite_dir.path / "bad").exists() or not any((suite_dir.path / "bad").iterdir())

    # A shard is part of a run: neither diffed nor gated against until merged.
    diffed = refused("diff", str(suite_dir.path / "whole"), s1)
    assert "shard 1/3 of a run split with --vlmgate-shard" in diffed and "vlmgate merge" in diffed
    from vlmgate.report.baseline import Baseline

    with pytest.raises(RecordError, match="merge the 3 shards' records first"):
        Baseline.load(s2, models=list(unsplit.models), benchmarks=list(unsplit.benchmarks), seed=0)

    # Gated against the merged record, shard 1 (the clean case alone: no change limit) still counts
    # the whole run's gated changes (translation's and rotation's ifr), so it decides at alpha / 2.
    suite_dir.makefile(".toml", change=LIMITS.replace("max = 0.95", "max = 0.95, max_increase = 0.0"))
    gated = suite_dir.runpytest_inprocess(*args, "--vlmgate-thresholds=change.toml", "--vlmgate-shard=1/3",
                                          "--vlmgate-baseline=merged/run.json", "--collect-only", "-q")
    gated.stdout.fnmatch_lines(["2 gated changes against merged/run.json, each decided at alpha / 2 *",
                                "1/* tests collected (* deselected)*"])
    clean = unsplit.cases[0]
    assert clean.key.family == "clean" and [line for line in gated.outlines if line.endswith("]")] == [
        f"{clean.test}[{clean.id}]"]
