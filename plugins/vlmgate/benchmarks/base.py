"""The contract between the engine and a benchmark.

A loader registered under ``vlmgate.benchmarks`` turns the part of a spec after the
scheme (``jsonl:PATH`` -> ``PATH``) into a ``Benchmark``: a sized, re-iterable source of
``Sample`` records with a content fingerprint. Samples are produced lazily so memory
stays flat in the number of items.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Protocol, runtime_checkable

from vlmgate import registry
from vlmgate.errors import DataError, NotApplicable
from vlmgate.records import Sample, TextItem

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


@runtime_checkable
class TextBenchmark(Protocol):
    """A benchmark of text-only items (``textqa:``, ``soebench:``) for the cross-modal suite.

    ``dropped`` counts the items the loader left out and why (``too_long``, ``latex``),
    so a report can say how much of the source was judged.
    """

    spec: str
    fingerprint: str
    dropped: Mapping[str, int]

    def __len__(self) -> int: ...

    def items(self) -> Iterator[TextItem]:
        """Yield the items in a fixed order."""


def text_only_samples(spec: str) -> NotApplicable:
    """The error a text benchmark's ``samples()`` raises: image suites skip such benchmarks."""
    return NotApplicable(
        f"benchmark {spec} holds text-only items, which the image suites cannot perturb; "
        "only the cross-modal suite (-m crossmodal) renders them. Give image suites an image "
        "benchmark (bundled:shapes, jsonl:PATH)"
    )


def require_text_benchmark(benchmark: Benchmark) -> TextBenchmark:
    """``benchmark`` as a ``TextBenchmark``, or ``NotApplicable`` (the case is skipped)."""
    if not callable(getattr(benchmark, "items", None)):
        raise NotApplicable(
            f"benchmark {benchmark.spec} holds images; the cross-modal suite renders text items "
            "as images itself, so it needs a text benchmark: --vlmgate-benchmark textqa:PATH or "
            "soebench:n=100"
        )
    return benchmark  # type: ignore[return-value]


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
