"""A batch of work as a dispatcher receives it, and how it becomes adapter requests where it runs.

The engine decides *what* is computed and in which canonical batches; a dispatcher
decides *where*. What travels between them is a ``Batch``: the request kind, the run
seed and one ``WorkItem`` per input, i.e. the sample as the benchmark gave it and the
variant to show it under (plus, for a probe, the option the flip gates already
predicted). Turning an item into a request (perturbing the image, building the prompt)
happens where the batch is computed (``Batch.requests``): on a Ray replica next to the
forward pass, or on the local dispatcher's preparation thread, so perturbation scales
with the replicas instead of running single-threaded beside the driver.

Everything here is a pure function of the batch: the perturbation draws from a
generator seeded by (run seed, sample id, variant), so a batch prepared on any host
gives the same requests, and results stay bit-identical across backends.

A prompt-side family may show the options in another order (``PerturbationFamily.shown_order``).
Requests index the *shown* options (a probe's teacher-forced option is mapped forward
here), and what comes back is put into the sample's own option order by
``in_sample_order``, the one place the engine reads computed results through, so memo,
cache, metrics and records never see a shown position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from vlmgate.errors import ConfigError, ModelError
from vlmgate.records import CLEAN_FAMILY, Sample, Variant

#: Request kind -> the adapter method that computes it: option scores, scores with probes, greedy replies.
#: Inputs per forward batch unless the run says otherwise (``--vlmgate-batch-size``). Batches
#: are canonical, so a different size may round scores differently: it is part of the settings
#: and of every cache key (``cache.observation_key``).
DEFAULT_BATCH_SIZE = 8

KINDS: Mapping[str, str] = {"score": "score", "probe": "embed", "generate": "generate"}


@dataclass(frozen=True)
class WorkItem:
    """One input of a batch: ``sample`` shown under ``variant``.

    ``option`` is the option a probe's ``ans_mcq`` teacher-forces (the prediction the
    engine already holds; ``None``: the arg-max of the probe pass itself); other kinds
    leave it ``None``.
    """

    sample: Sample
    variant: Variant
    option: int | None = None


@dataclass(frozen=True)
class Batch:
    """One canonical batch of one request kind, whole: it is computed in one adapter call."""

    kind: str
    seed: int
    items: tuple[WorkItem, ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown request kind {self.kind!r}; one of {', '.join(KINDS)}")

    @property
    def method(self) -> str:
        """The adapter method this batch is sent to."""
        return KINDS[self.kind]

    def __len__(self) -> int:
        return len(self.items)

    def requests(self) -> list[Any]:
        """The adapter requests of every item, in order (perturbed here: see the module docstring)."""
        return [request(self.kind, item, self.seed) for item in self.items]

    def compute(self, adapter: Any) -> list[Any]:
        """Prepare the batch and run it through ``adapter`` in one call."""
        return run_requests(adapter, self.method, self.requests())


def run_requests(adapter: Any, method: str, requests: Sequence[Any]) -> list[Any]:
    """``adapter.<method>(requests)`` as a list (the one place a dispatcher calls an adapter).

    An item of several pictures reaches only an adapter that takes them: one that does not
    would read its first picture and drop the rest, scoring another question than the item's.
    """
    from vlmgate.models.base import SEVERAL_IMAGES, capabilities

    several = next((r for r in requests if getattr(r, "more_images", ())), None)
    if several is not None and SEVERAL_IMAGES not in capabilities(adapter):
        raise ModelError(f"sample {several.sample_id!r} holds {len(several.images)} images, and model "
                         f"{getattr(adapter, 'spec', adapter)} ({type(adapter).__name__}) takes one image per "
                         "prompt; gate it on single-image items, or use an adapter that takes several (hf: "
                         "LLaVA or Qwen2-VL families, openai:)")
    return list(getattr(adapter, method)(requests))


def shown(sample: Sample, variant: Variant, seed: int) -> Sample:
    """``sample`` as the model sees it under ``variant``.

    A clean variant (``CLEAN``, or one of family ``clean`` whose params name a prepared
    presentation, such as a cross-modal form) shows the sample as it is; any other is
    applied by its perturbation family, with a generator seeded by (seed, sample, variant).
    """
    if variant.family == CLEAN_FAMILY:
        return sample
    from vlmgate.perturbations.base import get_family

    return perturbed(sample, variant, get_family(variant.family), seed)


def perturbed(sample: Sample, variant: Variant, family: Any, seed: int) -> Sample:
    """``sample`` as ``family`` presents it under ``variant`` (the draw seeded as in ``shown``)."""
    from vlmgate.seeding import rng_for

    rng = rng_for(seed, "apply", sample.id, variant.label)
    return family.present(sample, variant, rng)


def shown_order(sample: Sample, variant: Variant) -> tuple[int, ...] | None:
    """The option order ``variant`` shows ``sample``'s options in (``order[j]``: the sample's index
    of the option at shown position ``j``); ``None`` when they stay in place."""
    if variant.family == CLEAN_FAMILY:
        return None
    from vlmgate.perturbations.base import get_family

    order = get_family(variant.family).shown_order(sample, variant)
    if order is not None and sorted(order) != list(range(len(sample.options))):
        raise ConfigError(f"family {variant.family!r}: shown_order {order} for sample {sample.id!r} under "
                         f"{variant.label} is not a permutation of its {len(sample.options)} options; "
                         "fix the family's shown_order")
    return order


def _checked_view(sample: Sample, variant: Variant, view: Sample, order: tuple[int, ...] | None) -> Sample:
    """``view``, once it shows the sample's options in the order the family declares: scores are
    mapped back by that order, so a family that moved them otherwise would be judged on wrong indices."""
    expected = sample.options if order is None else tuple(sample.options[i] for i in order)
    if len(view.options) != len(expected) or (order is not None and view.options != expected):
        raise ConfigError(f"family {variant.family!r} shows sample {sample.id!r} under {variant.label} with options "
                         f"{view.options}, not {expected} as its shown_order declares; make present() and "
                         "shown_order() agree")
    return view


def in_sample_order(kind: str, sample: Sample, variant: Variant, result: Any) -> Any:
    """An adapter's ``result`` for ``(sample, variant)`` with its option scores in the sample's order.

    Scores come back in the order the options were shown; under a reordering variant
    (``shown_order``) they are put back here, so everything downstream indexes the
    sample's own options. A probe record's scores likewise; a reply is text, and a
    request whose options were moved or relabelled is never generated (``request``).
    """
    order = shown_order(sample, variant)
    if order is None or kind == "generate":
        return result
    if kind == "probe":
        from dataclasses import replace

        return replace(result, scores=_unshuffled(result.scores, order, sample, variant))
    return _unshuffled(result, order, sample, variant)


def _unshuffled(scores: Any, order: tuple[int, ...], sample: Sample, variant: Variant) -> Any:
    import numpy as np

    shown = np.asarray(scores, dtype=np.float64)
    if shown.shape != (len(order),):
        raise ModelError(f"the adapter returned {shown.size} option scores for sample {sample.id!r} under "
                         f"{variant.label}, which shows {len(order)} options; an adapter returns one score per "
                         "continuation")
    original = np.empty_like(shown)
    original[list(order)] = shown
    return original


def request(kind: str, item: WorkItem, seed: int) -> Any:
    """The adapter request of ``item`` for request kind ``kind``."""
    from vlmgate.models.base import GenerateRequest, ProbeRequest, ScoreRequest
    from vlmgate.prompts import open_prompt, option_continuations, prompt_for

    sample, variant = item.sample, item.variant
    order = shown_order(sample, variant)
    view = _checked_view(sample, variant, shown(sample, variant, seed), order)
    if kind == "score":
        return ScoreRequest(view.image, prompt_for(view), option_continuations(view), sample_id=sample.id,
                            variant=variant.label, more_images=view.more_images)
    if kind == "probe":
        option = item.option
        if order is not None and option is not None and option in order:  # teacher-force the shown position
            option = order.index(option)
        return ProbeRequest(view.image, prompt_for(view), option_continuations(view), open_prompt(view),
                            option, sample_id=sample.id, more_images=view.more_images)
    if order is not None or view.labels != sample.labels:
        raise ModelError(f"generation request for sample {sample.id!r} under {variant.label}: the family moves or "
                         "relabels the options, and a free-text reply names them as shown, which cannot be mapped "
                         "back; generate under variants that keep the options as they are")
    limit = variant.param_dict.get("max_new_tokens")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ModelError(f"generation request for sample {sample.id!r} under {variant.label} names no "
                         "positive integer max_new_tokens; put the reply's length limit in the variant")
    return GenerateRequest(view.image, prompt_for(view), limit, sample_id=sample.id, more_images=view.more_images)
