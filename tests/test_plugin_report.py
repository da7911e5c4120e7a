"""Run records, snapshots and baseline gates end to end, through pytester.

Each run gates the tiny LLaVA on the six-image manifest of ``test_plugin.py``, selecting
one or two cases to stay fast.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from vlmgate.cli import main
from vlmgate.report.record import Completeness, load_record

from support import gate_args, junit_cases

#: Limits on the change since a baseline: ifr also has a value limit the tiny checkpoint passes
#: (its whole interval lies below 0.95), iv and accuracy have none (recorded without a baseline).
CHANGE_LIMITS = """inherit = false
mode = "interval"
[ifr]
"*" = { max = 0.95, max_increase = 0.0 }
[iv]
"*" = { max_increase = 0.0 }
[accuracy]
"*" = { max_decrease = 0.0 }
"""
CLEAN_AND_PADCROP = ("-k", "clean or padcrop")


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    counts = result.parseoutcomes()
    return {k: v for k, v in counts.items() if k in ("passed", "failed", "error")}


@pytest.fixture(autouse=True)
def shared_matplotlib_cache(tmp_path_factory, monkeypatch):
    """pytester gives every run a fresh HOME: share matplotlib's font cache instead of rebuilding it per run."""
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path_factory.getbasetemp() / "matplotlib"))


def redrawn_checkpoint(source: Path, target: Path, seed: int) -> Path:
    """A copy of ``source`` whose weight matrices are redrawn at the same scale: another model."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    tensors = load_file(source / "model.safetensors")
    rng = np.random.default_rng(seed)
    for name in sorted(tensors):
        if tensors[name].ndim >= 2:
            drawn = rng.normal(0.0, float(tensors[name].std()), size=tuple(tensors[name].shape))
            tensors[name] = torch.from_numpy(drawn.astype(np.float32))
    save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})
    return target


def test_record_is_identical_with_one_and_two_workers_and_snapshots_are_opt_in(suite_dir, tiny_llava_checkpoint,
                                                                                 manifest, tmp_path):
    # A model spec with ":" and "/" in it: the case id (and so the snapshot file name) stays intact.
    checkpoint = shutil.copytree(tiny_llava_checkpoint, tmp_path / "org:team" / "ckpt:v2")
    suite_dir.makefile(".toml", limits='inherit = false\nmode = "interval"\n[ifr]\n"*" = { max = 0.95 }\n'
                                       '[iv]\n"*" = { gated = false }\n')
    args = gate_args(checkpoint, manifest, *CLEAN_AND_PADCROP)
    two = suite_dir.runpytest_subprocess(*args, "-n", "2", "--vlmgate-report=two", "--vlmgate-snapshot",
                                         "--snapshot-update")
    assert outcomes(two) == {"passed": 1}  # clean records accuracy only: it reads as recorded
    two.stdout.fnmatch_lines(["*vlmgate: report*", "written: two/run.json", "written: two/report.html"])
    # Without --vlmgate-snapshot the stored snapshots are neither judged nor reported unused.
    one = suite_dir.runpytest_subprocess(*args, "-p", "no:xdist", "--vlmgate-report=one")
    assert one.ret == pytest.ExitCode.OK and outcomes(one) == {"passed": 1}
    assert "snapshot report summary" not in one.stdout.str() and "unused" not in one.stdout.str()

    single, double = load_record(suite_dir.path / "one"), load_record(suite_dir.path / "two")
    assert single.comparable() == double.comparable()
    assert (single.environment.workers, double.environment.workers) == (None, "2")
    ids = ["hf_ckpt_v2-jsonl_bench7-clean", "hf_ckpt_v2-jsonl_bench7-padcrop"]
    assert [case.id for case in single.cases] == ids
    assert list(single.models) == [f"hf:{checkpoint}"]
    assert re.fullmatch(r"[0-9a-f]{16,}", single.models[f"hf:{checkpoint}"])
    accuracy, ifr = single.cases[0].metric("accuracy"), single.cases[1].metric("ifr")
    assert sorted(accuracy.units) == ["p0", "s0", "s1", "s2", "s3", "s4", "s5"]
    assert accuracy.value == sum(accuracy.units.values()) / 7 and accuracy.better == "higher"
    assert all(re.fullmatch(r"(s[0-5]|p0)\|padcrop\(\{.*\}\)", unit) for unit in ifr.units)
    per_sample = {sample: sum(u.startswith(f"{sample}|") for u in ifr.units) for sample in accuracy.units}
    assert len(set(per_sample.values())) == 1 and len(ifr.units) == ifr.n == 7 * per_sample["s0"]
    assert ifr.value == sum(ifr.units.values()) / ifr.n and ifr.kind == "proportion"

    snapshots = suite_dir.path / "__vlmgate_snapshots__" / "test_flip_rate"
    # Snapshot names leave the model out: release N+1 is compared with release N's files.
    names = [i.removeprefix("hf_ckpt_v2-") for i in ids]
    assert sorted(p.name for p in snapshots.iterdir()) == [f"test_flip_rate[{name}].json" for name in names]
    stored = json.loads((snapshots / f"test_flip_rate[{names[1]}].json").read_text())
    # A snapshot of decisions: each metric's verdict and what a later release is compared on.
    assert stored["format"] == 2 and stored["metrics"]["ifr"] == {
        "value": round(ifr.value, 3), "n": ifr.n, "n_clusters": ifr.n_clusters, "limit": "max 0.95 (interval)",
        "ci": [round(ifr.ci_low, 3), round(ifr.ci_high, 3)], "verdict": "pass"}
    assert stored["metrics"]["iv"]["verdict"] == "recorded"
    html = (suite_dir.path / "one" / "report.html").read_text()
    assert ids[1] in html and "data:image/png;base64," in html


def test_changes_since_a_release_snapshot_diff_and_baseline_gates(suite_dir, tiny_llava_checkpoint, manifest,
                                                                  tmp_path, capsys):
    suite_dir.makefile(".toml", change=CHANGE_LIMITS)  # change limits judge nothing without a baseline
    args = gate_args(tiny_llava_checkpoint, manifest, *CLEAN_AND_PADCROP, "--vlmgate-thresholds=change.toml")
    release = suite_dir.runpytest_subprocess(*args, "--vlmgate-report=v1", "--vlmgate-snapshot", "--snapshot-update")
    assert outcomes(release) == {"passed": 1}  # clean: a change limit records without a baseline

    # 1. The same checkpoint again, against edited snapshots and its own record as the baseline:
    # padcrop's stored ifr moved with an interval that leaves out this run's value (a significant
    # move), clean's accuracy value was nudged within its interval (not one).
    folder = suite_dir.path / "__vlmgate_snapshots__" / "test_flip_rate"
    for family, metric, nudge, interval in (("padcrop", "ifr", 0.05, [0.04, 0.06]),
                                            ("clean", "accuracy", 0.0008, None)):
        path = folder / f"test_flip_rate[jsonl_bench7-{family}].json"
        stored = json.loads(path.read_text())
        stored["metrics"][metric]["value"] = round(stored["metrics"][metric]["value"] + nudge, 4)
        stored["metrics"][metric]["ci"] = interval or stored["metrics"][metric]["ci"]
        path.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    again = suite_dir.runpytest_subprocess(*args, "--vlmgate-snapshot", "--vlmgate-baseline=v1/run.json",
                                           "--junitxml=out.xml")
    assert outcomes(again) == {"passed": 1, "failed": 1}  # padcrop outside the stored interval, clean within it
    text = again.stdout.str()
    assert "snapshot of flip_rate case 'padcrop': a decision changed since the stored one" in text
    assert "ifr: value moved outside the stored 95% interval under an unchanged verdict pass (stored 0.05 " in text
    assert "snapshot of flip_rate case 'clean'" not in text
    assert re.search(r'-\s+"value": 0\.05,?\n', text) and re.search(r'\+\s+"value": 0(\.0)?,?\n', text)
    cases = junit_cases(suite_dir.path / "out.xml")
    padcrop = cases["test_flip_rate[hf_checkpoint-jsonl_bench7-padcrop]"]
    clean = cases["test_flip_rate[hf_checkpoint-jsonl_bench7-clean]"]
    # The gates themselves pass: an unchanged checkpoint has no discordant unit, so p = 1.
    assert (padcrop["vlmgate.ifr.passed"], padcrop["vlmgate.ifr.baseline_delta"], padcrop["vlmgate.ifr.baseline_p"]) \
        == ("true", "0", "1")
    assert (clean["vlmgate.accuracy.passed"], clean["vlmgate.accuracy.baseline_p"]) == ("true", "1")
    assert clean["vlmgate.threshold"] == "max decrease 0 vs baseline"

    # 2. A candidate that flips where the released model does not: a significant rise in IFR.
    candidate = redrawn_checkpoint(tiny_llava_checkpoint, tmp_path / "candidate", seed=7)
    gated = suite_dir.runpytest_subprocess(*gate_args(candidate, manifest, "-k", "padcrop",
                                                      "--vlmgate-thresholds=change.toml",
                                                      "--vlmgate-baseline=v1/run.json", "--vlmgate-report=v2"))
    assert outcomes(gated) == {"failed": 1}
    before = next(c for c in load_record(suite_dir.path / "v1").cases if c.key.family == "padcrop").metric("ifr")
    after = load_record(suite_dir.path / "v2").cases[0].metric("ifr")
    assert after.failed_limits == ("change",)  # within its own limit (max 0.95), failed by the change alone
    assert (after.outcome, after.tier, after.effect) == ("fail", "critical", "no-go")
    # ifr and iv of padcrop are the run's two gated changes: each decided at 0.05 / 2, and the record says so.
    assert after.change["decided_at"] == 0.025 and after.change["significant"] is True
    assert after.change["baseline"] == load_record(suite_dir.path / "v1").digest
    assert after.change_limits == {"max_increase": 0.0}
    shared = sorted(set(before.units) & set(after.units))
    rose = sum(after.units[k] > before.units[k] for k in shared)
    fell = sum(after.units[k] < before.units[k] for k in shared)
    assert rose >= 10 and fell < rose, "the redrawn candidate should flip where the released model does not"
    # The padcrop instances nest in 7 images: the change is tested over images (exact sign-flip
    # test on the per-image differences), not as independent instances (McNemar).
    images = sorted({before.clusters[k] for k in shared})
    per_image = [sum(after.units[k] - before.units[k] for k in shared if before.clusters[k] == image)
                 for image in images]
    moved = [d for d in per_image if d]
    signs = np.array(list(itertools.product((-1, 1), repeat=len(moved))))
    p_value = float(np.mean(np.abs(signs @ np.array(moved)) >= abs(sum(moved))))
    assert (f"ifr {before.value:.4f} -> {after.value:.4f} ({after.value - before.value:+.4f}) on {len(shared)} paired "
            f"units in {len(images)} images, sign-flip test over images p = {p_value:.3g} (vs baseline v1/run.json) "
            "exceeds max_increase 0 and is significant; from change.toml [ifr] *") in gated.stdout.str()
    assert gated.ret == pytest.ExitCode.TESTS_FAILED  # NO-GO
    gated.stdout.fnmatch_lines(["*vlmgate: decision*", "NO-GO: 1 cases: 1 fail (exit code 1)",
                                "*vlmgate: gates that failed, were inconclusive or warned*",
                                "*padcrop]: ifr = * limit max 0.95 (interval); max increase 0 vs baseline: FAIL "
                                "(critical tier: no-go); change +* since the baseline, p = * at level 0.025 "
                                "(significant)"])
    html = (suite_dir.path / "v2" / "report.html").read_text()
    banner = html.split("</header>")[0]
    assert '<p class="stamp">NO-GO</p>' in banner and ">flip_rate padcrop ifr</a>: ifr " in banner
    assert "Changes since the baseline" in html

    v1, v2 = str(suite_dir.path / "v1" / "run.json"), str(suite_dir.path / "v2" / "run.json")
    capsys.readouterr()  # what the pytester runs printed
    assert main(["diff", v1, v1, "--fail-on", "regression"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "decision GO -> GO; 0 gates newly failing; 0 fixed; " \
                                                      "0 significant changes without a limit"
    assert main(["diff", v1, v2, "--fail-on", "regression"]) == 1
    assert capsys.readouterr().out.splitlines()[0].startswith(
        "decision GO -> NO-GO; 2 gates newly failing: flip_rate padcrop ifr, flip_rate padcrop iv; 0 fixed")
    # The diff decides v2's gated changes at the level its gate used against this very record.
    main(["diff", v1, v2, "--format", "json"])
    rows = {row["metric"]: row for row in json.loads(capsys.readouterr().out)["rows"] if row["family"] == "padcrop"}
    assert rows["ifr"]["change"]["family"] == "gated changes" and rows["ifr"]["change"]["decided_at"] == 0.025
    assert rows["ifr"]["change"]["significant"] is True and rows["ifr"]["status"] == "regressed"


INTERRUPT_THIRD = """
import pytest

started = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    started.append(item.nodeid)
    if len(started) == 3:
        raise KeyboardInterrupt
"""


def test_an_interrupted_run_writes_a_record_marked_incomplete(suite_dir, tiny_llava_checkpoint, manifest):
    suite_dir.makeconftest(INTERRUPT_THIRD)
    collected = suite_dir.runpytest_inprocess(*gate_args(tiny_llava_checkpoint, manifest, "--collect-only", "-q"))
    selected = [line for line in collected.outlines if "::" in line and line.endswith("]")]
    assert len(selected) == 14
    result = suite_dir.runpytest_inprocess(*gate_args(tiny_llava_checkpoint, manifest, "--vlmgate-report=out"),
                                           no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    record = load_record(suite_dir.path / "out")
    assert [f"test_flip_rate.py::test_flip_rate[{case.id}]" for case in record.cases] == sorted(selected[:2])
    completeness = record.completeness
    assert (completeness.complete, completeness.reason, completeness.selected) == (
        False, "interrupted (KeyboardInterrupt)", 14)
    assert list(completeness.not_run) == selected[2:]
    result.stdout.fnmatch_lines(["*vlmgate: report*", "incomplete: 12 of 14 cases not run (interrupted "
                                 "(KeyboardInterrupt)); vlmgate diff and --vlmgate-baseline refuse this record",
                                 "written: out/run.json"])
    html = (suite_dir.path / "out" / "report.html").read_text()
    assert '<p class="incomplete">incomplete: 12 of 14 cases not run (interrupted (KeyboardInterrupt))</p>' in html
    assert all(f"<li><code>{nodeid}</code></li>" in html for nodeid in selected[2:])


def test_a_stop_after_a_failure_is_incomplete_and_a_chosen_subset_is_complete(suite_dir, tiny_llava_checkpoint,
                                                                            manifest):
    suite_dir.makefile(".toml", strict='inherit = false\nmode = "strict"\n[accuracy]\n"*" = { min = 1.0 }\n'
                                       '[ifr]\n"*" = { gated = false }\n[iv]\n"*" = { gated = false }\n')
    args = gate_args(tiny_llava_checkpoint, manifest, "--vlmgate-thresholds=strict.toml")
    stopped = suite_dir.runpytest_inprocess(*args, "-x", "--vlmgate-report=x", "-k", "clean or padcrop or any")
    assert stopped.ret == pytest.ExitCode.TESTS_FAILED
    record = load_record(suite_dir.path / "x")
    (failed,) = record.cases
    assert failed.key.family == "clean" and failed.outcome == "failed"
    assert (record.completeness.complete, record.completeness.reason, record.completeness.selected) == (
        False, "stopping after 1 failures", 3)
    assert [nodeid.rsplit("-", 1)[-1] for nodeid in record.completeness.not_run] == ["any]", "padcrop]"]

    maxfail = suite_dir.runpytest_inprocess(*args, "--maxfail=2", "--vlmgate-report=m", "-k", "clean or padcrop")
    assert maxfail.ret == pytest.ExitCode.TESTS_FAILED  # the limit was not reached: every case ran
    assert load_record(suite_dir.path / "m").completeness == Completeness(True, None, 2, ())
    chosen = suite_dir.runpytest_inprocess(*gate_args(tiny_llava_checkpoint, manifest, "-k", "padcrop",
                                                      "--vlmgate-report=k"))
    assert chosen.ret == pytest.ExitCode.OK and "cases not run" not in chosen.stdout.str()
    assert load_record(suite_dir.path / "k").completeness == Completeness(True, None, 1, ())


def test_an_unusable_report_folder_is_a_usage_error_before_any_test(suite_dir, tiny_llava_checkpoint, manifest):
    (suite_dir.path / "taken").write_text("a file, not a folder")
    result = suite_dir.runpytest_inprocess(*gate_args(tiny_llava_checkpoint, manifest, "--vlmgate-report=taken"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.errlines if line] == [
        "ERROR: vlmgate: --vlmgate-report taken: is a file, not a folder; pass a folder path, or move the file away"]
    assert "passed" not in result.stdout.str() and (suite_dir.path / "taken").read_text() == "a file, not a folder"


def test_release_n_plus_one_is_compared_with_release_n_snapshots_and_leaves_them_intact(
        suite_dir, tiny_llava_checkpoint, manifest, tmp_path, capsys):
    """Record v1's snapshots, gate a differently named v2 against them: the case whose gated ifr changed
    its verdict fails naming it, with a readable diff; the clean case, whose accuracy is only recorded,
    passes however far it moved; and neither that run nor a narrower --snapshot-update deletes v1's files.

    The limit is on the point value (strict): over 7 images an interval is too wide for v2's rise
    (at least 10 of 56 instances, ``test_changes_since_a_release...``) to leave v1's interval."""
    suite_dir.makefile(".toml", limits='inherit = false\nmode = "strict"\n[ifr]\n"*" = { max = 0.1 }\n'
                                       '[iv]\n"*" = { gated = false }\n')
    v1 = shutil.copytree(tiny_llava_checkpoint, tmp_path / "release-41")
    v2 = redrawn_checkpoint(tiny_llava_checkpoint, tmp_path / "release-42", seed=7)
    recorded = suite_dir.runpytest_subprocess(*gate_args(v1, manifest, *CLEAN_AND_PADCROP, "--vlmgate-snapshot",
                                                         "--snapshot-update"))
    assert outcomes(recorded) == {"passed": 1}  # clean records accuracy only
    assert "warning" not in recorded.stdout.str().lower()  # syrupy relates the release-neutral files to their cases
    folder = suite_dir.path / "__vlmgate_snapshots__"
    v1_files = {path: path.read_bytes() for path in folder.rglob("*.json")}
    assert len(v1_files) == 2

    gated = suite_dir.runpytest_subprocess(*gate_args(v2, manifest, *CLEAN_AND_PADCROP, "--vlmgate-snapshot"))
    assert outcomes(gated) == {"failed": 1}  # compared, not "missing": the names match across releases
    text = gated.stdout.str()
    assert re.search(r"FAILED .*-padcrop\]", text) and not re.search(r"FAILED .*-clean\]", text)
    assert "snapshot of flip_rate case 'padcrop': a decision changed since the stored one (- stored, + received" in text
    assert "  ifr: verdict changed pass -> fail (stored 0 [0, " in text
    assert "accuracy: " not in text  # recorded only: it never fails a snapshot
    assert re.search(r'-\s+"value": [0-9.]+', text) and re.search(r'\+\s+"value": [0-9.]+', text)
    assert {path: path.read_bytes() for path in folder.rglob("*.json")} == v1_files

    # Accepting a narrower run rewrites what it asserts and deletes nothing it did not run.
    narrow = suite_dir.runpytest_subprocess(*gate_args(v2, manifest, "-k", "padcrop", "--vlmgate-snapshot",
                                                       "--snapshot-update"))
    assert outcomes(narrow) == {"failed": 1}  # by its own gate: the snapshot is accepted all the same
    after = {path: path.read_bytes() for path in folder.rglob("*.json")}
    assert after.keys() == v1_files.keys()
    changed = [path.name for path in after if after[path] != v1_files[path]]
    assert changed == ["test_flip_rate[jsonl_bench7-padcrop].json"]

    # The two releases' folders diff as they are, whatever they are called.
    shutil.copytree(folder, tmp_path / "snapshots-v41")
    for path, data in v1_files.items():
        (tmp_path / "snapshots-v41" / path.relative_to(folder)).write_bytes(data)
    shutil.copytree(folder, tmp_path / "snapshots-v42")
    assert main(["diff", str(tmp_path / "snapshots-v41"), str(tmp_path / "snapshots-v42")]) == 0
    out = capsys.readouterr().out
    assert "padcrop" in out and "run.json" not in out


FAIL_PADCROP = 'inherit = false\nmode = "strict"\n[ifr]\n"*" = { max = 0.0 }\n[iv]\n"*" = { gated = false }\n'


def test_a_failure_says_how_many_where_what_was_asked_and_how_to_rerun_it(suite_dir, tiny_llava_checkpoint,
                                                                          manifest, tmp_path):
    """The message of a failed gate is something to act on: counts over instances and images, the
    transitions, the worst samples with their question and answers as texts, and the commands that
    rerun the case alone and search its family; the rerun command really runs that one case."""
    suite_dir.makefile(".toml", fail=FAIL_PADCROP)
    candidate = redrawn_checkpoint(tiny_llava_checkpoint, tmp_path / "candidate", seed=7)
    args = gate_args(candidate, manifest, "-k", "padcrop", "--vlmgate-thresholds=fail.toml", "--vlmgate-limit=7")
    failed = suite_dir.runpytest_subprocess(*args)
    assert outcomes(failed) == {"failed": 1}
    text = failed.stdout.str()
    assert re.search(r"flip_rate gate failed for family 'padcrop' on .*\n  FAIL \[critical: no-go\]: ifr = ",
                     text), text
    counted = re.search(r"\n    (\d+) of (\d+) instances flipped, on (\d+) of 7 images\n", text)
    assert counted, text
    flipped, instances, images = map(int, counted.groups())
    assert 0 < flipped <= instances and 0 < images <= 7 and instances % 7 == 0
    transitions = re.search(r"\n    transitions: R→W (\d+), W→R (\d+), R→R (\d+), W→W (\d+)\n", text)
    assert transitions and sum(map(int, transitions.groups())) == instances  # every sample has an answer
    worst = re.search(r"\nworst samples \(ifr\):\n  (s\d|p0): (\d+) of (\d+) instances flipped\n"
                      r"    question: (.*)\n    correct: (.*)\n    clean: (.*)\n    perturbed: (.*)\n", text)
    assert worst, text
    sample, question, correct, clean, perturbed = worst.group(1, 4, 5, 6, 7)
    answers = {"A. red", "B. green", "C. blue", "D. yellow"} if sample != "p0" else {"Yes", "No"}
    assert question == ("What colour is the shape?" if sample != "p0" else "Is there a red circle in the image?")
    assert correct in answers and clean in answers
    assert re.fullmatch(r"(.+) under padcrop\(\{.*\}\)(; .+ under padcrop\(\{.*\}\))*(; \.\.\.)?", perturbed), perturbed
    assert perturbed.split(" under ")[0] in answers - {clean}
    nodeid = "test_flip_rate.py::test_flip_rate[hf_candidate-jsonl_bench7-padcrop]"
    options = (f"--vlmgate-model hf:{candidate} --vlmgate-benchmark jsonl:{manifest} --vlmgate-thresholds fail.toml "
               "--vlmgate-limit 7")
    rerun = re.search(r"\nrerun this case alone:\n  (pytest .*)\n", text).group(1)
    assert rerun == f"pytest '{nodeid}' {options}"
    assert f"\nsearch padcrop for a minimal failing instance:\n  pytest . -m 'search and padcrop' --vlmgate-search " \
           f"{options}\n" in text
    again = suite_dir.runpytest_subprocess("-p", "no:cacheprovider", *shlex.split(rerun)[1:])
    assert outcomes(again) == {"failed": 1} and counted.group(0) in again.stdout.str()
