"""Visual-dependence gate: does the model answer differently when the image is gone?

One case per model × benchmark × blank-image control (``blank``: an all-white image of
the same size), ids ``{model}-{benchmark}-blank``, judged with the blur decay
(``blur_decay``) beside it: ``blank_agreement`` (primary: the share of clean answers a
white image leaves unchanged; a model that ignores its image keeps them all),
``prior_persistence`` (answers that survive every blur level *and* are the blank-image
answer) and ``blank_accuracy_gain`` (clean minus blank-image accuracy, paired per image).
Read RAS and the flip rates only beside this gate: a model that does not look is
perfectly "robust". Select with ``-m visual_dependence``.
"""

import pytest


@pytest.mark.visual_dependence
def test_visual_dependence(vlmgate_case, vlmgate):
    vlmgate.assert_within_thresholds(vlmgate.evaluate())
