"""Minimal failing instances: the mildest perturbation that changes an answer, per family.

One case per model × benchmark × family (the non-diagnostic flip-rate families), ids
``{model}-{benchmark}-{family}``; select with ``-m search`` and a family marker, e.g.
``-m "search and rotation"``. Hypothesis searches samples × levels × choices at or below the
family's default-grid level and shrinks a failure to its mildest level; the failure message
names the sample, params, intensity, both answers and scores, and the saved PNGs.

Counterexamples found are appended to ``thresholds/counterexamples.toml``
(``--vlmgate-counterexamples``); commit it, and the next release replays them first and
fails fast while one still fails. Without ``--vlmgate-search`` a family with nothing stored
has no case (the run lists it under "combinations left out"): the search is a nightly job.
``--vlmgate-search-budget N`` bounds the inputs a search scores; ``--hypothesis-profile ci``
makes the search reproducible run to run.
"""

import pytest


@pytest.mark.search
def test_minimal_failures(vlmgate_case, vlmgate):
    vlmgate.assert_within_thresholds(vlmgate.evaluate())
