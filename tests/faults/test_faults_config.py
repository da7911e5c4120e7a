"""Fault battery: configuration that would silently change a gate is refused at start-up.

Each fault writes one broken input into the run's folder (a threshold file, the root
``pyproject.toml``, the counterexample store) or passes one broken option, and the run
must stop before any test with pytest's usage-error exit code 4 and one message that
names the file (or option), the key and the fix. Nothing may turn a gate off or on
silently: ``max = nan`` never fails, ``search = "false"`` is truthy, ``max = -0.1`` on a
flip rate can never pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pytest

#: Bytes that are not UTF-8 (a Latin-1 "é" in a comment, as an editor with the wrong
#: encoding writes it).
LATIN1 = b"# caf\xe9\n"
#: The default counterexample store, relative to the rootdir.
STORE = "thresholds/counterexamples.toml"
#: A directory instead of a file.
DIRECTORY = None


@dataclass(frozen=True)
class Fault:
    """One broken input and what the refusal must say.

    ``files`` maps a path in the run's folder to its content (``DIRECTORY`` makes a
    folder there); ``names`` must all appear in the output, ``fix`` (a regex) too.
    ``cuda_below`` skips the fault on a machine with at least that many CUDA devices
    (where the device it asks for exists).
    """

    id: str
    files: Mapping[str, str | bytes | None]
    args: tuple[str, ...]
    names: tuple[str, ...]
    fix: str
    cuda_below: int | None = None


def limits(text: str) -> dict[str, str]:
    return {"limits.toml": text}


def pyproject(body: str) -> dict[str, str]:
    return {"pyproject.toml": f"[tool.vlmgate]\n{body}\n"}


def store(text: str | bytes | None) -> dict[str, str | bytes | None]:
    return {STORE: text}


FAULTS = [
    # Threshold files: every limit validated against its metric's range.
    Fault("max-nan", limits('[ifr]\n"*" = { max = nan }\n'), (),
          ("limits.toml", "[ifr]", "*.max", "nan"), r"write a number in \[0, 1\]"),
    Fault("max-inf", limits('[ifr]\n"*" = { max = inf }\n'), (),
          ("limits.toml", "[ifr]", "*.max", "inf"), r"write a number in \[0, 1\]"),
    Fault("min-above-max", limits('[accuracy]\n"*" = { min = 0.8, max = 0.2 }\n'), (),
          ("limits.toml", "[accuracy]", "min 0.8", "max 0.2"), r"swap them"),
    Fault("negative-max-on-ifr", limits('[ifr]\nrotation = { max = -0.1 }\n'), (),
          ("limits.toml", "[ifr]", "rotation.max", "-0.1"), r"write a max in \[0, 1\]"),
    Fault("min-above-one-on-accuracy", limits('[accuracy]\n"*" = { min = 1.5 }\n'), (),
          ("limits.toml", "[accuracy]", "*.min", "1.5"), r"write a min in \[0, 1\]"),
    Fault("percentage-max", limits('[ifr]\n"*" = { max = 15 }\n'), (),
          ("limits.toml", "[ifr]", "*.max", "15"), r"write a max in \[0, 1\]"),
    # A limit at the edge of the range can never fail: it would read as a pass without judging.
    Fault("max-at-the-top-of-a-share", limits('[ifr]\n"*" = { max = 1.0 }\n'), (),
          ("limits.toml", "[ifr]", "*.max", "highest possible ifr", "can never fail"), r"write gated = false"),
    Fault("min-at-the-bottom-of-ras", limits('[ras]\ncontrast = { min = -2 }\n'), (),
          ("limits.toml", "[ras]", "contrast.min", "lowest possible ras"), r"write gated = false"),
    Fault("string-limit", limits('[ifr]\n"*" = { max = "0.2" }\n'), (),
          ("limits.toml", "[ifr]", "*.max", "'0.2'"), r"must be a number; write max = 0\.2"),
    Fault("mode-typo", limits('mode = "strikt"\n[ifr]\n"*" = { max = 0.2 }\n'), (),
          ("limits.toml", "mode", "strikt"), r"did you mean 'strict'"),
    Fault("change-limit-nan", limits('[ifr]\n"*" = { max = 0.2, max_increase = nan }\n'), (),
          ("limits.toml", "[ifr]", "*.max_increase"), r"write a number in \[0, 1\]"),
    Fault("models-entry-not-a-table", limits('[models]\n"hf:*" = 3\n'), (),
          ("limits.toml", "[models]", '"hf:*"'), r'\[models\."hf:\*"\.ifr\]'),
    Fault("models-glob-unbalanced", limits('[models."hf:*[candidate".ifr]\n"*" = { max = 0.2 }\n'), (),
          ("limits.toml", "[models]", "hf:*[candidate"), r"close the bracket"),
    Fault("thresholds-not-utf8", {"limits.toml": LATIN1 + b'[ifr]\n"*" = { max = 0.2 }\n'}, (),
          ("limits.toml", "UTF-8"), r"save it as UTF-8"),
    Fault("thresholds-is-a-directory", {"limits_dir": DIRECTORY}, ("--vlmgate-thresholds=limits_dir",),
          ("limits_dir", "is a directory"), r"pass the threshold file itself"),
    Fault("thresholds-missing", {}, ("--vlmgate-thresholds=nope.toml",),
          ("nope.toml", "does not exist"), r"pass --vlmgate-thresholds PATH or create it"),
    # [tool.vlmgate]: every key's type.
    Fault("pyproject-search-string", pyproject('search = "false"'), (),
          ("pyproject.toml", "[tool.vlmgate] search", '"false"'), r"write search = true or search = false"),
    Fault("pyproject-models-string", pyproject('models = "bundled:x"'), (),
          ("pyproject.toml", "[tool.vlmgate] models"), r'write models = \["bundled:x"\]'),
    Fault("pyproject-seed-bool", pyproject("seed = true"), (),
          ("pyproject.toml", "[tool.vlmgate] seed", "true"), r"write seed = 0"),
    Fault("pyproject-limit-zero", pyproject("limit = 0"), (),
          ("pyproject.toml", "[tool.vlmgate] limit", ">= 1"), r"write limit = 100"),
    Fault("pyproject-thresholds-number", pyproject("thresholds = 3"), (),
          ("pyproject.toml", "[tool.vlmgate] thresholds"), r'write thresholds = "thresholds/default.toml"'),
    Fault("pyproject-not-a-table", {"pyproject.toml": "[tool]\nvlmgate = 3\n"}, (),
          ("pyproject.toml", "[tool.vlmgate]"), r"write it as a \[tool\.vlmgate\] table"),
    # pytest itself reads a pyproject.toml it discovers, before any plugin loads, and a
    # non-UTF-8 one crashes it there (cf. pytest-dev/pytest#4441); with the config file
    # named by -c, the file reaches vlmgate alone.
    Fault("pyproject-not-utf8", {"pyproject.toml": b"[tool.vlmgate]\n" + LATIN1, "pytest.ini": "[pytest]\n"},
          ("-c", "pytest.ini"), ("pyproject.toml", "UTF-8"), r"save it as UTF-8"),
    # Command-line devices, backend and threads.
    Fault("device-cuda-without-cuda", {}, ("--vlmgate-device=cuda",),
          ("--vlmgate-device", "'cuda'", "CUDA"), r"use one of cpu", cuda_below=1),
    Fault("devices-entry-beyond-the-gpus", {}, ("--vlmgate-devices=cpu,cuda:7",),
          ("--vlmgate-devices", "'cuda:7'"), r"use one of cpu", cuda_below=8),
    Fault("device-unknown-type", {}, ("--vlmgate-device=gpu",),
          ("--vlmgate-device", "'gpu'"), r"use one of cpu"),
    Fault("backend-typo", {}, ("--vlmgate-backend=rai",),
          ("--vlmgate-backend", "'rai'"), r"did you mean 'ray'"),
    Fault("torch-threads-zero", {}, ("--vlmgate-torch-threads=0",),
          ("--vlmgate-torch-threads", "'0'"), r"pass auto or an integer >= 1"),
    # The counterexample store.
    Fault("store-entries-not-tables", store("version = 1\ncounterexample = [1, 2]\n"), (),
          ("counterexamples.toml", "[[counterexample]] #1", "1"),
          r"write each entry as a \[\[counterexample\]\] table"),
    Fault("store-not-utf8", store(LATIN1 + b"version = 1\n"), (),
          ("counterexamples.toml", "UTF-8"), r"save it as UTF-8"),
    # The start-up check of output locations (vlmgate.outputs) may see the folder first, as the
    # store is also written to; either refusal names the path and the fix.
    Fault("store-is-a-directory", store(DIRECTORY), (),
          ("counterexamples.toml",),
          r"(is a directory|is a folder).*; pass (the counterexample store itself|a file path)"),
    Fault("store-entry-wrong-type", store("[[counterexample]]\nmodel = 'm'\nbenchmark = 'b'\nfamily = 'rotation'\n"
                                          "sample = 's'\nlevel = 2\nchoices = 3\n"), (),
          ("counterexamples.toml", "[[counterexample]] #1", "choices"), r"write choices as a table"),
]


def cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_bad_configuration_is_a_one_line_usage_error(fault: Fault, suite_dir: pytest.Pytester,
                                                     gate: Callable[..., Any]) -> None:
    if fault.cuda_below is not None and cuda_devices() >= fault.cuda_below:
        pytest.skip(f"this machine has the CUDA devices {fault.id} asks for")
    for name, content in fault.files.items():
        path = suite_dir.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is DIRECTORY:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    said = gate(*fault.args)
    said.refused(4, *fault.names, fix=fault.fix)
    errors = [line for line in said.output.splitlines() if line.startswith("ERROR: vlmgate:")]
    assert len(errors) == 1, f"expected one vlmgate error line:\n{said.output}"
