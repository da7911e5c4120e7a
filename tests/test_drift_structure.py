"""Representation drift (vlmgate.metrics.drift) and structure metrics (vlmgate.metrics.structure).

Expected values are computed by hand or by independent brute-force loops, never by the
functions under test.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy import stats

from vlmgate.errors import ConfigError, DataError
from vlmgate.metrics.drift import (
    cohens_d,
    control_drift,
    control_indices,
    control_sample_ids,
    drift_by_flip,
    drift_to_control,
    pad_instances,
    perturbation_drift,
)
from vlmgate.metrics.structure import (
    BandEnergies,
    SpectralShift,
    band_energies,
    band_index,
    dirichlet_energy,
    dirichlet_energy_shift,
    energy_shift_result,
    spectral_shift,
    spectral_shift_result,
)
from vlmgate.seeding import rng_for

# ------------------------------------------------------------------------------ drift


def test_cosine_and_l2_drift_on_hand_computed_vectors():
    clean = np.array([[3.0, 4.0], [1.0, 0.0]])
    perturbed = np.array([
        [[4.0, 3.0], [3.0, 4.0]],    # cos = 24/25 -> 1/25 ; identical -> 0
        [[0.0, 2.0], [-5.0, 0.0]],   # orthogonal -> 1 ; opposite -> 2
    ])
    cosine = perturbation_drift(clean, perturbed, metric="cosine")
    np.testing.assert_allclose(cosine.per_instance, [[1 / 25, 0.0], [1.0, 2.0]], atol=1e-12)
    np.testing.assert_allclose(cosine.per_sample, [1 / 50, 1.5], atol=1e-12)

    l2 = perturbation_drift(clean, perturbed, metric="l2")
    np.testing.assert_allclose(l2.per_instance, [[math.sqrt(2), 0.0], [math.sqrt(5), 6.0]])
    np.testing.assert_allclose(l2.per_sample, [math.sqrt(2) / 2, (math.sqrt(5) + 6) / 2])


def test_ragged_instances_ignore_padding():
    stacked, mask = pad_instances([np.array([[0.0, 1.0], [1.0, 1.0]]), np.array([[2.0, 0.0]])])
    assert stacked.shape == (2, 2, 2)
    np.testing.assert_array_equal(mask, [[True, True], [True, False]])
    # A padded slot is never read, even when it holds NaN.
    stacked[1, 1] = np.nan
    drift = perturbation_drift(np.array([[1.0, 0.0], [1.0, 0.0]]), stacked, mask)
    assert drift.per_sample[0] == pytest.approx((1.0 + (1 - 1 / math.sqrt(2))) / 2)
    assert drift.per_sample[1] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(drift.per_instance[1, 1])


def test_bad_embeddings_raise_errors_that_name_the_sample():
    clean = np.array([[1.0, 0.0], [0.0, 0.0]])
    perturbed = np.array([[[1.0, 1.0]], [[1.0, 0.0]]])
    with pytest.raises(DataError, match="'img-2'.*zero embedding"):
        perturbation_drift(clean, perturbed, sample_ids=["img-1", "img-2"])
    with pytest.raises(DataError, match="'img-1'.*not finite"):
        perturbation_drift(np.array([[np.nan, 0.0], [1.0, 0.0]]), perturbed,
                           sample_ids=["img-1", "img-2"])
    with pytest.raises(DataError, match="'b'.*no perturbed instance"):
        perturbation_drift(np.eye(2), np.ones((2, 1, 2)), np.array([[True], [False]]),
                           sample_ids=["a", "b"])
    with pytest.raises(DataError, match=r"\(N, I, D\)"):
        perturbation_drift(np.eye(2), np.ones((3, 1, 2)))
    with pytest.raises(ConfigError, match="cosine, l2"):
        perturbation_drift(np.eye(2), np.ones((2, 1, 2)), metric="manhattan")


def test_controls_are_other_samples_distinct_and_seeded():
    ids = [f"s{n:03d}" for n in range(40)]
    controls = control_indices(ids, k=5, seed=0)
    assert controls.shape == (40, 5)
    for row, picks in enumerate(controls):
        assert row not in picks
        assert len(set(picks.tolist())) == 5
    np.testing.assert_array_equal(controls, control_indices(ids, k=5, seed=0))
    assert not np.array_equal(controls, control_indices(ids, k=5, seed=1))


def test_controls_do_not_depend_on_order_or_on_other_samples_draws():
    ids = [f"photo-{n}" for n in range(25)]
    reference = {sid: control_sample_ids(sid, ids, k=4, seed=7) for sid in ids}
    order_rng = np.random.default_rng(123)
    for _ in range(3):
        shuffled = [ids[i] for i in order_rng.permutation(len(ids))]
        rows = control_indices(shuffled, k=4, seed=7)
        for sid, picks in zip(shuffled, rows):
            assert tuple(shuffled[i] for i in picks) == reference[sid]


def test_fewer_others_than_k_uses_all_of_them():
    ids = ["a", "b", "c"]
    controls = control_indices(ids, k=5)
    assert controls.shape == (3, 2)
    for row, picks in enumerate(controls):
        assert sorted(picks.tolist()) == sorted({0, 1, 2} - {row})
    with pytest.raises(DataError, match="at least two samples"):
        control_indices(["alone"])
    with pytest.raises(DataError, match="'a' appears more than once"):
        control_indices(["a", "b", "a"])
    with pytest.raises(ConfigError, match="k=0"):
        control_indices(ids, k=0)


def test_control_drift_is_the_mean_distance_to_the_drawn_controls():
    rng = np.random.default_rng(5)
    ids = [f"x{n}" for n in range(12)]
    clean = rng.normal(size=(12, 6))
    drift = control_drift(clean, ids, k=3, seed=2)
    for n, sid in enumerate(ids):
        distances = []
        for other in control_sample_ids(sid, ids, k=3, seed=2):
            a, b = clean[n], clean[ids.index(other)]
            dot = sum(x * y for x, y in zip(a, b))
            cos = dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
            distances.append(1 - cos)
        assert drift[n] == pytest.approx(sum(distances) / 3, rel=1e-12)


def test_cohens_d_matches_a_hand_computation():
    # means 2 and 5.5; variances 1 and 5/3; pooled variance (2*1 + 3*5/3) / 5 = 7/5.
    assert cohens_d([1, 2, 3], [4, 5, 6, 7]) == pytest.approx(-3.5 / math.sqrt(1.4))
    assert cohens_d([4, 5, 6, 7], [1, 2, 3]) == pytest.approx(3.5 / math.sqrt(1.4))
    assert cohens_d([2, 2], [2, 2]) == 0.0
    assert cohens_d([1, 1], [3, 3]) == -math.inf
    with pytest.raises(DataError, match="at least 3 values"):
        cohens_d([1.0], [2.0])


def _orthogonal_case(cosines: list[float]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Clean embeddings e_n (so every control distance is exactly 1 under cosine and √2
    under L2) and one unit-norm perturbed instance per sample at cosine ``cosines[n]``."""
    n = len(cosines)
    clean = np.eye(n)
    perturbed = np.zeros((n, 1, n))
    for i, c in enumerate(cosines):
        perturbed[i, 0, i] = c
        perturbed[i, 0, (i + 1) % n] = math.sqrt(1 - c * c)
    return clean, perturbed, [f"q{i}" for i in range(n)]


def test_drift_to_control_ratio_mean_sd_and_effect_size():
    clean, perturbed, ids = _orthogonal_case([0.9, 0.8, 0.7, 0.6])
    result = drift_to_control(clean, perturbed, ids, k=3, seed=0)
    # D_pert = (0.1, 0.2, 0.3, 0.4), D_ctrl = 1 everywhere, so R = D_pert.
    assert result.n == 4
    assert result.value == pytest.approx(0.25)
    assert result.details["ratio_sd"] == pytest.approx(math.sqrt(0.05 / 3))
    assert result.details["control_drift_mean"] == pytest.approx(1.0)
    # pooled variance = (3 * 0.05/3 + 3 * 0) / 6
    assert result.details["cohens_d"] == pytest.approx((0.25 - 1.0) / math.sqrt(0.05 / 6))
    # Symmetric ratios (no skewness to correct): the interval over the 4 samples is the t interval.
    half = stats.t.ppf(0.975, 3) * math.sqrt(0.05 / 3) / 2
    assert (result.ci_low, result.ci_high) == pytest.approx((0.25 - half, 0.25 + half))
    assert result.units == pytest.approx({"q0": 0.1, "q1": 0.2, "q2": 0.3, "q3": 0.4})
    again = drift_to_control(clean, perturbed, ids, k=3, seed=0)
    assert (again.ci_low, again.ci_high) == (result.ci_low, result.ci_high)


def test_l2_ratio_uses_the_l2_control_distance():
    cosines = [0.9, 0.8, 0.7, 0.6]
    clean, perturbed, ids = _orthogonal_case(cosines)
    result = drift_to_control(clean, perturbed, ids, k=3, metric="l2")
    # unit vectors: ‖a − b‖ = sqrt(2 − 2 cos); controls are at √2, so R = sqrt(1 − cos).
    expected = [math.sqrt(1 - c) for c in cosines]
    assert result.value == pytest.approx(sum(expected) / 4)
    assert result.details["control_drift_mean"] == pytest.approx(math.sqrt(2))


def test_flip_split_pools_instances():
    clean = np.array([[1.0, 0.0], [0.0, 1.0]])
    perturbed = np.array([
        [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]],   # distances 0, 1, 2
        [[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]],    # distances 1, 0, (padding)
    ])
    mask = np.array([[True, True, True], [True, True, False]])
    flipped = np.array([[False, True, True], [True, False, True]])  # last flag is padding
    split = drift_by_flip(perturbation_drift(clean, perturbed, mask), flipped)
    assert (split.flipped.n, split.unflipped.n) == (3, 2)
    assert split.flipped.mean == pytest.approx(4 / 3)
    flipped_var = ((1 - 4 / 3) ** 2 * 2 + (2 - 4 / 3) ** 2) / 2
    assert split.flipped.sd == pytest.approx(math.sqrt(flipped_var))
    assert split.unflipped.mean == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(DataError, match="flip flags"):
        drift_by_flip(perturbation_drift(clean, perturbed, mask), flipped[:, :2])


def test_report_details_are_json_safe_and_plot_ready():
    rng = np.random.default_rng(9)
    ids = [f"id{n}" for n in range(8)]
    clean = rng.normal(size=(8, 5))
    perturbed, mask = pad_instances([c + rng.normal(scale=0.3, size=(1 + n % 3, 5))
                                     for n, c in enumerate(clean)])
    flipped = rng.random(mask.shape) < 0.3
    result = drift_to_control(clean, perturbed, ids, mask=mask, flipped=flipped, seed=3)
    json.dumps(result.details, allow_nan=False)
    dist = result.details["distributions"]
    assert dist["sample_ids"] == ids
    np.testing.assert_allclose(dist["perturbation"],
                               perturbation_drift(clean, perturbed, mask).per_sample)
    np.testing.assert_allclose(dist["control"], control_drift(clean, ids, seed=3))
    assert result.details["instances"] == int(mask.sum())
    assert result.details["by_flip"]["flipped"]["n"] == int((flipped & mask).sum())
    with pytest.raises(DataError, match="7 sample ids for 8"):
        drift_to_control(clean, perturbed, ids[:7], mask=mask)


# ------------------------------------------------------------------------ Dirichlet energy


def _brute_dirichlet(x: np.ndarray) -> float:
    frames, height, width, _ = x.shape
    total, edges = 0.0, 0
    for t in range(frames):
        for i in range(height):
            for j in range(width):
                if j + 1 < width:
                    total += float(np.sum((x[t, i, j + 1] - x[t, i, j]) ** 2))
                    edges += 1
                if i + 1 < height:
                    total += float(np.sum((x[t, i + 1, j] - x[t, i, j]) ** 2))
                    edges += 1
    return total / edges


def test_dirichlet_energy_hand_case_and_brute_force():
    # [[0, 1], [2, 4]]: horizontal 1 + 4, vertical 4 + 9, over 4 edges.
    assert dirichlet_energy(np.array([[[0.0], [1.0]], [[2.0], [4.0]]])) == pytest.approx(18 / 4)
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 4))
    assert dirichlet_energy(x) == pytest.approx(_brute_dirichlet(x), rel=1e-12)
    flat = x.reshape(-1, 4)
    assert dirichlet_energy(flat, grid=(2, 3, 5)) == pytest.approx(_brute_dirichlet(x), rel=1e-12)


def test_dirichlet_energy_of_a_constant_grid_is_exactly_zero():
    assert dirichlet_energy(np.full((2, 4, 4, 8), 3.7)) == 0.0


def test_dirichlet_shift_across_grid_sizes_and_errors():
    rng = np.random.default_rng(1)
    base, pert = rng.normal(size=(16, 3)), rng.normal(size=(9, 3))
    shift = dirichlet_energy_shift(base, pert, base_grid=(4, 4), perturbed_grid=(3, 3))
    assert shift.delta == pytest.approx(_brute_dirichlet(pert.reshape(1, 3, 3, 3))
                                        - _brute_dirichlet(base.reshape(1, 4, 4, 3)))
    result = energy_shift_result([shift, shift], rng=rng_for(0, "test"))
    assert result.value == pytest.approx(shift.delta) and result.n == 2
    with pytest.raises(DataError, match="no neighbouring tokens"):
        dirichlet_energy(np.ones((1, 1, 1, 4)))
    with pytest.raises(DataError, match="do not fill the grid"):
        dirichlet_energy(np.ones((10, 4)), grid=(3, 3))


# -------------------------------------------------------------------------- spectral bands


def _brute_bands(pixels: np.ndarray, scheme: str) -> list[float]:
    """Per-channel numpy.fft, an explicit loop over pixels, then the mean over channels."""
    height, width, _ = pixels.shape
    cy, cx = height // 2, width // 2
    radii = [[math.hypot(i - cy, j - cx) for j in range(width)] for i in range(height)]
    r_max = max(max(row) for row in radii)
    if scheme == "log":
        e1, e2 = (r_max + 1) ** (1 / 3) - 1, (r_max + 1) ** (2 / 3) - 1
    elif scheme == "thirds":
        e1, e2 = r_max / 3, 2 * r_max / 3
    else:
        e1, e2 = np.percentile(np.array(radii).ravel(), [100 / 3, 200 / 3])
    per_channel = []
    for c in range(3):
        power = np.abs(np.fft.fftshift(np.fft.fft2(pixels[:, :, c] / 255.0))) ** 2
        sums, counts = [0.0, 0.0, 0.0], [0, 0, 0]
        for i in range(height):
            for j in range(width):
                r = radii[i][j]
                band = 0 if r < e1 else (1 if r < e2 else 2)
                sums[band] += power[i, j]
                counts[band] += 1
        per_channel.append([s / n for s, n in zip(sums, counts)])
    return [sum(ch[b] for ch in per_channel) / 3 for b in range(3)]


@pytest.mark.parametrize("scheme", ["log", "thirds", "percentiles"])
@pytest.mark.parametrize("shape", [(12, 12), (11, 14)])
def test_band_energies_match_a_brute_force_loop(scheme, shape):
    pixels = np.random.default_rng(4).integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    got = band_energies(Image.fromarray(pixels), scheme=scheme, workers=2).as_tuple()
    np.testing.assert_allclose(got, _brute_bands(pixels, scheme), rtol=1e-10)


def test_band_membership_at_the_edges():
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    radii = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    np.testing.assert_array_equal(band_index(radii, edges), [0, 0, 1, 1, 2, 2])


def test_relative_change_and_low_to_high_ratio():
    shift = SpectralShift(BandEnergies(1.0, 2.0, 4.0, "log"), BandEnergies(3.0, 2.0, 3.0, "log"))
    assert shift.delta == {"low": 2.0, "mid": 0.0, "high": -1.0}
    assert shift.relative["low"] == pytest.approx(2.0 / (1.0 + 1e-8), rel=1e-15)
    assert shift.relative["high"] == pytest.approx(-0.25)
    assert shift.low_to_high == -2.0
    flat_high = SpectralShift(BandEnergies(1.0, 1.0, 1.0, "log"),
                              BandEnergies(2.0, 1.0, 1.0, "log"))
    assert math.isnan(flat_high.low_to_high)
    json.dumps(flat_high.as_details(), allow_nan=False)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((128, 128), Image.Resampling.BICUBIC)


def test_blur_lowers_and_noise_raises_the_high_band(photo):
    blurred = spectral_shift(photo, photo.filter(ImageFilter.GaussianBlur(2)))
    assert blurred.relative["high"] < -0.5
    pixels = np.asarray(photo, dtype=np.float64)
    noise = np.random.default_rng(0).normal(scale=20.0, size=pixels.shape)
    noisy = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))
    assert spectral_shift(photo, noisy).relative["high"] > 0.5
    summary = spectral_shift_result([blurred, blurred], rng=rng_for(0, "test"), band="high")
    assert summary.value == pytest.approx(blurred.relative["high"])


def test_perturbed_image_is_resized_back_to_the_base_size(photo):
    unchanged = spectral_shift(photo, photo.copy())
    assert unchanged.delta == {"low": 0.0, "mid": 0.0, "high": 0.0}
    smaller = photo.resize((115, 115), Image.Resampling.BICUBIC)
    shift = spectral_shift(photo, smaller)
    # Bicubic down- and up-sampling smooths: high frequencies drop, the mean (DC) barely moves.
    assert shift.relative["high"] < 0
    assert abs(shift.relative["low"]) < 0.05
    with pytest.raises(ConfigError, match="log, thirds, percentiles"):
        band_energies(photo, scheme="octaves")
    with pytest.raises(DataError, match="empty"):
        band_energies(np.zeros((1, 2, 3), dtype=np.uint8))
