"""pytest hooks of vlmgate: options, markers, parametrization, stash, summary.

This module is imported for every pytest session that has vlmgate installed, so it
imports only pytest and the standard library at module level; models, torch and PIL
load when a gating test first runs.

Everything about gates comes from the catalogues (``vlmgate.suites``,
``vlmgate.perturbations``): the markers registered at start-up are the suites' names,
the perturbation families' names and tags, and the suites' pseudo-family markers; a test
function's cases are its suite's families; a threshold file may name exactly the metrics
and families the suites declare.
"""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest

from vlmgate import stash
from vlmgate.report.junit import CASE_PROPERTY  # the mark of a gating case's reports (``vlmgate merge`` writes it too)


def pytest_addoption(parser: pytest.Parser) -> None:
    from vlmgate.options import PYTEST_PREFIX, add_options

    group = parser.getgroup("vlmgate", "vision-language-model robustness gates")
    add_options(group.addoption, prefix=PYTEST_PREFIX)
    group.addoption("--vlmgate-report", dest="vlmgate_report", metavar="DIR",
                    help="write the run record DIR/run.json and the HTML report DIR/report.html")
    group.addoption("--vlmgate-baseline", dest="vlmgate_baseline", metavar="RUN_JSON",
                    help="a previous release's run record: limits with max_increase / max_decrease judge "
                         "the paired change since it")
    group.addoption("--vlmgate-snapshot", dest="vlmgate_snapshot", action="store_true", default=False,
                    help="compare each case's rounded summary with its stored syrupy snapshot "
                         "(record them with --snapshot-update)")
    group.addoption("--vlmgate-snapshot-name", dest="vlmgate_snapshot_name", metavar="NAME",
                    help="name snapshots NAME-<benchmark>-<family> (default: <benchmark>-<family> when the run "
                         "gates one model, so release N+1 is compared with release N's files)")


def _register_marker(config: pytest.Config, name: str, description: str) -> None:
    config.addinivalue_line("markers", f"{name}: {description}")


def pytest_configure(config: pytest.Config) -> None:
    from vlmgate.errors import VlmgateError

    try:
        _register_markers(config)
    except VlmgateError as exc:
        raise pytest.UsageError(f"vlmgate: {exc}") from None

    from vlmgate.options import PYTEST_PREFIX, values
    from vlmgate.settings import build_settings
    from vlmgate.thresholds import load_thresholds

    opt = config.option
    cli = values(opt, prefix=PYTEST_PREFIX)
    if cli["search_images"] is None and opt.vlmgate_report:
        cli["search_images"] = str(Path(opt.vlmgate_report) / "minimal_failures")
    try:
        settings = build_settings(config.rootpath, cli)
        thresholds = load_thresholds(settings.threshold_layers or (settings.thresholds,), _threshold_vocabulary())
    except VlmgateError as exc:
        raise pytest.UsageError(f"vlmgate: {exc}") from None
    _check_outputs(config, settings)
    config.stash[stash.SETTINGS] = settings
    from vlmgate.live_output import progress_display
    from vlmgate.perturbations.base import family_names
    from vlmgate.session import GateSession

    config.stash[stash.PROGRESS] = display = progress_display(config, settings.progress)
    config.stash[stash.SESSION] = session = GateSession(settings, thresholds, progress=display)
    try:
        session.load_counterexamples(family_names())  # a malformed store fails before any test
    except VlmgateError as exc:
        raise pytest.UsageError(f"vlmgate: {exc}") from None
    if opt.vlmgate_baseline and not thresholds.has_change_limits(settings.models):
        raise pytest.UsageError(
            f"vlmgate: --vlmgate-baseline {opt.vlmgate_baseline}: the threshold file {settings.thresholds} sets no "
            "change limit for the gated models, so the baseline would judge nothing; add max_increase / "
            "max_decrease to a limit (e.g. [ifr] \"*\" = { max_increase = 0.02 }) or use the shipped defaults")
    _configure_reports(config, settings)
    config.pluginmanager.register(_RunDecision(config), "vlmgate-decision")
    if opt.vlmgate_snapshot:  # a release's snapshots are never deleted by another run (report.snapshot)
        config.option.no_cleanup = True
        config.option.warn_unused_snapshots = True


def _register_markers(config: pytest.Config) -> None:
    """A marker per suite, per perturbation family and tag, and per suite pseudo-family."""
    from vlmgate.perturbations.base import TAGS, all_families
    from vlmgate.suites import all_suites

    markers: dict[str, str] = {}
    for suite in all_suites():
        markers[suite.name] = f"vlmgate suite: {suite.description}"
        markers.update((name, f"vlmgate {description}") for name, description in suite.pseudo_markers.items())
    for family in all_families():
        for tag in family.tags:
            markers.setdefault(tag, f"vlmgate: {TAGS.get(tag, f'perturbation tag {tag!r}')}")
        markers.setdefault(family.name, f"vlmgate perturbation family {family.name!r}")
    for name, description in markers.items():
        _register_marker(config, name, description)


def _check_outputs(config: pytest.Config, settings: Any) -> None:
    """Every output location usable, before any test (``vlmgate.outputs``): a usage error otherwise.

    Once, on the controller: xdist workers share its file system, and a worker's usage
    error would only repeat the message as a crashed worker.
    """
    if hasattr(config, "workerinput"):
        return
    from vlmgate.errors import VlmgateError
    from vlmgate.outputs import check
    from vlmgate.report.locations import run_outputs

    opt = config.option
    try:
        check(run_outputs(settings, report=opt.vlmgate_report,
                          images_named=bool(opt.vlmgate_search_images or opt.vlmgate_report)))
    except VlmgateError as exc:
        raise pytest.UsageError(f"vlmgate: {exc}") from None


def _threshold_vocabulary() -> Any:
    from vlmgate.thresholds import Vocabulary

    return Vocabulary.of_catalogues()


def _configure_reports(config: pytest.Config, settings: Any) -> None:
    """Load the baseline run (in every process) and start the run record (on the controller)."""
    from vlmgate.errors import VlmgateError

    opt = config.option
    if opt.vlmgate_baseline:
        from vlmgate.report.baseline import Baseline

        try:
            config.stash[stash.BASELINE] = Baseline.load(opt.vlmgate_baseline, models=settings.models,
                                                       benchmarks=settings.benchmarks, seed=settings.seed)
        except VlmgateError as exc:
            raise pytest.UsageError(f"vlmgate: --vlmgate-baseline: {exc}") from None
    if opt.vlmgate_report and not hasattr(config, "workerinput"):  # xdist workers only send reports
        from vlmgate.report.collect import RunCollector

        workers = config.getoption("numprocesses", None)
        baseline = config.stash.get(stash.BASELINE, None)
        collector = RunCollector(settings, baseline=opt.vlmgate_baseline,
                                 workers=None if workers is None else str(workers),
                                 baseline_digest=baseline.digest if baseline is not None else None)
        config.pluginmanager.register(_RunReport(config, collector), "vlmgate-run-report")


#: Why a run stopped on SIGTERM, in its record.
TERMINATED = "terminated (SIGTERM)"


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
        self._previous_sigterm: Any = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Before any work: the folder's record becomes this run's, marked unfinished, so a
        previous run's complete record can never stand in for a run that dies (SIGKILL, OOM);
        and SIGTERM (a CI timeout or cancel) stops the run like Ctrl-C, writing what it has."""
        from vlmgate.report.record import write_record

        if hasattr(self.config, "workerinput"):
            return
        from vlmgate.report.html import REPORT_FILE

        (Path(self.config.option.vlmgate_report) / REPORT_FILE).unlink(missing_ok=True)
        write_record(self.collector.record(stopped="the run had not finished (started, then stopped without "
                                                    "writing its record: killed, or still running)", interrupted=True),
                     Path(self.config.option.vlmgate_report))
        self._install_sigterm()

    def _install_sigterm(self) -> None:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return

        def terminate(signum: int, frame: Any) -> None:
            # Once: a second SIGTERM (a CI runner often signals the whole process tree) must not
            # interrupt the writing of the record the first one asked for.
            if self.interruption == TERMINATED:
                return
            self.interruption = TERMINATED
            raise KeyboardInterrupt("SIGTERM")

        self._previous_sigterm = signal.signal(signal.SIGTERM, terminate)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        import signal

        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collector.select(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.collector.select(ids)  # the xdist controller collects nothing itself

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collector.collection_failed(report.nodeid)

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Ctrl-C, ``pytest.exit``, or pytest's own stop (collection errors, xdist ``-x``): remember why.

        A signal is handled between two bytecode instructions, and CPython 3.11 gives a frame
        stopped at an instruction without a source line (a comprehension's or generator's
        entry, common during collection) ``tb_lineno = None``. pytest's terminal reporter, which
        renders this traceback next, then fails with a TypeError and the run ends as an
        internal error (exit 1, "tests failed") instead of interrupted (exit 2). Those frames
        have nothing to show, so they are left out of the traceback before anyone renders it.
        """
        excinfo.traceback = excinfo.traceback.filter(lambda entry: entry._rawentry.tb_lineno is not None)
        if self.interruption is not None:  # SIGTERM said why already
            return
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
        whole = self.config.stash.get(stash.RUN_SELECTION, None)
        if whole is not None:  # a shard's record names the whole run it is part of
            self.collector.run_selection(*whole)
        stopped = (self.interruption or session.shouldfail or session.shouldstop
                   or ("--collect-only: nothing was run" if self.config.option.collectonly else None))
        record = self.collector.record(
            stopped=str(stopped) if stopped else None,
            interrupted=self.interruption is not None
            or exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR))
        baseline = self.config.stash.get(stash.BASELINE, None)
        run = write_record(record, directory)  # first: the record matters more than its rendering
        self.config.stash[stash.REPORT_FILES] = [run]
        self.config.stash[stash.REPORT_COMPLETENESS] = record.completeness
        # The run's own PNG folder may lie outside the report folder; nothing foreign can be named there.
        files = LocalFiles((directory, self.config.stash[stash.SETTINGS].search_images))
        html = write_html(record, directory / REPORT_FILE, files=files, source=str(directory),
                          baseline=baseline.record if baseline else None,
                          baseline_source=baseline.source if baseline else "baseline")
        self.config.stash[stash.REPORT_FILES] = [run, html]


#: How each case standing shows in pytest's progress line and summary: (category, letter, word).
_SHOWN = {"inconclusive": ("inconclusive", "I", "INCONCLUSIVE"), "warned": ("warned", "W", "WARNED"),
          "recorded": ("recorded", "r", "RECORDED")}


class _RunDecision:
    """Reads every case's standing from its test report and decides the run (``vlmgate.decision``).

    It runs where the reports arrive (the xdist controller, or the single process), from
    the JUnit properties the gate attached, so the decision is the same for any number of
    workers. At the end it states the decision first in the terminal summary and makes it
    the exit code; pytest's own codes for an interrupted run, an internal or usage error
    and a run with no tests are left as they are.
    """

    def __init__(self, config: pytest.Config):
        self.config = config
        self.standings: dict[str, str] = {}
        self.unmarked_failures: set[str] = set()
        self.decision: Any = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from vlmgate.decision import ERROR

        properties = dict(report.user_properties)
        if CASE_PROPERTY not in properties:
            # Not known as a gating case: a plain test, or a case whose worker crashed before its
            # report could say so (xdist reports the crash without the item's properties). In a
            # run that gates, a failure of either is a reason not to ship.
            if report.failed:
                self.unmarked_failures.add(report.nodeid)
            return
        standing = properties.get("vlmgate.standing")
        if report.when == "call" and standing is not None:
            self.standings[report.nodeid] = str(standing)
        elif report.failed:  # set-up or teardown broke, or the case ended before its gate judged
            self.standings[report.nodeid] = ERROR
        elif report.skipped:
            self.standings.setdefault(report.nodeid, "skipped")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from vlmgate.decision import ERROR, decide

        if not self.standings:
            return
        completeness = self.config.stash.get(stash.REPORT_COMPLETENESS, None)
        stopped = session.shouldfail or session.shouldstop
        complete = not stopped and (completeness is None or completeness.complete)
        judged = [s for s in self.standings.values() if s != "skipped"]
        judged += [ERROR for nodeid in self.unmarked_failures if nodeid not in self.standings]
        reason = str(stopped) if stopped else (completeness.reason if completeness is not None else None)
        self.decision = decide(judged, complete=complete, incomplete_reason=reason or "")
        self.config.stash[stash.DECISION] = self.decision
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = self.decision.exit_code


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    """An inconclusive case reads INCONCLUSIVE (never FAILED, never PASSED), a case whose failures
    only warn reads WARNED, and one that judged nothing RECORDED, in the progress line and the summary."""
    if report.when != "call":
        return None
    standing = dict(report.user_properties).get("vlmgate.standing")
    return _SHOWN.get(str(standing)) if standing is not None else None


def _gated_change_family(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Count the run's gated changes against the baseline (``report.multiplicity``), once the
    selection is final, so that every case decides its change at the same level."""
    baseline = config.stash.get(stash.BASELINE, None)
    if baseline is None:
        return
    from vlmgate.suites import get_suite

    cases = []
    for item in items:
        key = getattr(getattr(item, "callspec", None), "params", {}).get("vlmgate_case", None)
        if key is not None and key is not NO_CASE:
            cases.append((key, item.nodeid.split("[", 1)[0], [spec.name for spec in get_suite(key.suite).metrics]))
    baseline.count_family(cases, config.stash[stash.SESSION].thresholds)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "vlmgate_case" not in metafunc.fixturenames:
        return
    from vlmgate.cases import CaseKey, case_id, short_names
    from vlmgate.perturbations.base import all_families
    from vlmgate.suites import get_suite, suite_names

    config = metafunc.config
    known = suite_names()
    suite_name = next((m.name for m in metafunc.definition.iter_markers() if m.name in known), None)
    if suite_name is None:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} uses the vlmgate_case fixture but carries no suite marker; "
            f"mark it with one of: {', '.join(known)}"
        )
    settings = config.stash[stash.SETTINGS]
    suite = get_suite(suite_name)
    catalogue = {family.name: family for family in all_families()}
    families = suite.families(list(catalogue.values()))
    marks = {family: _case_marks(suite, catalogue, family) for family in families}
    model_names = short_names(settings.models)
    benchmark_names = short_names(settings.benchmarks)
    from vlmgate.suites.applicability import LeftOut, why_not

    left_out = config.stash.setdefault(stash.LEFT_OUT, {})
    options = config.stash[stash.SESSION].run_options()
    params = []
    for model in settings.models:
        for benchmark in settings.benchmarks:
            for family in families:
                reason = why_not(suite, family, model, benchmark, options)
                if reason is not None:  # no case, counted and said why (terminal summary)
                    entry = LeftOut(metafunc.definition.nodeid, model_names[model], benchmark_names[benchmark], reason)
                    left_out[entry] = left_out.get(entry, 0) + 1
                    continue
                key = CaseKey(model, benchmark, family, suite_name)
                params.append(pytest.param(key, id=case_id(key, model_names, benchmark_names), marks=marks[family]))
    # A function with no applicable combination gets one placeholder, deselected at collection
    # (pytest_collection_modifyitems): an empty parameter set would be a skipped item.
    metafunc.parametrize("vlmgate_case", params or [pytest.param(NO_CASE, id="no-applicable-combination")])


#: The placeholder parameter of a gating function none of whose combinations apply.
NO_CASE = "no-applicable-combination"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the placeholders of gating functions that have no case (see ``pytest_generate_tests``),
    then count the gated changes of what is left (after ``-k`` / ``-m``: this runs last)."""
    placeholders = [item for item in items
                    if getattr(getattr(item, "callspec", None), "params", {}).get("vlmgate_case", None) is NO_CASE]
    if placeholders:
        config.hook.pytest_deselected(items=placeholders)
        items[:] = [item for item in items if item not in placeholders]
    _gated_change_family(config, items)
    _split_for_shard(config, items)


def _is_case(item: pytest.Item) -> bool:
    """A vlmgate case: an item parametrized with a case of the ``vlmgate_case`` fixture."""
    case = getattr(getattr(item, "callspec", None), "params", {}).get("vlmgate_case", None)
    return case is not None and case is not NO_CASE


def _split_for_shard(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--vlmgate-shard I/N``: keep this shard's cases (``vlmgate.shards``), deselect the others.

    It runs after everything computed over the whole run has seen the whole selection: the
    baseline's family of gated changes (``_gated_change_family``), so a shard decides each
    change at the level the unsplit run would; and the selection the shard's record names as
    its run's (``stash.RUN_SELECTION``). Tests that are no vlmgate case run in shard 1 only.
    """
    shard = config.stash[stash.SETTINGS].shard
    if shard is None:
        return
    cases = [item.nodeid for item in items if _is_case(item)]
    config.stash[stash.RUN_SELECTION] = (tuple(sorted(cases)), len(items))
    owned = shard.owns(cases)
    kept = [item for item in items if (item.nodeid in owned if _is_case(item) else shard.index == 1)]
    if len(kept) < len(items):
        kept_ids = {id(item) for item in kept}
        config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept_ids])
        items[:] = kept


def _case_marks(suite: Any, catalogue: dict[str, Any], family: str) -> list[pytest.MarkDecorator]:
    """A case's markers: its pseudo-family's own, or its perturbation family's name and tags.

    A case family may qualify a perturbation family (a drift case ``rotation.ctx_mcq``): it
    carries that family's markers.
    """
    if family in suite.pseudo_markers:
        return [getattr(pytest.mark, family)]
    perturbation = catalogue.get(family.partition(".")[0])
    if perturbation is None:
        return []
    return [getattr(pytest.mark, name) for name in dict.fromkeys((perturbation.name, *perturbation.tags))]


@pytest.fixture
def vlmgate_snapshot(request: pytest.FixtureRequest):
    """The current case's stored summary snapshot; compared only with ``--vlmgate-snapshot``.

    Syrupy's ``snapshot`` fixture is requested only then: a requested fixture registers
    with syrupy, which would then count every stored, unasserted snapshot as unused.
    """
    from vlmgate.report.snapshot import CaseSnapshot, VlmgateSnapshotExtension

    if not request.config.option.vlmgate_snapshot:
        return CaseSnapshot(None)
    from vlmgate.cases import short_names
    from vlmgate.report.snapshot import snapshot_case_name

    settings = request.config.stash[stash.SETTINGS]
    case = request.getfixturevalue("vlmgate_case")
    name = snapshot_case_name(case, models=settings.models, benchmark=short_names(settings.benchmarks)[case.benchmark],
                              name=request.config.option.vlmgate_snapshot_name)
    return CaseSnapshot(request.getfixturevalue("snapshot").use_extension(VlmgateSnapshotExtension.for_case(name)))


@pytest.fixture
def vlmgate(request: pytest.FixtureRequest, vlmgate_case, vlmgate_snapshot):
    """The gate of the current case: ``evaluate()`` then ``assert_within_thresholds()``."""
    from vlmgate.gate import CaseGate

    return CaseGate(request.config.stash[stash.SESSION], request.node, vlmgate_case,
                    baseline=request.config.stash.get(stash.BASELINE, None), snapshot=vlmgate_snapshot)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Name the running case on the progress display, and close its bar when the case ends."""
    display = item.config.stash.get(stash.PROGRESS, None)
    if display is None or "vlmgate_case" not in getattr(item, "fixturenames", ()):
        return (yield)
    display.start_case(item.name)
    try:
        return (yield)
    finally:
        display.end_case()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Mark a gating case's reports (the run's decision counts only those) and attach the case
    record to the report that ends a case, for the run record."""
    if "vlmgate_case" in getattr(item, "fixturenames", ()) and not any(
            name == CASE_PROPERTY for name, _ in item.user_properties):
        item.user_properties.append((CASE_PROPERTY, "true"))
    report = yield
    if item.config.option.vlmgate_report and (call.when == "call" or (call.when == "setup" and not report.passed)):
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("vlmgate_case") if callspec is not None else None
        if case is not None:
            from vlmgate.report.collect import REPORT_ATTRIBUTE, item_payload

            counts = item.config.stash[stash.SESSION].dispatch_counts(case.model)
            fingerprints = item.stash.get(stash.FINGERPRINTS, {})
            setattr(report, REPORT_ATTRIBUTE, item_payload(
                item, report, case, settings=item.config.stash[stash.SETTINGS],
                judgements=item.stash.get(stash.RESULTS, None), fingerprints=fingerprints,
                dispatch=None if counts is None else {case.model: counts}))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Release backend resources; an xdist worker sends its cache counters to the controller."""
    gate = session.config.stash.get(stash.SESSION, None)
    if gate is None:
        return
    gate.close()
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["vlmgate_cache"] = list(gate.cache_counts())
        baseline = session.config.stash.get(stash.BASELINE, None)
        if baseline is not None:  # every worker collects the whole run, so any one's count is the run's
            session.config.workeroutput["vlmgate_family"] = [baseline.counted, list(baseline.unjudged)]
        run = session.config.stash.get(stash.RUN_SELECTION, None)
        if run is not None:  # likewise the whole run a shard is part of, for the controller's record
            session.config.workeroutput["vlmgate_run_selection"] = [list(run[0]), run[1]]
        session.config.workeroutput["vlmgate_left_out"] = [
            [*astuple(entry), count] for entry, count in session.config.stash.get(stash.LEFT_OUT, {}).items()]
    elif gate.settings.cache_dir is not None and gate.settings.cache_dir.is_dir():
        gate.cache.remove_stale_temporaries()  # left by runs killed mid-write
        if gate.settings.cache_max_mb:  # the controller alone prunes, once every worker is done
            session.config.stash[stash.CACHE_PRUNED] = gate.cache.prune(gate.settings.cache_max_mb * 1_000_000)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: add up the cache counters of a finished worker, and keep what it left out
    (every worker collects the same cases, so the first to report says it for all)."""
    from vlmgate.suites.applicability import LeftOut

    left_out = node.config.stash.setdefault(stash.LEFT_OUT, {})
    for *fields, count in getattr(node, "workeroutput", {}).get("vlmgate_left_out", []):
        left_out.setdefault(LeftOut(*fields), count)
    family = getattr(node, "workeroutput", {}).get("vlmgate_family")
    baseline = node.config.stash.get(stash.BASELINE, None)
    if family and baseline is not None:
        baseline.counted, baseline.family_size, baseline.unjudged = family[0], max(1, family[0]), tuple(family[1])
    run = getattr(node, "workeroutput", {}).get("vlmgate_run_selection")
    if run:
        node.config.stash.setdefault(stash.RUN_SELECTION, (tuple(run[0]), int(run[1])))
    counts = getattr(node, "workeroutput", {}).get("vlmgate_cache")
    if counts:
        totals = node.config.stash.setdefault(stash.CACHE_COUNTS, [0, 0, 0])
        for index, count in enumerate(counts):
            totals[index] += count


def _cache_summary(terminalreporter, config: pytest.Config) -> None:
    """Cache size and this run's hits / misses (workers added up) at the end of the run."""
    gate = config.stash.get(stash.SESSION, None)
    if gate is None or gate.settings.cache_dir is None:
        return
    workers: list[int] = config.stash.get(stash.CACHE_COUNTS, [0, 0, 0])
    own = gate.cache_counts()  # this process's own lookups (no xdist)
    hits, misses, not_served = (worker + mine for worker, mine in zip(workers, own))
    pruned = config.stash.get(stash.CACHE_PRUNED, None)
    if not hits and not misses and not (pruned and pruned.removed):
        return
    stats = gate.cache.stats()
    terminalreporter.section("vlmgate: cache")
    rate = f" ({hits / (hits + misses):.0%} hit rate)" if hits + misses else ""
    terminalreporter.write_line(f"{gate.settings.cache_dir}: {stats.describe()}; this run: {hits} hits, "
                                f"{misses} misses{rate}")
    if not_served:
        terminalreporter.write_line(f"{not_served} entries were not served (damaged, altered, or written by an older "
                                    "vlmgate or another tool) and were recomputed and rewritten")
    if pruned and pruned.removed:
        terminalreporter.write_line(pruned.describe())


def _inert_gates(terminalreporter: Any) -> list[str]:
    """``nodeid: metric limit`` of every judged metric whose limit could not fail at this n."""
    lines = []
    for outcome in ("passed", "failed", "inconclusive", "warned", "recorded"):
        for report in terminalreporter.stats.get(outcome, []):
            props = dict(getattr(report, "user_properties", []))
            for key, value in props.items():
                prefix, metric, field = (key.split(".") + ["", ""])[:3]
                if (prefix, field, value) == ("vlmgate", "inert", "true") and key.count(".") == 2:
                    lines.append(f"{report.nodeid}: {metric} limit {props[f'vlmgate.{metric}.threshold']}")
    return sorted(lines)


def _unanswered_summary(terminalreporter: Any) -> None:
    """Every case some of whose inputs got no readable answer (``suites.unanswered``), passed or not:
    below its limit a case passes, and the count must still be seen."""
    lines = []
    for outcome in ("passed", "failed", "inconclusive", "warned", "recorded"):
        for report in terminalreporter.stats.get(outcome, []):
            props = dict(getattr(report, "user_properties", []))
            if "vlmgate.unanswered_rate.value" not in props:
                continue
            inputs = int(props["vlmgate.unanswered_rate.n"])
            missing = round(float(props["vlmgate.unanswered_rate.value"]) * inputs)
            if missing:
                outcome, limit = props["vlmgate.unanswered_rate.outcome"], props["vlmgate.unanswered_rate.threshold"]
                lines.append(f"{report.nodeid}: {missing} of {inputs} inputs ({outcome}, limit {limit})")
    if lines:
        terminalreporter.section("vlmgate: inputs without a readable answer")
        terminalreporter.write_line("each counts against the model (a wrong answer, a flip); run.json lists the first "
                                    "of each case with what the model said (details.examples of unanswered_rate):")
        for line in sorted(lines):
            terminalreporter.write_line(line)


def _left_out_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The combinations no case was generated for, per test function, with the reason."""
    left_out = config.stash.get(stash.LEFT_OUT, {})
    if not left_out:
        return
    terminalreporter.section("vlmgate: combinations left out")
    terminalreporter.write_line(f"{sum(left_out.values())} cases not generated: their suite cannot judge that "
                                "model x benchmark (as the suites, model schemes and benchmarks declare them), "
                                "or the case runs only when the run asks for it")
    for entry in sorted(left_out):
        terminalreporter.write_line(entry.describe(left_out[entry]))


def _gate_lines(terminalreporter: Any) -> list[str]:
    """One line per gate that failed, was inconclusive or warned: value, interval, limit, outcome,
    tier, and for a gate judged against the baseline its change, p and the level it was decided at."""
    lines = []
    for category in ("failed", "inconclusive", "warned"):
        for report in terminalreporter.stats.get(category, []):
            props = dict(getattr(report, "user_properties", []))
            if "vlmgate.metric" not in props:
                continue
            metrics = sorted({k.split(".")[1] for k, v in props.items()
                              if k.endswith(".outcome") and k.count(".") == 2 and v in ("fail", "inconclusive")})
            for metric in metrics:
                field = {name.split(".", 2)[2]: value for name, value in props.items()
                         if name.startswith(f"vlmgate.{metric}.")}
                line = (f"{report.nodeid}: {metric} = {field['value']} [{field['ci_low']}, {field['ci_high']}] "
                        f"limit {field['threshold']}: {field['outcome'].upper()} ({field['tier']} tier: "
                        f"{field['effect']})")
                if "baseline_delta" in field:
                    significant = "significant" if field.get("baseline_significant") == "true" else "not significant"
                    line += (f"; change {float(field['baseline_delta']):+.4g} since the baseline, p = "
                             f"{field['baseline_p']} at level {field.get('baseline_alpha')} ({significant})")
                lines.append(line)
    return lines


def _unlisted_cases(terminalreporter: Any) -> None:
    """The full message of every inconclusive and warned case: pytest lists only FAILED cases'
    messages, and a case that could not decide, or whose advisory gate failed, needs its
    evidence shown as much as one that failed."""
    for category, title in (("inconclusive", "INCONCLUSIVE"), ("warned", "WARNED")):
        reports = terminalreporter.stats.get(category, [])
        if not reports:
            continue
        terminalreporter.section(f"vlmgate: {title} cases")
        for report in reports:
            terminalreporter.write_sep("_", report.nodeid)
            text = report.longreprtext or dict(report.user_properties).get("vlmgate.warning", "")
            terminalreporter.write_line(str(text))


def _decision_summary(terminalreporter: Any, config: pytest.Config) -> None:
    decision = config.stash.get(stash.DECISION, None)
    if decision is None:
        return
    from vlmgate.decision import GO, NO_GO

    terminalreporter.section("vlmgate: decision")
    colour = {"green": True} if decision.verdict == GO else ({"red": True} if decision.verdict == NO_GO
                                                              else {"yellow": True})
    terminalreporter.write_line(f"{decision.headline()} (exit code {decision.exit_code})", bold=True, **colour)
    for reason in decision.reasons:
        terminalreporter.write_line(f"  {reason}")
    shard = config.stash[stash.SETTINGS].shard
    if shard is not None:
        terminalreporter.write_line(f"  shard {shard.describe()}: this decision covers this shard's cases only; "
                                    "vlmgate merge joins the shards' records into the run's decision")


def _baseline_summary(terminalreporter: Any, config: pytest.Config) -> None:
    baseline = config.stash.get(stash.BASELINE, None)
    if baseline is None:
        return
    terminalreporter.section("vlmgate: baseline")
    for line in baseline.describe_family():
        terminalreporter.write_line(line, **({"red": True, "bold": True} if line.startswith("WARNING") else {}))


@pytest.hookimpl(tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    _decision_summary(terminalreporter, config)
    _baseline_summary(terminalreporter, config)
    _cache_summary(terminalreporter, config)
    _left_out_summary(terminalreporter, config)
    _unanswered_summary(terminalreporter)
    _unlisted_cases(terminalreporter)
    lines = _gate_lines(terminalreporter)
    if lines:
        terminalreporter.section("vlmgate: gates that failed, were inconclusive or warned")
        for line in lines:
            terminalreporter.write_line(line)
    inert = _inert_gates(terminalreporter)
    if inert:
        terminalreporter.section("vlmgate: inert gates")
        terminalreporter.write_line("these limits could not have failed at this run's n whatever the model did "
                                    "(--vlmgate-strict makes them errors):")
        for line in inert:
            terminalreporter.write_line(line)
    written = config.stash.get(stash.REPORT_FILES, [])
    if written:
        terminalreporter.section("vlmgate: report")
        completeness = config.stash.get(stash.REPORT_COMPLETENESS, None)
        if completeness is not None and not completeness.complete:
            terminalreporter.write_line(f"{completeness.describe()}; vlmgate diff and --vlmgate-baseline refuse "
                                        "this record", red=True, bold=True)
        for path in written:
            terminalreporter.write_line(f"written: {path}")
