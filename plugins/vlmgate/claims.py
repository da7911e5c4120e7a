"""Claim-and-wait: one worker computes a batch, the others sharing its cache wait for it.

Under pytest-xdist every worker runs the same clean pass and, for a pooled case, the same
family grids; each would compute them in full and write the same bytes. The engine's
batches are canonical (they depend only on their items, never on the worker), so a batch
has a name every worker agrees on: before computing one, a worker creates
``claims/<batch key>.claim`` in the shared cache folder with ``O_CREAT | O_EXCL``. Whoever
creates it computes the batch, writes its entries and removes the claim; a worker that
finds the claim taken goes on with its other batches and, at the end of the pass, waits
for the claim to go, then reads the batch from the cache. Values are those of the one
computation, so records stay identical with any number of workers.

A claim names its holder (host, process id, time). It is broken when its holder is a
process of this host that no longer exists (a killed worker) or when it is older than
``CLAIM_TIMEOUT_S`` (a holder on another host that died); the waiter then claims and
computes the batch itself. A cache folder where a claim cannot be created (read-only, full)
makes every worker compute what it needs, as without claims.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Callable

#: A claim older than this is taken to belong to a dead holder on another host.
CLAIM_TIMEOUT_S = 1800.0
#: How often a waiter looks whether a claim is gone.
POLL_S = 0.05
CLAIM_SUFFIX = ".claim"
#: A claim without a readable holder is given this long to be written before it counts as dead.
UNREADABLE_GRACE_S = 5.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class BatchClaims:
    """Claims on batch keys in ``root`` (the cache's ``claims`` folder)."""

    def __init__(self, root: Path, *, timeout_s: float = CLAIM_TIMEOUT_S, poll_s: float = POLL_S,
                 prepare: Callable[[], None] | None = None):
        self.root = Path(root)
        #: Called before the claims folder is first made (the cache creates its own folder,
        #: with its CACHEDIR.TAG, first).
        self.prepare = prepare
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.host = socket.gethostname()
        #: Batches this process found claimed by another and waited for (a figure for the benchmarks).
        self.waited = 0

    def _path(self, key: str) -> Path:
        return self.root / f"{key}{CLAIM_SUFFIX}"

    def try_claim(self, key: str) -> bool:
        """Claim ``key``; ``False`` when another holder has it. A folder where claims cannot
        be written answers ``True``: the caller computes, as it would without claims."""
        path = self._path(key)
        try:
            if not self.root.is_dir():
                if self.prepare is not None:
                    self.prepare()
                self.root.mkdir(parents=True, exist_ok=True)
        except OSError:
            return True
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if self._stale(path):
                path.unlink(missing_ok=True)
                return self.try_claim(key)
            return False
        except OSError:
            return True
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(f"{self.host} {os.getpid()} {time.time():.3f}\n")
        return True

    def release(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError:  # never written: the folder could not hold claims
            pass

    def wait(self, key: str) -> None:
        """Return once ``key`` is no longer claimed by a live holder (released, or stale and removed)."""
        path = self._path(key)
        self.waited += 1
        while path.exists():
            if self._stale(path):
                path.unlink(missing_ok=True)
                return
            time.sleep(self.poll_s)

    def _stale(self, path: Path) -> bool:
        try:
            age = time.time() - path.stat().st_mtime
            fields = path.read_text(encoding="utf-8").split()
        except OSError:
            return False  # released meanwhile: gone, not stale
        if len(fields) != 3 or not fields[1].isdigit():
            # Being written this instant, or left by a holder killed between open and write.
            return age > UNREADABLE_GRACE_S
        host, pid, _ = fields
        if host == self.host and not _alive(int(pid)):
            return True
        return age > self.timeout_s
