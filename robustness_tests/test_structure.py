"""Structure of what each family changes: vision-token Dirichlet energy and image spectrum.

One case per model × benchmark × family, ids ``{model}-{benchmark}-{family}``; metrics
``dirichlet_delta`` and ``spectral_high_rel`` (other bands in the details), recorded
without a default limit. Select with ``-m structure``.
"""

import pytest


@pytest.mark.structure
def test_structure(vlmgate_case, vlmgate):
    vlmgate.assert_within_thresholds(vlmgate.evaluate())
