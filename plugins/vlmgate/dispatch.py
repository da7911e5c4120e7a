"""How the engine's batches reach a model: in this process, or fanned out to replicas.

The engine decides *what* is computed and in which batches (so results never depend on
where they are computed: a batch's composition fixes its floating-point rounding); a
dispatcher decides *where*, and prepares each batch there (``vlmgate.batches``: the
perturbation runs beside the forward pass). ``submit`` hands over one whole ``Batch``
and returns a handle whose ``result()`` blocks for the adapter's answers; ``capacity``
is how many submitted batches may be outstanding before the engine waits for the oldest,
so that preparing the next batches overlaps with computing the current ones.

``local`` (the default) prepares on one background thread and computes in this process.
``ray`` (see ``vlmgate.ray_backend``) sends each batch whole to one of several model
replicas, which prepare and compute it, and restarts a replica that dies.

Every dispatcher counts what it did (``DispatchCounts``): batches sent, batches retried
after a replica died, replicas started and restarted. The counts reach the run record's
environment block: a retry never changes a value, but a run that needed some says so.
"""

from __future__ import annotations

import difflib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Mapping, Protocol

from vlmgate.batches import Batch, run_requests
from vlmgate.errors import ConfigError

BACKENDS = ("local", "ray")


class Pending(Protocol):
    def result(self) -> list[Any]: ...


@dataclass(frozen=True)
class DispatchCounts:
    """What one dispatcher (one model's batches in one process) did; counts add up over processes.

    ``replicas``: model replicas started (0 for the local backend, which uses the
    process's own model); ``batches``: batches submitted; ``retried_batches``: batches
    sent again because the replica computing them died; ``restarted_replicas``: replicas
    started to replace dead ones.
    """

    #: The fields that count (all but ``backend``), in order.
    COUNTERS: ClassVar[tuple[str, ...]] = ("replicas", "batches", "retried_batches", "restarted_replicas")

    backend: str
    replicas: int = 0
    batches: int = 0
    retried_batches: int = 0
    restarted_replicas: int = 0

    def __add__(self, other: "DispatchCounts") -> "DispatchCounts":
        backend = self.backend if self.backend == other.backend else "mixed"
        return DispatchCounts(backend, *(getattr(self, name) + getattr(other, name) for name in self.COUNTERS))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "DispatchCounts":
        return cls(str(data["backend"]), *(int(data.get(name, 0)) for name in cls.COUNTERS))


class Dispatcher(Protocol):
    #: Submitted batches that may be outstanding at once (the engine then waits for the oldest).
    capacity: int

    def submit(self, batch: Batch) -> Pending: ...

    def counts(self) -> DispatchCounts: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class _LocalPending:
    """A batch being prepared on the preparation thread; ``result`` computes it on the caller's."""

    adapter: Any
    method: str
    prepared: "Future[list[Any]]"

    def result(self) -> list[Any]:
        return run_requests(self.adapter, self.method, self.prepared.result())


class LocalDispatcher:
    """Prepares batches on one background thread and calls the adapter in this process.

    ``capacity`` 2: while the engine waits for the oldest batch (the forward pass runs on
    its thread), the next one is perturbed (PIL and numpy release the GIL); at small image
    sizes a perturbation costs about as much as a forward. The adapter is only ever called
    from the engine's thread, one batch at a time, in submission order.
    """

    capacity = 2

    def __init__(self, adapter: Any):
        self.adapter = adapter
        self._pool: ThreadPoolExecutor | None = None
        self._batches = 0

    def submit(self, batch: Batch) -> Pending:
        if self._pool is None:  # an idle pool's thread ends when the dispatcher is collected
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlmgate-prepare")
        self._batches += 1
        return _LocalPending(self.adapter, batch.method, self._pool.submit(batch.requests))

    def counts(self) -> DispatchCounts:
        return DispatchCounts("local", batches=self._batches)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def check_backend(name: str) -> str:
    """``name`` if it is a backend, else a one-line ``ConfigError`` with the closest one."""
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, BACKENDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"--vlmgate-backend {name!r} must be one of {', '.join(BACKENDS)}{hint}")
    return name
