"""The minimal-failure suite: per family, the mildest perturbation that changes an answer.

Cases: one per model × benchmark × family the search covers (the non-diagnostic families
of the flip-rate suite, and any family that lists ``search`` in its ``suites``), ids
``{model}-{benchmark}-{family}`` under ``test_minimal_failures``; select with ``-m search``
and the family markers. Each case replays the stored counterexamples first, then, when the
run opts in with ``--vlmgate-search``, searches (``vlmgate.search.minimal``); without it a
case with nothing stored to replay is skipped, so the main job neither spends the search
budget nor writes to the store; its metric ``minimal_failure`` is 1 when an input fails at or
below the family's tolerance, and the failure message shows the minimal instance.

Run settings reach the search through ``evaluate_case`` (the budget, the counterexample
store read at start-up, the PNG folder); ``evaluate`` searches with the defaults and
neither replays nor records, for use outside a pytest run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmgate.cases import safe_name, short_name
from vlmgate.engine import Engine
from vlmgate.perturbations.base import family_names, get_family
from vlmgate.records import MetricResult
from vlmgate.search.minimal import SearchConfig, search_minimal_failure

if TYPE_CHECKING:
    from vlmgate.cases import CaseKey
    from vlmgate.session import GateSession


class MinimalFailureSuite:
    name = "search"

    def families(self) -> list[str]:
        chosen = []
        for name in family_names():
            family = get_family(name)
            if self.name in family.suites or ("flip_rate" in family.suites and not family.diagnostic):
                chosen.append(name)
        return chosen

    def evaluate(self, engine: Engine, family: str) -> list[MetricResult]:
        return [search_minimal_failure(engine, family).metric()]

    def evaluate_case(self, session: "GateSession", case: "CaseKey") -> list[MetricResult]:
        settings = session.settings
        images = settings.search_images / safe_name(f"{short_name(case.model)}-{short_name(case.benchmark)}")
        config = SearchConfig(settings.search_budget, session.counterexamples, images, search=settings.search)
        return [search_minimal_failure(session.engine(case.model, case.benchmark), case.family, config).metric()]


SUITE = MinimalFailureSuite()
