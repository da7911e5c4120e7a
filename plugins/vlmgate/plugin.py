"""pytest hooks of vlmgate: options, markers, parametrization, stash, summary.

This module is imported for every pytest session that has vlmgate installed, so it
imports only pytest and the standard library at module level; models, torch and PIL
load when a gating test first runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SETTINGS_KEY = pytest.StashKey[Any]()
SESSION_KEY = pytest.StashKey[Any]()
RESULTS_KEY = pytest.StashKey[list]()
BASELINE_KEY = pytest.StashKey[Any]()
REPORT_FILES_KEY = pytest.StashKey[list]()
REPORT_COMPLETENESS_KEY = pytest.StashKey[Any]()
CACHE_COUNTS_KEY = pytest.StashKey[list]()
CACHE_PRUNED_KEY = pytest.StashKey[Any]()

#: Marker tags that built-in families carry besides their own names.
BUILTIN_TAGS = {
    "textoverlay": "text-overlay families (semantic, random and empty-box control)",
    "corruption": "image corruptions (ImageNet-C set), judged by RAS",
    "decay": "progressive blur decay (visual dependence)",
}


def _pixel_count(text: str) -> int:
    """``--vlmgate-max-pixels N`` as an integer; its range is checked with the settings."""
    import argparse

    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of pixels; "
                                         "pass e.g. --vlmgate-max-pixels 50000000") from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vlmgate", "vision-language-model robustness gates")
    group.addoption("--vlmgate-model", action="append", dest="vlmgate_models", metavar="SPEC",
                    help="model to gate, e.g. hf:/path/to/ckpt or bundled:shapes-v1 (repeatable; "
                         "default from [tool.vlmgate] models, else bundled:shapes-v1)")
    group.addoption("--vlmgate-benchmark", action="append", dest="vlmgate_benchmarks", metavar="SPEC",
                    help="benchmark, e.g. jsonl:data/manifest.jsonl or bundled:shapes (repeatable)")
    group.addoption("--vlmgate-thresholds", dest="vlmgate_thresholds", metavar="PATH",
                    help="threshold file (default thresholds/default.toml)")
    group.addoption("--vlmgate-limit", dest="vlmgate_limit", type=int, metavar="N",
                    help="use only the first N samples of each benchmark")
    group.addoption("--vlmgate-seed", dest="vlmgate_seed", type=int, metavar="N", help="run seed (default 0)")
    group.addoption("--vlmgate-device", dest="vlmgate_device", metavar="DEVICE",
                    help="torch device for models (default cpu)")
    group.addoption("--vlmgate-dtype", dest="vlmgate_dtype", metavar="DTYPE",
                    help="model dtype: float32 (default), float16, bfloat16")
    group.addoption("--vlmgate-batch-size", dest="vlmgate_batch_size", type=int, metavar="N",
                    help="inputs per forward batch (default 8)")
    group.addoption("--vlmgate-trust-remote-code", dest="vlmgate_trust_remote_code", action="store_true",
                    default=False, help="allow checkpoints to run their own modelling code (off by default)")
    group.addoption("--vlmgate-allow-missing-weights", action="append", dest="vlmgate_allow_missing_weights",
                    metavar="GLOB", help="weights matching GLOB (fnmatch, over the names transformers reports) may "
                    "be missing from, unused by or mis-shaped in the checkpoint and are initialised at load; "
                    "without it any such weight is a load error (repeatable)")
    group.addoption("--vlmgate-cache", dest="vlmgate_cache", metavar="DIR",
                    help="observation cache folder (default .vlmgate_cache under the rootdir)")
    group.addoption("--vlmgate-no-cache", dest="vlmgate_no_cache", action="store_true", default=False,
                    help="neither read nor write the observation cache")
    group.addoption("--vlmgate-cache-max-mb", dest="vlmgate_cache_max_mb", type=int, metavar="MB",
                    help="at the end of a run, delete least recently used cache entries beyond MB "
                         "(default 2048; 0 = no cap)")
    group.addoption("--vlmgate-max-pixels", dest="vlmgate_max_pixels", type=_pixel_count, metavar="N",
                    help="pixel budget of one benchmark image, read from its header: a larger image is "
                         "refused by name instead of decoded (default 50000000 = 50 megapixels)")
    group.addoption("--vlmgate-devices", dest="vlmgate_devices", metavar="DEV,DEV",
                    help="xdist workers take these torch devices round-robin, e.g. cuda:0,cuda:1")
    group.addoption("--vlmgate-backend", dest="vlmgate_backend", metavar="NAME",
                    help="where batches run: local (default) or ray (model replicas as Ray actors)")
    group.addoption("--vlmgate-torch-threads", dest="vlmgate_torch_threads", metavar="N",
                    help="torch threads per process: auto (default: cores // xdist workers) or N")
    group.addoption("--vlmgate-report", dest="vlmgate_report", metavar="DIR",
                    help="write the run record DIR/run.json and the HTML report DIR/report.html")
    group.addoption("--vlmgate-baseline", dest="vlmgate_baseline", metavar="RUN_JSON",
                    help="a previous release's run record: limits with max_increase / max_decrease judge "
                         "the paired change since it")
    group.addoption("--vlmgate-snapshot", dest="vlmgate_snapshot", action="store_true", default=False,
                    help="compare each case's rounded summary with its stored syrupy snapshot "
                         "(record them with --snapshot-update)")
    group.addoption("--vlmgate-search", dest="vlmgate_search", action="store_true", default=None,
                    help="run the minimal-failure search (stored counterexamples are replayed without it)")
    group.addoption("--vlmgate-search-budget", dest="vlmgate_search_budget", type=int, metavar="N",
                    help="most inputs one minimal-failure search scores (default 200)")
    group.addoption("--vlmgate-counterexamples", dest="vlmgate_counterexamples", metavar="PATH",
                    help="counterexample store, replayed first and extended by the search suite "
                         "(default thresholds/counterexamples.toml)")
    group.addoption("--vlmgate-search-images", dest="vlmgate_search_images", metavar="DIR",
                    help="folder for the clean and perturbed PNGs of minimal failures (default: "
                         "REPORT_DIR/minimal_failures with --vlmgate-report, else .vlmgate_failures)")


def _register_marker(config: pytest.Config, name: str, description: str) -> None:
    config.addinivalue_line("markers", f"{name}: {description}")


def pytest_configure(config: pytest.Config) -> None:
    from vlmgate.errors import VlmgateError
    from vlmgate.registry import PERTURBATIONS, names
    from vlmgate.suites import SUITE_DESCRIPTIONS, case_family_markers

    for suite, description in SUITE_DESCRIPTIONS.items():
        _register_marker(config, suite, f"vlmgate suite: {description}")
    for name, description in case_family_markers().items():
        _register_marker(config, name, f"vlmgate {description}")
    for tag, description in BUILTIN_TAGS.items():
        _register_marker(config, tag, f"vlmgate: {description}")
    for family in names(PERTURBATIONS):
        if family not in BUILTIN_TAGS:
            _register_marker(config, family, f"vlmgate perturbation family {family!r}")

    from vlmgate.settings import build_settings
    from vlmgate.thresholds import load_thresholds

    opt = config.option
    cli = {
        "models": opt.vlmgate_models, "benchmarks": opt.vlmgate_benchmarks,
        "thresholds": opt.vlmgate_thresholds, "limit": opt.vlmgate_limit, "seed": opt.vlmgate_seed,
        "device": opt.vlmgate_device, "dtype": opt.vlmgate_dtype, "batch_size": opt.vlmgate_batch_size,
        "trust_remote_code": opt.vlmgate_trust_remote_code,
        "allow_weight_keys": opt.vlmgate_allow_missing_weights,
        "cache_dir": opt.vlmgate_cache, "no_cache": opt.vlmgate_no_cache,
        "cache_max_mb": opt.vlmgate_cache_max_mb, "max_pixels": opt.vlmgate_max_pixels,
        "devices": opt.vlmgate_devices,
        "backend": opt.vlmgate_backend, "torch_threads": opt.vlmgate_torch_threads,
    }
    images = opt.vlmgate_search_images or (
        str(Path(opt.vlmgate_report) / "minimal_failures") if opt.vlmgate_report else None)
    cli.update(search=opt.vlmgate_search, search_budget=opt.vlmgate_search_budget, counterexamples=opt.vlmgate_counterexamples,
               search_images=images)
    try:
        settings = build_settings(config.rootpath, cli)
        thresholds = load_thresholds(settings.thresholds, _threshold_families())
    except VlmgateError as exc:
        raise pytest.UsageError(f"vlmgate: {exc}") from None
    _check_outputs(config, settings)
    config.stash[SETTINGS_KEY] = settings
    from vlmgate.session import GateSession

    config.stash[SESSION_KEY] = session = GateSession(settings, thresholds)
    try:
        session.load_counterexamples(names(PERTURBATIONS))  # a malformed store fails before any test
    except VlmgateError as exc:
        raise pytest.UsageError(f"vlmgate: {exc}") from None
    _configure_reports(config, settings)


def _check_outputs(config: pytest.Config, settings: Any) -> None:
    """Every output location usable, before any test (``vlmgate.outputs``): a usage error otherwise.

    Once, on the controller: xdist workers share its file system, and a worker's usage
    error would only repeat the message as a crashed worker.
    """
    if hasattr(config, "workerinput"):
        return
    from vlmgate.errors import VlmgateError
    from vlmgate.outputs import check, run_outputs

    opt = config.option
    try:
        check(run_outputs(settings, report=opt.vlmgate_report,
                          images_named=bool(opt.vlmgate_search_images or opt.vlmgate_report)))
    except VlmgateError as exc:
        raise pytest.UsageError(f"vlmgate: {exc}") from None


def _threshold_families() -> list[str]:
    """Every family a threshold table may name: families, the clean pass, drift cases."""
    from vlmgate.cases import CLEAN_FAMILY
    from vlmgate.models.base import PROBES
    from vlmgate.registry import PERTURBATIONS, names
    from vlmgate.suites import case_family_markers
    from vlmgate.thresholds import QUALIFIER_SEPARATOR

    families = names(PERTURBATIONS)
    qualified = [f"{family}{QUALIFIER_SEPARATOR}{probe}" for family in families for probe in PROBES]
    return [*families, CLEAN_FAMILY, "any", *qualified, *case_family_markers()]


def _configure_reports(config: pytest.Config, settings: Any) -> None:
    """Load the baseline run (in every process) and start the run record (on the controller)."""
    from vlmgate.errors import VlmgateError

    opt = config.option
    if opt.vlmgate_baseline:
        from vlmgate.report.baseline import Baseline

        try:
            config.stash[BASELINE_KEY] = Baseline.load(opt.vlmgate_baseline, models=settings.models,
                                                       benchmarks=settings.benchmarks, seed=settings.seed)
        except VlmgateError as exc:
            raise pytest.UsageError(f"vlmgate: --vlmgate-baseline: {exc}") from None
    if opt.vlmgate_report and not hasattr(config, "workerinput"):  # xdist workers only send reports
        from vlmgate.report.collect import RunCollector

        workers = config.getoption("numprocesses", None)
        collector = RunCollector(settings, baseline=opt.vlmgate_baseline,
                                 workers=None if workers is None else str(workers))
        config.pluginmanager.register(_RunReport(config, collector), "vlmgate-run-report")


class _RunReport:
    """Collects case records from test reports; writes run.json and report.html at session end.

    It also sees what was selected and how the session ended, so that a run cut short
    writes a record marked incomplete (``vlmgate.report.collect``) rather than one that
    reads like a whole, passing release.
    """

    def __init__(self, config: pytest.Config, collector: Any):
        self.config = config
        self.collector = collector
        self.interruption: str | None = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collector.select(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.collector.select(ids)  # the xdist controller collects nothing itself

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collector.collection_failed(report.nodeid)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Ctrl-C, ``pytest.exit``, or pytest's own stop (collection errors, xdist ``-x``): remember why."""
        if excinfo.type is KeyboardInterrupt:
            self.interruption = "interrupted (KeyboardInterrupt)"
        else:
            self.interruption = str(excinfo.value) or excinfo.typename

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.add(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from vlmgate.report.html import REPORT_FILE, write_html
        from vlmgate.report.local_files import LocalFiles
        from vlmgate.report.record import write_record

        directory = Path(self.config.option.vlmgate_report)
        stopped = (self.interruption or session.shouldfail or session.shouldstop
                   or ("--collect-only: nothing was run" if self.config.option.collectonly else None))
        record = self.collector.record(
            stopped=str(stopped) if stopped else None,
            interrupted=self.interruption is not None
            or exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR))
        baseline = self.config.stash.get(BASELINE_KEY, None)
        run = write_record(record, directory)  # first: the record matters more than its rendering
        self.config.stash[REPORT_FILES_KEY] = [run]
        self.config.stash[REPORT_COMPLETENESS_KEY] = record.completeness
        # The run's own PNG folder may lie outside the report folder; nothing foreign can be named there.
        files = LocalFiles((directory, self.config.stash[SETTINGS_KEY].search_images))
        html = write_html(record, directory / REPORT_FILE, files=files, source=str(directory),
                          baseline=baseline.record if baseline else None,
                          baseline_source=baseline.source if baseline else "baseline")
        self.config.stash[REPORT_FILES_KEY] = [run, html]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "vlmgate_case" not in metafunc.fixturenames:
        return
    from vlmgate.cases import CaseKey, case_id, short_names
    from vlmgate.suites import SUITE_DESCRIPTIONS, get_suite

    config = metafunc.config
    suite_name = next((m.name for m in metafunc.definition.iter_markers() if m.name in SUITE_DESCRIPTIONS), None)
    if suite_name is None:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} uses the vlmgate_case fixture but carries no suite marker; "
            f"mark it with one of: {', '.join(SUITE_DESCRIPTIONS)}"
        )
    settings = config.stash[SETTINGS_KEY]
    suite = get_suite(suite_name)
    families = suite.families()
    marks = {family: _family_marks(config, family) for family in families}
    model_names = short_names(settings.models)
    benchmark_names = short_names(settings.benchmarks)
    params = []
    for model in settings.models:
        for benchmark in settings.benchmarks:
            for family in families:
                key = CaseKey(model, benchmark, family, suite_name)
                params.append(pytest.param(key, id=case_id(key, model_names, benchmark_names), marks=marks[family]))
    metafunc.parametrize("vlmgate_case", params)


def _family_marks(config: pytest.Config, family: str) -> list[pytest.MarkDecorator]:
    from vlmgate.registry import PERTURBATIONS, names
    from vlmgate.suites import case_family_markers

    if family in case_family_markers():  # a render style of the cross-modal suite
        return [getattr(pytest.mark, family)]
    family = family.partition(".")[0]  # drift cases are "{family}.{probe}"
    if family not in names(PERTURBATIONS):
        return []
    from vlmgate.perturbations.base import get_family

    marks = []
    for name in (family, *get_family(family).tags):
        if name not in BUILTIN_TAGS:  # a third-party tag: register it before use
            _register_marker(config, name, f"vlmgate perturbation tag {name!r}")
        marks.append(getattr(pytest.mark, name))
    return marks


@pytest.fixture
def vlmgate_snapshot(request: pytest.FixtureRequest):
    """The current case's stored summary snapshot; compared only with ``--vlmgate-snapshot``.

    Syrupy's ``snapshot`` fixture is requested only then: a requested fixture registers
    with syrupy, which would then count every stored, unasserted snapshot as unused.
    """
    from vlmgate.report.snapshot import CaseSnapshot, VlmgateSnapshotExtension

    if not request.config.option.vlmgate_snapshot:
        return CaseSnapshot(None)
    return CaseSnapshot(request.getfixturevalue("snapshot").use_extension(VlmgateSnapshotExtension))


@pytest.fixture
def vlmgate(request: pytest.FixtureRequest, vlmgate_case, vlmgate_snapshot):
    """The gate of the current case: ``evaluate()`` then ``assert_within_thresholds()``."""
    from vlmgate.gate import CaseGate

    return CaseGate(request.config.stash[SESSION_KEY], request.node, vlmgate_case,
                    baseline=request.config.stash.get(BASELINE_KEY, None), snapshot=vlmgate_snapshot)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Attach the case record to the report that ends a case, for the run record."""
    report = yield
    if item.config.option.vlmgate_report and (call.when == "call" or (call.when == "setup" and not report.passed)):
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("vlmgate_case") if callspec is not None else None
        if case is not None:
            from vlmgate.report.collect import REPORT_ATTRIBUTE, item_payload

            setattr(report, REPORT_ATTRIBUTE, item_payload(
                item, report, case, settings=item.config.stash[SETTINGS_KEY], session=item.config.stash[SESSION_KEY],
                judgements=item.stash.get(RESULTS_KEY, None)))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Release backend resources; an xdist worker sends its cache counters to the controller."""
    gate = session.config.stash.get(SESSION_KEY, None)
    if gate is None:
        return
    gate.close()
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["vlmgate_cache"] = list(gate.cache_counts())
    elif gate.settings.cache_dir is not None and gate.settings.cache_dir.is_dir():
        gate.cache.remove_stale_temporaries()  # left by runs killed mid-write
        if gate.settings.cache_max_mb:  # the controller alone prunes, once every worker is done
            session.config.stash[CACHE_PRUNED_KEY] = gate.cache.prune(gate.settings.cache_max_mb * 1_000_000)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: add up the cache counters of a finished worker."""
    counts = getattr(node, "workeroutput", {}).get("vlmgate_cache")
    if counts:
        totals = node.config.stash.setdefault(CACHE_COUNTS_KEY, [0, 0])
        totals[0] += counts[0]
        totals[1] += counts[1]


def _cache_summary(terminalreporter, config: pytest.Config) -> None:
    """Cache size and this run's hits / misses (workers added up) at the end of the run."""
    gate = config.stash.get(SESSION_KEY, None)
    if gate is None or gate.settings.cache_dir is None:
        return
    worker_hits, worker_misses = config.stash.get(CACHE_COUNTS_KEY, [0, 0])
    own_hits, own_misses = gate.cache_counts()  # this process's own lookups (no xdist)
    hits, misses = worker_hits + own_hits, worker_misses + own_misses
    pruned = config.stash.get(CACHE_PRUNED_KEY, None)
    if not hits and not misses and not (pruned and pruned.removed):
        return
    stats = gate.cache.stats()
    terminalreporter.section("vlmgate: cache")
    rate = f" ({hits / (hits + misses):.0%} hit rate)" if hits + misses else ""
    terminalreporter.write_line(f"{gate.settings.cache_dir}: {stats.describe()}; this run: {hits} hits, "
                                f"{misses} misses{rate}")
    if pruned and pruned.removed:
        terminalreporter.write_line(pruned.describe())


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    _cache_summary(terminalreporter, config)
    lines = []
    for report in terminalreporter.stats.get("failed", []):
        props = dict(getattr(report, "user_properties", []))
        if "vlmgate.metric" not in props:
            continue
        failed = sorted({k.split(".")[1] for k, v in props.items() if k.endswith(".passed") and k.count(".") == 2 and v == "false"})
        for metric in failed:
            lines.append(
                f"{report.nodeid}: {metric} = {props[f'vlmgate.{metric}.value']} "
                f"[{props[f'vlmgate.{metric}.ci_low']}, {props[f'vlmgate.{metric}.ci_high']}] "
                f"limit {props[f'vlmgate.{metric}.threshold']}"
            )
    if lines:
        terminalreporter.section("vlmgate: failed gates")
        for line in lines:
            terminalreporter.write_line(line)
    written = config.stash.get(REPORT_FILES_KEY, [])
    if written:
        terminalreporter.section("vlmgate: report")
        completeness = config.stash.get(REPORT_COMPLETENESS_KEY, None)
        if completeness is not None and not completeness.complete:
            terminalreporter.write_line(f"{completeness.describe()}; vlmgate diff and --vlmgate-baseline refuse "
                                        "this record", red=True, bold=True)
        for path in written:
            terminalreporter.write_line(f"written: {path}")
