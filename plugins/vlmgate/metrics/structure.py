"""Structure of what a perturbation changes: token-grid smoothness and image spectrum (spec §1).

Two views of *where* a perturbation acts, beside *whether* the answer moved:

* **Dirichlet energy** of the vision tokens on their spatial grid: how rough the token
  field is. A perturbation that injects local detail (text, noise) raises it; one that
  removes detail (blur, downscale) lowers it.
* **Spectral band energies** of the image: how much power sits at low, mid and high
  spatial frequencies, so a family can be described as "adds high frequencies" or
  "moves low-frequency content" independently of any model.

Both are pure numpy/scipy functions of arrays and images; the engine supplies the tokens
(vision encoder + merger output) and the images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np
import scipy.fft

from vlmgate.errors import ConfigError, DataError
from vlmgate.metrics.stats import bootstrap_interval
from vlmgate.records import MetricResult

if TYPE_CHECKING:
    from PIL.Image import Image

# --------------------------------------------------------------------------- Dirichlet energy


def token_grid(tokens: np.ndarray, grid: Sequence[int] | None = None) -> np.ndarray:
    """View vision tokens as a ``(T, H', W', D)`` grid.

    ``tokens`` is already ``(T, H', W', D)``, or ``(H', W', D)`` (one frame), or a flat
    ``(T·H'·W', D)`` sequence together with ``grid = (T, H', W')`` or ``(H', W')``; a flat
    sequence is read in row-major (frame, row, column) order, the order in which vision
    encoders and mergers emit patches.
    """
    tokens = np.asarray(tokens, dtype=np.float64)
    if grid is not None:
        shape = tuple(int(g) for g in grid)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3 or tokens.ndim != 2 or math.prod(shape) != tokens.shape[0]:
            raise DataError(
                f"vision tokens of shape {tokens.shape} do not fill the grid {tuple(grid)}; pass "
                "flat (T*H*W, D) tokens with grid (T, H, W), or (T, H, W, D) tokens and no grid"
            )
        return tokens.reshape(*shape, tokens.shape[1])
    if tokens.ndim == 3:
        return tokens[None]
    if tokens.ndim == 4:
        return tokens
    raise DataError(
        f"vision tokens of shape {tokens.shape} have no grid; pass (T, H, W, D) tokens or give "
        "grid=(T, H, W) for flat (T*H*W, D) tokens"
    )


def dirichlet_energy(tokens: np.ndarray, grid: Sequence[int] | None = None) -> float:
    """Edge-normalised Dirichlet energy of a token grid on the 4-neighbour graph.

    ``E(X) = [Σ‖X[t,i,j+1] − X[t,i,j]‖² + Σ‖X[t,i+1,j] − X[t,i,j]‖²]
    / (T·H'·(W'−1) + T·(H'−1)·W')`` with uniform edge weights; frames are not linked to
    each other. Dividing by the edge count makes grids of different sizes comparable (a
    rescaled image yields a different token grid). Exactly 0 for a constant grid.
    """
    x = token_grid(tokens, grid)
    frames, height, width, _ = x.shape
    edges = frames * height * (width - 1) + frames * (height - 1) * width
    if edges == 0:
        raise DataError(
            f"vision-token grid {x.shape[:3]} has no neighbouring tokens, so its Dirichlet "
            "energy is undefined; the adapter must return the spatial token grid, not a "
            "pooled vector"
        )
    if not np.isfinite(x).all():
        raise DataError("vision tokens contain NaN or inf; the vision encoder output is invalid")
    horizontal = np.diff(x, axis=2)
    vertical = np.diff(x, axis=1)
    return float((np.sum(horizontal * horizontal) + np.sum(vertical * vertical)) / edges)


@dataclass(frozen=True)
class EnergyShift:
    """Dirichlet energy of the clean and perturbed token grids; ``delta = E(pert) − E(base)``."""

    base: float
    perturbed: float

    @property
    def delta(self) -> float:
        return self.perturbed - self.base


def dirichlet_energy_shift(
    base_tokens: np.ndarray,
    perturbed_tokens: np.ndarray,
    *,
    base_grid: Sequence[int] | None = None,
    perturbed_grid: Sequence[int] | None = None,
) -> EnergyShift:
    """``ΔE`` of one (sample, variant); the two grids may differ in size (scale families)."""
    return EnergyShift(
        dirichlet_energy(base_tokens, base_grid), dirichlet_energy(perturbed_tokens, perturbed_grid)
    )


def energy_shift_result(
    shifts: Sequence[EnergyShift], *, rng: np.random.Generator, name: str = "dirichlet_energy_shift"
) -> MetricResult:
    """Mean ``ΔE`` over samples with a bootstrap 95 % interval."""
    if not shifts:
        raise DataError(f"{name}: no (sample, variant) energy shifts to summarise")
    deltas = np.array([s.delta for s in shifts])
    low, high = bootstrap_interval(deltas, rng=rng)
    details = {
        "base_mean": float(np.mean([s.base for s in shifts])),
        "perturbed_mean": float(np.mean([s.perturbed for s in shifts])),
        "delta_sd": float(deltas.std(ddof=1)) if deltas.size > 1 else None,
    }
    return MetricResult(name, float(deltas.mean()), low, high, len(shifts), details)


# ------------------------------------------------------------------------- spectral bands

#: How the radial band edges are placed; "log" is the spec's default.
BandScheme = Literal["log", "thirds", "percentiles"]
BAND_SCHEMES: tuple[str, ...] = ("log", "thirds", "percentiles")
BANDS: tuple[str, ...] = ("low", "mid", "high")
#: Keeps the relative change finite for an image with no power in a band.
RELATIVE_EPSILON = 1e-8


def _check_scheme(scheme: str) -> None:
    if scheme not in BAND_SCHEMES:
        raise ConfigError(
            f"spectral band scheme {scheme!r} is not known; use one of {', '.join(BAND_SCHEMES)}"
        )


def unit_rgb(image: "Image | np.ndarray") -> np.ndarray:
    """An image as a float64 ``(H, W, 3)`` array in [0, 1].

    A PIL image is converted to RGB and divided by 255; a uint8 array likewise; a float
    array must already be ``(H, W, 3)`` in [0, 1].
    """
    if not isinstance(image, np.ndarray):
        image = np.asarray(image.convert("RGB"))
    if image.ndim != 3 or image.shape[2] != 3:
        raise DataError(
            f"spectral bands need an RGB image (H, W, 3); got an array of shape {image.shape}"
        )
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    unit = image.astype(np.float64)
    if not (np.isfinite(unit).all() and unit.min() >= 0.0 and unit.max() <= 1.0):
        raise DataError(
            "spectral bands: a float image must hold values in [0, 1]; pass uint8 pixels or "
            "divide by 255 first"
        )
    return unit


def frequency_radius(height: int, width: int) -> np.ndarray:
    """Distance of each ``fftshift``-ed frequency index from the zero frequency, ``(H, W)``.

    After ``fftshift`` the zero frequency sits at index ``(H // 2, W // 2)``; the radius
    is the Euclidean distance from it in index units (rows and columns weigh alike, so on
    a non-square image a radius mixes two frequency scales, as in the source).
    """
    rows = np.arange(height) - height // 2
    cols = np.arange(width) - width // 2
    return np.hypot(rows[:, None], cols[None, :])


def band_edges(radius: np.ndarray, scheme: BandScheme = "log") -> np.ndarray:
    """The four edges ``e0 = 0 < e1 < e2 < e3 = r_max`` of the three radial bands.

    ``r_max`` is the largest radius on the grid: the distance from the zero frequency to
    the farthest corner, ``hypot(H // 2, W // 2)``.

    * ``log``: ``geomspace(1, r_max + 1, 4) − 1`` (the spec's default: finer at low frequency);
    * ``thirds``: ``linspace(0, r_max, 4)``;
    * ``percentiles``: the 100/3 and 200/3 percentiles of the radii of all pixels as
      inner edges, so the bands hold about equal numbers of frequencies.

    Membership (``band_index``): low is ``[e0, e1)``, mid ``[e1, e2)``, high ``[e2, e3]``;
    a radius exactly on an inner edge belongs to the outer band, and the zero frequency to
    the low band.
    """
    _check_scheme(scheme)
    r_max = float(radius.max())
    if scheme == "log":
        return np.geomspace(1.0, r_max + 1.0, 4) - 1.0
    if scheme == "thirds":
        return np.linspace(0.0, r_max, 4)
    inner = np.percentile(radius, [100.0 / 3.0, 200.0 / 3.0])
    return np.array([0.0, inner[0], inner[1], r_max])


def band_index(radius: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Band number (0 low, 1 mid, 2 high) of every radius, by the rule in ``band_edges``."""
    return np.searchsorted(edges[1:3], radius, side="right")


def channel_summed_power(unit: np.ndarray, *, workers: int | None = None) -> np.ndarray:
    """``Σ_c |fftshift(FFT2(c))|²`` over the channels ``c`` of an ``(H, W, C)`` array, ``(H, W)``.

    ``fftshift`` is a permutation of frequencies, so summing the channels' power before
    shifting equals shifting each channel's ``P`` first, and shifts one plane instead of C.
    """
    spectrum = scipy.fft.fft2(unit, axes=(0, 1), workers=workers)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    return scipy.fft.fftshift(power.sum(axis=2))


@lru_cache(maxsize=32)
def _band_layout(height: int, width: int, scheme: BandScheme) -> tuple[np.ndarray, np.ndarray]:
    """Band number of every frequency and the band sizes, cached per grid (every perturbed
    image is resized to its clean image's size, so one layout serves all its variants)."""
    radius = frequency_radius(height, width)
    bands = band_index(radius, band_edges(radius, scheme)).ravel()
    counts = np.bincount(bands, minlength=3)
    bands.flags.writeable = False
    counts.flags.writeable = False
    return bands, counts


@dataclass(frozen=True)
class BandEnergies:
    """Mean spectral power of one image in its low, mid and high radial bands."""

    low: float
    mid: float
    high: float
    scheme: str

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.low, self.mid, self.high)


def band_energies(
    image: "Image | np.ndarray", *, scheme: BandScheme = "log", workers: int | None = None
) -> BandEnergies:
    """Band energy = mean of ``P`` over the band's frequencies, averaged over R, G, B.

    ``workers`` is passed to ``scipy.fft`` (None: one thread; -1: all cores). Every band
    holds the same frequencies in every channel, so the average over channels of the
    per-channel means is the mean over (frequency, channel) pairs.
    """
    _check_scheme(scheme)
    unit = unit_rgb(image)
    bands, counts = _band_layout(unit.shape[0], unit.shape[1], scheme)
    if (counts == 0).any():
        raise DataError(
            f"spectral bands: a {unit.shape[1]}x{unit.shape[0]} image leaves the "
            f"{BANDS[int(np.flatnonzero(counts == 0)[0])]} band empty under scheme {scheme!r}; "
            "use a larger image or another band scheme"
        )
    power = channel_summed_power(unit, workers=workers)
    sums = np.bincount(bands, weights=power.ravel(), minlength=3)
    means = sums / (counts * unit.shape[2])
    return BandEnergies(float(means[0]), float(means[1]), float(means[2]), scheme)


def resize_to_base(perturbed: "Image", base_size: tuple[int, int]) -> "Image":
    """The perturbed image at the clean image's ``(width, height)``, bicubic, as RGB.

    Families such as scale or rotation (expand=True) change the size; bands are only
    comparable on the same frequency grid.
    """
    from PIL import Image as PILImage

    rgb = perturbed.convert("RGB")
    if rgb.size == tuple(base_size):
        return rgb
    return rgb.resize(base_size, PILImage.Resampling.BICUBIC)  # resize takes any (width, height) sequence


@dataclass(frozen=True)
class SpectralShift:
    """Band energies of a clean image and its perturbed copy, and their changes."""

    base: BandEnergies
    perturbed: BandEnergies

    @property
    def delta(self) -> dict[str, float]:
        """``Δ_b = E_b(pert) − E_b(base)`` per band."""
        return {b: p - q for b, p, q in zip(BANDS, self.perturbed.as_tuple(), self.base.as_tuple())}

    @property
    def relative(self) -> dict[str, float]:
        """``Δ_b / (|E_b(base)| + 1e-8)`` per band."""
        return {b: d / (abs(q) + RELATIVE_EPSILON)
                for (b, d), q in zip(self.delta.items(), self.base.as_tuple())}

    @property
    def low_to_high(self) -> float:
        """``Δlow / Δhigh``; NaN when the high band did not change."""
        delta = self.delta
        return delta["low"] / delta["high"] if delta["high"] != 0.0 else math.nan

    def as_details(self) -> dict[str, Any]:
        ratio = self.low_to_high
        return {
            "scheme": self.base.scheme,
            "delta": self.delta,
            "relative": self.relative,
            "low_to_high": ratio if math.isfinite(ratio) else None,
        }


def spectral_shift(
    base_image: "Image",
    perturbed_image: "Image",
    *,
    scheme: BandScheme = "log",
    workers: int | None = None,
) -> SpectralShift:
    """Band energies of ``base_image`` and of ``perturbed_image`` resized back to its size."""
    base_rgb = base_image.convert("RGB")
    return SpectralShift(
        band_energies(base_rgb, scheme=scheme, workers=workers),
        band_energies(
            resize_to_base(perturbed_image, base_rgb.size), scheme=scheme, workers=workers
        ),
    )


def spectral_shift_result(
    shifts: Sequence[SpectralShift],
    *,
    rng: np.random.Generator,
    band: str = "high",
    name: str = "spectral_shift",
) -> MetricResult:
    """Mean relative change of ``band`` over samples with a bootstrap 95 % interval.

    Details carry the mean absolute and relative change of every band.
    """
    if band not in BANDS:
        raise ConfigError(f"{name}: band {band!r} is not known; use one of {', '.join(BANDS)}")
    if not shifts:
        raise DataError(f"{name}: no (sample, variant) spectral shifts to summarise")
    relative = np.array([s.relative[band] for s in shifts])
    low, high = bootstrap_interval(relative, rng=rng)
    details = {
        "band": band,
        "scheme": shifts[0].base.scheme,
        "delta_mean": {b: float(np.mean([s.delta[b] for s in shifts])) for b in BANDS},
        "relative_mean": {b: float(np.mean([s.relative[b] for s in shifts])) for b in BANDS},
    }
    return MetricResult(name, float(relative.mean()), low, high, len(shifts), details)
