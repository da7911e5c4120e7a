"""Plain helpers shared by the project's tests (fixtures live in ``conftest.py``).

The suite files of ``robustness_tests/`` as text, for pytester runs that gate a tiny
checkpoint; the arguments such a run takes; a reader of JUnit properties; the kept run
records of the bundled releases; and an in-memory benchmark for engine-level tests.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from vlmgate.records import Sample

if TYPE_CHECKING:
    import pytest

REPO = Path(__file__).resolve().parents[1]
SUITES = REPO / "robustness_tests"
FLIP_TEST = (SUITES / "test_flip_rate.py").read_text()
DRIFT_TEST = (SUITES / "test_drift.py").read_text()
STRUCTURE_TEST = (SUITES / "test_structure.py").read_text()
RAS_TEST = (SUITES / "test_ras.py").read_text()
DECAY_TEST = (SUITES / "test_visual_decay.py").read_text()
CROSS_MODAL_TEST = (SUITES / "test_cross_modal.py").read_text()
SEARCH_TEST = (SUITES / "test_minimal_failures.py").read_text()

#: Words the tiny tokenizer learns merges for: the protocol's prompt and answer shapes.
TINY_CORPUS = (
    "Question: What colour is the shape?",
    "Question: Which shape is in the image?",
    "Question: Where is the shape?",
    "Options:",
    "A. red", "B. green", "C. blue", "D. yellow",
    "A. circle", "B. square", "C. triangle", "D. star",
    "top left", "top right", "bottom left", "bottom right",
    "Please select the correct answer from the options above.",
    "Answer with exactly one word: Yes or No.",
    "Yes", "No",
)


#: Flip-rate limits that judge nothing: ifr and iv are recorded (``gated = false``), so every
#: flip-rate case reads RECORDED (``conftest.suite_dir``'s ``limits.toml``).
RECORD_ONLY = 'inherit = false\nmode = "interval"\n[ifr]\n"*" = { gated = false }\n[iv]\n"*" = { gated = false }\n'


#: Run records of the main job on the bundled releases, kept as test data (see its README).
RELEASES = Path(__file__).resolve().parent / "data" / "releases"


def kept_release(name: str):
    """The kept run record ``RELEASES/{name}.run.json.gz`` (``shapes-v1``, ``shapes-v2``), read."""
    import gzip

    from vlmgate.report.record import RunRecord

    path = RELEASES / f"{name}.run.json.gz"
    return RunRecord.from_json(gzip.decompress(path.read_bytes()).decode(), str(path))


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    """The counts of a run's summary line, vlmgate's own categories included: ``recorded``
    (a case that judged nothing), ``inconclusive`` and ``warned``, which pytester's
    ``assert_outcomes`` does not see. pytest's ``warnings`` count is left out."""
    return {name: count for name, count in result.parseoutcomes().items() if name != "warnings"}


def gate_args(checkpoint: Path, manifest: Path, *extra: str) -> list[str]:
    """pytest arguments gating ``hf:checkpoint`` on ``jsonl:manifest`` with ``limits.toml``."""
    return ["-p", "no:cacheprovider", "--strict-markers", f"--vlmgate-model=hf:{checkpoint}",
            f"--vlmgate-benchmark=jsonl:{manifest}", "--vlmgate-thresholds=limits.toml", *extra]


def junit_cases(path: Path) -> dict[str, dict[str, str]]:
    """Test case name -> its JUnit properties."""
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        cases[case.get("name")] = props
    return cases


@dataclass(frozen=True)
class ListBenchmark:
    """A benchmark over samples held in memory."""

    items: tuple[Sample, ...]
    spec: str = "stub:list"
    fingerprint: str = "stub-list"

    def __len__(self) -> int:
        return len(self.items)

    def samples(self) -> Iterator[Sample]:
        yield from self.items
