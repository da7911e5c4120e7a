"""POPE gate: yes/no hallucination scores on clean images, and the Yes−No margin shift on a blank one.

Cases ``{model}-{benchmark}-clean`` (``pope_accuracy`` first, then precision, recall, F1,
yes-rate) and ``{model}-{benchmark}-blank`` (``pope_margin_shift``). Benchmarks without
yes/no items skip. Select with ``-m pope``.
"""

import pytest


@pytest.mark.pope
def test_pope(vlmgate_case, vlmgate):
    vlmgate.assert_within_thresholds(vlmgate.evaluate())
