"""Label stability gates: does the answer survive semantics-preserving perturbations?

One case per model × benchmark × family (plus ``clean`` accuracy and the pooled ``any``
row), ids ``{model}-{benchmark}-{family}``; select families with ``-m textoverlay``.
"""

import pytest


@pytest.mark.flip_rate
def test_flip_rate(vlmgate_case, vlmgate):
    vlmgate.assert_within_thresholds(vlmgate.evaluate())
