"""A content-addressed on-disk store of observations.

Re-running an unchanged checkpoint, a second metric over the same variants, or a
Hypothesis shrink step that revisits an input must cost no forward pass. An entry's key
hashes everything its value depends on: the model fingerprint (every file of the
checkpoint that decides a value, dtype, device type, adapter, prompt format and
generation limits — see ``ModelIdentity``), the request kind, the sample's content (image
bytes, question, options), the variant with its family's ``version`` (a changed
perturbation implementation must miss), the run seed (which seeds any randomness of the
perturbation) and the vlmgate version. The value is the raw float64 score vector.

Writes are atomic (a temporary file in the same folder, then ``os.replace``), so a run
killed mid-write leaves either the whole entry or none, and concurrent xdist workers
writing the same key write the same bytes.

The cache trusts nothing it reads: a CI cache restored from another branch, a disk that
flips a bit or a hand that edits a file is input like any other. Every entry ends in a
``TRAILER_SIZE``-byte trailer: a magic, the cache format version (``FORMAT_VERSION``),
the payload's length and the SHA-256 of the entry's file name (its key and value shape)
and payload. The trailer is written in the same atomic write as the payload, and being
at the end it leaves a score vector a plain ``.npy`` that ``numpy.load`` still reads. An
entry is served only if its trailer is whole, its version this one, its length and
checksum those of what precedes it, and its payload decodes to a value that can belong
to the request (``EntryError``): the reader says how many options the request has, and a
score vector must be 1-D float64, finite, with exactly that many entries; a probe
record's arrays must be finite with the shapes ``ProbeRecord`` documents. Anything else
(truncated, altered, another format version, an older vlmgate's entry without a trailer,
an entry copied under another key) is a miss: a ``CacheWarning`` names the file and says
that it will be recomputed, the file is removed and the recomputed value written in its
place. It is never served. The check costs one SHA-256 pass over the bytes read, small
next to decoding them.

A checksum cannot catch a value that was written whole but is wrong for its key: a
stale value from another checkpoint or build under a key that did not change when it
should have. ``audit`` (``--vlmgate-cache-audit FRACTION``) recomputes a seeded fraction
of the hits: whether a hit is audited is a function of its key and the run seed alone
(``audits``), so the same entries are audited whatever the worker count or order. The
engine recomputes an audited entry in its canonical batch, which is the batch that wrote
it, so a deterministic adapter gives it back bit for bit: the comparison is exact
(``same_value``), and any difference fails the case with a ``CacheAuditError`` naming
the key, the file and both values (``describe_difference``). A tolerance would let a
stale value within it pass, and there is no noise to allow for: entries written on
other hardware or library builds that round differently are differences too, since a
warm run must give what a cold run gives. The entry is left as it was, for inspection;
the whole folder is suspect. A model that says it is not deterministic (a served one) is
not audited: no comparison could tell a stale value from its own noise.

Three value shapes are stored: a score vector (``.npy``, one float64 array), a probe
record (``.npz``, named arrays: scores, one embedding per probe, the greedy answer's
tokens and the vision tokens with their grid) and a generated reply (``.txt``, UTF-8).
All go through the same atomic write.
A run killed between ``mkstemp`` and ``os.replace`` leaves a ``.tmp-*`` file that no
reader ever opens; ``remove_stale_temporaries`` sweeps those left by dead runs.

Every checkpoint a CI job gates adds its own entries (about 130 MB for the bundled main
job, probe records being most of it), so a long-lived cache folder needs a cap. A hit
touches its entry's modification time, which makes mtime a last-used time; ``prune``
deletes the least recently used entries until the folder fits. (Access times are not
used: ``noatime`` mounts never update them.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import struct
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from vlmgate import __version__
from vlmgate.errors import VlmgateError
from vlmgate.models.base import PROBES, ProbeRecord
from vlmgate.records import Sample, Variant

SUFFIX = ".npy"
RECORD_SUFFIX = ".npz"
#: A generated reply: its UTF-8 text.
TEXT_SUFFIX = ".txt"
TEMP_PREFIX = ".tmp-"
#: A temporary file older than this belongs to a dead run (a live write takes milliseconds).
STALE_TEMPORARY_S = 3600.0
#: Written into a new cache folder so that backup tools and git leave it alone.
_CACHEDIR_TAG = "Signature: 8a477f597d28d172789f06886806bc55\n# vlmgate observation cache\n"


#: The request kinds of ``vlmgate.engine`` and the file suffix of each one's entries.
KIND_SUFFIXES = {"score": SUFFIX, "probe": RECORD_SUFFIX, "generate": TEXT_SUFFIX}
#: The layout of entries and their trailer. Format 1 (vlmgate 0.1.0 before checksums) had no
#: trailer; its entries are misses. Bump this when the layout or a payload's encoding changes.
FORMAT_VERSION = 2
_MAGIC = b"VLMGATE\x00"
#: magic, format version, payload length, SHA-256 of (entry file name, payload).
_TRAILER = struct.Struct(">8sHQ32s")
TRAILER_SIZE = _TRAILER.size


class EntryError(ValueError):
    """A stored entry decodes, but not to a value the request could have produced."""


class DamagedEntry(ValueError):
    """A stored entry's trailer is missing, of another format, or does not match its payload."""


#: Entries not served that each get a warning of their own, per process (``ObservationCache``).
WARNED_ENTRIES = 5


class CacheWarning(UserWarning):
    """A cache entry could not be served (damaged, altered, of another format) and is recomputed."""


class CacheAuditError(VlmgateError):
    """An audited cache hit differs from its recomputation: the cache is stale or altered."""


def _checksum(name: str, payload: bytes) -> bytes:
    digest = hashlib.sha256(name.encode("utf-8"))
    digest.update(b"\x00")
    digest.update(payload)
    return digest.digest()


def seal(name: str, payload: bytes) -> bytes:
    """``payload`` with its trailer, as stored in the entry file called ``name`` (``<key><suffix>``)."""
    return payload + _TRAILER.pack(_MAGIC, FORMAT_VERSION, len(payload), _checksum(name, payload))


def unseal(name: str, data: bytes) -> bytes:
    """The payload of the entry file ``name`` holding ``data``, or ``DamagedEntry`` saying why not."""
    if len(data) < TRAILER_SIZE or data[-TRAILER_SIZE:-TRAILER_SIZE + len(_MAGIC)] != _MAGIC:
        raise DamagedEntry(f"it has no checksum trailer ({len(data)} bytes: truncated, or written by an older "
                           "vlmgate or another tool)")
    magic, version, length, checksum = _TRAILER.unpack(data[-TRAILER_SIZE:])
    if version != FORMAT_VERSION:
        raise DamagedEntry(f"it is in cache format {version}; this vlmgate reads format {FORMAT_VERSION}")
    payload = data[:-TRAILER_SIZE]
    if len(payload) != length:
        raise DamagedEntry(f"it holds {len(payload)} payload bytes where its trailer records {length} "
                           "(truncated or spliced)")
    if _checksum(name, payload) != checksum:
        raise DamagedEntry("its SHA-256 checksum does not match its content (altered or damaged, or copied "
                           "from another key)")
    return payload


_DECODE_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile)  # EntryError is a ValueError
_AUDIT_SCALE = 2 ** 64


def sample_digest(sample: Sample) -> str:
    """sha256 of what a model sees of a clean sample: pixels, size, question, options, kind, hint,
    and the pixels of its twins (``Sample.twins``) and of every later picture (``Sample.more_images``)."""
    digest = hashlib.sha256()
    image = sample.image.convert("RGB")
    digest.update(f"{image.size}".encode())
    digest.update(image.tobytes())
    for text in (sample.question, sample.kind, sample.hint or "", *sample.options):
        digest.update(b"\x1f" + text.encode("utf-8"))
    for form, twin in sample.twins:  # a twin is what a family shows instead: its pixels are content too
        twin = twin.convert("RGB")
        digest.update(b"\x1e" + form.encode("utf-8") + f"{twin.size}".encode() + twin.tobytes())
    for k, more in enumerate(sample.more_images, start=2):  # an interleaved item's later pictures, in order
        more = more.convert("RGB")
        digest.update(b"\x1d" + f"image {k} {more.size}".encode() + more.tobytes())
    return digest.hexdigest()


def observation_key(model_fingerprint: str, kind: str, sample_id: str, content_digest: str,
                    variant: Variant, family_version: int, seed: int, batch_size: int) -> str:
    """The cache key of one request (hex sha256).

    ``family_version`` is the ``version`` of the variant's perturbation family (0 for the
    clean image): a family whose implementation changed bumps it, and its old entries miss.
    ``batch_size`` cuts the canonical batches, and a batch's composition fixes its float
    rounding, so a value computed in batches of 8 is not the one a run in batches of 16
    computes: it would make a warm run differ from a cold one.
    """
    parts = (__version__, model_fingerprint, kind, sample_id, content_digest, variant.label,
             f"family-v{family_version}", str(seed), f"batch-{batch_size}")
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheStats:
    """What the cache folder holds (entries of both shapes) and what this run asked of it."""

    entries: int
    bytes: int
    hits: int = 0
    misses: int = 0

    def describe(self) -> str:
        return f"{self.entries} entries, {self.bytes / 1e6:.2f} MB"


@dataclass(frozen=True)
class PruneResult:
    """What ``ObservationCache.prune`` removed to bring the folder under its cap."""

    removed: int
    freed_bytes: int
    max_bytes: int

    def describe(self) -> str:
        return (f"pruned {self.removed} least recently used entries ({self.freed_bytes / 1e6:.2f} MB) "
                f"to stay under the {self.max_bytes / 1e6:.0f} MB cap")


def probe_to_arrays(record: ProbeRecord) -> dict[str, np.ndarray]:
    """A ``ProbeRecord`` as named arrays for ``.npz`` (``None`` vision tokens are left out)."""
    arrays = {"scores": np.asarray(record.scores, dtype=np.float64),
              "answer_tokens": np.asarray(record.answer_tokens, dtype=np.int64)}
    for probe in PROBES:
        arrays[f"embedding.{probe}"] = np.asarray(record.embeddings[probe])
    if record.vision_tokens is not None and record.vision_grid is not None:
        arrays["vision_tokens"] = np.asarray(record.vision_tokens)
        arrays["vision_grid"] = np.asarray(record.vision_grid, dtype=np.int64)
    return arrays


def probe_from_arrays(arrays: dict[str, np.ndarray]) -> ProbeRecord:
    """The inverse of ``probe_to_arrays``; a missing array raises ``KeyError`` (a miss)."""
    grid = arrays.get("vision_grid")
    if grid is not None and grid.shape != (3,):
        raise EntryError(f"vision grid {grid.tolist()} is not three numbers")
    if arrays["answer_tokens"].ndim != 1:
        raise EntryError("answer tokens are not 1-D")
    return ProbeRecord(
        scores=arrays["scores"],
        embeddings={probe: arrays[f"embedding.{probe}"] for probe in PROBES},
        answer_tokens=tuple(int(t) for t in arrays["answer_tokens"]),
        vision_tokens=arrays.get("vision_tokens"),
        vision_grid=None if grid is None else (int(grid[0]), int(grid[1]), int(grid[2])),
    )


class ObservationCache:
    """``root/ab/abcdef….npy`` score vectors, ``….npz`` probe records and ``….txt`` replies.

    ``hits`` / ``misses`` count this process's lookups (a damaged entry is a miss, also
    counted in ``not_served``); under xdist each worker has its own and the plugin adds them
    up on the controller. The first ``WARNED_ENTRIES`` entries not served each get a
    ``CacheWarning`` naming the file; past them one more says that the rest are recomputed
    silently and counted: a cache written by an older vlmgate would otherwise print a
    warning for every entry it holds (13,893 in one main job), burying every other warning.
    ``audit`` is the fraction of hits the engine recomputes and compares (0: none);
    ``audited`` counts the hits it compared.
    """

    def __init__(self, root: Path, audit: float = 0.0):
        if not 0.0 <= audit <= 1.0:
            raise ValueError(f"audit must be a fraction in [0, 1], got {audit!r}")
        self.root = Path(root)
        self.audit = audit
        self.hits = 0
        self.misses = 0
        self.not_served = 0
        self.audited = 0

    def _path(self, key: str, suffix: str = SUFFIX) -> Path:
        return self.root / key[:2] / f"{key}{suffix}"

    def entry_path(self, key: str, kind: str) -> Path:
        """Where the entry of ``key`` for a request of ``kind`` (``KIND_SUFFIXES``) lives."""
        return self._path(key, KIND_SUFFIXES[kind])

    def audits(self, key: str, seed: int) -> bool:
        """Whether a hit on ``key`` is recomputed and compared in a run seeded ``seed``.

        A function of the key and the seed alone, so every worker and every order of cases
        audits the same entries: each with probability ``audit``.
        """
        if self.audit <= 0.0:
            return False
        if self.audit >= 1.0:
            return True
        draw = hashlib.sha256(f"vlmgate-audit\x1f{seed}\x1f{key}".encode("utf-8")).digest()
        return int.from_bytes(draw[:8], "big") < self.audit * _AUDIT_SCALE

    def _read(self, path: Path, decode: Callable[[bytes], Any]) -> Any:
        """``decode(bytes)`` of the entry at ``path``, or ``None`` (counted) when absent, damaged
        or not a value of the request (``decode`` raises ``EntryError``)."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        try:
            value = decode(unseal(path.name, data))
        except _DECODE_ERRORS as exc:  # DamagedEntry and EntryError are ValueErrors
            why = str(exc) if isinstance(exc, DamagedEntry) else f"it does not decode to a value of its request ({exc})"
            self.not_served += 1
            if self.not_served <= WARNED_ENTRIES:
                warnings.warn(CacheWarning(f"vlmgate cache entry {path} is not served: {why}; it will be recomputed"),
                              stacklevel=3)
            elif self.not_served == WARNED_ENTRIES + 1:
                warnings.warn(CacheWarning(
                    f"vlmgate cache {self.root}: more than {WARNED_ENTRIES} entries are not served (the last: {why}); "
                    "the rest are recomputed without a warning each, and the run's count is in the 'vlmgate: cache' "
                    "section at its end"), stacklevel=3)
            try:
                path.unlink(missing_ok=True)
            except OSError:  # a read-only cache: the recomputed value is served all the same
                pass
            self.misses += 1
            return None
        self.hits += 1
        try:
            os.utime(path)  # mtime is the last-used time that ``prune`` evicts by
        except OSError:  # removed by a concurrent prune, or a read-only cache: the value stands
            pass
        return value

    def _write(self, path: Path, payload: bytes) -> None:
        """Write ``payload`` and its trailer (``seal``) to ``path`` atomically: a temporary file
        beside it, then ``os.replace``."""
        data = seal(path.name, payload)
        if not path.parent.is_dir():
            self.ensure_root()
            path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def ensure_root(self) -> None:
        """Create the cache folder, tagged (CACHEDIR.TAG) and git-ignored, if it does not exist."""
        if not self.root.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            for name, text in (("CACHEDIR.TAG", _CACHEDIR_TAG), (".gitignore", "# created by vlmgate\n*\n")):
                target = self.root / name
                if not target.exists():
                    target.write_text(text, encoding="utf-8")

    def get(self, key: str, n_options: int) -> np.ndarray | None:
        """The score vector stored under ``key`` for a request with ``n_options`` options, or ``None``."""
        return self._read(self._path(key), lambda data: _decode_vector(data, n_options))

    def put(self, key: str, value: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(value, dtype=np.float64), allow_pickle=False)
        self._write(self._path(key), buffer.getvalue())

    def get_probe(self, key: str, n_options: int) -> ProbeRecord | None:
        """The probe record stored under ``key`` for a request with ``n_options`` options, or ``None``."""
        return self._read(self._path(key, RECORD_SUFFIX), lambda data: _decode_probe(data, n_options))

    def put_probe(self, key: str, record: ProbeRecord) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **probe_to_arrays(record))
        self._write(self._path(key, RECORD_SUFFIX), buffer.getvalue())

    def get_text(self, key: str, n_options: int = 0) -> str | None:
        """The generated reply stored under ``key``, or ``None`` (``n_options`` is unused)."""
        return self._read(self._path(key, TEXT_SUFFIX), lambda data: data.decode("utf-8"))

    def put_text(self, key: str, text: str) -> None:
        self._write(self._path(key, TEXT_SUFFIX), text.encode("utf-8"))

    def _entries(self) -> list[tuple[float, str, int, Path]]:
        """(mtime, name, size, path) of every stored entry (temporaries excluded)."""
        found = []
        if self.root.is_dir():
            for suffix in (SUFFIX, RECORD_SUFFIX, TEXT_SUFFIX):
                for path in self.root.glob(f"*/*{suffix}"):
                    if not path.name.startswith(TEMP_PREFIX):
                        try:
                            info = path.stat()
                        except FileNotFoundError:  # replaced or removed by another worker meanwhile
                            continue
                        found.append((info.st_mtime, path.name, info.st_size, path))
        return found

    def stats(self) -> CacheStats:
        entries = self._entries()
        return CacheStats(len(entries), sum(size for _, _, size, _ in entries), self.hits, self.misses)

    def prune(self, max_bytes: int) -> PruneResult:
        """Delete least recently used entries (oldest mtime first) until at most ``max_bytes`` remain."""
        entries = sorted(self._entries())
        total = sum(size for _, _, size, _ in entries)
        removed = freed = 0
        for _, _, size, path in entries:
            if total - freed <= max_bytes:
                break
            path.unlink(missing_ok=True)
            removed += 1
            freed += size
        return PruneResult(removed, freed, max_bytes)

    def remove_stale_temporaries(self, older_than_s: float = STALE_TEMPORARY_S) -> int:
        """Delete ``.tmp-*`` files and batch claims older than ``older_than_s`` (left by killed runs); their count."""
        if not self.root.is_dir():
            return 0
        removed, now = 0, time.time()
        # and the batch claims of killed runs (``vlmgate.claims``: a live claim lasts one batch)
        for path in [*self.root.glob(f"*/{TEMP_PREFIX}*"), *self.root.glob("claims/*.claim")]:
            try:
                if now - path.stat().st_mtime > older_than_s:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def checked_scores(value: np.ndarray, n_options: int) -> np.ndarray:
    """``value`` if it is a 1-D float64 vector of ``n_options`` scores, finite or all NaN (an
    input the model gave no readable answer to: ``models.base.no_answer_scores``), else ``EntryError``."""
    if not isinstance(value, np.ndarray) or value.dtype != np.float64 or value.shape != (n_options,):
        raise EntryError(f"not a float64 vector of {n_options} scores")
    if not (np.isfinite(value).all() or np.isnan(value).all()):
        raise EntryError("non-finite scores")
    return value


def _finite(value: np.ndarray | None, ndim: int, what: str) -> np.ndarray:
    if value is None or value.ndim != ndim or not np.issubdtype(value.dtype, np.number) \
            or not np.isfinite(value).all():
        raise EntryError(f"{what} is not a finite {ndim}-D array")
    return value


def checked_probe(record: ProbeRecord, n_options: int) -> ProbeRecord:
    """``record`` if its arrays have the shapes ``ProbeRecord`` documents, else ``EntryError``.

    Scores as ``checked_scores``; every probe a finite 1-D vector, all of one width;
    answer tokens 1-D; vision tokens, when present, a finite ``(T·H'·W', D)`` array whose
    row count is the product of a three-number grid.
    """
    checked_scores(record.scores, n_options)
    widths = {_finite(record.embeddings[probe], 1, f"probe {probe}").shape[0] for probe in PROBES}
    if len(widths) != 1:
        raise EntryError(f"probe widths {sorted(widths)} differ")
    if (record.vision_tokens is None) != (record.vision_grid is None):
        raise EntryError("vision tokens without their grid")
    if record.vision_grid is not None:
        tokens = _finite(record.vision_tokens, 2, "vision tokens")
        if len(record.vision_grid) != 3 or min(record.vision_grid) < 1 \
                or tokens.shape[0] != int(np.prod(record.vision_grid)):
            raise EntryError(f"vision tokens {tokens.shape} do not fill the grid {record.vision_grid}")
    return record


def _decode_vector(data: bytes, n_options: int) -> np.ndarray:
    return checked_scores(np.load(io.BytesIO(data), allow_pickle=False), n_options)


def _decode_probe(data: bytes, n_options: int) -> ProbeRecord:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise EntryError("not a probe record archive")
        return checked_probe(probe_from_arrays({name: archive[name] for name in archive.files}), n_options)


def same_value(stored: Any, fresh: Any) -> bool:
    """Whether two values of one request are the same, exactly (no tolerance).

    Arrays must agree in shape and in every element's value (a float32 score read back as
    the float64 it was stored as is the same value); dataclasses (``Observation``,
    ``ProbeRecord``) field by field; mappings and sequences item by item; anything else by
    ``==``. Exact, because the engine recomputes an entry in the canonical batch that wrote
    it: a deterministic adapter then repeats the same floating-point operations in the same
    order, and any difference, however small, is a value the cache should not hold.
    """
    if isinstance(stored, np.ndarray) or isinstance(fresh, np.ndarray):
        a, b = np.asarray(stored), np.asarray(fresh)
        nan = np.issubdtype(a.dtype, np.floating) and np.issubdtype(b.dtype, np.floating)
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=nan))  # NaN: an unanswered input
    if dataclasses.is_dataclass(stored) and type(stored) is type(fresh):
        return all(same_value(getattr(stored, f.name), getattr(fresh, f.name)) for f in dataclasses.fields(stored))
    if isinstance(stored, Mapping) and isinstance(fresh, Mapping):
        return stored.keys() == fresh.keys() and all(same_value(stored[k], fresh[k]) for k in stored)
    if isinstance(stored, (tuple, list)) and isinstance(fresh, (tuple, list)):
        return len(stored) == len(fresh) and all(same_value(a, b) for a, b in zip(stored, fresh))
    return bool(stored == fresh)


def _shown(value: Any, limit: int = 200) -> str:
    text = repr(value.tolist()) if isinstance(value, np.ndarray) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def describe_difference(stored: Any, fresh: Any, where: str = "value") -> str:
    """Where two values of one request first differ, with both sides (``same_value`` says whether)."""
    if isinstance(stored, np.ndarray) or isinstance(fresh, np.ndarray):
        a, b = np.asarray(stored), np.asarray(fresh)
        if a.shape != b.shape:
            return f"{where}: stored {a.dtype} {a.shape}, recomputed {b.dtype} {b.shape}"
        if a.size <= 16:  # a score vector: both whole, at full precision
            return f"{where}: stored {_shown(a)}, recomputed {_shown(b)}"
        differ = np.flatnonzero(a.ravel() != b.ravel())
        first = int(differ[0]) if differ.size else 0
        largest = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) \
            if np.issubdtype(a.dtype, np.number) else float("nan")
        return (f"{where}: {differ.size} of {a.size} elements differ, the first at flat index {first}: stored "
                f"{a.ravel()[first].item()!r}, recomputed {b.ravel()[first].item()!r} "
                f"(largest difference {largest:.3g})")
    if dataclasses.is_dataclass(stored) and type(stored) is type(fresh):
        for f in dataclasses.fields(stored):
            if not same_value(getattr(stored, f.name), getattr(fresh, f.name)):
                return describe_difference(getattr(stored, f.name), getattr(fresh, f.name), f"{where}.{f.name}")
    if isinstance(stored, Mapping) and isinstance(fresh, Mapping) and stored.keys() == fresh.keys():
        for k in stored:
            if not same_value(stored[k], fresh[k]):
                return describe_difference(stored[k], fresh[k], f"{where}[{k!r}]")
    return f"{where}: stored {_shown(stored)}, recomputed {_shown(fresh)}"
