"""Representation drift gates: does a perturbation move the model's hidden states far?

One case per model × benchmark × family × probe channel, ids
``{model}-{benchmark}-{family}.{probe}`` (e.g. ``...-textoverlay.ans_mcq_free``); the
primary metric is ``drift_ratio``, drift as a share of control drift. Select with
``-m drift``, and a family with its own marker (``-m "drift and rotation"``).
"""

import pytest


@pytest.mark.drift
def test_drift(vlmgate_case, vlmgate):
    vlmgate.assert_within_thresholds(vlmgate.evaluate())
