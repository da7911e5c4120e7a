"""Deterministic random generators derived from (run seed, keys).

Every stochastic step in vlmgate takes a ``numpy.random.Generator`` made here from the
run seed and the names of what it is for (sample id, family, ...). The keys are hashed
with BLAKE2 rather than Python's ``hash`` (salted per process), so a generator is the
same in every process, for any xdist worker count and any test order.
"""

from __future__ import annotations

import hashlib

import numpy as np


def key_entropy(*keys: object) -> list[int]:
    """Stable 128-bit entropy for ``keys`` as four 32-bit words."""
    digest = hashlib.blake2b("\x1f".join(map(str, keys)).encode("utf-8"), digest_size=16).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``keys``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *key_entropy(*keys)]))
