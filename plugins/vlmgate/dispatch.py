"""How the engine's batches reach a model: in this process, or fanned out to replicas.

The engine decides *what* is computed and in which batches (so results never depend on
where they are computed: a batch's composition fixes its floating-point rounding); a
dispatcher decides *where*. ``submit`` hands over one whole batch and returns a handle
whose ``result()`` blocks for it; ``capacity`` is how many batches may be in flight, so
the engine keeps every replica busy while it perturbs the next batches.

``local`` (the default) calls the adapter in this process, synchronously. ``ray`` (see
``vlmgate.ray_backend``) sends each batch whole to one of several model replicas.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from vlmgate.errors import ConfigError

BACKENDS = ("local", "ray")
#: Adapter methods a batch may be sent to: option scores, scores with probes, greedy replies.
METHODS = ("score", "embed", "generate")


class Pending(Protocol):
    def result(self) -> list[Any]: ...


class Dispatcher(Protocol):
    #: Batches that may be in flight at once (1 = call and wait).
    capacity: int

    def submit(self, method: str, requests: Sequence[Any]) -> Pending: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class _Done:
    """An already computed batch (the local dispatcher computes at submission)."""

    value: list[Any]

    def result(self) -> list[Any]:
        return self.value


class LocalDispatcher:
    """Calls ``adapter.score`` / ``adapter.embed`` in this process."""

    capacity = 1

    def __init__(self, adapter: Any):
        self.adapter = adapter

    def submit(self, method: str, requests: Sequence[Any]) -> Pending:
        if method not in METHODS:
            raise ValueError(f"unknown adapter method {method!r}")
        return _Done(list(getattr(self.adapter, method)(requests)))

    def close(self) -> None:
        return None


def check_backend(name: str) -> str:
    """``name`` if it is a backend, else a one-line ``ConfigError`` with the closest one."""
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, BACKENDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"--vlmgate-backend {name!r} must be one of {', '.join(BACKENDS)}{hint}")
    return name
