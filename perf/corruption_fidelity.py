"""How closely vlmgate's frost and glass blur degrade images compared with ImageNet-C's.

vlmgate's glass blur vectorises the published sequential shuffle and its frost generates
the texture the original crops from photographs; ``tests/corruption_reference.py`` holds
the published algorithms. This prints, per corruption and severity, the mean absolute
change from the clean image (uint8 levels; mean over the scikit-image fidelity photos at
224 px and the seeds) of the reference and of vlmgate, their relative difference, and the
same for SSIM to the clean image, then the time of the exact glass-blur loop against
vlmgate's version. The project's tests require the mean-absolute-change gap to stay
within 5 % per severity.

Frost's reference needs the ImageNet-C frost photographs, which vlmgate does not ship:
with ``--frost-photos DIR`` (or ``VLMGATE_FROST_PHOTOS``) it is measured; without, the
pinned figures of ``tests/corruption_reference.py`` are printed and its SSIM is unknown.
Usage::

    python perf/corruption_fidelity.py [--seeds 4] [--frost-photos DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from corruption_reference import (  # a test helper, importable once tests/ is on the path
    FIDELITY_PHOTOS,
    FROST_PHOTOS_ENV,
    FROST_REFERENCE_CHANGE,
    FROST_ROWS,
    GLASS_ROWS,
    fidelity_photo,
    frost_crops,
    frost_photos,
    frost_reference,
    glass_blur_reference,
    mean_abs_change,
    seeds_drawing_each_frost_photo,
    to_uint8,
)

Degrade = Callable[[np.ndarray, int, int], np.ndarray]  # (clean uint8, severity, seed) -> uint8


def ssim(clean: np.ndarray, corrupted: np.ndarray) -> float:
    return float(structural_similarity(clean, corrupted, channel_axis=-1, data_range=255))


def measure(degrade: Degrade, photos: Sequence[np.ndarray], severity: int,
            seeds: Sequence[int]) -> tuple[float, float]:
    """(mean absolute change, SSIM) averaged over ``photos`` and ``seeds``."""
    pairs = [(image, degrade(image, severity, seed)) for image in photos for seed in seeds]
    return (float(np.mean([mean_abs_change(a, b) for a, b in pairs])),
            float(np.mean([ssim(a, b) for a, b in pairs])))


def vlmgate(name: str) -> Degrade:
    from vlmgate.perturbations import get_family

    family = get_family(name)

    def degrade(image: np.ndarray, severity: int, seed: int) -> np.ndarray:
        variant = family.at_level(10 * severity)
        return np.asarray(family.apply(Image.fromarray(image), variant, np.random.default_rng(seed)))

    return degrade


def glass_reference(image: np.ndarray, severity: int, seed: int) -> np.ndarray:
    return to_uint8(glass_blur_reference(image, GLASS_ROWS[severity - 1], np.random.default_rng(10_000 + seed)))


def frost_reference_over(crops: list[np.ndarray]) -> Degrade:
    """The published frost, with crop ``seed mod len(crops)`` of the photographs' crop grid."""
    def degrade(image: np.ndarray, severity: int, seed: int) -> np.ndarray:
        return to_uint8(frost_reference(image, FROST_ROWS[severity - 1], crops[seed % len(crops)]))

    return degrade


def row(name: str, severity: int, reference: tuple[float, float | None], ours: tuple[float, float]) -> str:
    (ref_mae, ref_ssim), (our_mae, our_ssim) = reference, ours
    ssim_cells = (f"{ref_ssim:>9.4f}{our_ssim:>9.4f}{100 * (our_ssim / ref_ssim - 1):>+8.1f}%" if ref_ssim is not None
                  else f"{'-':>9}{our_ssim:>9.4f}{'-':>9}")
    mae_cells = f"{ref_mae:>10.2f}{our_mae:>10.2f}{100 * (our_mae / ref_mae - 1):>+8.1f}%"
    return f"{name:<12}{severity:>4}" + mae_cells + ssim_cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds per photo for vlmgate and glass blur's reference")
    parser.add_argument("--frost-photos", default=os.environ.get(FROST_PHOTOS_ENV),
                        help=f"folder with ImageNet-C's frost1.png ... frost6.jpg (default ${FROST_PHOTOS_ENV})")
    args = parser.parse_args()

    photos = [fidelity_photo(name) for name in FIDELITY_PHOTOS]
    seeds = list(range(args.seeds))
    # 5 x 5 corners per photograph: the pinned figures use 10 x 10, but SSIM is slow.
    crops = frost_crops(frost_photos(args.frost_photos), per_axis=5) if args.frost_photos else None
    print(f"photos: {', '.join(FIDELITY_PHOTOS)} at 224 px; {args.seeds} seeds per photo (frost: per photograph)"
          + ("" if crops else "; frost reference: pinned figures (no photographs given)"))
    header = (f"{'corruption':<12}{'sev':>4}{'MAC ref':>10}{'vlmgate':>10}{'diff':>9}"
              f"{'SSIM ref':>9}{'vlmgate':>9}{'diff':>9}")
    print(header)
    print("-" * len(header))
    for severity in range(1, 6):
        print(row("glass_blur", severity, measure(glass_reference, photos, severity, seeds),
                  measure(vlmgate("glass_blur"), photos, severity, seeds)))
    # Each frost seed stands for one photograph: as many seeds for each as randint(5) draws it.
    frost_seeds = seeds_drawing_each_frost_photo(args.seeds)
    for severity in range(1, 6):
        reference = (measure(frost_reference_over(crops), photos, severity, range(len(crops))) if crops
                     else (FROST_REFERENCE_CHANGE[severity - 1], None))
        print(row("frost", severity, reference, measure(vlmgate("frost"), photos, severity, frost_seeds)))

    image = photos[0]
    begin = time.perf_counter()
    for severity in range(1, 6):
        glass_reference(image, severity, 0)
    loop = time.perf_counter() - begin
    repeats, ours = 20, vlmgate("glass_blur")
    begin = time.perf_counter()
    for seed in range(repeats):
        for severity in range(1, 6):
            ours(image, severity, seed)
    vectorised = (time.perf_counter() - begin) / repeats
    print(f"\nglass blur, five severities of one 224-px photo: reference loop {1000 * loop:.0f} ms, "
          f"vlmgate {1000 * vectorised:.1f} ms ({loop / vectorised:.0f}x faster)")


if __name__ == "__main__":
    main()
