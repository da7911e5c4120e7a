"""Helpers for testing vlmgate and its extensions: not imported by a gating run.

``evaluate_case`` runs one suite's case on an engine the test built (an adapter and a
benchmark held in memory), the way the session does in a pytest run: the suite's
declaration checks the results, so a third-party suite's test catches a metric it
computes but did not declare. The tiny checkpoint builders live beside this module
(``vlmgate.testing.tiny``, ``vlmgate.testing.tiny_families``); they import torch and
transformers, this module does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vlmgate.engine import Engine
    from vlmgate.records import MetricResult
    from vlmgate.suites.base import RunOptions


def evaluate_case(suite: str, engine: "Engine", family: str, options: "RunOptions | None" = None
                  ) -> list["MetricResult"]:
    """The results of ``suite``'s case ``family`` on ``engine``, checked against the suite's declaration.

    ``options`` default to the engine's own seed and limit.
    """
    from vlmgate.cases import CaseKey
    from vlmgate.suites import get_suite
    from vlmgate.suites.base import CaseContext, RunOptions

    declared = get_suite(suite)
    key = CaseKey(engine.model.spec, engine.benchmark.spec, family, suite)
    context = CaseContext(key, engine, options or RunOptions(seed=engine.seed, limit=engine.limit))
    declared.check_adapter(family, engine.model)
    return declared.run(context)
