"""The cross-modal suite end to end through pytester: cases per render style, markers, JUnit, applicability."""

from __future__ import annotations

import pytest

import vlmgate.suites.crossmodal  # noqa: F401  (numpy and scipy load here, not inside an in-process run)
from vlmgate.models.base import ModelOptions, load_model
from vlmgate.render import RENDER_STYLES

from support import CROSS_MODAL_TEST, junit_cases, outcomes

CASE = "bundled_shapes-v1-soebench_n_40"
METRICS = ("rer", "cfr", "mmc", "accuracy_text", "accuracy_image", "accuracy_mixed", "cer", "ocr_exact",
           "rer_ocr", "cfr_ocr", "mmc_ocr", "accuracy_text_ocr", "accuracy_image_ocr", "accuracy_mixed_ocr")


@pytest.fixture(scope="module", autouse=True)
def _bundled_model_modules_loaded():
    """Load the bundled model once out here: an in-process pytester run drops the modules it
    imported (transformers' lazily imported Llava classes, numpy's C extensions), and those
    cannot be imported a second time in one process."""
    load_model("bundled:shapes-v1", ModelOptions())


@pytest.fixture
def suite_dir(pytester: pytest.Pytester):
    pytester.makepyfile(test_cross_modal=CROSS_MODAL_TEST)
    # Recorded, not gated (a limit of min 0 or max 1 on a share could never fail and is refused);
    # a render style is a family the file may name.
    pytester.makefile(".toml", limits='inherit = false\nmode = "interval"\n[rer]\n"*" = { gated = false }\n'
                      '[cfr]\n"*" = { gated = false }\nmono_dpi50 = { gated = false }\n')
    return pytester


def _args(*extra: str, benchmark: str = "soebench:n=40") -> list[str]:
    return ["-p", "no:cacheprovider", "--strict-markers", "--vlmgate-model=bundled:shapes-v1",
            f"--vlmgate-benchmark={benchmark}", "--vlmgate-thresholds=limits.toml", *extra]


def test_one_case_per_render_style_each_with_its_marker(suite_dir):
    result = suite_dir.runpytest_inprocess(*_args("--collect-only", "-q"))
    ids = [line for line in result.outlines if line.startswith("test_cross_modal.py::")]
    assert ids == [f"test_cross_modal.py::test_cross_modal[{CASE}-{style}]" for style in RENDER_STYLES]
    one = suite_dir.runpytest_inprocess(*_args("--collect-only", "-q", "-m", "crossmodal and mono_dpi50"))
    assert [line for line in one.outlines if line.startswith("test_")] == [
        f"test_cross_modal.py::test_cross_modal[{CASE}-mono_dpi50]"]


def test_soebench_metrics_with_intervals_reach_junit(suite_dir):
    result = suite_dir.runpytest_inprocess(*_args("-m", "sans_dpi200 or mono_dpi50", "--vlmgate-limit=6",
                                                  "--junitxml=out.xml"))
    # Every metric is recorded: the cases judge nothing, so they read RECORDED, never passed.
    assert outcomes(result) == {"recorded": 2, "deselected": len(RENDER_STYLES) - 2}
    cases = junit_cases(suite_dir.path / "out.xml")
    assert sorted(cases) == [f"test_cross_modal[{CASE}-mono_dpi50]", f"test_cross_modal[{CASE}-sans_dpi200]"]
    for props in cases.values():
        assert props["vlmgate.metric"] == "rer" and props["vlmgate.threshold"] == "recorded (gated = false)"
        assert props["vlmgate.cfr.threshold"] == "recorded (gated = false)"
        assert props["vlmgate.standing"] == "recorded" and props["vlmgate.rer.outcome"] == "recorded"
        assert props["vlmgate.cer.threshold"] == "none" and props["vlmgate.cer.tier"] == "none"
        for metric in METRICS:
            assert f"vlmgate.{metric}.value" in props
        for metric in ("rer", "cfr", "mmc", "accuracy_text", "accuracy_image", "accuracy_mixed", "ocr_exact"):
            value, low, high = (float(props[f"vlmgate.{metric}.{k}"]) for k in ("value", "ci_low", "ci_high"))
            if metric != "cfr" or props["vlmgate.cfr.n"] != "0":
                assert 0.0 <= low <= value <= high <= 1.0, metric
        assert props["vlmgate.rer.n"] == "6" and props["vlmgate.accuracy_image.n"] == "6"
        cer, low, high = (float(props[f"vlmgate.cer.{k}"]) for k in ("value", "ci_low", "ci_high"))
        assert 0.0 <= low <= cer <= high


def test_an_image_benchmark_has_no_cross_modal_case_and_the_summary_says_why(suite_dir):
    result = suite_dir.runpytest_inprocess(*_args("-m", "crossmodal", benchmark="bundled:shapes"))
    result.assert_outcomes(deselected=1)  # the function's placeholder: nothing runs, nothing skips
    result.stdout.fnmatch_lines([f"test_cross_modal.py::test_cross_modal: {len(RENDER_STYLES)} cases of "
                                 "bundled_shapes-v1 x bundled_shapes: the crossmodal suite takes text benchmarks; "
                                 "bundled:shapes holds image items"])


def test_a_second_run_is_served_from_the_cache_and_the_record_does_not_depend_on_workers(suite_dir):
    """Cross-modal forms go through the engine like every other input: cached on disk, in canonical
    batches, so a warm run computes nothing and one or two workers write the same record."""
    import json

    from vlmgate.report.record import load_record

    def run(report: str, *extra: str):
        result = suite_dir.runpytest_subprocess(*_args("-m", "sans_dpi200 or mono_dpi50", "--vlmgate-limit=6",
                                                       "--vlmgate-cache=cache", f"--vlmgate-report={report}", *extra))
        counts = outcomes(result)
        counts.pop("deselected", None)  # xdist does not count the deselected
        assert result.ret == 0 and counts == {"recorded": 2}, result.outlines[-5:]
        return result, json.dumps(load_record(suite_dir.path / report).comparable(), sort_keys=True)

    cold, cold_record = run("cold", "-p", "no:xdist")
    assert any(" 0 hits, " in line for line in cold.outlines)
    warm, warm_record = run("warm", "-p", "no:xdist")
    assert any(" 0 misses (100% hit rate)" in line for line in warm.outlines), warm.outlines[-5:]
    _, two_workers = run("two", "-n", "2")
    assert cold_record == warm_record == two_workers
