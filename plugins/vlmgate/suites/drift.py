"""The drift and structure suites: how far a perturbation moves what the model sees inside.

A label can survive a perturbation while the representation under it moves as far as it
would for an unrelated image (spec §1: text overlays reach 77.7 % of control drift). These
suites make that movement visible and gateable, beside the flip-rate suite's labels.

* ``drift``: one case per family × probe channel, id family ``{family}.{probe}`` (e.g.
  ``textoverlay.ans_mcq_free``). Primary metric ``drift_ratio``: the mean over samples of
  ``D_pert(x, v) / mean_x D_ctrl(x)`` with cosine distances (normalisation
  **reconstructed**), with the skewness-corrected t interval over samples; details carry the sd, Cohen's d, the
  control count K, the flipped / unflipped split and the per-sample distributions.
  ``drift_ratio_l2`` is the same with Euclidean distances (the spec's L2 variant).
* ``structure``: one case per family. ``dirichlet_delta`` is the mean change in Dirichlet
  energy of the vision-token grid, ``spectral_high_rel`` the mean relative change of the
  image's high-frequency power; the other bands are in the details. Both describe *where*
  a family acts rather than how much harm it does, so they are recorded without a default
  limit.

Both take the families tagged ``geometric`` or ``textoverlay``. Statistics are per
sample: a sample's instances are averaged first (``D_pert`` is a per-sample mean), so
intervals rest on independent images, not on correlated instances; the drift results'
``units`` are the samples and ``details["instances"]`` counts what was averaged.

**Sample budget.** Probing a family's grid costs several passes per instance (the greedy
answer token by token, the open prompt): on the 300 bundled samples one overlay drift case
took minutes. Without ``--vlmgate-limit`` both suites therefore probe the first
``DEFAULT_SAMPLES`` samples (``suites.sample_budget``; an explicit limit replaces it), and
say so in ``details["judged_samples"]``. Their scores remain the family's whole pass, which
the flip-rate gates share, so the budget never changes what another gate judges.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Literal, Sequence

from vlmgate.errors import ConfigError, ModelError
from vlmgate.models.base import PROBES
from vlmgate.perturbations.base import GEOMETRIC, TEXTOVERLAY
from vlmgate.records import LOWER, MEAN, MetricResult, MetricSpec
from vlmgate.suites.base import CaseContext, Suite
from vlmgate.suites.sample_budget import SampleBudget

if TYPE_CHECKING:
    from vlmgate.engine import Engine
    from vlmgate.metrics.structure import EnergyShift, SpectralShift
    from vlmgate.observations import FamilyProbes
    from vlmgate.perturbations.base import PerturbationFamily

#: Separates the family from the probe in a drift case's family (``translation.ctx_mcq``);
#: family and probe names never contain it, it is safe in case ids, and threshold lookup
#: falls back from ``family.probe`` to ``family`` on it.
PROBE_SEPARATOR = "."
#: (distance, metric name) of each drift result, the primary first.
DRIFT_METRICS: tuple[tuple[Literal["cosine", "l2"], str], ...] = (("cosine", "drift_ratio"), ("l2", "drift_ratio_l2"))
#: Samples probed per benchmark when the run sets no ``--vlmgate-limit`` (see module docstring):
#: 20 keeps ``pytest -m textoverlay`` on the bundled default within a minute on 2 cores, and
#: leaves 15 or more controls per sample beside the 5 each drift ratio draws.
DEFAULT_SAMPLES = 20
BUDGET = SampleBudget(DEFAULT_SAMPLES)


def judged_probes(case: CaseContext, family: str) -> tuple["FamilyProbes", str]:
    """The family's probes on the samples this case judges, and the rule that chose them."""
    return case.engine.family_probes(family, BUDGET.first(case.options)), BUDGET.rule(case.options)


def drift_case_family(family: str, probe: str) -> str:
    return f"{family}{PROBE_SEPARATOR}{probe}"


def split_case_family(case_family: str) -> tuple[str, str]:
    """``(family, probe)`` of a drift case family, checked against the probe names."""
    family, separator, probe = case_family.rpartition(PROBE_SEPARATOR)
    if not separator or probe not in PROBES:
        raise ConfigError(
            f"drift case family {case_family!r} is not '<family>{PROBE_SEPARATOR}<probe>' with a probe "
            f"among {', '.join(PROBES)}; select drift cases by their ids from --collect-only"
        )
    return family, probe


class DriftSuite(Suite):
    name = "drift"
    description = "representation drift: probe-embedding drift as a share of control drift, per family x probe"
    metrics = (
        MetricSpec("drift_ratio", "probe-embedding drift under a family as a share of control drift (cosine)",
                   MEAN, LOWER, lowest=0.0, highest=float("inf")),
        MetricSpec("drift_ratio_l2", "the same drift-to-control ratio with Euclidean distances", MEAN, LOWER,
                   lowest=0.0, highest=float("inf")),
    )
    takes = frozenset({GEOMETRIC, TEXTOVERLAY})
    requires = frozenset({"probes"})

    def families(self, catalogue: Sequence["PerturbationFamily"]) -> list[str]:
        return [drift_case_family(f, p) for f in self.taken(catalogue) for p in PROBES]

    def threshold_families(self, catalogue: Sequence["PerturbationFamily"]) -> list[str]:
        """A drift limit may name a family (every probe) or a family.probe case."""
        return [*self.taken(catalogue), *self.families(catalogue)]

    def evaluate(self, case: CaseContext) -> list[MetricResult]:
        from vlmgate.metrics.drift import DEFAULT_CONTROLS, drift_to_control, probe_embeddings

        name, probe = split_case_family(case.family)
        probes, judged = judged_probes(case, name)
        clean, perturbed, mask = probe_embeddings(probes, probe)
        flipped = probes.flipped()
        results = []
        for distance, metric in DRIFT_METRICS:
            result = drift_to_control(
                clean, perturbed, probes.sample_ids, mask=mask, flipped=flipped, k=DEFAULT_CONTROLS,
                seed=case.seed, metric=distance, name=metric,
            )
            results.append(replace(result, details={"family": name, "probe": probe, "judged_samples": judged,
                                                    **result.details}))
        return results


class StructureSuite(Suite):
    name = "structure"
    description = "where a family acts: vision-token Dirichlet energy and image spectral band shifts"
    metrics = (
        MetricSpec("dirichlet_delta", "change in Dirichlet energy of the vision-token grid (recorded)", MEAN, LOWER,
                   lowest=float("-inf"), highest=float("inf")),
        MetricSpec("spectral_high_rel", "relative change of the image's high-frequency power (recorded)", MEAN,
                   LOWER, lowest=float("-inf"), highest=float("inf")),
    )
    takes = frozenset({GEOMETRIC, TEXTOVERLAY})
    requires = frozenset({"probes"})

    def evaluate(self, case: CaseContext) -> list[MetricResult]:
        from vlmgate.metrics.structure import energy_shift_result, spectral_shift_result

        family = case.family
        probes, judged = judged_probes(case, family)
        energies = _energy_shifts(probes, case.engine.model.spec)
        spectra = _spectral_shifts(probes, case.engine)
        energy = energy_shift_result(energies, rng=case.rng("bootstrap", "dirichlet_delta", family),
                                     name="dirichlet_delta")
        spectral = spectral_shift_result(spectra, rng=case.rng("bootstrap", "spectral_high_rel", family),
                                         band="high", name="spectral_high_rel")
        delta = spectral.details["delta_mean"]
        low_to_high = delta["low"] / delta["high"] if delta["high"] != 0.0 else math.nan
        return [
            replace(energy, details={"family": family, "judged_samples": judged, **energy.details}),
            replace(spectral, details={"family": family, "judged_samples": judged, **spectral.details,
                                       "low_to_high": low_to_high if math.isfinite(low_to_high) else None}),
        ]


def _energy_shifts(probes: "FamilyProbes", spec: str) -> list["EnergyShift"]:
    """Per sample: the clean grid's energy and the mean energy of its perturbed grids.

    The mean of ``E(pert_i) − E(base)`` over instances equals the shift to the mean
    perturbed energy, so one ``EnergyShift`` per sample carries it exactly.
    """
    import numpy as np

    from vlmgate.metrics.structure import EnergyShift, dirichlet_energy

    shifts = []
    for sample in probes.samples:
        clean = probes.clean[sample.id]
        records = probes.perturbed[sample.id]
        clean_tokens = clean.vision_tokens
        if clean_tokens is None or any(r.vision_tokens is None for r in records):
            raise ModelError(
                f"model {spec}: its adapter returned no vision-token grid for sample {sample.id!r}, so "
                "the Dirichlet energy of the structure gate is undefined; the hf adapter states the "
                "grid of LLaVA-style checkpoints only (deselect with -m 'not structure')"
            )
        perturbed = [dirichlet_energy(r.vision_tokens, r.vision_grid) for r in records
                     if r.vision_tokens is not None]  # every record, as checked above
        shifts.append(EnergyShift(dirichlet_energy(clean_tokens, clean.vision_grid), float(np.mean(perturbed))))
    return shifts


def _spectral_shifts(probes: "FamilyProbes", engine: "Engine") -> list["SpectralShift"]:
    """Per sample: band energies of the clean image and the mean over its perturbed copies.

    Each relative band change is linear in the perturbed energy, so the shift to the mean
    perturbed energies is the mean of the instances' shifts. Perturbed images are made
    again (``engine.shown``) rather than kept, so memory holds one image at a time.
    """
    import numpy as np

    from vlmgate.metrics.structure import BANDS, BandEnergies, SpectralShift, band_energies, resize_to_base

    shifts = []
    for sample in probes.samples:
        base_image = sample.image.convert("RGB")
        base = band_energies(base_image)
        perturbed = np.array([
            band_energies(resize_to_base(engine.shown(sample, obs.variant).image, base_image.size)).as_tuple()
            for obs in probes.observations.perturbed[sample.id]
        ])
        mean = dict(zip(BANDS, perturbed.mean(axis=0)))
        shifts.append(SpectralShift(base, BandEnergies(float(mean["low"]), float(mean["mid"]), float(mean["high"]),
                                                       base.scheme)))
    return shifts


