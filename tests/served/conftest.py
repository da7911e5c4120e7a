"""Fixtures of the served-model tests: one real vLLM server per test session.

``vllm_server`` skips (never passes silently) when ``.venv-vllm`` is not built, saying how
to build it and quoting the install log's last error. Otherwise it builds the tiny
checkpoint vLLM can serve (``vllm_server.build_served_checkpoint``), starts the server on
127.0.0.1 at a free port, waits for ``/health`` and yields a ``ServedModel``; the server is
stopped at the end of the session (terminate, then kill).

Under xdist the workers share one server: the first worker to need it starts it and
records it in a locked state file beside the workers' temp folders; the others use it.
The starter stops it at its own session end once no other worker still uses it (two
servers would need 6-7 GB and both cores).
"""

from __future__ import annotations

import fcntl
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

import vllm_server as vllm

#: How long the starting worker waits, at its session end, for other workers to finish.
SHARED_WAIT_S = 900.0


@dataclass(frozen=True)
class ServedModel:
    """A running server and what it serves."""

    base_url: str
    root_url: str
    name: str
    folder: Path
    start_seconds: float | None

    def spec(self, **params: object) -> str:
        """``openai:BASE?model=NAME&k=v...`` for this server."""
        query = "&".join([f"model={self.name}", *(f"{k}={v}" for k, v in params.items())])
        return f"openai:{self.base_url}?{query}"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _shared_root(tmp_path_factory: pytest.TempPathFactory, worker: str | None) -> Path:
    base = tmp_path_factory.getbasetemp()
    return base.parent if worker else base


def _healthy(root_url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{root_url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ServedModel]:
    reason = vllm.skip_reason()
    if reason:
        pytest.skip(reason)
    worker = getattr(request.config, "workerinput", {}).get("workerid")
    root = _shared_root(tmp_path_factory, worker)
    lock, state_path = root / "vlmgate-vllm.lock", root / "vlmgate-vllm.json"
    server = None
    with _locked(lock):
        state = json.loads(state_path.read_text()) if state_path.exists() else None
        if state is None or not _healthy(state["root_url"]):
            folder = vllm.build_served_checkpoint(root / "served-checkpoint")
            server = vllm.VllmServer(folder, log_path=root / "vllm-server.log")
            server.start()  # raises with the end of the server log on failure (and stops it)
            state = {"base_url": server.base_url, "root_url": server.root, "name": server.name,
                     "folder": str(folder), "start_seconds": server.start_seconds, "users": 0}
        state["users"] += 1
        state_path.write_text(json.dumps(state))
    try:
        yield ServedModel(state["base_url"], state["root_url"], state["name"], Path(state["folder"]),
                          state["start_seconds"])
    finally:
        with _locked(lock):
            state = json.loads(state_path.read_text())
            state["users"] -= 1
            state_path.write_text(json.dumps(state))
        if server is not None:
            deadline = time.monotonic() + SHARED_WAIT_S
            while time.monotonic() < deadline:
                with _locked(lock):
                    if json.loads(state_path.read_text())["users"] <= 0:
                        state_path.unlink()
                        break
                time.sleep(1.0)
            server.close()
