"""Throughput of every corruption family at 224 x 224 and 512 x 512.

The RAS suite applies each of the nineteen corruptions at five severities to every judged
sample, so a slow corruption (glass blur's pixel shuffles, elastic transform's map
coordinates) can cost more than the model on a small checkpoint. This prints, per
corruption and size, images per second averaged over the five default severities, and
each corruption's share of the total time at that size: the figures to compare, since
absolute speed depends on the machine.

The image is scikit-image's astronaut photograph (a natural image, shipped offline),
resized with PIL. Usage::

    python perf/corruption_throughput.py [--repeats 3] [--sizes 224 512]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image


def natural_image(size: int) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.BICUBIC)


def time_family(name: str, image: Image.Image, repeats: int) -> float:
    """Seconds per image, mean over the default severities and ``repeats`` runs."""
    from vlmgate.perturbations.base import VariantContext, get_family
    from vlmgate.records import Sample

    family = get_family(name)
    sample = Sample(id="astronaut", image=image, question="", options=("a", "b"), answer=0)
    variants = family.variants(sample, VariantContext(0, np.random.default_rng(0)))
    begin = time.perf_counter()
    for repeat in range(repeats):
        for variant in variants:
            family.apply(image, variant, np.random.default_rng(repeat))
    return (time.perf_counter() - begin) / (repeats * len(variants))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 512])
    args = parser.parse_args()

    from vlmgate.suites import get_suite

    names = get_suite("ras").families()
    seconds = {size: {name: time_family(name, natural_image(size), args.repeats) for name in names}
               for size in args.sizes}
    header = "corruption".ljust(20) + "".join(f"{f'{s}px img/s':>14}{'share':>8}" for s in args.sizes)
    print(header)
    print("-" * len(header))
    for name in names:
        row = name.ljust(20)
        for size in args.sizes:
            total = sum(seconds[size].values())
            row += f"{1.0 / seconds[size][name]:>14.1f}{seconds[size][name] / total:>8.1%}"
        print(row)
    for size in args.sizes[1:]:
        ratio = sum(seconds[size].values()) / sum(seconds[args.sizes[0]].values())
        pixels = (size / args.sizes[0]) ** 2
        print(f"all 19 at {size}px / at {args.sizes[0]}px: {ratio:.2f}x time for {pixels:.2f}x pixels")


if __name__ == "__main__":
    main()
