"""The minimal-failure suite: per family, the mildest perturbation that changes an answer.

Cases: one per model × benchmark × family tagged ``geometric`` or ``textoverlay`` that is
not a control, ids ``{model}-{benchmark}-{family}`` under ``test_minimal_failures``;
select with ``-m search`` and the family markers. Each case replays the stored
counterexamples first, then, when the run opts in with ``--vlmgate-search``, searches
(``vlmgate.search.minimal``). Without it a case with nothing stored to replay is not
generated (``left_out_in_run``, said under "combinations left out"): the search is a
nightly job, and its gate an existence claim, not a rate. Any model with a sample near
its decision boundary fails it at a release gate's sample count, which is why the flip-rate
cases at the same tolerances are what a release is gated on. So the main job neither spends
the search budget nor writes to the store, and skips nothing; its metric
``minimal_failure`` is 1 when an input fails at or below the family's tolerance, and the
failure message shows the minimal instance.

The search's budget, the counterexample store read at start-up and the PNG folder come
from the run options (``RunOptions.search``); the PNGs of one model × benchmark go to a
subfolder named after their short names.
"""

from __future__ import annotations

from vlmgate.cases import safe_name, short_name
from vlmgate.perturbations.base import CONTROL, GEOMETRIC, TEXTOVERLAY
from vlmgate.records import LOWER, MEAN, MetricResult, MetricSpec
from vlmgate.suites.base import CaseContext, RunOptions, Suite
from vlmgate.suites.unanswered import UNANSWERED_RATE


class MinimalFailureSuite(Suite):
    name = "search"
    description = ("minimal failing instances: Hypothesis searches each family's levels below its tolerance; "
                   "stored counterexamples replay first")
    metrics = (
        MetricSpec("minimal_failure", "1 when the search (or a stored counterexample) finds an answer that changes "
                   "at or below the family's tolerance, else 0", MEAN, LOWER, unit="case"),
        UNANSWERED_RATE,
    )
    takes = frozenset({GEOMETRIC, TEXTOVERLAY})
    skips = frozenset({CONTROL})

    def left_out_in_run(self, family: str, benchmark: str, options: RunOptions) -> str | None:
        search = options.search
        if search.enabled or (search.store is not None and search.store.for_case(benchmark, family)):
            return None
        where = "no counterexample store" if search.store is None else f"{search.store.path} holds none of them"
        return ("the minimal-failure search is a nightly job, opt-in with --vlmgate-search (it scores up to "
                f"--vlmgate-search-budget inputs per case and records what it finds), and {where} to replay")

    def evaluate(self, case: CaseContext) -> list[MetricResult]:
        from vlmgate.search.minimal import SearchConfig, search_minimal_failure

        options = case.options.search
        images = None if options.images is None else options.images / safe_name(
            f"{short_name(case.key.model)}-{short_name(case.key.benchmark)}")
        config = SearchConfig(options.budget, options.store, images, search=options.enabled)
        return [search_minimal_failure(case.engine, case.family, config).metric()]
