"""The drift and structure suites' sample budget: without --vlmgate-limit they probe the first N.

Probing a family's grid costs several passes per instance (greedy answers, the open
prompt), so, like RAS, drift and structure cases judge the first ``DEFAULT_SAMPLES``
samples unless the run sets ``--vlmgate-limit``, which replaces the budget; the details
say which rule chose the samples. Their scores stay the family's whole pass, shared with
the flip-rate gates, so a budget never changes what another gate judges.
"""

from __future__ import annotations

import numpy as np
import pytest

from vlmgate.engine import Engine
from vlmgate.models.base import PROBES, ProbeRecord
from vlmgate.suites.base import RunOptions
from vlmgate.suites.drift import DEFAULT_SAMPLES
from vlmgate.testing import evaluate_case

from test_engine_cache import BatchSensitiveAdapter, GeneratedBenchmark


class ProbingAdapter(BatchSensitiveAdapter):
    """Scores like its parent; probe vectors and a 2x2 token grid drawn from the image's mean."""

    def embed(self, requests):
        records = []
        for request, scores in zip(requests, self.score(requests)):
            level = float(np.asarray(request.image.convert("L")).mean())
            rng = np.random.default_rng(int(level * 1000))
            records.append(ProbeRecord(scores, {name: rng.normal(size=8).astype(np.float32) for name in PROBES},
                                       (1,), rng.normal(size=(4, 8)).astype(np.float32), (1, 2, 2)))
        return records


SAMPLES = DEFAULT_SAMPLES + 6


@pytest.mark.parametrize("suite, family", [("drift", "rotation.ctx_mcq"), ("structure", "rotation")])
def test_without_a_limit_the_first_samples_are_probed_and_the_details_say_so(suite, family):
    model = ProbingAdapter()
    engine = Engine(model, GeneratedBenchmark(SAMPLES), batch_size=4)
    results = evaluate_case(suite, engine, family, RunOptions(limit=None))
    assert results[0].n_clusters == DEFAULT_SAMPLES if suite == "drift" else results[0].n == DEFAULT_SAMPLES
    assert results[0].details["judged_samples"].startswith(f"first {DEFAULT_SAMPLES} samples")
    assert "--vlmgate-limit" in results[0].details["judged_samples"]
    rotation = sum(len(v) for v in engine.family("rotation").perturbed.values())
    per_sample = rotation // SAMPLES
    assert engine.requests_probed == DEFAULT_SAMPLES * (1 + per_sample)  # clean + grid of the judged only
    assert engine.requests_scored == SAMPLES * (1 + per_sample)         # scores: the whole shared pass


def test_an_explicit_limit_replaces_the_budget():
    engine = Engine(ProbingAdapter(), GeneratedBenchmark(SAMPLES), batch_size=4, limit=SAMPLES)
    (drift, _) = evaluate_case("drift", engine, "rotation.ctx_mcq", RunOptions(limit=SAMPLES))
    assert drift.n_clusters == SAMPLES
    assert drift.details["judged_samples"] == f"first {SAMPLES} samples (--vlmgate-limit)"


def test_drift_and_structure_share_the_judged_samples_probes():
    engine = Engine(ProbingAdapter(), GeneratedBenchmark(SAMPLES), batch_size=4)
    evaluate_case("drift", engine, "rotation.ctx_mcq", RunOptions(limit=None))
    probed = engine.requests_probed
    evaluate_case("drift", engine, "rotation.ans_mcq", RunOptions(limit=None))
    evaluate_case("structure", engine, "rotation", RunOptions(limit=None))
    assert engine.requests_probed == probed
