"""``bundled:NAME`` — a trained checkpoint shipped under ``fixtures/models/NAME``.

The alias resolves to a folder and is then loaded by the ``hf:`` adapter exactly like a
user's checkpoint, so the bundled default exercises the real code path.
"""

from __future__ import annotations

from vlmgate.errors import ModelError
from vlmgate.fixture_paths import bundled_entry
from vlmgate.models.base import ModelOptions


def load_bundled_model(name: str, options: ModelOptions, *, spec: str):
    from vlmgate.models.hf import load_hf_model

    return load_hf_model(str(bundled_entry("models", name, ModelError)), options, spec=spec)
