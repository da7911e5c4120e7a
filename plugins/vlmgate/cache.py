"""A content-addressed on-disk store of observations.

Re-running an unchanged checkpoint, a second metric over the same variants, or a
Hypothesis shrink step that revisits an input must cost no forward pass. An entry's key
hashes everything its value depends on: the model fingerprint (weights and config), the
request kind, the sample's content (image bytes, question, options), the variant, the
run seed (which seeds any randomness of the perturbation) and the vlmgate version (which
pins the perturbation code). The value is the raw float64 score vector.

Writes are atomic (a temporary file in the same folder, then ``os.replace``), so a run
killed mid-write leaves either the whole entry or none, and concurrent xdist workers
writing the same key write the same bytes. A file that does not decode (a damaged
disk, a foreign file) is treated as a miss and removed, never as a result.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlmgate import __version__
from vlmgate.records import Sample, Variant

SUFFIX = ".npy"


def sample_digest(sample: Sample) -> str:
    """sha256 of what a model sees of a clean sample: pixels, size, question, options, kind, hint."""
    digest = hashlib.sha256()
    image = sample.image.convert("RGB")
    digest.update(f"{image.size}".encode())
    digest.update(image.tobytes())
    for text in (sample.question, sample.kind, sample.hint or "", *sample.options):
        digest.update(b"\x1f" + text.encode("utf-8"))
    return digest.hexdigest()


def observation_key(model_fingerprint: str, kind: str, sample_id: str, content_digest: str,
                    variant: Variant, seed: int) -> str:
    """The cache key of one request (hex sha256)."""
    parts = (__version__, model_fingerprint, kind, sample_id, content_digest, variant.label, str(seed))
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int

    def describe(self) -> str:
        return f"{self.entries} entries, {self.bytes / 1e6:.2f} MB"


class ObservationCache:
    """``root/ab/abcdef….npy`` files holding float64 score vectors."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{SUFFIX}"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        try:
            value = np.load(io.BytesIO(data), allow_pickle=False)
            if value.dtype != np.float64 or value.ndim != 1:
                raise ValueError(f"unexpected array {value.dtype} {value.shape}")
        except (ValueError, OSError, EOFError):
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: np.ndarray) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(value, dtype=np.float64), allow_pickle=False)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=SUFFIX)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(buffer.getvalue())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def stats(self) -> CacheStats:
        entries = size = 0
        if self.root.is_dir():
            for path in self.root.glob(f"*/*{SUFFIX}"):
                if not path.name.startswith(".tmp-"):
                    entries += 1
                    size += path.stat().st_size
        return CacheStats(entries, size)
