"""The fault battery's harness: vlmgate run as a user would, on one broken input at a time.

Every fault asserts three things:

* the exit code: pytest's 4 for a usage error found at start-up, 1 for a case that
  failed, 2 for ``vlmgate`` commands given bad input;
* one message that names what is wrong (the file, key or sample) and says how to fix
  it, with no traceback and no INTERNALERROR;
* that nothing was lost: checked per fault (cache entries whole, a record marked
  incomplete, a counterexample kept).

``gate`` runs pytest in-process on a folder holding the flip-rate suite, gating the tiny
LLaVA checkpoint on the six-image manifest; ``cli`` runs the ``vlmgate`` command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from support import gate_args

#: What never belongs in the answer to a bad input.
CRASH_MARKERS = ("Traceback (most recent call last)", "INTERNALERROR")


@dataclass(frozen=True)
class Said:
    """What one run answered: its exit code and everything it printed."""

    exit_code: int
    output: str

    def refused(self, code: int, *names: str, fix: str) -> None:
        """Exit ``code``, every one of ``names`` in the message, the ``fix`` (a regex), no crash."""
        assert self.exit_code == code, f"exit {self.exit_code}, expected {code}:\n{self.output}"
        for name in names:
            assert name in self.output, f"{name!r} is not named in:\n{self.output}"
        assert re.search(fix, self.output), f"no fix matching {fix!r} in:\n{self.output}"
        for marker in CRASH_MARKERS:
            assert marker not in self.output, f"{marker} in:\n{self.output}"


@pytest.fixture
def gate(suite_dir: pytest.Pytester, tiny_llava_checkpoint: Path, manifest: Path) -> Callable[..., Said]:
    """``gate(*args, checkpoint=..., manifest=...)``: the flip-rate suite through pytest, in-process."""

    def run(*args: str, checkpoint: Path = tiny_llava_checkpoint, manifest: Path = manifest) -> Said:
        result = suite_dir.runpytest_inprocess(*gate_args(checkpoint, manifest, *args))
        return Said(int(result.ret), "\n".join([*result.outlines, *result.errlines]))

    return run


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Said]:
    """``cli(*argv)``: the ``vlmgate`` command in-process."""
    from vlmgate.cli import main

    def run(*argv: str) -> Said:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code if isinstance(exc.code, int) else 2
        captured = capsys.readouterr()
        return Said(int(code or 0), captured.out + captured.err)

    return run
