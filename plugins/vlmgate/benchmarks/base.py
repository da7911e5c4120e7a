"""The contract between the engine and a benchmark.

A loader registered under ``vlmgate.benchmarks`` turns the part of a spec after the
scheme (``jsonl:PATH`` -> ``PATH``) into a ``Benchmark``: a sized, re-iterable source of
``Sample`` records with a content fingerprint. Samples are produced lazily so memory
stays flat in the number of items.
"""

from __future__ import annotations

from typing import Iterator, Protocol, runtime_checkable

from vlmgate import registry
from vlmgate.errors import DataError
from vlmgate.records import Sample

#: Images are resized so the longest side is at most this (bicubic) before perturbation.
MAX_SIDE = 1024


@runtime_checkable
class Benchmark(Protocol):
    spec: str
    #: Hash of the items' content (manifest and image bytes).
    fingerprint: str

    def __len__(self) -> int: ...

    def samples(self) -> Iterator[Sample]:
        """Yield samples in a fixed order, images loaded and capped at ``MAX_SIDE``."""


def cap_size(image):
    """Resize so the longest side is at most ``MAX_SIDE`` (bicubic, spec §1); RGB."""
    from PIL import Image

    image = image.convert("RGB")
    longest = max(image.size)
    if longest <= MAX_SIDE:
        return image
    scale = MAX_SIDE / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


def load_benchmark(spec: str) -> Benchmark:
    scheme, rest = registry.split_spec(spec, "benchmark", DataError)
    try:
        loader = registry.load(registry.BENCHMARKS, scheme)
    except registry.RegistryError as exc:
        raise DataError(f"benchmark spec {spec!r}: {exc}") from None
    return loader(rest, spec=spec)
