"""Label stability gates: does the answer survive semantics-preserving perturbations?

One case per model × benchmark × family (plus ``clean`` accuracy and the pooled ``any``
row), ids ``{model}-{benchmark}-{family}``; select families with ``-m textoverlay``.

The ``vlmgate`` fixture also judges changes since ``--vlmgate-baseline`` and, with
``--vlmgate-snapshot``, compares each case's rounded summary with its snapshot in
``__vlmgate_snapshots__/test_flip_rate/`` (record them with ``--snapshot-update``); without
that option no snapshot is compared, so a missing one never fails the suite.
"""

import pytest


@pytest.mark.flip_rate
def test_flip_rate(vlmgate_case, vlmgate):
    vlmgate.assert_within_thresholds(vlmgate.evaluate())
