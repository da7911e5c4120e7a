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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from vlmgate.errors import ModelError
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
    """``adapter.<method>(requests)`` as a list (the one place a dispatcher calls an adapter)."""
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
    """``sample`` with ``family`` applied under ``variant`` (the draw seeded as in ``shown``)."""
    from vlmgate.seeding import rng_for

    rng = rng_for(seed, "apply", sample.id, variant.label)
    return sample.with_image(family.apply(sample.image, variant, rng))


def request(kind: str, item: WorkItem, seed: int) -> Any:
    """The adapter request of ``item`` for request kind ``kind``."""
    from vlmgate.models.base import GenerateRequest, ProbeRequest, ScoreRequest
    from vlmgate.prompts import open_prompt, option_continuations, prompt_for

    sample, variant = item.sample, item.variant
    view = shown(sample, variant, seed)
    if kind == "score":
        return ScoreRequest(view.image, prompt_for(view), option_continuations(view), sample_id=sample.id,
                            variant=variant.label)
    if kind == "probe":
        return ProbeRequest(view.image, prompt_for(view), option_continuations(view), open_prompt(view),
                            item.option, sample_id=sample.id)
    limit = variant.param_dict.get("max_new_tokens")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ModelError(f"generation request for sample {sample.id!r} under {variant.label} names no "
                         "positive integer max_new_tokens; put the reply's length limit in the variant")
    return GenerateRequest(view.image, prompt_for(view), limit, sample_id=sample.id)
