"""The minimal-failure suite: per family, the mildest perturbation that changes an answer.

Cases: one per model × benchmark × family tagged ``geometric`` or ``textoverlay`` that is
not a control, ids ``{model}-{benchmark}-{family}`` under ``test_minimal_failures``;
select with ``-m search`` and the family markers. Each case replays the stored
counterexamples first, then, when the run opts in with ``--vlmgate-search``, searches
(``vlmgate.search.minimal``); without it a case with nothing stored to replay is skipped,
so the main job neither spends the search budget nor writes to the store; its metric
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
from vlmgate.suites.base import CaseContext, Suite


class MinimalFailureSuite(Suite):
    name = "search"
    description = ("minimal failing instances: Hypothesis searches each family's levels below its tolerance; "
                   "stored counterexamples replay first")
    metrics = (
        MetricSpec("minimal_failure", "1 when the search (or a stored counterexample) finds an answer that changes "
                   "at or below the family's tolerance, else 0", MEAN, LOWER, unit="case"),
    )
    takes = frozenset({GEOMETRIC, TEXTOVERLAY})
    skips = frozenset({CONTROL})

    def evaluate(self, case: CaseContext) -> list[MetricResult]:
        from vlmgate.search.minimal import SearchConfig, search_minimal_failure

        options = case.options.search
        images = None if options.images is None else options.images / safe_name(
            f"{short_name(case.key.model)}-{short_name(case.key.benchmark)}")
        config = SearchConfig(options.budget, options.store, images, search=options.enabled)
        return [search_minimal_failure(case.engine, case.family, config).metric()]
