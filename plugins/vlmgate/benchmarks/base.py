"""The contract between the engine and a benchmark.

A loader registered under ``vlmgate.benchmarks`` turns the part of a spec after the
scheme (``jsonl:PATH`` -> ``PATH``) into a ``Benchmark``: a sized, re-iterable source of
``Sample`` records with a content fingerprint. Samples are produced lazily so memory
stays flat in the number of items. Every loader is called as
``loader(rest, spec=spec, options=BenchmarkOptions(...))``: the options are the run's
limits on what a benchmark may hold (the pixel budget), as model loaders receive
``ModelOptions``.

A loader also says what *kind* of items it holds (``BENCHMARK_KINDS``: ``image`` items, an
image and a question, or ``text`` items that the cross-modal suite renders itself) and,
for image items, whether their questions vary from item to item (a VQA benchmark, where
the question decides the answer, unlike a classification set asking one question of every
image), as attributes (``items_kind``) read at collection without loading anything, so
that a suite's cases exist only where it can judge (``suites.applicability``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Protocol, TypeVar, Union, runtime_checkable

from vlmgate import registry
from vlmgate.errors import DataError, NotApplicable
from vlmgate.records import Sample, TextItem

#: Images are resized so the longest side is at most this (bicubic) before perturbation.
MAX_SIDE = 1024
#: The default pixel budget of one stored image (width x height, read from its header).
#: 50 megapixels holds the largest common camera photos (45-50 MP full-frame and phone
#: sensors) and every public VQA benchmark image by far, while the decode it allows
#: stays near 150 MB as RGB (200 MB with alpha), under a second of CPU. Beyond it an
#: image is refused by name rather than decoded; PIL's own decompression-bomb limit
#: (89 MP warning, 179 MP error) follows the budget instead (``image_decoding``).
DEFAULT_MAX_PIXELS = 50_000_000
#: What a benchmark may hold; a loader that declares nothing holds ``image`` items.
BENCHMARK_KINDS = ("image", "text")
#: A loader's ``kind``: one of ``BENCHMARK_KINDS``, or a function of the spec's rest giving
#: one (``bundled:`` looks at the named folder), ``None`` when it cannot tell.
KindDeclaration = Union[str, Callable[[str], "str | None"]]
_Loader = TypeVar("_Loader", bound=Callable[..., object])


#: A loader's ``varied_questions``: ``True`` / ``False``, or a function of the spec's rest
#: (``None`` when it cannot tell). Undeclared: not known, nothing is assumed.
QuestionsDeclaration = Union[bool, Callable[[str], "bool | None"]]


def items_kind(kind: KindDeclaration, *, varied_questions: QuestionsDeclaration | None = None,
               yes_no_items: QuestionsDeclaration | None = None,
               twins: tuple[str, ...] = (),
               several_images: QuestionsDeclaration = False) -> Callable[[_Loader], _Loader]:
    """Declare the kind of items a benchmark loader returns, whether their questions vary,
    whether it holds answered yes/no items (a declaration left out is not known), the
    twin pictures every item carries (``Sample.twins``; none unless declared), and whether
    its items may hold several pictures (``Sample.more_images``; a loader that never makes
    such items leaves it ``False``). A decorator."""
    if isinstance(kind, str) and kind not in BENCHMARK_KINDS:
        raise ValueError(f"benchmark kind {kind!r} is not one of {', '.join(BENCHMARK_KINDS)}")

    def declare(loader: _Loader) -> _Loader:
        loader.kind = kind  # type: ignore[attr-defined]
        if varied_questions is not None:
            loader.varied_questions = varied_questions  # type: ignore[attr-defined]
        if yes_no_items is not None:
            loader.yes_no_items = yes_no_items  # type: ignore[attr-defined]
        loader.twins = tuple(twins)  # type: ignore[attr-defined]
        loader.several_images = several_images  # type: ignore[attr-defined]
        return loader

    return declare


def _declared(spec: str, attribute: str, default: object) -> object:
    """A benchmark loader's declaration ``attribute`` for ``spec`` (``None`` when unknowable)."""
    from vlmgate.cases import without_chosen_name
    from vlmgate.errors import VlmgateError

    try:
        scheme, rest = registry.split_spec(without_chosen_name(spec), "benchmark", DataError)
        declared = getattr(registry.load(registry.BENCHMARKS, scheme), attribute, default)
    except VlmgateError:
        return None
    return declared(rest) if callable(declared) else declared


def benchmark_questions_vary(spec: str) -> bool | None:
    """Whether ``spec``'s questions vary from item to item, as its loader declares; ``None``: not said."""
    varied = _declared(spec, "varied_questions", None)
    return varied if isinstance(varied, bool) else None


def benchmark_yes_no_items(spec: str) -> bool | None:
    """Whether ``spec`` holds answered yes/no items, as its loader declares; ``None``: not said."""
    holds = _declared(spec, "yes_no_items", None)
    return holds if isinstance(holds, bool) else None


def benchmark_several_images(spec: str) -> bool | None:
    """Whether ``spec``'s items may hold several pictures, as its loader declares; ``None``: not said
    (an unknown scheme; a loader that declares nothing makes one-picture items)."""
    several = _declared(spec, "several_images", False)
    return several if isinstance(several, bool) else None


def benchmark_twins(spec: str) -> tuple[str, ...] | None:
    """The twin pictures every item of ``spec`` carries, as its loader declares (none when it
    declares none); ``None`` when the spec's scheme is unknown."""
    twins = _declared(spec, "twins", ())
    return tuple(twins) if isinstance(twins, (tuple, list)) else None


def benchmark_kind(spec: str) -> str | None:
    """The kind of items ``spec`` names, from its loader's declaration; nothing is loaded.

    ``None`` when it cannot be told (an unknown scheme, a bundled name that does not
    exist): a case is then kept, and running it reports the loader's own error.
    """
    kind = _declared(spec, "kind", "image")
    return kind if kind in BENCHMARK_KINDS else None


#: The metadata key (``Sample.meta``) of an item's category: VLMEvalKit's and POPE's column
#: name, and what a ``jsonl`` row carries as a ``category`` key. Results are split by it
#: (``metrics.categories``).
CATEGORY_KEY = "category"


#: The options of every yes/no sample, in this order: the words the yes/no prompt asks for.
#: The POPE metrics find yes and no by these texts, not by their position.
YES_NO = ("Yes", "No")


@dataclass(frozen=True)
class BenchmarkOptions:
    """Run-time limits a loader applies to what it reads.

    ``max_pixels`` is the pixel budget of one stored image (``--vlmgate-max-pixels``,
    ``[tool.vlmgate] max_pixels``): an image whose header declares more is a
    ``DataError`` naming it, never a decode that exhausts memory.
    """

    max_pixels: int = DEFAULT_MAX_PIXELS


#: What a loader gets when the caller passes no options (``vlmgate`` commands, tests).
DEFAULT_OPTIONS = BenchmarkOptions()


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


def capped_size(size: tuple[int, int]) -> tuple[int, int]:
    """The size ``cap_size`` gives an image of ``size``."""
    longest = max(size)
    if longest <= MAX_SIDE:
        return size
    scale = MAX_SIDE / longest
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def cap_size(image):
    """Resize an RGB image so the longest side is at most ``MAX_SIDE`` (bicubic, spec §1).

    Colour handling is the decoder's (``image_decoding.opaque_rgb``): a plain
    ``convert("RGB")`` here would clip 16-bit grey to white and show transparent pixels
    in their hidden colour, so anything but RGB is a programming error.
    """
    from PIL import Image

    if image.mode != "RGB":
        raise ValueError(f"cap_size needs an RGB image, got mode {image.mode}; decode it with image_decoding first")
    longest = max(image.size)
    if longest <= MAX_SIDE:
        return image
    return image.resize(capped_size(image.size), Image.Resampling.BICUBIC)


def load_benchmark(spec: str, options: BenchmarkOptions = DEFAULT_OPTIONS) -> Benchmark:
    """The benchmark ``spec`` names, loaded under ``options`` (the defaults when not given).

    A ``?name=NAME`` query item names the benchmark's cases (``cases.short_name``); it is not
    content, so the loader reads the spec without it.
    """
    from vlmgate.cases import without_chosen_name

    scheme, rest = registry.split_spec(without_chosen_name(spec), "benchmark", DataError)
    try:
        loader = registry.load(registry.BENCHMARKS, scheme)
    except registry.RegistryError as exc:
        raise DataError(f"benchmark spec {spec!r}: {exc}") from None
    return loader(rest, spec=spec, options=options)
