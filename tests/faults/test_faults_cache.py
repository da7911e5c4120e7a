"""Fault battery, the observation cache: an entry altered on disk, a stale entry, a bad audit option.

The cache is input like any other (a CI cache restored from another branch, a disk that
flips a bit): an entry altered in place fails its checksum and is recomputed, never
served, and the gate's values are those of a cold run; a value written whole but wrong
for its key is caught by ``--vlmgate-cache-audit``, which fails the case naming the
entry, its file and both values.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from vlmgate.cache import TRAILER_SIZE, ObservationCache
from vlmgate.report.record import load_record

#: The gate of one case (rotation): the clean pass and the rotation grid, all score vectors.
ONE_CASE = ("-m", "rotation")


def _values(report: Path) -> str:
    """The run record without its environment block: every gate's values, as sorted JSON."""
    return json.dumps(load_record(report).comparable(), sort_keys=True)


def _score_entries(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.npy"))


def test_a_score_vector_altered_on_disk_is_recomputed_and_the_gate_values_stay(gate, tmp_path):
    root = tmp_path / "cache"
    cache = f"--vlmgate-cache={root}"
    first = gate(*ONE_CASE, cache, f"--vlmgate-report={tmp_path / 'first'}")
    assert first.exit_code == 0, first.output
    entry = _score_entries(root)[0]
    scores = np.load(entry)  # the payload is a plain .npy; the checksum trailer follows it
    loser = int(np.argmin(scores))
    data = bytearray(entry.read_bytes())
    at = len(data) - TRAILER_SIZE - 8 * (len(scores) - loser)
    data[at:at + 8] = struct.pack("<d", 0.0)  # the worst option's log-likelihood becomes the best
    entry.write_bytes(bytes(data))  # in place, the length kept
    assert int(np.argmax(np.load(entry))) == loser  # served, this would flip the prediction

    second = gate(*ONE_CASE, cache, f"--vlmgate-report={tmp_path / 'second'}")
    assert second.exit_code == 0, second.output
    assert _values(tmp_path / "second") == _values(tmp_path / "first")
    assert re.search(rf"CacheWarning: vlmgate cache entry {re.escape(str(entry))} is not served: its SHA-256 "
                     r"checksum does not match .* it will be recomputed", second.output), second.output
    assert re.search(r"this run: \d+ hits, 1 misses", second.output), second.output
    assert "1 entries were not served (damaged, altered" in second.output, second.output
    assert np.array_equal(np.load(entry), scores)  # rewritten with the recomputed value


def test_a_stale_entry_with_a_valid_checksum_fails_the_audit(gate, tmp_path):
    root = tmp_path / "cache"
    cache = f"--vlmgate-cache={root}"
    assert gate(*ONE_CASE, cache).exit_code == 0
    honest = gate(*ONE_CASE, cache, "--vlmgate-cache-audit=1")
    assert honest.exit_code == 0, honest.output  # the real model gives every entry back, bit for bit
    entries = _score_entries(root)
    stale_path = entries[len(entries) // 2]
    good = np.load(stale_path)
    stale = good - 0.25  # what another checkpoint would have scored: written whole, checksum valid
    ObservationCache(root).put(stale_path.stem, stale)

    audited = gate(*ONE_CASE, cache, "--vlmgate-cache-audit=1")
    audited.refused(1, "CacheAuditError", stale_path.stem, str(stale_path),
                    repr(tuple(float(s) for s in stale)), repr(tuple(float(s) for s in good)),
                    fix=r"delete that folder, or run with --vlmgate-no-cache")
    assert np.array_equal(np.load(stale_path), stale)  # compared, not written over


@pytest.mark.parametrize("value, message", [
    ("0", "--vlmgate-cache-audit must be a fraction of cache hits in (0, 1], got 0.0"),
    ("1.5", "--vlmgate-cache-audit must be a fraction of cache hits in (0, 1], got 1.5"),
    ("nan", "--vlmgate-cache-audit must be a fraction of cache hits in (0, 1], got nan"),
    ("a tenth", "'a tenth' is not a number; pass e.g. --vlmgate-cache-audit 0.05"),
])
def test_a_bad_audit_fraction_is_a_usage_error(gate, value, message):
    said = gate(*ONE_CASE, f"--vlmgate-cache-audit={value}")
    said.refused(4, message, fix=r"pass e.g. --vlmgate-cache-audit 0\.05")


def test_an_audit_without_a_cache_is_a_usage_error(gate):
    said = gate(*ONE_CASE, "--vlmgate-no-cache", "--vlmgate-cache-audit=0.1")
    said.refused(4, "--vlmgate-cache-audit audits the observation cache", fix="drop one of them")
