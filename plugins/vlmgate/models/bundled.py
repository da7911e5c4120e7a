"""``bundled:NAME`` — a trained checkpoint shipped under ``fixtures/models/NAME``.

The alias resolves to a folder and is then loaded by the adapter its ``config.json``
names, exactly like a user's checkpoint, so the bundled default exercises the real code
path: a CLIP dual encoder (``model_type: clip``) by the
``clip:`` adapter, any other folder (the LLaVA ``shapes-v1`` / ``shapes-v2``) by ``hf:``.
What the alias offers the suites is therefore read from the same file, at collection.
"""

from __future__ import annotations

import json
from pathlib import Path

from vlmgate.errors import ModelError, VlmgateError
from vlmgate.fixture_paths import bundled_entry
from vlmgate.models.base import ModelOptions
from vlmgate.models.offers import CLIP_OFFERS, offering, vlm_offers


def _model_type(folder: Path) -> str | None:
    """``model_type`` of the folder's ``config.json`` (``None`` when unreadable: the load reports it)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config.get("model_type") if isinstance(config, dict) else None


def bundled_offers(name: str) -> frozenset[str] | None:
    """What ``bundled:NAME`` offers: a CLIP's capabilities or a VLM's; ``None`` when no such folder exists."""
    try:
        folder = bundled_entry("models", name, ModelError)
    except VlmgateError:
        return None
    model_type = _model_type(folder)
    return CLIP_OFFERS if model_type == "clip" else vlm_offers(model_type)


@offering(bundled_offers)
def load_bundled_model(name: str, options: ModelOptions, *, spec: str):
    folder = bundled_entry("models", name, ModelError)
    if _model_type(folder) == "clip":
        from vlmgate.models.clip import load_clip_model

        return load_clip_model(str(folder), options, spec=spec)
    from vlmgate.models.hf import load_hf_model

    return load_hf_model(str(folder), options, spec=spec)
