"""Progress of a running case: what the engine reports per pass, and what a user sees.

The engine reports requests done / total per pass (clean pass, a family's grid with its
total estimated from the first sample, probes, generations) to an injected sink; the
display turns that into a refreshing bar in a terminal, plain lines at most every N
seconds elsewhere (CI, xdist workers), or nothing. Third-party loading bars are off
while vlmgate loads a model, and their warnings are not.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pytest

from vlmgate.cache import ObservationCache
from vlmgate.engine import Engine
from vlmgate.models.base import ProbeRecord
from vlmgate.progress import PassProgress
from vlmgate.progress_display import ProgressDisplay, Surroundings, describe, resolve_mode
from vlmgate.records import CLEAN

from test_engine_cache import BatchSensitiveAdapter, GeneratedBenchmark


@dataclass
class Recorder:
    reports: list[PassProgress] = field(default_factory=list)

    def report(self, progress: PassProgress) -> None:
        self.reports.append(progress)

    def passes(self) -> dict[tuple[str, str], list[PassProgress]]:
        grouped: dict[tuple[str, str], list[PassProgress]] = {}
        for report in self.reports:
            grouped.setdefault((report.name, report.kind), []).append(report)
        return grouped


class ProbingAdapter(BatchSensitiveAdapter):
    """Scores like its parent and returns a fixed probe record per request."""

    def embed(self, requests):
        scores = self.score(requests)
        vector = np.ones(4, dtype=np.float32)
        return [ProbeRecord(s, {name: vector for name in ("ctx_mcq", "ans_mcq", "ans_mcq_free", "ctx_open")},
                            (1,), None, None) for s in scores]


def test_the_clean_pass_reports_every_batch_and_ends_with_its_count():
    sink = Recorder()
    Engine(BatchSensitiveAdapter(), GeneratedBenchmark(10), batch_size=4, progress=sink).clean()
    reports = sink.passes()[("clean", "score")]
    assert [r.done for r in reports[:-1]] == sorted(r.done for r in reports[:-1])  # never goes back
    assert all(r.total == 10 and not r.estimated for r in reports)
    assert reports[-1].finished and reports[-1].done == 10
    assert not any(r.finished for r in reports[:-1])


def test_a_streamed_grid_is_estimated_from_its_first_sample_then_exact():
    sink = Recorder()
    engine = Engine(BatchSensitiveAdapter(), GeneratedBenchmark(12), batch_size=4, progress=sink)
    observed = engine.family("rotation")
    instances = sum(len(v) for v in observed.perturbed.values())
    reports = sink.passes()[("rotation", "score")]
    first_grid = len(observed.perturbed["s000"])
    assert reports[0].estimated and reports[0].total == first_grid * 12
    assert reports[-1].finished and reports[-1].done == reports[-1].total == instances
    assert not reports[-1].estimated


def test_a_family_s_probes_are_one_pass_over_clean_and_perturbed_images():
    sink = Recorder()
    engine = Engine(ProbingAdapter(), GeneratedBenchmark(6), batch_size=4, progress=sink)
    probes = engine.family_probes("scale")
    instances = sum(len(v) for v in probes.perturbed.values())
    reports = sink.passes()[("scale probes", "probe")]
    assert [r.finished for r in reports].count(True) == 1
    assert reports[-1].done == reports[0].total == 6 + instances


def test_requests_read_from_the_cache_count_as_done(tmp_path):
    cache = ObservationCache(tmp_path)
    Engine(BatchSensitiveAdapter(), GeneratedBenchmark(9), batch_size=4, cache=cache).clean()
    sink = Recorder()
    warm = Engine(BatchSensitiveAdapter(), GeneratedBenchmark(9), batch_size=4, cache=cache, progress=sink)
    warm.clean()
    assert warm.requests_scored == 0
    assert sink.passes()[("clean", "score")][-1].done == 9


def test_a_caller_s_request_is_named_after_its_family_and_counted():
    sink = Recorder()
    engine = Engine(BatchSensitiveAdapter(), GeneratedBenchmark(5), batch_size=4, progress=sink)
    samples = list(engine.samples())
    grid = engine.variant_grid("padcrop", samples)
    engine.observe([(s, v) for s in samples for v in grid[s.id]])  # a list: its length is the total
    engine.observe((s, CLEAN) for s in samples[:2])                 # a generator: no total
    padcrop = sink.passes()[("padcrop", "score")]
    assert padcrop[0].total == sum(len(v) for v in grid.values())
    assert padcrop[-1].finished


# -- what the user sees ---------------------------------------------------------------

@pytest.mark.parametrize("where, shown", [
    (Surroundings(tty=True, ci=False), "bar"),
    (Surroundings(tty=True, ci=True), "lines"),
    (Surroundings(tty=False, ci=False), "lines"),
    (Surroundings(tty=True, ci=False, worker="gw0"), "lines"),
])
def test_auto_is_a_bar_only_in_a_terminal_outside_ci_and_xdist(where, shown):
    assert resolve_mode("auto", where) == shown
    assert resolve_mode("off", where) == "off"
    assert resolve_mode("lines", where) == "lines"


def test_an_unknown_mode_is_refused():
    from vlmgate.errors import ConfigError

    with pytest.raises(ConfigError, match="off, auto, lines, bar"):
        resolve_mode("verbose", Surroundings(tty=True, ci=False))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_at_most_every_interval_with_rate_and_eta():
    clock, lines = Clock(), []
    display = ProgressDisplay("lines", write_line=lines.append, clock=clock, interval=15.0, label="[gw1] ")
    display.start_case("test_drift[v1-shapes-textoverlay.ctx_mcq]")
    started = clock.now
    for second, done in ((5, 40), (16, 120), (20, 160), (32, 250)):
        clock.now = started + second
        display.report(PassProgress("textoverlay probes", "probe", done, 400, started))
    assert len(lines) == 2  # at 16 s and 32 s, none at 5 s or 20 s
    assert lines[0] == ("[gw1] vlmgate [test_drift[v1-shapes-textoverlay.ctx_mcq]] textoverlay probes: "
                        "120/400 probe requests (30%), 7.5/s, ETA 37s")
    clock.now = started + 40
    display.report(PassProgress("textoverlay probes", "probe", 400, 400, started, finished=True))
    assert lines[-1].endswith("textoverlay probes: 400 probe requests done in 40s (10.0/s)")


def test_a_quick_pass_prints_no_line():
    clock, lines = Clock(), []
    display = ProgressDisplay("lines", write_line=lines.append, clock=clock, interval=15.0)
    display.start_case("case")
    clock.now += 3
    display.report(PassProgress("clean", "score", 50, 50, clock.now - 3))
    display.report(PassProgress("clean", "score", 50, 50, clock.now - 3, finished=True))
    display.end_case()
    assert lines == []


def test_the_bar_appears_after_its_delay_refreshes_and_clears():
    clock, stream, starts = Clock(), io.StringIO(), []
    display = ProgressDisplay("bar", stream=stream, before_bar=lambda: starts.append(1), clock=clock, delay=2.0)
    display.start_case("test_flip_rate[v1-shapes-rotation]")
    started = clock.now
    clock.now += 1
    display.report(PassProgress("rotation", "score", 8, 100, started, estimated=True))
    assert stream.getvalue() == ""
    clock.now += 2
    display.report(PassProgress("rotation", "score", 24, 100, started, estimated=True))
    display.report(PassProgress("rotation", "score", 100, 100, started, finished=True))
    text = stream.getvalue()
    assert "rotation" in text and "24/100" in text and starts == [1]
    assert text.endswith("\r") or "\x1b[A" in text or text.rstrip(" ").endswith("\r")  # leave=False clears it


def test_describe_marks_an_estimated_total_and_an_unknown_one():
    assert describe(PassProgress("rotation", "score", 10, 90, 0.0, estimated=True), 5.0) == \
        "rotation: 10/~90 requests (11%), 2.0/s, ETA 40s"
    assert describe(PassProgress("image sans_dpi50", "generate", 7, None, 0.0), 2.0) == \
        "image sans_dpi50: 7 generations, 3.5/s"


def test_loading_bars_are_off_during_a_load_and_warnings_stay():
    import logging

    from transformers.utils import logging as hf_logging

    from vlmgate.models.progress_bars import third_party_bars_off

    class Seen(logging.Handler):
        def __init__(self):
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    seen = Seen()
    root = hf_logging.get_logger()  # transformers' library root: its own stderr handler sits here too
    root.addHandler(seen)
    try:
        assert hf_logging.is_progress_bar_enabled()
        with third_party_bars_off():
            assert not hf_logging.is_progress_bar_enabled()
            import huggingface_hub.utils as hub_utils

            assert hub_utils.are_progress_bars_disabled()
            hf_logging.get_logger("transformers.modeling_utils").warning("a weight was not used")
        assert hf_logging.is_progress_bar_enabled()
        assert not hub_utils.are_progress_bars_disabled()
    finally:
        root.removeHandler(seen)
    assert seen.messages == ["a weight was not used"]  # the verbosity was not lowered to hide the bars


# -- the option ------------------------------------------------------------------------

def test_the_option_and_its_pyproject_key_are_checked(tmp_path):
    from vlmgate.errors import ConfigError
    from vlmgate.settings import build_settings

    assert build_settings(tmp_path, {}).progress == "auto"
    assert build_settings(tmp_path, {"progress": "off"}).progress == "off"
    (tmp_path / "pyproject.toml").write_text('[tool.vlmgate]\nprogress = "lines"\n')
    assert build_settings(tmp_path, {}).progress == "lines"
    with pytest.raises(ConfigError, match="--vlmgate-progress must be one of off, auto, lines, bar"):
        build_settings(tmp_path, {"progress": "loud"})
    (tmp_path / "pyproject.toml").write_text('[tool.vlmgate]\nprogress = "loud"\n')
    with pytest.raises(ConfigError, match=r"\[tool.vlmgate\] progress = \"loud\" must be one of off, auto"):
        build_settings(tmp_path, {})


# -- end to end: what a pytest run shows -------------------------------------------------

#: A conftest that makes the plain-line interval 0 (every batch may print), in every process.
NO_INTERVAL = "import vlmgate.progress_display as display\ndisplay.LINE_INTERVAL_S = 0.0\n"


def test_a_run_prints_progress_lines_past_the_capture_and_no_loading_bars(suite_dir, tiny_llava_checkpoint,
                                                                        manifest):
    from support import gate_args, outcomes

    suite_dir.makeconftest(NO_INTERVAL)
    shown = suite_dir.runpytest_subprocess(*gate_args(tiny_llava_checkpoint, manifest, "-m", "rotation", "-s",
                                                      "--vlmgate-progress", "lines", "--vlmgate-no-cache"))
    assert outcomes(shown) == {"recorded": 1, "deselected": 13}  # limits.toml judges nothing
    shown.stdout.fnmatch_lines(["vlmgate [[]test_flip_rate[[]*-rotation]] rotation: */* requests (*%), */s, ETA *"])
    assert "Loading weights" not in shown.stdout.str() + shown.stderr.str()
    quiet = suite_dir.runpytest_subprocess(*gate_args(tiny_llava_checkpoint, manifest, "-m", "rotation",
                                                      "--vlmgate-progress", "off", "--vlmgate-no-cache"))
    assert outcomes(quiet) == {"recorded": 1, "deselected": 13}
    assert "vlmgate [" not in quiet.stdout.str() + quiet.stderr.str()


def test_xdist_workers_lines_reach_the_controller_s_stderr(suite_dir, tiny_llava_checkpoint, manifest):
    from support import gate_args, outcomes

    suite_dir.makeconftest(NO_INTERVAL)
    result = suite_dir.runpytest_subprocess(*gate_args(tiny_llava_checkpoint, manifest, "-m", "rotation or scale",
                                                       "-n", "2", "--vlmgate-no-cache"))
    assert outcomes(result) == {"recorded": 2}
    result.stderr.fnmatch_lines(["[[]gw[01]] vlmgate [[]test_flip_rate[[]*] *: */* requests*"])
