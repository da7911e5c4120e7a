"""``--vlmgate-backend ray``: batches fanned out to model replicas on a Ray cluster.

Each replica is a Ray actor that loads the model from the same spec and options (one
actor per GPU when the device is CUDA, else one per CPU slot of the cluster, each with
one torch thread). The engine sends every batch whole to one replica, so a batch is
computed with exactly the composition the local backend would use and the results are
identical, bit for bit; the replicas only change how many batches run at once.

``ray.init()`` connects to ``RAY_ADDRESS`` when set (an existing cluster, many hosts),
else starts a local instance. Ray is an optional extra: ``pip install 'pytest-vlmgate[ray]'``.
Model folders and benchmark images must be readable at the same paths on every host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from vlmgate.dispatch import METHODS, Pending
from vlmgate.errors import ConfigError
from vlmgate.models.base import ModelOptions


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--vlmgate-backend ray needs Ray, which is not installed; "
                          "pip install 'pytest-vlmgate[ray]' (or use --vlmgate-backend local)") from None
    return ray


class _Replica:
    """The body of one actor: a loaded adapter answering whole batches."""

    def __init__(self, spec: str, options: ModelOptions, torch_threads: int):
        from vlmgate.models.base import load_model
        from vlmgate.placement import apply_torch_threads

        apply_torch_threads(torch_threads)
        self.adapter = load_model(spec, options)

    def fingerprint(self) -> str:
        return self.adapter.fingerprint

    def call(self, method: str, requests: Sequence[Any]) -> list[Any]:
        return list(getattr(self.adapter, method)(requests))


@dataclass(frozen=True)
class _RayPending:
    ref: Any

    def result(self) -> list[Any]:
        import ray

        return ray.get(self.ref)


class RayDispatcher:
    """Round-robin over ``replicas`` actors; two batches in flight per actor keep it busy."""

    def __init__(self, spec: str, options: ModelOptions, *, fingerprint: str, replicas: int | None = None):
        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
        gpu = options.device.startswith("cuda")
        resources = ray.cluster_resources()
        slots = int(resources.get("GPU" if gpu else "CPU", 0))
        count = replicas or slots
        if count < 1:
            raise ConfigError(f"--vlmgate-backend ray: the Ray cluster offers no {'GPU' if gpu else 'CPU'} "
                              f"slot for model {spec} (resources {resources}); add nodes or use the local backend")
        # An actor on a GPU sees only its own device, which torch calls cuda:0.
        actor_options = ModelOptions("cuda" if gpu else options.device, options.dtype, options.trust_remote_code)
        actor = ray.remote(num_cpus=0 if gpu else 1, num_gpus=1 if gpu else 0)(_Replica)
        self.actors = [actor.remote(spec, actor_options, 1) for _ in range(count)]
        found = set(ray.get([a.fingerprint.remote() for a in self.actors]))
        if found != {fingerprint}:
            raise ConfigError(f"--vlmgate-backend ray: replicas of {spec} loaded weights with fingerprint(s) "
                              f"{sorted(found)}, not {fingerprint}; every host must see the same checkpoint files")
        self.capacity = 2 * count
        self._next = 0

    def submit(self, method: str, requests: Sequence[Any]) -> Pending:
        if method not in METHODS:
            raise ValueError(f"unknown adapter method {method!r}")
        actor = self.actors[self._next % len(self.actors)]
        self._next += 1
        return _RayPending(actor.call.remote(method, list(requests)))

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
