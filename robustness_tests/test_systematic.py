"""Systematic evaluation (spec §4) of CLIP-style models: embedding matching within a pixel budget.

One case per model × benchmark (``embedding_match``); the primary metric is
``systematic_accuracy``, beside the target rate and the noise detector's rates on
matched and clean images. Models other than ``clip:`` skip. Select with ``-m systematic``.
"""

import pytest


@pytest.mark.systematic
def test_systematic(vlmgate_case, vlmgate):
    vlmgate.assert_within_thresholds(vlmgate.evaluate())
