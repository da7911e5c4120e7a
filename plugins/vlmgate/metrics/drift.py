"""Representation drift: how far a perturbation moves an embedding, judged against a control.

A label can stay the same while the representation under it moves (spec §1). Drift
measures that movement as a distance between the clean embedding ``e(x)`` of a sample
and the embeddings ``e(v_i(x))`` of its perturbed instances. A distance alone has no
scale (cosine distances of one probe channel sit in a narrow band, L2 distances grow
with the hidden size), so it is compared with a *control*: the distance from ``e(x)`` to
the clean embeddings of unrelated samples, i.e. how far "a different image" is.

Input shapes (one probe channel, one perturbation family):

* ``clean``: ``(N, D)`` clean embeddings, row ``n`` belongs to ``sample_ids[n]``;
* ``perturbed``: ``(N, I, D)`` embeddings of up to ``I`` instances per sample, with an
  optional boolean ``mask`` ``(N, I)`` marking the real instances when the number of
  instances is ragged (the semantic text overlay has up to three). ``pad_instances``
  builds both from a list of ``(I_n, D)`` arrays.

Values of padded slots are never read, so they may hold anything (zeros, NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np

from vlmgate.errors import ConfigError, DataError
from vlmgate.metrics.clustered import clustered_mean
from vlmgate.records import LOWER, MetricResult
from vlmgate.seeding import rng_for

if TYPE_CHECKING:
    from vlmgate.observations import FamilyProbes

#: The two distances the spec names: ``1 − cos`` (the headline) and Euclidean.
Distance = Literal["cosine", "l2"]
DISTANCES: tuple[str, ...] = ("cosine", "l2")

#: Controls per sample in the source authors' code.
DEFAULT_CONTROLS = 5


def _check_distance(metric: str) -> None:
    if metric not in DISTANCES:
        raise ConfigError(
            f"drift distance {metric!r} is not known; use one of {', '.join(DISTANCES)}"
        )


def _sample_name(sample_ids: Sequence[str] | None, index: int) -> str:
    return repr(sample_ids[index]) if sample_ids is not None else f"at row {index}"


def embedding_distance(a: np.ndarray, b: np.ndarray, metric: Distance = "cosine") -> np.ndarray:
    """Distance between ``a`` and ``b`` along the last axis (numpy broadcasting applies).

    ``cosine`` is ``1 − cos(a, b)`` in [0, 2]; ``l2`` is ``‖a − b‖₂``. A zero vector has
    no direction, so its cosine distance is NaN here; callers turn that into a
    ``DataError`` that names the sample.
    """
    _check_distance(metric)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if metric == "l2":
        return np.linalg.norm(a - b, axis=-1)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.sum(a * b, axis=-1) / norms
    # Rounding can push |cos| a hair past 1; clip so a distance is never negative.
    return 1.0 - np.clip(cosine, -1.0, 1.0)


def pad_instances(per_sample: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack a list of ``(I_n, D)`` instance embeddings into ``(N, max I_n, D)`` and a mask.

    Padded slots are zero and masked out.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in per_sample]
    if not arrays:
        raise DataError("pad_instances: no samples given; pass one (I, D) array per sample")
    dims = {a.shape[-1] for a in arrays if a.ndim == 2}
    bad = [n for n, a in enumerate(arrays) if a.ndim != 2]
    if bad or len(dims) != 1:
        raise DataError(
            "pad_instances: every sample needs a 2-D (instances, dim) array with one common "
            f"dim; got shapes {[a.shape for a in arrays]}"
        )
    width = max(a.shape[0] for a in arrays)
    stacked = np.zeros((len(arrays), width, dims.pop()))
    mask = np.zeros((len(arrays), width), dtype=bool)
    for n, a in enumerate(arrays):
        stacked[n, : a.shape[0]] = a
        mask[n, : a.shape[0]] = True
    return stacked, mask


@dataclass(frozen=True)
class PerturbationDrift:
    """Per-instance distances ``d(e(x), e(v_i(x)))`` of one family, with the instance mask.

    ``per_instance`` is ``(N, I)``, NaN where ``mask`` is False.
    """

    per_instance: np.ndarray
    mask: np.ndarray
    metric: str

    @property
    def per_sample(self) -> np.ndarray:
        """``D_pert(x, v) = mean_i d(e(x), e(v_i(x)))``, one value per sample, ``(N,)``."""
        return np.nanmean(self.per_instance, axis=1)


def perturbation_drift(
    clean: np.ndarray,
    perturbed: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    metric: Distance = "cosine",
    sample_ids: Sequence[str] | None = None,
) -> PerturbationDrift:
    """Distances from each clean embedding to its perturbed instances (spec §1, D_pert).

    ``clean`` is ``(N, D)``, ``perturbed`` ``(N, I, D)``, ``mask`` ``(N, I)`` (all True
    when omitted). ``sample_ids`` only serve to name a bad sample in error messages.
    """
    _check_distance(metric)
    clean = np.asarray(clean, dtype=np.float64)
    perturbed = np.asarray(perturbed, dtype=np.float64)
    if clean.ndim != 2 or perturbed.ndim != 3 or perturbed.shape[0] != clean.shape[0] \
            or perturbed.shape[2] != clean.shape[1]:
        raise DataError(
            f"drift embeddings: clean must be (N, D) and perturbed (N, I, D) with the same N "
            f"and D; got {clean.shape} and {perturbed.shape} (use pad_instances for a ragged "
            "number of instances per sample)"
        )
    if mask is None:
        mask = np.ones(perturbed.shape[:2], dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != perturbed.shape[:2]:
        raise DataError(
            f"drift instance mask has shape {mask.shape}; it must be (N, I) = {perturbed.shape[:2]}"
        )
    empty = np.flatnonzero(~mask.any(axis=1))
    if empty.size:
        raise DataError(
            f"drift: sample {_sample_name(sample_ids, int(empty[0]))} has no perturbed instance; "
            "drop it from the drift inputs or check that its variants were run"
        )
    _check_finite(clean, sample_ids, "clean")
    _check_finite(np.where(mask[..., None], perturbed, 0.0), sample_ids, "perturbed")

    distances = np.full(mask.shape, np.nan)
    rows, cols = np.nonzero(mask)
    distances[rows, cols] = embedding_distance(clean[rows], perturbed[rows, cols], metric)
    undefined = np.flatnonzero(np.isnan(distances[rows, cols]))
    if undefined.size:
        raise DataError(
            f"drift: sample {_sample_name(sample_ids, int(rows[undefined[0]]))} has a zero "
            "embedding (clean or perturbed instance), whose cosine is undefined; check the "
            "probe channel or use metric='l2'"
        )
    return PerturbationDrift(distances, mask, metric)


def _check_finite(values: np.ndarray, sample_ids: Sequence[str] | None, what: str) -> None:
    finite = np.isfinite(values).reshape(values.shape[0], -1).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise DataError(
            f"drift: {what} embedding of sample {_sample_name(sample_ids, bad)} is not finite "
            "(NaN or inf); the model produced invalid hidden states for it"
        )


def control_sample_ids(
    sample_id: str, pool_ids: Sequence[str], *, k: int = DEFAULT_CONTROLS, seed: int = 0
) -> tuple[str, ...]:
    """The ``k`` control samples of ``sample_id``, drawn without replacement from the others.

    The generator is ``rng_for(seed, "control", sample_id)`` and the pool is taken in
    sorted id order, so a sample's controls depend only on the seed, its own id and the
    *set* of pool ids: not on the order of the samples, nor on what was drawn for any
    other sample. A sample is never its own control; with fewer than ``k`` others, all of
    them are used.
    """
    if k < 1:
        raise ConfigError(f"drift control count k={k}; it must be at least 1")
    others = sorted(set(pool_ids) - {sample_id})
    if not others:
        raise DataError(
            f"drift: sample {sample_id!r} has no other sample to serve as a control; "
            "control drift needs at least two samples in the benchmark"
        )
    rng = rng_for(seed, "control", sample_id)
    picks = rng.choice(len(others), size=min(k, len(others)), replace=False)
    return tuple(others[i] for i in picks)


def control_indices(
    sample_ids: Sequence[str], *, k: int = DEFAULT_CONTROLS, seed: int = 0
) -> np.ndarray:
    """Row indices of every sample's controls, ``(N, min(k, N − 1))``.

    See ``control_sample_ids`` for how they are drawn.
    """
    ids = list(sample_ids)
    row_of = {sid: n for n, sid in enumerate(ids)}
    if len(row_of) != len(ids):
        duplicate = next(sid for sid in ids if ids.count(sid) > 1)
        raise DataError(
            f"drift: sample id {duplicate!r} appears more than once; sample ids must be unique "
            "so that controls and report diffs can join on them"
        )
    return np.array(
        [[row_of[c] for c in control_sample_ids(sid, ids, k=k, seed=seed)] for sid in ids],
        dtype=np.intp,
    )


def control_drift(
    clean: np.ndarray,
    sample_ids: Sequence[str],
    *,
    k: int = DEFAULT_CONTROLS,
    seed: int = 0,
    metric: Distance = "cosine",
) -> np.ndarray:
    """``D_ctrl(x)``: mean distance from ``e(x)`` to its controls' clean embeddings, ``(N,)``."""
    clean = np.asarray(clean, dtype=np.float64)
    if clean.ndim != 2 or clean.shape[0] != len(sample_ids):
        raise DataError(
            f"drift: clean embeddings have shape {clean.shape} for {len(sample_ids)} sample ids; "
            "pass one (D,) row per sample id"
        )
    _check_finite(clean, sample_ids, "clean")
    controls = control_indices(sample_ids, k=k, seed=seed)
    distances = embedding_distance(clean[:, None, :], clean[controls], metric)
    if np.isnan(distances).any():
        bad = int(np.flatnonzero(np.isnan(distances).any(axis=1))[0])
        raise DataError(
            f"drift: sample {sample_ids[bad]!r} or one of its controls has a zero clean "
            "embedding, whose cosine is undefined; check the probe channel or use metric='l2'"
        )
    return distances.mean(axis=1)


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d of ``a`` against ``b``: ``(mean a − mean b) / s_pooled`` with ddof=1 variances.

    ``s_pooled = sqrt(((n_a − 1) s_a² + (n_b − 1) s_b²) / (n_a + n_b − 2))``. Negative
    when ``a`` is smaller (perturbation drift below control drift, as in the spec's
    headline). With zero pooled spread the effect is 0 for equal means and ±inf otherwise.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size < 1 or b.size < 1 or a.size + b.size < 3:
        raise DataError(
            f"Cohen's d needs at least 3 values in total and one per group; got {a.size} and "
            f"{b.size}; run the metric on more samples"
        )
    pooled_var = ((a.size - 1) * (a.var(ddof=1) if a.size > 1 else 0.0)
                  + (b.size - 1) * (b.var(ddof=1) if b.size > 1 else 0.0)) / (a.size + b.size - 2)
    difference = float(a.mean() - b.mean())
    if pooled_var == 0.0:
        return 0.0 if difference == 0.0 else math.copysign(math.inf, difference)
    return difference / math.sqrt(pooled_var)


@dataclass(frozen=True)
class DriftGroup:
    """Drift pooled over one group of instances (mean and ddof=1 sd; NaN when undefined)."""

    n: int
    mean: float
    sd: float

    @classmethod
    def of(cls, values: np.ndarray) -> "DriftGroup":
        values = np.asarray(values, dtype=np.float64)
        mean = float(values.mean()) if values.size else math.nan
        sd = float(values.std(ddof=1)) if values.size > 1 else math.nan
        return cls(int(values.size), mean, sd)

    def as_details(self) -> dict[str, Any]:
        return {"n": self.n, "mean": _json_float(self.mean), "sd": _json_float(self.sd)}


@dataclass(frozen=True)
class FlipSplit:
    """Instance drift split by whether the instance flipped the prediction.

    The paper's point is that drift is not explained by flips: unflipped instances can
    drift as far as flipped ones. The split is pooled over instances, like IFR.
    """

    flipped: DriftGroup
    unflipped: DriftGroup

    def as_details(self) -> dict[str, Any]:
        return {"flipped": self.flipped.as_details(), "unflipped": self.unflipped.as_details()}


def drift_by_flip(drift: PerturbationDrift, flipped: np.ndarray) -> FlipSplit:
    """Split ``drift``'s instances by ``flipped``: booleans ``(N, I)``, read where masked in."""
    flipped = np.asarray(flipped, dtype=bool)
    if flipped.shape != drift.mask.shape:
        raise DataError(
            f"drift: flip flags have shape {flipped.shape}; they must match the instance mask "
            f"{drift.mask.shape} (one boolean per (sample, instance))"
        )
    return FlipSplit(
        flipped=DriftGroup.of(drift.per_instance[drift.mask & flipped]),
        unflipped=DriftGroup.of(drift.per_instance[drift.mask & ~flipped]),
    )


@dataclass(frozen=True)
class DriftDistributions:
    """Per-sample perturbation and control drift, ready for a histogram in the report."""

    sample_ids: tuple[str, ...]
    perturbation: tuple[float, ...]
    control: tuple[float, ...]
    metric: str

    def as_details(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "sample_ids": list(self.sample_ids),
            "perturbation": [_json_float(v) for v in self.perturbation],
            "control": [_json_float(v) for v in self.control],
        }


def _json_float(value: float) -> float | None:
    """JSON has no NaN or infinity; an undefined statistic is stored as null."""
    return float(value) if math.isfinite(value) else None


def drift_to_control(
    clean: np.ndarray,
    perturbed: np.ndarray,
    sample_ids: Sequence[str],
    *,
    mask: np.ndarray | None = None,
    flipped: np.ndarray | None = None,
    k: int = DEFAULT_CONTROLS,
    seed: int = 0,
    metric: Distance = "cosine",
    name: str = "drift_to_control",
) -> MetricResult:
    """Drift-to-control ratio of one family: ``R(x, v) = D_pert(x, v) / mean_x D_ctrl(x)``.

    The normalisation by the *mean* control drift over samples is **reconstructed** (the
    paper reports the ratio as a percentage of control without stating it). The result's
    value is the mean of ``R`` over samples. A sample's instances are averaged into its
    ``R`` first (``D_pert`` is a per-sample mean), so its ``units`` are the samples and its
    interval, the skewness-corrected t of ``metrics.clustered`` over them, rests on
    independent images (per-sample drift has a long right tail, which a symmetric interval
    would miss on one side); ``details["instances"]`` counts what was averaged. Details
    also carry the sd (ddof=1), Cohen's d between ``D_pert`` and ``D_ctrl``, the raw means,
    the flip split when ``flipped`` (``(N, I)`` booleans) is given, and the per-sample
    distributions. Shapes are those of the module docstring; ``k`` and ``seed`` pick the
    controls.
    """
    ids = [str(s) for s in sample_ids]
    if len(ids) != np.shape(clean)[0]:
        raise DataError(
            f"drift: {len(ids)} sample ids for {np.shape(clean)[0]} clean embedding rows; "
            "pass one id per row"
        )
    drift = perturbation_drift(clean, perturbed, mask, metric=metric, sample_ids=ids)
    d_pert = drift.per_sample
    d_ctrl = control_drift(clean, ids, k=k, seed=seed, metric=metric)
    control_mean = float(d_ctrl.mean())
    if control_mean == 0.0:
        raise DataError(
            "drift: every sample's clean embedding equals its controls' (control drift 0), so "
            "the drift-to-control ratio is undefined; the probe channel does not depend on the "
            "input - check which hidden states the adapter returns"
        )
    ratio = d_pert / control_mean
    details: dict[str, Any] = {
        "reconstructed": "R = D_pert / mean(D_ctrl)",
        "metric": metric,
        "controls_per_sample": int(min(k, len(ids) - 1)),
        "ratio_sd": _json_float(float(ratio.std(ddof=1)) if ratio.size > 1 else math.nan),
        "cohens_d": _json_float(cohens_d(d_pert, d_ctrl)),
        "perturbation_drift_mean": float(d_pert.mean()),
        "control_drift_mean": control_mean,
        "instances": int(drift.mask.sum()),
        "distributions": DriftDistributions(
            tuple(ids), tuple(map(float, d_pert)), tuple(map(float, d_ctrl)), metric
        ).as_details(),
    }
    if flipped is not None:
        details["by_flip"] = drift_by_flip(drift, flipped).as_details()
    return clustered_mean(name, dict(zip(ids, map(float, ratio))), {}, better=LOWER, lowest=0.0, details=details)


def probe_embeddings(probes: "FamilyProbes", probe: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``probe``'s clean ``(N, D)``, perturbed ``(N, I, D)`` and instance mask ``(N, I)`` of a
    family's probe records, over the samples with at least one instance, in benchmark order."""
    from vlmgate.models.base import PROBES

    if probe not in PROBES:
        raise ConfigError(f"probe {probe!r} is not known; use one of {', '.join(PROBES)}")
    samples = probes.samples
    if not samples:
        raise DataError(
            f"family {probes.family!r} produced no perturbed instance for any sample, so there "
            "is no drift to measure; check the benchmark and the family's default grid"
        )
    clean = np.stack([probes.clean[s.id].embeddings[probe] for s in samples]).astype(np.float64)
    perturbed, mask = pad_instances([
        np.stack([record.embeddings[probe] for record in probes.perturbed[s.id]]) for s in samples
    ])
    return clean, perturbed, mask
