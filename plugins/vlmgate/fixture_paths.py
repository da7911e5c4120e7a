"""Where the bundled fixtures (trained checkpoints, benchmark splits) live.

They sit in the repository's ``fixtures/`` folder, next to ``plugins/``. An install
that is not editable has no repository around it, so ``VLMGATE_FIXTURES`` can point at a
copy of that folder; the error says so when neither is found.
"""

from __future__ import annotations

import os
from pathlib import Path

from vlmgate.errors import VlmgateError

ENV = "VLMGATE_FIXTURES"


def fixtures_dir() -> Path:
    override = os.environ.get(ENV)
    candidate = Path(override) if override else Path(__file__).resolve().parents[2] / "fixtures"
    if not candidate.is_dir():
        raise VlmgateError(
            f"bundled fixtures folder {candidate} not found; run from a vlmgate checkout "
            f"(pip install -e .) or set {ENV} to a copy of its fixtures/ folder"
        )
    return candidate


def bundled_entry(kind: str, name: str, error: type[VlmgateError]) -> Path:
    """``fixtures/<kind>/<name>``, or ``error`` listing what is bundled."""
    root = fixtures_dir() / kind
    path = root / name
    if not path.is_dir():
        available = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise error(f"no bundled {kind[:-1]} {name!r} in {root}; bundled: {', '.join(available) or 'none'}")
    return path
