"""Cross-modal consistency gates: does the answer survive when the question becomes a picture?

One case per model × text benchmark × render style ({sans, mono, oblique} × {200, 100, 50}
DPI and ``coloured_dpi200``), ids ``{model}-{benchmark}-{style}``; the primary metric is
``rer`` (answered alike as text, image and mixed), beside ``cfr``, ``mmc``, the per-form
accuracies, the OCR control ``cer`` and the same metrics on the OCR-correct subset.
Select with ``-m crossmodal``, one style with ``-m "crossmodal and mono_dpi50"``. Needs a
text benchmark (``--vlmgate-benchmark soebench:n=100`` or ``textqa:PATH``); on an image
benchmark the cases are skipped.
"""

import pytest


@pytest.mark.crossmodal
def test_cross_modal(vlmgate_case, vlmgate):
    vlmgate.assert_within_thresholds(vlmgate.evaluate())
