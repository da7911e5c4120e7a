"""The minimal-failure suite end to end on bundled:shapes-v2, through pytester.

One pytester folder, three runs under the ``ci`` profile: the search finds and stores a
minimal rotation and overlay failure (checked minimal with the engine: one level milder
keeps the clean answer), the next run replays them and fails before any search, a store
holding one family's entry replays that family alone (the other case is not generated
without ``--vlmgate-search``), and after the store is cleared no case is generated until
the search runs again and finds the same instances.
"""

from __future__ import annotations

import json
import re

import pytest

from support import REPO, SEARCH_TEST, outcomes

MODEL = "bundled:shapes-v2"
FAMILIES = ("rotation", "textoverlay")
#: The first 31 samples: within them both searches find a minimal failure of shapes-v2 in budget.
LIMIT = 31
#: The "combinations left out" line of a run that neither searches nor has anything of those families stored.
LEFT_OUT = ("test_minimal_failures.py::test_minimal_failures: {cases} cases of bundled_shapes-v2 x bundled_shapes: "
            "the minimal-failure search is a nightly job, opt-in with --vlmgate-search")
INSTANCE = re.compile(r"sample (\S+), (\w+) level (\d+) of tolerance \d+ .*\n  params .*, choices (\{.*\})")


#: A minimal failure stops the release here: the shipped tier of the search's limit is advisory (a
#: found instance only warns, its message in the summary's WARNED section, not as a failure),
#: while these tests read the instance from the failure the search reports.
BLOCKING = 'inherit = false\n[minimal_failure]\n"*" = { max = 0, mode = "strict", tier = "critical" }\n'


def run(pytester: pytest.Pytester, *extra: str, thresholds: str | None = "blocking.toml"):
    """The search cases of ``FAMILIES``; ``thresholds=None``: under the shipped limits."""
    limits = [f"--vlmgate-thresholds={thresholds}"] if thresholds else []
    return pytester.runpytest_subprocess(
        *extra, "-p", "no:cacheprovider", "--hypothesis-profile=ci", f"--vlmgate-model={MODEL}",
        f"--vlmgate-limit={LIMIT}", "--vlmgate-counterexamples=store.toml", "--vlmgate-search-images=images",
        *limits, "-m", "search and (rotation or textoverlay)")


def failures(result: pytest.RunResult) -> str:
    """The failure sections only: under CI pytest prints each whole message again in the short summary."""
    return result.stdout.str().split("short test summary info")[0]


def instances(text: str) -> dict[str, tuple[str, int, dict]]:
    return {family: (sample, int(level), json.loads(choices))
            for sample, family, level, choices in INSTANCE.findall(text)}


def test_search_finds_minimal_failures_replays_them_and_searches_again(pytester):
    pytester.makeconftest((REPO / "conftest.py").read_text())
    pytester.makepyfile(test_minimal_failures=SEARCH_TEST)
    pytester.makefile(".toml", blocking=BLOCKING)

    first = run(pytester, "--vlmgate-search")
    first.assert_outcomes(failed=2, deselected=4)
    text = failures(first)
    assert text.count("minimal failing instance (searched)") == 2
    found = instances(text)
    assert sorted(found) == sorted(FAMILIES)
    store = (pytester.path / "store.toml").read_text()
    for family, (sample, level, _) in found.items():
        assert f'family = "{family}"\nsample = "{sample}"\nlevel = {level}\n' in store
        assert len(list((pytester.path / "images").rglob(f"{family}-{sample}-L{level}-*.png"))) == 2
    calls = [int(n) for n in re.findall(r"(\d+) model calls in all", text)]
    print(f"model calls per minimal instance (clean pass of {LIMIT} included): {dict(zip(found, calls))}")

    # Minimal: one level milder, same sample and choices, keeps the clean answer.
    from vlmgate.benchmarks.base import load_benchmark
    from vlmgate.engine import Engine
    from vlmgate.models.base import ModelOptions, load_model
    from vlmgate.perturbations.base import get_family
    from vlmgate.records import CLEAN

    engine = Engine(load_model(MODEL, ModelOptions("cpu", "float32", False)), load_benchmark("bundled:shapes"),
                    limit=LIMIT)
    samples = {s.id: s for s in engine.samples()}
    for family, (sample, level, choices) in found.items():
        clean, perturbed, milder = engine.observe([
            (samples[sample], CLEAN), (samples[sample], get_family(family).at_level(level, **choices)),
            (samples[sample], get_family(family).at_level(level - 1, **choices))])
        assert perturbed.prediction != clean.prediction
        assert milder.prediction == clean.prediction

    second = run(pytester)  # no --vlmgate-search: stored counterexamples replay all the same
    second.assert_outcomes(failed=2)  # the other four families have nothing stored: not generated
    assert LEFT_OUT.format(cases=4) in second.stdout.str()
    text = failures(second)
    assert text.count("minimal failing instance (stored counterexample, replayed)") == 2
    assert text.count("before any search") == 2 and "searched" not in text
    assert instances(text) == found

    # Without --vlmgate-search a case exists only when the store holds something of its family.
    entries = store.split("[[counterexample]]")
    (rotation_entry,) = [entry for entry in entries if 'family = "rotation"' in entry]
    (pytester.path / "store.toml").write_text(entries[0] + "[[counterexample]]" + rotation_entry)
    rotation_only = run(pytester)
    rotation_only.assert_outcomes(failed=1)
    assert instances(failures(rotation_only)) == {"rotation": found["rotation"]}
    assert LEFT_OUT.format(cases=5) in rotation_only.stdout.str()
    # Under the shipped limits a minimal failure is advisory: the case reads WARNED and the run is GO.
    shipped = run(pytester, thresholds=None)
    counts = outcomes(shipped)
    counts.pop("deselected", None)
    assert counts == {"warned": 1} and shipped.ret == pytest.ExitCode.OK, shipped.stdout.str()
    shipped.stdout.fnmatch_lines(["*vlmgate: decision*", "GO: 1 cases: 1 warned (exit code 0)",
                                  "*vlmgate: gates that failed, were inconclusive or warned*",
                                  "*-rotation]: minimal_failure = * limit max 0 (strict): FAIL (advisory tier: warn)"])

    (pytester.path / "store.toml").unlink()
    opted_out = run(pytester)  # nothing stored, and a new search is opt-in: no case, no skip
    opted_out.assert_outcomes(deselected=1)  # the placeholder of a function with no case
    assert LEFT_OUT.format(cases=6) in opted_out.stdout.str()
    assert "skipped" not in opted_out.stdout.lines[-1]
    third = run(pytester, "--vlmgate-search")
    third.assert_outcomes(failed=2, deselected=4)
    assert failures(third).count("minimal failing instance (searched)") == 2
    assert instances(failures(third)) == found  # deterministic under the ci profile


def test_malformed_store_is_a_usage_error(pytester):
    pytester.makepyfile(test_minimal_failures=SEARCH_TEST)
    pytester.makefile(".toml", store="[[counterexample]]\nmodel = 'm'\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--vlmgate-counterexamples=store.toml",
                                          "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert re.search(r"store.toml: \[\[counterexample\]\] #1: missing key\(s\) benchmark, family, sample, level",
                     result.stderr.str())


#: Puts a file where the PNG folder goes once start-up has checked it: the images fail, late.
BLOCK_IMAGES = """
def pytest_sessionstart(session):
    (session.config.rootpath / "images").write_text("in the way")
"""


def test_a_failure_is_stored_before_its_images_and_survives_their_loss(pytester):
    pytester.makeconftest((REPO / "conftest.py").read_text() + BLOCK_IMAGES)
    pytester.makepyfile(test_minimal_failures=SEARCH_TEST)
    pytester.makefile(".toml", blocking=BLOCKING)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--hypothesis-profile=ci", f"--vlmgate-model={MODEL}", "--vlmgate-limit=6",
        "--vlmgate-search-budget=30", "--vlmgate-counterexamples=store.toml", "--vlmgate-search-images=images",
        "--vlmgate-thresholds=blocking.toml", "--vlmgate-search", "-m", "search and textoverlay")
    result.assert_outcomes(failed=1, deselected=5)  # the minimal failure, not an error
    text = failures(result)
    ((sample, family, level, choices),) = INSTANCE.findall(text)
    store = (pytester.path / "store.toml").read_text()
    assert f'family = "{family}"\nsample = "{sample}"\nlevel = {level}\n' in store
    assert "recorded in the counterexample store" in text
    folder = pytester.path / "images" / "bundled_shapes-v2-bundled_shapes"
    assert re.search(rf"images not written to {re.escape(str(folder))} \(.*\); the failure stands, and so does "
                     r"its store entry: make --vlmgate-search-images a writable folder", text)
    assert "Traceback" not in text and (pytester.path / "images").read_text() == "in the way"


def test_search_outputs_are_checked_before_any_test(pytester):
    pytester.makepyfile(test_minimal_failures=SEARCH_TEST)
    (pytester.path / "taken").write_text("a file")
    for option, message in (
            ("--vlmgate-search-images=taken", "--vlmgate-search-images {root}/taken: is a file, not a folder"),
            ("--vlmgate-counterexamples=taken/store.toml",
             "--vlmgate-counterexamples {root}/taken/store.toml: cannot be created, {root}/taken is a file")):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--vlmgate-search", option)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert f"ERROR: vlmgate: {message.format(root=pytester.path)}" in result.stderr.str()
        assert "Traceback" not in result.stderr.str()
