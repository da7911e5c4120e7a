"""Corruption robustness gates: how does the answer distribution degrade under ImageNet-C?

One case per model × benchmark × corruption (19 families, five severities pooled), ids
``{model}-{benchmark}-{corruption}``; the primary metric is ``ras`` (RAS-style,
reconstructed), with ``ras_destructive`` and ``ras_corrective`` beside it. Select with
``-m ras`` (or ``-m corruption``), one corruption with ``-m "ras and gaussian_noise"``.
Without ``--vlmgate-limit`` each case judges the first 20 samples of the benchmark (see
``vlmgate.suites.ras``); ``--vlmgate-limit N`` sets the count.
"""

import pytest


@pytest.mark.corruption
@pytest.mark.ras
def test_ras(vlmgate_case, vlmgate):
    vlmgate.assert_within_thresholds(vlmgate.evaluate())
