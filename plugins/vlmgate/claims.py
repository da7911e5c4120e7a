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

**A holder proves it is alive by a heartbeat, not by its process id.** While a process
holds claims, one daemon thread of that process (``Heartbeat``) touches each of them every
``HEARTBEAT_S`` seconds. A claim whose file has not been touched for ``STALE_AFTER_S``
seconds is broken by whoever finds it, and the batch computed there. A process id cannot
say this: a worker killed by the OOM killer stays a zombie until its parent reaps it, and
``kill(pid, 0)`` takes a zombie for alive; a claim restored with a CI cache names a process
of another host, which cannot be asked at all; and a claim naming a process id that has
since been reused points at an unrelated live process. All of these, and a holder that was
stopped (``SIGSTOP``) or whose machine lost the shared folder, stop touching the file, so
one rule covers them. The holder's line (host, process id, time, token) is still written,
for the messages and so that a holder never removes or touches a claim that was broken and
taken by another.

A claim counts as stale when its modification time is ``STALE_AFTER_S`` older than this
host's clock, or when it has not changed for ``STALE_AFTER_S`` of this waiter's own
watching (which holds however far apart two hosts' clocks are, and for a file dated in the
future). A file not yet written (a holder killed between ``open`` and ``write``) is judged
the same way.

**No wait is unbounded and none is silent.** A waiter says what it waits for (the claim's
path, its holder, how long it has waited, when the heartbeat was last seen) every
``SAY_EVERY_S`` seconds once a wait has lasted that long, and says so when it breaks a
claim. A claim whose heartbeat goes on but which has not gone after ``MAX_WAIT_S`` (a holder
alive but stuck) is broken too, and the waiter computes the batch itself: the values are
the same whoever computes them, so breaking costs at most one batch computed twice and
never a wrong result, where failing the run would cost the run. Two waiters breaking the
same claim in the same instant can likewise only compute a batch twice.

A cache folder where a claim cannot be created (read-only, full) makes every worker compute
what it needs, as without claims.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

#: How often a holder touches the claims it holds. Cheap (one ``utime`` per held claim, and a
#: process holds a claim only for the few batches it has in flight), and short enough that a
#: dead holder is noticed within seconds.
HEARTBEAT_S = 2.0
#: A claim untouched this long has lost its holder. Five heartbeats: a holder whose heartbeat
#: thread is delayed (a loaded machine, a long call holding the GIL, a file system that keeps
#: modification times to the second or two) is not taken for dead, and a dead one still costs
#: its waiters only seconds.
STALE_AFTER_S = 10.0
#: A claim that still has a heartbeat after this long is broken all the same (its holder is
#: alive but stuck). Far longer than one batch takes, so a slow but working holder is not
#: doubled; short enough that a stuck one does not stall a run for long.
MAX_WAIT_S = 600.0
#: How often a waiter says what it waits for, once a wait has lasted this long (short waits,
#: the usual case under xdist, say nothing).
SAY_EVERY_S = 5.0
#: How often a waiter looks whether a claim is gone.
POLL_S = 0.05
CLAIM_SUFFIX = ".claim"
#: What breaking a claim did (``BatchClaims._break``).
BROKEN, CHANGED, STUCK = "broken", "changed", "stuck"

log = logging.getLogger(__name__)


def _log_line(text: str) -> None:
    log.warning(text)


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"


class Heartbeat:
    """A daemon thread that touches every claim this process holds, every ``period`` seconds.

    Started on the first claim; ``stop()`` ends it (it is also stopped at exit). Being a
    daemon thread it never keeps a process alive; a process that forks does not carry it
    over (the child starts its own on its first claim, and its held set starts empty).
    """

    def __init__(self, period: float = HEARTBEAT_S):
        self.period = period
        self._held: dict[Path, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        #: Touches made (a figure for the tests).
        self.beats = 0

    def hold(self, path: Path, token: str) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: neither the thread nor the claims are its own
                self._held.clear()
                self._thread = None
                self._stop = threading.Event()
                self._pid = os.getpid()
            self._held[path] = token
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="vlmgate-claims-heartbeat", daemon=True)
                self._thread.start()

    def drop(self, path: Path) -> None:
        with self._lock:
            self._held.pop(path, None)

    def stop(self) -> None:
        """End the thread (the claims stay held, untouched: they go stale unless released)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.period + 1.0)
        self._thread = None

    def beat(self) -> None:
        """Touch every held claim that is still this holder's (one broken and taken by another is not)."""
        with self._lock:
            held = list(self._held.items())
        for path, token in held:
            try:
                if path.read_text(encoding="utf-8").split()[3:4] == [token]:
                    os.utime(path)
                    self.beats += 1
            except (OSError, IndexError):
                continue

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.beat()


#: The heartbeat of this process's claims.
HEARTBEAT = Heartbeat()
atexit.register(HEARTBEAT.stop)


class BatchClaims:
    """Claims on batch keys in ``root`` (the cache's ``claims`` folder).

    ``say`` receives one line each time a waiter reports on a wait or breaks a claim (the
    engine passes its live output; by default a warning on the ``vlmgate.claims`` logger).
    ``clock`` (monotonic) and ``wall`` (the clock file times are compared with) are
    injectable for tests, as is the ``heartbeat``.
    """

    def __init__(self, root: Path, *, poll_s: float = POLL_S, stale_after_s: float = STALE_AFTER_S,
                 max_wait_s: float = MAX_WAIT_S, say_every_s: float = SAY_EVERY_S,
                 prepare: Callable[[], None] | None = None, say: Callable[[str], None] | None = None,
                 heartbeat: Heartbeat | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.root = Path(root)
        #: Called before the claims folder is first made (the cache creates its own folder,
        #: with its CACHEDIR.TAG, first).
        self.prepare = prepare
        self.poll_s = poll_s
        self.stale_after_s = stale_after_s
        self.max_wait_s = max_wait_s
        self.say_every_s = say_every_s
        self.say = say if say is not None else _log_line
        self.heartbeat = heartbeat if heartbeat is not None else HEARTBEAT
        self.clock = clock
        self.wall = wall
        self.sleep = sleep
        self.host = socket.gethostname()
        self._tokens: dict[Path, str] = {}
        #: Per claim path, its modification time when first seen unchanged, and when (``clock``).
        self._seen: dict[Path, tuple[int, float]] = {}
        #: Batches this process found claimed by another and waited for (a figure for the benchmarks).
        self.waited = 0
        #: Claims this process broke (a figure for the tests).
        self.broken = 0

    def _path(self, key: str) -> Path:
        return self.root / f"{key}{CLAIM_SUFFIX}"

    def try_claim(self, key: str) -> bool:
        """Claim ``key``; ``False`` when a live holder has it (a stale claim is broken first).
        A folder where claims cannot be written answers ``True``: the caller computes, as it
        would without claims."""
        path = self._path(key)
        try:
            if not self.root.is_dir():
                if self.prepare is not None:
                    self.prepare()
                self.root.mkdir(parents=True, exist_ok=True)
        except OSError:
            return True
        for _ in range(3):
            try:
                handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                stale = self._stale(path)
                if stale is None:
                    return False
                if self._break(path, stale, f"no heartbeat for {_duration(stale[1])}") == STUCK:
                    return True  # a claim that cannot be removed: compute, as without claims
                continue
            except OSError:
                return True
            token = uuid.uuid4().hex
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(f"{self.host} {os.getpid()} {self.wall():.3f} {token}\n")
            self._tokens[path] = token
            self._seen.pop(path, None)
            self.heartbeat.hold(path, token)
            return True
        return False  # broken and taken by another each time: leave it to them

    def release(self, key: str) -> None:
        """Remove this process's claim on ``key`` (not one that was broken and taken by another)."""
        path = self._path(key)
        token = self._tokens.pop(path, None)
        self.heartbeat.drop(path)
        try:
            if token is None or path.read_text(encoding="utf-8").split()[3:4] == [token]:
                path.unlink(missing_ok=True)
        except OSError:  # never written (the folder could not hold claims), or gone
            pass

    def wait(self, key: str) -> None:
        """Return once ``key`` is no longer claimed by a live holder: released, or broken here
        because its heartbeat stopped or it outlasted ``max_wait_s`` (the caller then claims and
        computes the batch). Says what it waits for every ``say_every_s`` seconds."""
        path = self._path(key)
        self.waited += 1
        started = self.clock()
        said = started
        while True:
            stale = self._stale(path)
            if stale is None and not path.exists():
                return
            if stale is not None:
                if self._break(path, stale, f"no heartbeat for {_duration(stale[1])} (its process was killed "
                                            "or stopped, or ran on another host)",
                               waited=self.clock() - started) != CHANGED:
                    return
                continue
            now = self.clock()
            if now - started >= self.max_wait_s:
                mtime = self._mtime(path)
                if mtime is None or self._break(
                        path, (mtime, 0.0), "still held with a live heartbeat (is its process stuck?)",
                        waited=now - started) != CHANGED:
                    return
                continue
            if now - said >= self.say_every_s:
                said = now
                mtime = self._mtime(path)
                beat = "" if mtime is None else f", heartbeat {_duration(self.wall() - mtime / 1e9)} ago"
                self.say(f"vlmgate: waiting {_duration(now - started)} for batch claim {path} held by "
                         f"{self._holder(path)}{beat}; it is computing that batch (a claim with no heartbeat "
                         f"for {_duration(self.stale_after_s)} is broken)")
            self.sleep(self.poll_s)

    # -- staleness -------------------------------------------------------------------------
    def _mtime(self, path: Path) -> int | None:
        try:
            return path.stat().st_mtime_ns
        except OSError:
            return None

    def _stale(self, path: Path) -> tuple[int, float] | None:
        """``(mtime, seconds without a heartbeat)`` for a claim whose heartbeat stopped, else ``None``
        (alive, or gone)."""
        mtime = self._mtime(path)
        if mtime is None:
            self._seen.pop(path, None)
            return None
        now = self.clock()
        seen = self._seen.get(path)
        if seen is None or seen[0] != mtime:
            self._seen[path] = seen = (mtime, now)
        quiet = max(self.wall() - mtime / 1e9, now - seen[1])
        return (mtime, quiet) if quiet > self.stale_after_s else None

    def _holder(self, path: Path) -> str:
        """``pid 123 on host``, as the claim names it (for messages only)."""
        try:
            fields = path.read_text(encoding="utf-8").split()
        except OSError:
            fields = []
        if len(fields) >= 2 and fields[1].isdigit():
            return f"pid {fields[1]} on {fields[0]}"
        return "a holder that never wrote its name"

    def _break(self, path: Path, stale: tuple[int, float], why: str, *, waited: float | None = None) -> str:
        """Remove the claim at ``path`` if it is still the one judged (same modification time):
        ``BROKEN``, ``CHANGED`` (touched, replaced or gone meanwhile: judge it again) or ``STUCK``
        (it cannot be removed)."""
        holder = self._holder(path)
        if self._mtime(path) != stale[0]:
            return CHANGED
        try:
            path.unlink()
        except FileNotFoundError:
            return CHANGED
        except OSError as exc:
            self.say(f"vlmgate: could not remove batch claim {path} held by {holder} ({why}): {exc}; "
                     "computing the batch here without a claim; delete the file if it stays")
            return STUCK
        self._seen.pop(path, None)
        self.broken += 1
        after = "" if waited is None else f" after waiting {_duration(waited)}"
        self.say(f"vlmgate: broke batch claim {path} held by {holder}{after}: {why}; computing the batch here "
                 "(its values are the same whoever computes them)")
        return BROKEN
