"""The model as the driver knows it when only replicas hold its weights.

Under ``--vlmgate-backend ray`` the pytest process (the driver) loads no weights: each
replica loads the model where it computes and describes itself in a ``ReplicaReport``.
The engine and the suites need only what such a report says (the spec, the fingerprint
that keys the cache and the run record, what the adapter can do, whether its fingerprint
vouches for its weights), so the driver works with a ``RemoteModel`` built from the
reports of all replicas.

What the run record says of how the model reads its inputs (``describe_model``: the
identity, the prompt format, an example context rendered by the model's own template)
comes from the replicas too, so a Ray run's record equals a local run's.

The fingerprint covers the device type (``ModelIdentity``), so on a GPU cluster the
replicas' fingerprint (``cuda``) is the truth, not what a CPU copy in the driver would
say. Replicas that disagree (hosts seeing different files, a GPU of another kind) are
an error naming each one: their results could not be pooled into one gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from vlmgate.errors import ModelError

#: What a dispatcher can carry: ``pixels`` (differentiable image embeddings) needs the
#: model in this process, so a remote model never offers it.
REMOTE_CAPABILITIES = frozenset({"choices", "scores", "probes", "generate", "several_images"})


@dataclass(frozen=True)
class ReplicaReport:
    """What one loaded replica says about its model (``describe`` on the replica)."""

    spec: str
    fingerprint: str
    capabilities: frozenset[str]
    cacheable: bool = True
    scoring: str = "exact"
    #: The adapter's ``ModelIdentity`` as JSON, where it has one (``hf:``, ``clip:``).
    identity: Mapping[str, Any] | None = None
    #: The adapter's ``prompt_format`` attribute, where it has one.
    prompt_format: str | None = None
    #: Whether the adapter can render a prompt's context (``render_context``).
    renders: bool = False
    #: The adapter's class, for messages.
    adapter: str = ""
    #: Where the replica runs (its node's address), for messages.
    node: str = ""
    #: Whether the adapter answers the same input the same way twice (a served model may not:
    #: the flip-rate suite then measures its repeat noise).
    deterministic: bool = True

    @classmethod
    def of(cls, adapter: Any, *, node: str = "") -> "ReplicaReport":
        """The report of a loaded ``adapter``."""
        from vlmgate.models.base import capabilities

        to_json = getattr(getattr(adapter, "identity", None), "to_json", None)
        return cls(spec=adapter.spec, fingerprint=str(adapter.fingerprint), capabilities=capabilities(adapter),
                   cacheable=bool(getattr(adapter, "cacheable", True)), scoring=getattr(adapter, "scoring", "exact"),
                   identity=to_json() if callable(to_json) else None,
                   prompt_format=getattr(adapter, "prompt_format", None),
                   renders=callable(getattr(adapter, "render_context", None)), adapter=type(adapter).__name__,
                   node=node, deterministic=bool(getattr(adapter, "deterministic", True)))


@dataclass(frozen=True)
class RemoteModel:
    """A model whose replicas compute elsewhere: what the engine reads of an adapter, and no weights.

    ``capabilities`` are the replicas' own, less what only an in-process model offers
    (``REMOTE_CAPABILITIES``); ``vlmgate.models.base.capabilities`` reads them.
    ``renderer`` asks a replica to render a prompt's context (``None``: they cannot).
    """

    spec: str
    fingerprint: str
    capabilities: frozenset[str]
    cacheable: bool = True
    scoring: str = "exact"
    identity: Mapping[str, Any] | None = field(default=None, compare=False)
    prompt_format: str | None = None
    adapter: str = ""
    renderer: Callable[[str, int], str | None] | None = field(default=None, compare=False, repr=False)
    deterministic: bool = True

    def render_context(self, prompt: str, n_images: int = 1) -> str | None:
        """``prompt``'s context, showing ``n_images`` pictures, as the replicas' model reads it
        (``None`` where it cannot say)."""
        return None if self.renderer is None else self.renderer(prompt, n_images)

    @classmethod
    def from_reports(cls, spec: str, reports: Sequence[ReplicaReport],
                     renderer: Callable[[str, int], str | None] | None = None) -> "RemoteModel":
        """The model all ``reports`` describe; replicas that disagree on the fingerprint are a ``ModelError``."""
        if not reports:
            raise ModelError(f"model {spec}: no replica reported; start at least one")
        found = {report.fingerprint for report in reports}
        if len(found) > 1:
            where = "; ".join(f"replica {n} on {r.node or '?'}: {r.fingerprint[:16]} {dict(r.identity or {})}"
                              for n, r in enumerate(reports))
            raise ModelError(
                f"model {spec}: its replicas loaded different models ({where}); every host must see the same "
                "checkpoint files and run it on the same kind of device and dtype")
        first = reports[0]
        return cls(spec=spec, fingerprint=first.fingerprint, capabilities=first.capabilities & REMOTE_CAPABILITIES,
                   cacheable=all(r.cacheable for r in reports), scoring=first.scoring, identity=first.identity,
                   prompt_format=first.prompt_format, adapter=first.adapter,
                   renderer=renderer if first.renders else None,
                   deterministic=all(r.deterministic for r in reports))

    def matches(self, report: ReplicaReport) -> bool:
        """Whether a (restarted) replica loaded this very model."""
        return report.fingerprint == self.fingerprint
