"""The contract between the engine and a model.

An adapter turns batches of ``ScoreRequest`` (an image, a prompt, the option
continuations) into option log-likelihood scores. It is loaded from a spec string
``scheme:rest`` by the loader registered for ``scheme`` under ``vlmgate.models``; the
loader receives the ``ModelOptions`` the user passed on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

from vlmgate import registry
from vlmgate.errors import ModelError

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image


@dataclass(frozen=True)
class ModelOptions:
    """Load-time options: where to run and in what precision.

    ``device`` is a torch device string; ``dtype`` one of float32 / float16 / bfloat16.
    ``trust_remote_code`` stays off unless the user asks: a checkpoint folder is data,
    and running code from it is a decision the user makes explicitly.
    """

    device: str = "cpu"
    dtype: str = "float32"
    trust_remote_code: bool = False


@dataclass(frozen=True)
class ScoreRequest:
    """Score each continuation as the assistant's reply to (image, prompt)."""

    image: "Image"
    prompt: str
    continuations: tuple[str, ...]


@runtime_checkable
class ModelAdapter(Protocol):
    """What the engine needs from a model."""

    #: The spec the user gave (``hf:/path``), used in case ids and reports.
    spec: str
    #: Hash of weights and config: two adapters with equal fingerprints score alike.
    fingerprint: str

    def score(self, requests: Sequence[ScoreRequest]) -> list["np.ndarray"]:
        """Summed log-likelihood of every continuation, one float64 array per request.

        Implementations run the batch under ``torch.inference_mode`` and raise
        ``ModelError`` on non-finite scores (a NaN logit must never become a verdict).
        """


def load_model(spec: str, options: ModelOptions) -> ModelAdapter:
    """Resolve ``spec`` through the ``vlmgate.models`` registry and load it."""
    scheme, rest = registry.split_spec(spec, "model", ModelError)
    try:
        loader = registry.load(registry.MODELS, scheme)
    except registry.RegistryError as exc:
        raise ModelError(f"model spec {spec!r}: {exc}") from None
    return loader(rest, options, spec=spec)
