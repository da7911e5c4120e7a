"""Where a pytest process runs its model: which device, and how many torch threads.

Under pytest-xdist every worker loads its own copy of each model, so N workers on one
machine compete for the same cores and GPUs unless told otherwise:

* ``--vlmgate-devices cuda:0,cuda:1`` gives worker ``gwK`` the device ``K mod len(list)``
  (round-robin), so two workers use two GPUs instead of both piling onto ``cuda``. The
  controller, or a run without xdist, takes the first device.
* torch's default intra-op thread count is the number of cores, so two workers each
  start one thread per core and thrash (a run measured here became 8x faster with one
  thread per worker). ``--vlmgate-torch-threads auto`` (the default) sets
  ``max(1, cores // workers)`` threads per worker under xdist and leaves torch's default
  alone otherwise; an integer sets exactly that.

Every device asked for (``--vlmgate-device``, each entry of ``--vlmgate-devices``) is
checked at start-up against what this machine's torch can see (``Accelerators``): a run
on ``cuda`` where there is none would otherwise fail every case with a traceback, or
worse, silently on a device nobody meant. torch is imported for that only when a device
other than ``cpu`` is asked for, so a CPU run's start-up stays light.

The functions are pure (environment and accelerators passed in) so they can be tested
without GPUs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping

from vlmgate.errors import ConfigError

AUTO = "auto"
_WORKER_ID = re.compile(r"^gw(\d+)$")
CPU = "cpu"
#: ``cpu``, ``cuda``, ``cuda:1``, ``mps``: a device type and an optional index.
_DEVICE = re.compile(r"^(cpu|cuda|mps)(?::(\d+))?$")
DEVICE_FORMS = "cpu, cuda, cuda:N, mps"


@dataclass(frozen=True)
class Accelerators:
    """What this machine's torch can place a model on: CUDA devices and Apple's MPS.

    Measured once at start-up (``detect`` imports torch) and passed in, so the checks
    below are pure and testable with a pretend machine.
    """

    cuda: int = 0
    mps: bool = False

    @classmethod
    def detect(cls) -> "Accelerators":
        import torch

        cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return cls(cuda=cuda, mps=bool(torch.backends.mps.is_available()))

    def available(self) -> tuple[str, ...]:
        """Every device string that would work here, for the fix of a refused one."""
        cuda = ("cuda", *(f"cuda:{index}" for index in range(self.cuda))) if self.cuda else ()
        return (CPU, *cuda, *(("mps",) if self.mps else ()))

    def problem(self, device: str) -> str | None:
        """Why ``device`` cannot be used here (phrased to follow the device), or ``None``."""
        match = _DEVICE.match(device)
        if match is None:
            return f"is not a device vlmgate can place a model on ({DEVICE_FORMS})"
        kind, index = match.group(1), match.group(2)
        if kind == "cuda" and self.cuda == 0:
            return "asks for a CUDA device, but torch sees none (a CPU-only torch, or CUDA_VISIBLE_DEVICES hides them)"
        if kind == "cuda" and index is not None and int(index) >= self.cuda:
            return f"asks for CUDA device {index}, but torch sees {self.cuda} (cuda:0 to cuda:{self.cuda - 1})"
        if kind == "mps" and not self.mps:
            return "asks for Apple's MPS, but torch sees none"
        if kind in (CPU, "mps") and index not in (None, "0"):
            return f"asks for {kind} device {index}; there is only one ({kind})"
        return None


def needs_accelerators(devices: tuple[str, ...]) -> bool:
    """Whether checking ``devices`` needs torch (anything but ``cpu``)."""
    return any(device != CPU for device in devices)


@dataclass(frozen=True)
class Placement:
    """One process's device and torch thread count (``None`` = leave torch's default)."""

    device: str
    torch_threads: int | None


def parse_devices(text: str) -> tuple[str, ...]:
    """``"cuda:0, cuda:1"`` -> ``("cuda:0", "cuda:1")``; empty items are an error."""
    devices = tuple(item.strip() for item in text.split(","))
    if not devices or any(not d for d in devices):
        raise ConfigError(f"--vlmgate-devices {text!r}: give a comma-separated list of torch devices, "
                          "e.g. cuda:0,cuda:1 or cpu,cpu (no empty items)")
    return devices


def parse_torch_threads(value: str | int) -> int | None:
    """``auto`` -> ``None`` (decided per worker), else a positive integer."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return None
    try:
        threads = int(value)
    except (TypeError, ValueError):
        threads = 0
    if threads < 1:
        raise ConfigError(f"--vlmgate-torch-threads {value!r} must be 'auto' or an integer >= 1; pass auto or an "
                          "integer >= 1, e.g. --vlmgate-torch-threads 4")
    return threads


def worker_index(worker_id: str | None) -> int | None:
    """``gw3`` -> 3; ``None`` (not an xdist worker) -> ``None``."""
    if not worker_id:
        return None
    match = _WORKER_ID.match(worker_id)
    if match is None:
        raise ConfigError(f"PYTEST_XDIST_WORKER={worker_id!r} is not of the form gwN; vlmgate maps "
                          "workers to --vlmgate-devices by that number")
    return int(match.group(1))


def device_for_worker(devices: tuple[str, ...], worker_id: str | None) -> str:
    """The device of worker ``worker_id`` (round-robin over ``devices``)."""
    index = worker_index(worker_id)
    return devices[0 if index is None else index % len(devices)]


def threads_for_worker(requested: int | None, cpu_count: int, workers: int | None) -> int | None:
    """Torch threads for one process: the request, else cores split evenly among xdist workers."""
    if requested is not None:
        return requested
    if not workers or workers <= 1:
        return None
    return max(1, cpu_count // workers)


def placement(*, device: str, devices: tuple[str, ...] | None, torch_threads: int | None,
              environ: Mapping[str, str] | None = None, cpu_count: int | None = None) -> Placement:
    """This process's placement from the settings and the xdist environment variables."""
    environ = os.environ if environ is None else environ
    chosen = device_for_worker(devices, environ.get("PYTEST_XDIST_WORKER")) if devices else device
    count = environ.get("PYTEST_XDIST_WORKER_COUNT")
    workers = int(count) if count and count.isdigit() else None
    return Placement(chosen, threads_for_worker(torch_threads, cpu_count or os.cpu_count() or 1, workers))


def apply_torch_threads(threads: int | None) -> None:
    """Set torch's intra-op threads (imports torch; call only where a model is about to load)."""
    if threads is None:
        return
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
