"""``--vlmgate-backend ray``: batches prepared and computed by model replicas on a Ray cluster.

Each replica is a Ray actor that loads the model from the spec and options; the driver
(the pytest process) loads no weights and knows the model only through the replicas'
reports (``vlmgate.remote_model``). The engine sends every batch whole, as items
(sample, variant) rather than prepared requests, to one replica, which perturbs the
images and builds the requests (``vlmgate.batches``) and runs the forward pass: a batch
is computed with exactly the composition the local backend uses, so results are
identical bit for bit, and perturbation scales with the replicas. A replica takes two
batches at once (two threads), so it prepares one while the other computes; the forward
passes themselves run one at a time.

Placement: ``--vlmgate-ray-gpus-per-replica G`` (default 1 on a CUDA device, where an
actor sees only its own device, which torch calls ``cuda``; 0.5 puts two replicas on a
GPU) or one CPU per replica on a CPU device, each with one torch thread;
``--vlmgate-ray-replicas N`` (default: as many as the cluster's resources hold).

A replica that dies (its process killed, out of memory) is replaced by a fresh one that
must report the same fingerprint, and its batches are sent again, at most
``MAX_RETRIES`` times each: the counts (``DispatchCounts``) reach the run record.

``RAY_ADDRESS`` names an existing cluster (many hosts: model folders and benchmark
images must be readable at the same paths on every one). Without it a private local
instance starts on the loopback interface only (127.0.0.1), without dashboard, and
is shut down when the run ends. Ray is the optional extra ``pytest-vlmgate[ray]``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from typing import Any, Callable

from vlmgate.batches import Batch, run_requests
from vlmgate.dispatch import DispatchCounts, Pending
from vlmgate.errors import ConfigError, ModelError, VlmgateError
from vlmgate.models.base import ModelOptions
from vlmgate.remote_model import RemoteModel, ReplicaReport

#: Times one batch is sent again after the replica computing it died.
MAX_RETRIES = 2
#: How long replicas may take to be placed and to load before the run gives up.
START_TIMEOUT_S = 600.0
#: Batches in flight per replica: one prepared while the other computes.
BATCHES_PER_REPLICA = 2
#: Ray's switch for a single-node instance: its processes bind the loopback address only.
#: Read when ray is imported, so it is set before the first import (``_import_ray``).
_LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _import_ray():
    """``ray``, imported so that a local instance it starts listens on 127.0.0.1 only."""
    if not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault(_LOOPBACK_SWITCH, "0")
    try:
        import ray
    except ImportError:
        raise ConfigError("--vlmgate-backend ray needs Ray, which is not installed; "
                          "pip install 'pytest-vlmgate[ray]' (or use --vlmgate-backend local)") from None
    return ray


def connect(num_cpus: int | None = None) -> bool:
    """Join the Ray instance of this process, ``RAY_ADDRESS``'s cluster, or start a private local one.

    Returns whether this call started Ray (its caller then shuts it down). A local
    instance never joins another one found on the machine (``address="local"``).
    """
    ray = _import_ray()
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                 log_to_driver=False)
    return True


class _Replica:
    """The body of one actor: a loaded adapter that prepares and computes whole batches.

    A load error is kept and raised by ``describe``: an error in an actor's constructor
    reaches the driver only as "the actor died", without the ``ModelError`` that says why.
    """

    def __init__(self, spec: str, options: ModelOptions, torch_threads: int,
                 loader: Callable[[str, ModelOptions], Any] | None):
        from vlmgate.models.base import load_model
        from vlmgate.placement import apply_torch_threads

        apply_torch_threads(torch_threads)
        self._forward = threading.Lock()
        self.adapter: Any = None
        self.error: VlmgateError | None = None
        try:
            self.adapter = (load_model if loader is None else loader)(spec, options)
        except VlmgateError as exc:
            self.error = exc

    def describe(self) -> ReplicaReport:
        import ray

        if self.error is not None:
            raise self.error
        return ReplicaReport.of(self.adapter, node=ray.util.get_node_ip_address())

    def render_context(self, prompt: str, n_images: int = 1) -> str | None:
        from vlmgate.models.base import rendered_context

        with self._forward:  # the tokenizer and template are the forward pass's too
            return rendered_context(self.adapter, prompt, n_images)

    def compute(self, batch: Batch) -> list[Any]:
        requests = batch.requests()  # outside the lock: the other batch's forward runs meanwhile
        with self._forward:
            return run_requests(self.adapter, batch.method, requests)


def _unwrapped(exc: BaseException) -> BaseException:
    """The ``VlmgateError`` an actor raised, as itself (Ray wraps it with the remote traceback)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, VlmgateError) else exc


class _RayPending:
    """One batch sent to a replica; ``result`` retries it on a fresh replica if that one dies."""

    def __init__(self, dispatcher: "RayDispatcher", batch: Batch, slot: int):
        import ray

        self.dispatcher = dispatcher
        self.batch = batch
        self.slot = slot
        self.payload = ray.put(batch)  # sent once, read again by a retry
        self.actor = dispatcher.actors[slot]
        self.ref = self.actor.compute.remote(self.payload)
        self.sent = 1

    def result(self) -> list[Any]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        while True:
            try:
                return ray.get(self.ref)
            except RayTaskError as exc:
                raise _unwrapped(exc) from None
            except RayActorError as exc:
                if self.sent > MAX_RETRIES:
                    ids = ", ".join(item.sample.id for item in self.batch.items[:5])
                    raise ModelError(
                        f"model {self.dispatcher.spec}: the replica computing a batch of {len(self.batch)} "
                        f"{self.batch.kind} requests (samples {ids}{', ...' if len(self.batch) > 5 else ''}) died "
                        f"{self.sent} times ({type(exc).__name__}); if it ran out of memory, lower "
                        "--vlmgate-batch-size or give each replica more (--vlmgate-ray-gpus-per-replica)") from None
                self.actor = self.dispatcher.revive(self.slot, self.actor)
                self.dispatcher.retried_batches += 1
                self.ref = self.actor.compute.remote(self.payload)
                self.sent += 1


class RayDispatcher:
    """Model replicas as Ray actors, batches round-robin, ``BATCHES_PER_REPLICA`` in flight each.

    ``model`` is the ``RemoteModel`` the replicas reported. ``loader`` loads the adapter on
    a replica (default ``vlmgate.models.base.load_model``; a test passes a stub).
    """

    def __init__(self, spec: str, options: ModelOptions, *, replicas: int | None = None,
                 gpus_per_replica: float | None = None, loader: Callable[[str, ModelOptions], Any] | None = None,
                 start_timeout_s: float = START_TIMEOUT_S):
        gpu = options.device.startswith("cuda")
        gpus = (1.0 if gpu else 0.0) if gpus_per_replica is None else float(gpus_per_replica)
        self.spec = spec
        self.owns_ray = connect(max(os.cpu_count() or 1, replicas or 0) if not gpu else None)
        ray = _import_ray()
        resources = ray.cluster_resources()
        slot_name, per_replica = ("GPU", gpus) if gpu else ("CPU", 1.0)
        count = replicas or int(resources.get(slot_name, 0) / per_replica + 1e-9)
        if count < 1:
            self._shutdown()
            raise ConfigError(f"--vlmgate-backend ray: the Ray cluster offers no {slot_name} slot of "
                              f"{per_replica:g} for a replica of model {spec} (resources {resources}); add nodes, "
                              "lower --vlmgate-ray-gpus-per-replica or use --vlmgate-backend local")
        # An actor on a GPU sees only its own device(s), which torch numbers from cuda:0.
        self._options = replace(options, device="cuda") if gpu else options
        self._actor = ray.remote(num_cpus=0 if gpu else 1, num_gpus=gpus, max_concurrency=BATCHES_PER_REPLICA,
                                 max_restarts=0)(_Replica)
        self._loader = loader
        self._start_timeout_s = start_timeout_s
        self.actors: list[Any] = []
        self.retried_batches = 0
        self.restarted_replicas = 0
        self._batches = 0
        self._next = 0
        try:
            self.actors = [self._start() for _ in range(count)]
            self.model = RemoteModel.from_reports(spec, self._reports(self.actors), renderer=self._render_context)
        except BaseException:
            self.close()
            raise
        self.capacity = BATCHES_PER_REPLICA * count

    def _start(self) -> Any:
        return self._actor.remote(self.spec, self._options, 1, self._loader)

    def _reports(self, actors: list[Any]) -> list[ReplicaReport]:
        """Every replica's report, once each has loaded the model (a load error raised as itself)."""
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        started = time.monotonic()
        try:
            return ray.get([actor.describe.remote() for actor in actors], timeout=self._start_timeout_s)
        except GetTimeoutError:
            raise ConfigError(
                f"--vlmgate-backend ray: {len(actors)} replica(s) of model {self.spec} did not start within "
                f"{time.monotonic() - started:.0f} s; the cluster's free resources are "
                f"{ray.available_resources()} (other runs or xdist workers may hold the rest): pass fewer "
                "--vlmgate-ray-replicas") from None
        except RayError as exc:
            raise _unwrapped(exc) from None

    def revive(self, slot: int, dead: Any) -> Any:
        """The replica in ``slot`` now: ``dead`` replaced by a fresh one unless another batch already did."""
        import ray

        if self.actors[slot] is dead:
            ray.kill(dead, no_restart=True)
            fresh = self._start()
            (report,) = self._reports([fresh])
            if not self.model.matches(report):
                raise ModelError(f"model {self.spec}: a restarted replica on {report.node} loaded fingerprint "
                                 f"{report.fingerprint}, not {self.model.fingerprint}; every host must see the same "
                                 "checkpoint files")
            self.actors[slot] = fresh
            self.restarted_replicas += 1
        return self.actors[slot]

    def _render_context(self, prompt: str, n_images: int = 1) -> str | None:
        """``prompt``'s context rendered by a replica (a replica that died meanwhile is replaced)."""
        import ray
        from ray.exceptions import RayActorError

        actor = self.actors[0]
        try:
            return ray.get(actor.render_context.remote(prompt, n_images))
        except RayActorError:
            return ray.get(self.revive(0, actor).render_context.remote(prompt, n_images))

    def submit(self, batch: Batch) -> Pending:
        slot = self._next % len(self.actors)
        self._next += 1
        self._batches += 1
        return _RayPending(self, batch, slot)

    def counts(self) -> DispatchCounts:
        return DispatchCounts("ray", replicas=len(self.actors), batches=self._batches,
                              retried_batches=self.retried_batches, restarted_replicas=self.restarted_replicas)

    def close(self) -> None:
        """Stop the replicas, and Ray itself if this dispatcher started it."""
        import ray

        if ray.is_initialized():
            for actor in self.actors:
                ray.kill(actor, no_restart=True)
        self._shutdown()

    def _shutdown(self) -> None:
        import ray

        if self.owns_ray and ray.is_initialized():
            ray.shutdown()
        self.owns_ray = False
