"""Gating suites: each turns a case (model × benchmark × family) into metric results.

A suite is named after the pytest marker its test functions carry (``flip_rate``), so
the plugin knows from the marker alone which cases to generate for a test function.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from vlmgate.engine import Engine
    from vlmgate.records import MetricResult

#: Suite name -> module defining it as ``SUITE``, or ``module:ATTRIBUTE`` where a module
#: defines related suites (imported on first use, never by the plugin module).
BUILTIN_SUITES: dict[str, str] = {
    "flip_rate": "vlmgate.suites.flip_rate",
    "drift": "vlmgate.suites.drift:DRIFT_SUITE",
    "structure": "vlmgate.suites.drift:STRUCTURE_SUITE",
    "ras": "vlmgate.suites.ras",
    "decay": "vlmgate.suites.decay",
    "search": "vlmgate.suites.minimal_failures",
    "crossmodal": "vlmgate.suites.crossmodal",
    "systematic": "vlmgate.suites.systematic",
    "pope": "vlmgate.suites.pope",
}

#: Marker descriptions, registered by the plugin without importing the suites.
SUITE_DESCRIPTIONS: dict[str, str] = {
    "flip_rate": "label stability: instance flip rate (IFR) and image vulnerability (IV)",
    "drift": "representation drift: probe-embedding drift as a share of control drift, per family x probe",
    "structure": "where a family acts: vision-token Dirichlet energy and image spectral band shifts",
    "ras": "corruption robustness: RAS (RAS-style, reconstructed) per ImageNet-C corruption, pooled over severities",
    "decay": "visual dependence: share of answers unchanged under progressive blur (C), per decay family",
    "search": "minimal failing instances: Hypothesis searches each family's levels below its tolerance; "
              "stored counterexamples replay first",
    "crossmodal": "cross-modal consistency: the same text item as text, image and mixed (RER, CFR, MMC, OCR CER), "
                  "per render style",
    "systematic": "systematic evaluation of CLIP-style models: embedding matching within a pixel budget, "
                  "systematic accuracy, noise detector rates (spec §4)",
    "pope": "POPE yes/no probes: accuracy, precision, recall, F1, yes-rate; Yes-No margin shift on a blank image",
}


def case_family_markers() -> dict[str, str]:
    """Markers of case families that are not perturbation families: the render styles.

    The plugin registers them at configure time and puts them on the matching cases, so
    ``-m mono_dpi50`` selects one style. ``vlmgate.render`` declares the styles without
    importing an imaging library, which keeps configure cheap.
    """
    from vlmgate.render import RENDER_STYLES

    return {name: f"cross-modal render style: {style.description}" for name, style in RENDER_STYLES.items()}


class Suite(Protocol):
    name: str

    def families(self) -> list[str]:
        """Case families in a fixed order (perturbation families and pseudo-families)."""

    def evaluate(self, engine: "Engine", family: str) -> list["MetricResult"]:
        """Metric results of one case; the first is the case's primary metric."""


def get_suite(name: str) -> Suite:
    module, _, attribute = BUILTIN_SUITES[name].partition(":")
    return getattr(importlib.import_module(module), attribute or "SUITE")
