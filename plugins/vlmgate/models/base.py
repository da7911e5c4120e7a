"""The contract between the engine and a model.

An adapter turns batches of ``ScoreRequest`` (an image, a prompt, the option
continuations) into option log-likelihood scores. It is loaded from a spec string
``scheme:rest`` by the loader registered for ``scheme`` under ``vlmgate.models``; the
loader receives the ``ModelOptions`` the user passed on the command line.

Adapters that can also show what happens inside the model implement ``ProbeAdapter``:
``embed(requests)`` turns ``ProbeRequest``s into ``ProbeRecord``s (final-layer hidden
states of the probe channels and the vision tokens), which the drift and structure
suites read. Scoring never pays for probes: they are a separate request kind.

An adapter's ``fingerprint`` is what the observation cache and the run record trust to
say "these scores would come out again": it must cover everything that decides a value.
The checkpoint adapters describe what that is with a ``ModelIdentity`` (files, dtype,
device type, adapter, prompt format, limits), whose hash is their fingerprint.

Requests carry the id of the sample they were made for (``sample_id``, filled by the
engine), so that an adapter refusing an input names it. It is a label, not content: it
takes no part in equality and never changes a value.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, runtime_checkable

from vlmgate import registry
from vlmgate.errors import ModelError
from vlmgate.models.offers import SEVERAL_IMAGES

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image


#: ``ModelOptions.device_map`` values: ``auto`` shards one model over the visible GPUs, then CPU.
DEVICE_MAPS = ("auto",)
#: ``ModelOptions.quantize`` values: bitsandbytes NF4 and LLM.int8 at load.
QUANTIZE_MODES = ("4bit", "8bit")
#: One ``max_memory`` budget: a GPU index, ``cpu`` or ``disk``, and a size accelerate reads.
MEMORY_BUDGET = re.compile(r"^(?P<device>\d+|cpu|disk)=(?P<size>\d+(\.\d+)?\s*([KMGT]i?B)?)$", re.IGNORECASE)


def parse_max_memory(text: str) -> tuple[tuple[str, str], ...]:
    """``"0=20GiB,1=20GiB,cpu=64GiB"`` -> ``(("0", "20GiB"), ...)``; ``ValueError`` naming the bad entry."""
    budgets = []
    for entry in text.split(","):
        match = MEMORY_BUDGET.match(entry.strip())
        if match is None:
            raise ValueError(f"{entry.strip()!r} is not DEVICE=SIZE (a GPU index, cpu or disk = e.g. 20GiB)")
        budgets.append((match["device"].lower(), match["size"]))
    return tuple(budgets)


@dataclass(frozen=True)
class ModelOptions:
    """Load-time options: where to run and in what precision.

    ``device`` is a torch device string; ``dtype`` one of float32 / float16 / bfloat16.
    ``trust_remote_code`` stays off unless the user asks: a checkpoint folder is data,
    and running code from it is a decision the user makes explicitly. Likewise
    ``allow_weight_keys``: fnmatch globs of weight names that may be missing from the
    checkpoint, unused by the architecture or mis-shaped (and so initialised at load);
    without a matching glob any of those is a load error, since a randomly initialised
    tensor silently gates a different model. ``prompt_format`` names how a checkpoint's
    prompt is framed (``vlmgate.models.prompt_formats``); ``None`` means its own chat
    template, and a checkpoint without one is a load error rather than a guessed format.
    """

    device: str = "cpu"
    dtype: str = "float32"
    trust_remote_code: bool = False
    allow_weight_keys: tuple[str, ...] = ()
    prompt_format: str | None = None
    #: Big checkpoints (``vlmgate.models.checkpoint.weight_placement``): ``device_map``
    #: ``"auto"`` shards one model over the visible GPUs (then CPU) within ``max_memory``
    #: (``(("0", "20GiB"), ("cpu", "64GiB"))``); ``quantize`` ``"4bit"`` / ``"8bit"`` loads
    #: with bitsandbytes (CUDA only). Without them the weights load straight onto ``device``.
    device_map: str | None = None
    max_memory: tuple[tuple[str, str], ...] = ()
    quantize: str | None = None
    #: Folder of the side-car records that memoise checkpoint file digests across
    #: processes (``checkpoint.file_sha256``); ``None``: this process only.
    digest_dir: str | None = None


@dataclass(frozen=True)
class ModelIdentity:
    """What decides a loaded model's values, JSON-safe; ``fingerprint`` is its hash.

    ``files``: sha256 over the names and bytes of the checkpoint's weights, config,
    processor, tokenizer, chat-template and generation files (names relative to the
    folder, so a moved or copied folder keeps it). ``initialised``: sha256 of the weights
    transformers initialised at load under ``allow_weight_keys`` ("" when none; they are
    random, so two loads agree only if the draws do). ``dtype`` and ``device_type``
    (``cpu`` / ``cuda`` / ``mps``, not the index: two GPUs of one kind compute alike);
    ``adapter`` (``hf`` / ``clip``) and ``prompt_format`` say how inputs become tokens;
    ``limits`` are the adapter's length limits (e.g. ``max_answer_tokens``) by name.
    ``quantization``: how the weights were quantized ("" for none): a pre-quantized
    checkpoint's ``quant_method`` (``gptq``, ``awq``, ``compressed-tensors`` ...; its
    config.json is in ``files`` too) or bitsandbytes at load (``bitsandbytes-nf4`` /
    ``bitsandbytes-int8``), which rounds the same files to other values.
    """

    adapter: str
    files: str
    dtype: str
    device_type: str
    prompt_format: str
    limits: tuple[tuple[str, int], ...] = ()
    initialised: str = ""
    quantization: str = ""

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON object (``limits`` as a name -> value object)."""
        return {**asdict(self), "limits": dict(self.limits)}

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of ``to_json()``."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ModelDescription:
    """How a model read its inputs, as the run record states it beside the fingerprint.

    A fingerprint says whether two runs scored alike, not how; a reader of ``run.json``
    should see the prompt a model was scored with rather than trust a format's name.
    ``prompt_format`` is the format's name (``chat_template``, ``llava-plain``, ...; ``None``
    for an adapter that does not say), ``identity`` the adapter's ``ModelIdentity`` as JSON
    (``None`` without one), ``example_context`` the context of ``example_prompt`` (the
    scoring prompt of sample ``example_sample``, the first of ``example_benchmark``) exactly
    as the model reads it, image placeholder unexpanded (``None`` for an adapter that cannot
    render one: a served or remote model).
    """

    prompt_format: str | None
    identity: Mapping[str, Any] | None = None
    example_benchmark: str | None = None
    example_sample: str | None = None
    example_prompt: str | None = None
    example_context: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "identity": None if self.identity is None else dict(self.identity)}


def describe_model(model: object, example_prompt: str | None, *, benchmark: str | None = None,
                   sample: str | None = None, images: int = 1) -> ModelDescription:
    """``model``'s ``ModelDescription``, read from what its adapter offers (``identity``,
    ``prompt_format``, ``render_context(prompt)``), each optional; ``benchmark`` and ``sample``
    name where ``example_prompt`` came from, ``images`` how many pictures it shows (an adapter's
    ``render_context`` is asked for them where there are several)."""
    identity: Any = getattr(model, "identity", None)
    identity_json = identity.to_json() if callable(getattr(identity, "to_json", None)) else (
        dict(identity) if isinstance(identity, Mapping) else None)
    # An identity names a format with its definition's digest (``llava-plain@...``); the name is before it.
    prompt_format = getattr(model, "prompt_format", None) or str((identity_json or {}).get("prompt_format")
                                                                   or "").split("@")[0] or None
    context = None if example_prompt is None else rendered_context(model, example_prompt, images)
    return ModelDescription(prompt_format, identity_json, benchmark, sample, example_prompt, context)


def rendered_context(model: object, prompt: str, images: int = 1) -> str | None:
    """``model.render_context(prompt[, images])``: the context as the model reads it; ``None``
    where the adapter cannot say (no ``render_context``, or one that renders a single picture
    and so would show a several-picture prompt wrongly)."""
    render = getattr(model, "render_context", None)
    if not callable(render):
        return None
    if images <= 1:
        return render(prompt)
    try:
        takes_images = len(inspect.signature(render).parameters) >= 2
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        takes_images = False
    return render(prompt, images) if takes_images else None


@dataclass(frozen=True)
class ScoreRequest:
    """Score each continuation as the assistant's reply to (image, prompt)."""

    image: "Image"
    prompt: str
    continuations: tuple[str, ...]
    #: The sample the request was made for, named in errors (a label, not content).
    sample_id: str = field(default="", compare=False)
    #: The variant's label (``Variant.label``), beside ``sample_id`` in what an adapter lists.
    variant: str = field(default="", compare=False)
    #: An interleaved item's later pictures (``Sample.more_images``); the prompt places them
    #: (``vlmgate.interleaving``). Only an adapter offering ``several_images`` is sent any.
    more_images: tuple["Image", ...] = ()

    @property
    def images(self) -> tuple["Image", ...]:
        return (self.image, *self.more_images)


def no_answer_scores(n_options: int) -> "np.ndarray":
    """The scores of an input an adapter got no readable answer to: all NaN (see ``ModelAdapter``)."""
    import numpy as np

    return np.full(n_options, np.nan, dtype=np.float64)


@runtime_checkable
class ModelAdapter(Protocol):
    """What the engine needs from a model.

    Optional attributes (not protocol members, so that existing adapters still match; an
    adapter without one reads as its default). The ``openai:`` adapter
    (``vlmgate.models.served``) sets all three:

    * ``scoring``: how ``score()``'s values are made. ``"exact"`` (default): the summed
      option log-likelihood defined here. ``"first_token"``: the log-prob of each option's
      first token only (approximate). ``"answer"``: a parsed greedy reply, 1.0 for the
      chosen option and 0.0 elsewhere: a choice, never a likelihood. Either tier returns
      ``no_answer_scores`` for an input it got no readable answer to (a reply naming no
      option, no option among the top log-probs, an empty response): all NaN, which the
      engine records as ``records.NO_ANSWER``, never as an option. An ``exact`` adapter
      never does; a NaN among its scores is an error.
    * ``capabilities``: a frozenset of names from ``CAPABILITIES`` (read it through
      ``capabilities(model)``, which derives it from the methods when absent). A served
      model's ``first_token`` and ``answer`` tiers leave out ``"scores"``: their arg-max is
      a choice (``"choices"``: flip rates, accuracy, decay), their values are no
      log-likelihoods (RAS, margins, confidences), and a suite that needs them skips.
    * ``cacheable``: ``False`` when ``fingerprint`` cannot vouch for the weights (a served
      model without a ``revision=``: two checkpoints under one name fingerprint alike); the
      engine must then neither read nor write the observation cache for it. Default ``True``.
    * ``deterministic``: ``False`` when the same request may score differently twice (a
      server that batches requests as they come, non-deterministic kernels); the flip-rate
      suite then scores the clean pass twice and records the share of answers that differ
      (``repeat_flip_rate``) beside every flip rate. Default ``True``.
    """

    #: The spec the user gave (``hf:/path``), used in case ids and reports.
    spec: str
    #: Hash of everything that decides a value (weights, config, processor and tokenizer
    #: files, dtype, device type, prompt format, limits): equal fingerprints score alike.
    fingerprint: str

    def score(self, requests: Sequence[ScoreRequest]) -> list["np.ndarray"]:
        """Summed log-likelihood of every continuation, one float64 array per request.

        Implementations run the batch under ``torch.inference_mode`` and raise
        ``ModelError`` on non-finite scores (a NaN logit must never become a verdict).
        """


#: Probe channels (spec §1, "Embedding probes"), each a final-LLM-layer hidden state:
#: ``ctx_mcq`` the last prompt token under the scoring (MCQ / yes-no) prompt;
#: ``ans_mcq`` the mean over the answer tokens when teacher-forcing the chosen option;
#: ``ans_mcq_free`` the same over the model's own greedy answer (the headline channel);
#: ``ctx_open`` the last prompt token under the open prompt.
PROBES: tuple[str, ...] = ("ctx_mcq", "ans_mcq", "ans_mcq_free", "ctx_open")


@dataclass(frozen=True)
class ProbeRequest:
    """Score and probe one image: the scoring prompt with its options, and the open prompt.

    ``option`` is the option whose text ``ans_mcq`` teacher-forces; ``None`` means the
    arg-max of the scores computed in the same pass. The engine passes the prediction
    it already holds, so that ``ans_mcq`` follows exactly the answer the flip gates saw.
    """

    image: "Image"
    prompt: str
    continuations: tuple[str, ...]
    open_prompt: str
    option: int | None = None
    #: The sample the request was made for, named in errors (a label, not content).
    sample_id: str = field(default="", compare=False)
    more_images: tuple["Image", ...] = ()

    @property
    def images(self) -> tuple["Image", ...]:
        return (self.image, *self.more_images)


@dataclass(frozen=True, eq=False)
class ProbeRecord:
    """What the passes over one image showed inside the model.

    ``scores`` are the option scores of the same pass (equal to ``score()``'s up to float
    noise); ``embeddings`` maps every name in ``PROBES`` to a ``(D,)`` float32 vector;
    ``answer_tokens`` is the greedy answer behind ``ans_mcq_free`` (end of turn excluded).
    ``vision_tokens`` are the ``(T·H'·W', D)`` features the language model receives in
    place of the image placeholder, in row-major (frame, row, column) order, and
    ``vision_grid`` their ``(T, H', W')``; both are ``None`` for an architecture whose
    token grid the adapter cannot state. Records hold arrays, so they compare by identity.
    """

    scores: "np.ndarray"
    embeddings: Mapping[str, "np.ndarray"]
    answer_tokens: tuple[int, ...]
    vision_tokens: "np.ndarray | None"
    vision_grid: tuple[int, int, int] | None


@runtime_checkable
class ProbeAdapter(ModelAdapter, Protocol):
    """A model adapter that can also return hidden-state probes and vision tokens."""

    def embed(self, requests: Sequence[ProbeRequest]) -> list[ProbeRecord]:
        """One ``ProbeRecord`` per request, in order, every probe of ``PROBES`` filled."""


#: What an adapter can do, as suites ask for it: ``choices`` (a predicted option per input),
#: ``scores`` (exact option log-likelihoods, which RAS and margins read), ``probes`` (hidden
#: states: ``embed``), ``generate`` (free-text replies), ``pixels`` (differentiable image
#: embeddings, for embedding matching), ``several_images`` (an interleaved item's pictures in
#: one prompt, placed where its text says: ``vlmgate.interleaving``).
CAPABILITIES = ("choices", "scores", "probes", "generate", "pixels", "several_images")
# ``SEVERAL_IMAGES`` (``models.offers``): an adapter that has it says so in ``capabilities`` or with
# a true ``takes_several_images`` attribute; one that does not is never sent a request with
# ``more_images`` (``batches.run_requests`` refuses it, naming the item).


def capabilities(model: object) -> frozenset[str]:
    """What ``model`` offers: its own ``capabilities`` attribute, else read off its methods.

    An adapter whose scores are not log-likelihoods (a served model answering in text)
    declares ``capabilities`` without ``scores``, so that no suite reads its choices as scores.
    """
    declared = getattr(model, "capabilities", None)
    if declared is not None:
        return frozenset(declared)
    found = set()
    if callable(getattr(model, "score", None)):
        found |= {"choices", "scores"}
    if callable(getattr(model, "embed", None)):
        found.add("probes")
    if callable(getattr(model, "generate", None)):
        found.add("generate")
    if callable(getattr(model, "image_embedding", None)):
        found.add("pixels")
    if getattr(model, "takes_several_images", False) is True:
        found.add(SEVERAL_IMAGES)
    return frozenset(found)


def require_probes(model: ModelAdapter) -> ProbeAdapter:
    """``model`` as a ``ProbeAdapter``, or a ``ModelError`` saying which gates need it.

    Read through ``capabilities``: a model whose replicas compute elsewhere (the Ray
    backend's ``RemoteModel``) has no ``embed`` method of its own, but offers probes.
    """
    if "probes" not in capabilities(model):
        raise ModelError(
            f"model {model.spec}: its adapter ({type(model).__name__}) returns option scores "
            "only, but the drift and structure gates read hidden states; run them with an "
            "hf: or bundled: model, or deselect them with -m 'not drift and not structure'"
        )
    return model  # type: ignore[return-value]


@dataclass(frozen=True)
class GenerateRequest:
    """Answer (image, prompt) greedily (temperature 0) with at most ``max_new_tokens`` tokens."""

    image: "Image"
    prompt: str
    max_new_tokens: int = 8
    #: The sample the request was made for, named in errors (a label, not content).
    sample_id: str = field(default="", compare=False)
    more_images: tuple["Image", ...] = ()

    @property
    def images(self) -> tuple["Image", ...]:
        return (self.image, *self.more_images)


@runtime_checkable
class GenerativeAdapter(ModelAdapter, Protocol):
    """A model adapter that can also answer in free text (numeric answers, OCR transcripts).

    Option scoring needs no parsing and stays the default; generation is an optional
    capability, for items without options and for the cross-modal suite's OCR control.
    """

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        """The greedy reply to every request, decoded, special tokens removed, in order."""


def require_generation(model: ModelAdapter, purpose: str) -> GenerativeAdapter:
    """``model`` as a ``GenerativeAdapter``, or a ``ModelError`` saying what needed it (see ``require_probes``)."""
    if "generate" not in capabilities(model):
        raise ModelError(
            f"model {model.spec}: its adapter ({type(model).__name__}) scores options only, but "
            f"{purpose} needs generated text; run it with an hf: or bundled: model, or "
            "deselect it with -m 'not crossmodal'"
        )
    return model  # type: ignore[return-value]


def load_model(spec: str, options: ModelOptions) -> ModelAdapter:
    """Resolve ``spec`` through the ``vlmgate.models`` registry and load it."""
    scheme, rest = registry.split_spec(spec, "model", ModelError)
    try:
        loader = registry.load(registry.MODELS, scheme)
    except registry.RegistryError as exc:
        raise ModelError(f"model spec {spec!r}: {exc}") from None
    return loader(rest, options, spec=spec)
