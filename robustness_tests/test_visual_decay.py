"""Visual dependence gate: is the answer still the same when the image is blurred away?

One case per model × benchmark × decay family (``blur_decay``: 7 blur levels up to a
61 px kernel), ids ``{model}-{benchmark}-blur_decay``; the primary metric is ``decay_c``,
the share of answers unchanged at every level, beside ``decay_agreement`` (E-bar).
Select with ``-m decay``.
"""

import pytest


@pytest.mark.decay
def test_visual_decay(vlmgate_case, vlmgate):
    vlmgate.assert_within_thresholds(vlmgate.evaluate())
