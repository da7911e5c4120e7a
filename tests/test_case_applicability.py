"""Cases exist only for the model × benchmark combinations a suite applies to.

A benchmark loader declares the kind of items it holds (image or text), a model loader
what its scheme offers (scores, probes, generation, pixel gradients), and a suite the
benchmark kinds it takes and what it requires: all read at collection, without loading
any model or benchmark. An inapplicable combination is no case (not a skip), and the
terminal summary and ``--collect-only`` say how many were left out and why.
"""

from __future__ import annotations

import pytest

from vlmgate.benchmarks.base import benchmark_kind, benchmark_questions_vary, benchmark_yes_no_items
from vlmgate.models.offers import SEVERAL_IMAGES, model_offers
from vlmgate.suites import get_suite
from vlmgate.suites.applicability import why_not

VLM = frozenset({"choices", "scores", "probes", "generate", "questions"})
CLIP = frozenset({"choices", "scores", "pixels"})


@pytest.mark.parametrize("spec, kind", [
    ("bundled:shapes", "image"), ("jsonl:/data/m.jsonl", "image"), ("pope:/data/p.parquet", "image"),
    ("soebench:n=10", "text"), ("textqa:/data/arc.jsonl", "text"), ("bundled:shapes-text", "text"),
    ("nosuchscheme:x", None), ("bundled:no-such-split", None),
])
def test_benchmark_kinds_are_read_from_the_loaders_declaration(spec, kind):
    assert benchmark_kind(spec) == kind


@pytest.mark.parametrize("spec, varied", [
    ("bundled:shapes", True), ("pope:/data/p.parquet", True), ("seedbench:/data/s.tsv", True),
    ("jsonl:/data/m.jsonl", None),  # a user's manifest may ask one question of every image: not assumed
])
def test_benchmarks_say_whether_their_questions_vary(spec, varied):
    assert benchmark_questions_vary(spec) is varied


def _manifest(tmp_path, rows):
    import json

    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return f"jsonl:{path}"


MCQ_ROW = {"id": "q1", "image": "a.png", "question": "Colour?", "options": ["red", "green"], "answer": "A"}


def test_pope_has_no_case_on_a_benchmark_without_yes_no_items(tmp_path):
    pope, flips = get_suite("pope"), get_suite("flip_rate")
    without = _manifest(tmp_path, [MCQ_ROW])
    assert benchmark_yes_no_items(without) is False
    reason = why_not(pope, "clean", "bundled:shapes-v1", without)
    assert reason is not None and "judges answered yes/no items" in reason and without in reason
    assert why_not(flips, "clean", "bundled:shapes-v1", without) is None  # the other suites keep their cases


@pytest.mark.parametrize("rows", [
    [MCQ_ROW, {**MCQ_ROW, "id": "p1", "kind": "yesno", "options": ["Yes", "No"], "answer": "yes"}],
    [{**MCQ_ROW, "options": ["no", "Yes"], "answer": 1}],  # yes/no options without the kind
])
def test_pope_keeps_its_cases_where_a_manifest_holds_yes_no_items(tmp_path, rows):
    spec = _manifest(tmp_path, rows)
    assert benchmark_yes_no_items(spec) is True
    assert why_not(get_suite("pope"), "clean", "bundled:shapes-v1", spec) is None


@pytest.mark.parametrize("spec, holds", [
    ("bundled:shapes", True), ("pope:/data/p.parquet", True), ("seedbench:/data/s.tsv", None),
    ("jsonl:/no/such/manifest.jsonl", None),  # unreadable: the case stays, and its load says why
])
def test_loaders_declare_whether_they_hold_yes_no_items(spec, holds):
    assert benchmark_yes_no_items(spec) is holds


@pytest.mark.parametrize("spec, offers", [
    ("hf:/ckpt", VLM), ("bundled:shapes-v1", VLM | {SEVERAL_IMAGES}), ("clip:/ckpt", CLIP),
    ("bundled:no-such-model", None),
    ("openai:http://127.0.0.1:8000/v1?model=m", None),  # the tier is known only once the server answers
    ("nosuchscheme:x", None),
])
def test_model_schemes_declare_what_they_offer_without_loading(spec, offers):
    assert model_offers(spec) == offers


def test_items_of_several_pictures_have_cases_only_where_suite_and_model_take_them(tmp_path):
    """A multi-image benchmark: the flip-rate suite keeps its cases on a model that takes several
    pictures; a suite that reads one picture, or a model that takes one, has none, and says why."""
    mmmu = "mmmu:/data/mmmu.parquet"
    flips, drift, ras = (get_suite(n) for n in ("flip_rate", "drift", "ras"))
    assert why_not(flips, "rotation", "bundled:shapes-v1", mmmu) is None
    assert why_not(flips, "rotation", "bundled:shapes-v1", f"{mmmu}?stitch=1") is None
    for suite, family in ((drift, "textoverlay"), (ras, "gaussian_noise")):
        reason = why_not(suite, family, "bundled:shapes-v1", mmmu)
        assert reason is not None and f"the {suite.name} suite judges one picture per item" in reason
        assert "mmmu:PATH?stitch=1" in reason
        assert why_not(suite, family, "bundled:shapes-v1", f"{mmmu}?stitch=1") is None
    clip = tmp_path / "clip"
    clip.mkdir()
    (clip / "config.json").write_text('{"model_type": "paligemma"}')
    reason = why_not(flips, "rotation", f"hf:{clip}", mmmu)
    assert reason is not None and "takes one picture per prompt" in reason and "openai: servers take several" in reason
    assert why_not(flips, "rotation", "openai:http://127.0.0.1:8000/v1?model=m", mmmu) is None  # known when it runs


def test_why_a_combination_is_no_case():
    cross_modal, systematic, drift, flips = (get_suite(n) for n in ("crossmodal", "systematic", "drift", "flip_rate"))
    assert why_not(flips, "sans_dpi200", "bundled:shapes-v1", "bundled:shapes") is None
    reason = why_not(cross_modal, "sans_dpi200", "bundled:shapes-v1", "bundled:shapes")
    assert "text benchmarks" in reason and "bundled:shapes holds image items" in reason
    assert why_not(cross_modal, "sans_dpi200", "bundled:shapes-v1", "bundled:shapes-text") is None
    assert "pixels" in why_not(systematic, "embedding_match", "bundled:shapes-v1", "bundled:shapes")
    assert why_not(systematic, "embedding_match", "clip:/ckpt", "bundled:shapes") is None
    assert "probes" in why_not(drift, "rotation.ctx_mcq", "clip:/ckpt", "bundled:shapes")
    assert "image benchmarks" in why_not(flips, "rotation", "bundled:shapes-v1", "soebench:n=4")
    # a dual encoder never reads the question: no answer-judging gate on items whose questions vary,
    # but the systematic gate judges where its images fall among the option texts
    reason = why_not(flips, "rotation", "clip:/ckpt", "bundled:shapes")
    assert "does not read the question" in reason and "bundled:shapes asks varied questions" in reason
    assert why_not(flips, "rotation", "clip:/ckpt", "jsonl:/data/textures.jsonl") is None
    # what cannot be known before loading stays a case (its adapter is checked when it runs)
    assert why_not(drift, "rotation.ctx_mcq", "openai:http://h/v1?model=m", "bundled:shapes") is None
    assert why_not(flips, "rotation", "bundled:shapes-v1", "nosuchscheme:x") is None


def test_the_minimal_failure_search_exists_when_the_run_searches_or_has_something_to_replay(tmp_path):
    from vlmgate.search.counterexamples import Counterexample, CounterexampleStore
    from vlmgate.search.instance import SearchInstance
    from vlmgate.suites.base import RunOptions, SearchOptions

    search = get_suite("search")
    stored = Counterexample("bundled:shapes-v1", "bundled:shapes", "rotation", SearchInstance("shapes-00001", 11))
    store = CounterexampleStore(tmp_path / "store.toml", (stored,))

    def reason(family, benchmark="bundled:shapes", *, enabled=False, store=store):
        return why_not(search, family, "bundled:shapes-v1", benchmark,
                       RunOptions(search=SearchOptions(enabled=enabled, store=store)))

    assert reason("rotation") is None  # replays its stored entry without --vlmgate-search
    left_out = reason("translation")
    assert "opt-in with --vlmgate-search" in left_out and f"{tmp_path / 'store.toml'} holds none" in left_out
    assert "translation" not in left_out  # said once per model x benchmark, not per family
    assert reason("rotation", "jsonl:/data/m.jsonl") is not None  # stored for another benchmark
    assert reason("translation", enabled=True) is None
    assert "no counterexample store" in reason("rotation", store=None)
    assert why_not(search, "translation", "bundled:shapes-v1", "bundled:shapes") is None  # declarations alone


SYSTEMATIC_TEST = "import pytest\n\n@pytest.mark.systematic\ndef test_systematic(vlmgate_case, vlmgate):\n" \
                  "    vlmgate.assert_within_thresholds(vlmgate.evaluate())\n"


def test_collection_leaves_inapplicable_combinations_out_and_says_why(suite_dir, tiny_llava_checkpoint, manifest):
    from support import CROSS_MODAL_TEST, gate_args

    suite_dir.makepyfile(test_cross_modal=CROSS_MODAL_TEST, test_systematic=SYSTEMATIC_TEST)
    args = gate_args(tiny_llava_checkpoint, manifest, "--vlmgate-benchmark=soebench:n=4")
    collected = suite_dir.runpytest_subprocess(*args, "--collect-only", "-q")
    ids = [line for line in collected.stdout.lines if "::" in line and line.endswith("]")]
    assert any("test_flip_rate[" in i and "jsonl_bench7-rotation]" in i for i in ids)
    assert not any("test_flip_rate[" in i and "soebench" in i for i in ids)
    assert any("test_cross_modal[" in i and "soebench_n_4-sans_dpi200]" in i for i in ids)
    assert not any("test_cross_modal[" in i and "jsonl_bench7" in i for i in ids)
    assert not any("test_systematic" in i for i in ids)
    collected.stdout.fnmatch_lines([
        "*vlmgate: combinations left out*",
        "test_cross_modal.py::test_cross_modal: 10 cases of hf_checkpoint x jsonl_bench7: "
        "*takes text benchmarks*",
        "test_flip_rate.py::test_flip_rate: 1 case of hf_checkpoint x jsonl_bench7: *the scam family shows each "
        "item's attack photo*holds none*",
        "test_flip_rate.py::test_flip_rate: 15 cases of hf_checkpoint x soebench_n_4: *takes image benchmarks*",
        "test_systematic.py::test_systematic: 1 case of hf_checkpoint x jsonl_bench7: *needs pixels*",
        "test_systematic.py::test_systematic: 1 case of hf_checkpoint x soebench_n_4: *",
    ])
    ran = suite_dir.runpytest_subprocess(*args, "-m", "systematic")
    ran.assert_outcomes()  # nothing skipped: the function has no case
    ran.stdout.fnmatch_lines(["*test_systematic: 1 case of hf_checkpoint x jsonl_bench7*"])


def test_the_main_job_has_a_case_for_every_combination_its_default_can_judge(tmp_path):
    """The README's main job (the repository's ``[tool.vlmgate]`` default, bundled:shapes-v1 on
    bundled:shapes) collects 77 cases and leaves 18 out, each group with the reason it belongs
    in another run; a suite that grew cases its default cannot judge would show here first."""
    import subprocess
    import sys

    from support import REPO

    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "robustness_tests", "--collect-only", "-q", "-p", "no:cacheprovider",
         "--vlmgate-limit", "50", f"--vlmgate-counterexamples={tmp_path / 'none.toml'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    lines = collected.stdout.splitlines()
    cases = [line for line in lines if "::" in line and line.endswith("]")]
    assert len(cases) == 77 and not any("no-applicable-combination" in case for case in cases)
    # the three functions left without a case keep one placeholder each, deselected (never a skip)
    assert "77/80 tests collected (3 deselected)" in collected.stdout
    left_out = [line.split(": ", 2) for line in lines if " cases of " in line or " case of " in line]
    assert [(test.split("::")[-1], count) for test, count, _ in left_out] == [
        ("test_cross_modal", "10 cases of bundled_shapes-v1 x bundled_shapes"),
        ("test_flip_rate", "1 case of bundled_shapes-v1 x bundled_shapes"),
        ("test_minimal_failures", "6 cases of bundled_shapes-v1 x bundled_shapes"),
        ("test_systematic", "1 case of bundled_shapes-v1 x bundled_shapes"),
    ]
    reasons = [reason for _, _, reason in left_out]
    assert "takes text benchmarks" in reasons[0]
    assert "the scam family shows each item's attack photo" in reasons[1]
    assert "nightly job, opt-in with --vlmgate-search" in reasons[2]
    assert "needs pixels" in reasons[3]
