"""Fault battery: what a run writes, and what reads it back, never loses or misreports a result.

Three kinds of fault, one table:

* an output location the run cannot use (a report folder that is a file or cannot be
  created, PNG folder, counterexample store, cache): refused at start-up with pytest's
  usage-error exit code 4, before any work, and the thing in the way left as it was;
* a run cut short (Ctrl-C, ``-x``, a collection error): it still writes its record, marked
  incomplete with the tests it never ran, and says so at the end;
* a bad input to ``vlmgate diff`` / ``vlmgate report`` (missing, not a record, not UTF-8,
  a future schema, an incomplete record, two records with nothing in common, an image
  outside the report folder): exit 2 with one line naming the file and the fix (the last
  is rendered, with the image left out and the report saying so).

Every fault asserts the exit code, the names and the fix in the message, no traceback,
and what must have survived.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from vlmgate.cases import CaseKey
from vlmgate.report.record import (
    SCHEMA_VERSION,
    CaseRecord,
    Completeness,
    Environment,
    MetricRecord,
    RunRecord,
    load_record,
    write_record,
)

from support import gate_args

#: The pytester folder's ``limits.toml`` with clean accuracy that cannot pass: ``-x`` stops on it.
STRICT = ('inherit = false\nmode = "strict"\n[accuracy]\n"*" = { min = 1.0 }\n[ifr]\n"*" = { gated = false }\n'
          '[iv]\n"*" = { gated = false }\n')
INTERRUPT_THIRD = """
import pytest

started = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    started.append(item.nodeid)
    if len(started) == 3:
        raise KeyboardInterrupt
"""
#: Read and write permission bits are no barrier to root, so as root a folder is made
#: unusable by a file in its place instead.
ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class Scene:
    """Where a fault happens: the pytester folder (rootdir and working directory) and how to run things there.

    ``said`` is the harness's answer type (``Said`` of ``tests/faults/conftest.py``, taken
    from the plugin pytest registered it as, since conftest modules are not importable by name).
    """

    folder: pytest.Pytester
    gate: Callable[..., Any]
    cli: Callable[..., Any]
    said: type
    checkpoint: Path
    manifest: Path

    @property
    def root(self) -> Path:
        return self.folder.path

    def interrupted_gate(self, *args: str) -> Any:
        """The gate, with Ctrl-C answered by pytest (pytester re-raises it by default)."""
        result = self.folder.runpytest_inprocess(*gate_args(self.checkpoint, self.manifest, *args),
                                                 no_reraise_ctrlc=True)
        return self.said(int(result.ret), "\n".join([*result.outlines, *result.errlines]))


def a_record(completeness: Completeness = Completeness(True, None, 1, ()),  # noqa: B008 (frozen: immutable)
             family: str = "padcrop", model: str = "hf:/runs/v41/ckpt") -> RunRecord:
    units = {f"s{i}|padcrop": i % 2 for i in range(8)}
    metric = MetricRecord("ifr", "proportion", "lower", 0.5, 0.2, 0.8, 8, None, True, "recorded", units)
    case = CaseRecord(f"ckpt-bench-{family}", "test_flip_rate.py::test_flip_rate",
                      CaseKey(model, "jsonl:/data/bench.jsonl", family, "flip_rate"), "passed", (metric,))
    return RunRecord(SCHEMA_VERSION, "0.1.0", 0, {}, {model: "fp"}, {"jsonl:/data/bench.jsonl": "fp"}, (case,),
                     Environment("3.11", "linux"), completeness)


def a_record_file(scene: Scene, name: str, **changes) -> str:
    """A valid record written to ``name/run.json``, with top-level ``changes`` applied to its JSON."""
    path = write_record(a_record(), scene.root / name)
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    return str(path)


def a_file(scene: Scene, name: str, content: bytes = b"in the way\n") -> Path:
    path = scene.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def unwritable_folder(scene: Scene) -> str:
    """A report folder the run cannot create: under a read-only folder, or (as root) under a file."""
    if ROOT:
        a_file(scene, "locked")
    else:
        (scene.root / "locked").mkdir()
        (scene.root / "locked").chmod(0o500)
    return "locked/report"


# -- what must survive ----------------------------------------------------------------
def refused_before_any_test(scene: Scene, said: Any) -> None:
    assert "passed" not in said.output and "failed" not in said.output, "tests ran after all"
    assert not [p for p in scene.root.rglob("run.json") if p.is_file()], "a refused run wrote a record"


def untouched(name: str) -> Callable[[Scene, Any], None]:
    def check(scene: Scene, said: Any) -> None:
        refused_before_any_test(scene, said)
        assert (scene.root / name).read_bytes() == b"in the way\n", f"{name} was overwritten"
    return check


def one_line_only(scene: Scene, said: Any) -> None:
    """A refused command prints its one line, no partial table, and writes no report."""
    assert len(said.output.strip().splitlines()) == 1, said.output
    assert not [p for p in scene.root.rglob("*.html") if p.is_file()]


def incomplete_record(reason: str, cases: int, not_run: int) -> Callable[[Scene, Any], None]:
    def check(scene: Scene, said: Any) -> None:
        record = load_record(scene.root / "out")
        assert len(record.cases) == cases, "the cases that ran are all kept"
        completeness = record.completeness
        assert (completeness.complete, completeness.reason, len(completeness.not_run)) == (False, reason, not_run)
        assert completeness.describe() in (scene.root / "out" / "report.html").read_text()
    return check


def image_left_out(scene: Scene, said: Any) -> None:
    html = (scene.root / "out.html").read_text()
    assert "data:image/png" not in html, "a file outside the report folder was embedded"
    assert "image outside the report folder" in html


# -- the faults -----------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    """Set up and run one fault (``act``); the answer must be ``code`` with ``names`` and ``fix``; ``kept`` holds."""

    id: str
    act: Callable[[Scene], Any]
    code: int
    names: tuple[str, ...]
    fix: str
    kept: Callable[[Scene, Any], None] = one_line_only


def gate_with(*args: str, before: Callable[[Scene], object] = lambda scene: None) -> Callable[[Scene], Any]:
    def act(scene: Scene) -> Any:
        before(scene)
        return scene.gate(*args)
    return act


def cli_with(*argv: str | Callable[[Scene], str]) -> Callable[[Scene], Any]:
    """``vlmgate ARGV`` where a callable argument makes its file and returns its path."""
    def act(scene: Scene) -> Any:
        return scene.cli(*(arg(scene) if callable(arg) else arg for arg in argv))
    return act


def report_of_outside_image(scene: Scene) -> Any:
    outside = a_file(scene, "elsewhere/secret.png", b"\x89PNG\r\n\x1a\nsecret")
    instance = {"sample": "s1", "images": {"clean": str(outside), "perturbed": "../elsewhere/secret.png"}}
    metric = MetricRecord("minimal_failure", "proportion", "lower", 1.0, 1.0, 1.0, 1, None, False, "found",
                          details={"instance": instance})
    record = a_record()
    case = CaseRecord("ckpt-bench-rotation", "test_minimal_failures.py::test_minimal_failures",
                      CaseKey("hf:/runs/v41/ckpt", "jsonl:/data/bench.jsonl", "rotation", "search"), "failed",
                      (metric,))
    path = write_record(RunRecord(**{**record.__dict__, "cases": (case,)}), scene.root / "v41")
    said = scene.cli("report", str(path), "-o", str(scene.root / "out.html"))
    return scene.said(said.exit_code, said.output + (scene.root / "out.html").read_text())


def incomplete(scene: Scene) -> str:
    stopped = Completeness(False, "interrupted (KeyboardInterrupt)", 11, tuple(f"t.py::t[{i}]" for i in range(9)))
    return str(write_record(a_record(stopped), scene.root / "partial"))


FAULTS = [
    # Output locations, checked at start-up: exit 4 before any test.
    Fault("report-at-a-file", gate_with("--vlmgate-report=taken", before=lambda s: a_file(s, "taken")), 4,
          ("--vlmgate-report", "taken", "is a file, not a folder"), r"pass a folder path, or move the file away",
          untouched("taken")),
    Fault("report-folder-not-writable", lambda s: s.gate(f"--vlmgate-report={unwritable_folder(s)}"), 4,
          ("--vlmgate-report", "locked"),
          r"locked is a file; pass a path outside it" if ROOT else r"locked is not writable; make it writable",
          refused_before_any_test),
    Fault("run-json-is-a-folder",
          gate_with("--vlmgate-report=out", before=lambda s: (s.root / "out" / "run.json").mkdir(parents=True)), 4,
          ("--vlmgate-report", "out/run.json", "is a folder, not a file"), r"pass a file path, or remove the folder",
          refused_before_any_test),
    Fault("search-images-at-a-file",
          gate_with("--vlmgate-search-images=taken", before=lambda s: a_file(s, "taken")), 4,
          ("--vlmgate-search-images", "taken", "is a file, not a folder"), r"pass a folder path",
          untouched("taken")),
    Fault("store-folder-is-a-file",
          gate_with("--vlmgate-search", "--vlmgate-counterexamples=taken/store.toml",
                    before=lambda s: a_file(s, "taken")), 4,
          ("--vlmgate-counterexamples", "taken/store.toml", "cannot be created"),
          r"taken is a file; pass a path outside it, or move the file away", untouched("taken")),
    Fault("cache-at-a-file", gate_with("--vlmgate-cache=taken", before=lambda s: a_file(s, "taken")), 4,
          ("--vlmgate-cache", "taken", "is a file, not a folder"), r"pass a folder path", untouched("taken")),
    # Runs cut short: the record is written, and marked.
    Fault("interrupted", lambda s: (s.folder.makeconftest(INTERRUPT_THIRD), s.interrupted_gate(
        "--vlmgate-report=out"))[1], 2, ("KeyboardInterrupt", "incomplete: 12 of 14 cases not run"),
          r"vlmgate diff and --vlmgate-baseline refuse this record",
          incomplete_record("interrupted (KeyboardInterrupt)", 2, 12)),
    Fault("stopped-by-x", gate_with("-x", "--vlmgate-report=out", "--vlmgate-thresholds=strict.toml",
                                    before=lambda s: s.folder.makefile(".toml", strict=STRICT)), 1,
          ("incomplete: 13 of 14 cases not run (stopping after 1 failures)",),
          r"vlmgate diff and --vlmgate-baseline refuse this record",
          incomplete_record("stopping after 1 failures", 1, 13)),
    Fault("collection-error", gate_with("--vlmgate-report=out",
                                        before=lambda s: s.folder.makepyfile(test_broken="import not_a_module_zz\n")),
          2, ("incomplete: 14 of 14 cases not run (1 error during collection)",),
          r"refuse this record", incomplete_record("1 error during collection", 0, 14)),
    # Reading records back: exit 2, one line.
    Fault("diff-missing-file", cli_with("diff", lambda s: str(s.root / "v41.json"), lambda s: a_record_file(s, "v42")),
          2, ("v41.json", "does not exist"), r"write one with pytest --vlmgate-report DIR"),
    Fault("diff-folder-without-run-json",
          cli_with("diff", lambda s: (s.root / "empty").mkdir() or str(s.root / "empty"),
                   lambda s: a_record_file(s, "v42")),
          2, ("empty", "holds no run.json"), r"pass the folder pytest --vlmgate-report DIR wrote"),
    Fault("diff-not-json", cli_with("diff", lambda s: str(a_file(s, "v41/run.json", b"<html>")),
                                    lambda s: a_record_file(s, "v42")),
          2, ("v41/run.json", "not valid JSON"), r"is it a vlmgate run.json\?"),
    Fault("diff-not-utf8", cli_with("diff", lambda s: str(a_file(s, "v41/run.json", b'{"seed": "\xff"}')),
                                    lambda s: a_record_file(s, "v42")),
          2, ("v41/run.json", "not UTF-8 text (byte 0xff"), r"is it a vlmgate run.json\?"),
    Fault("diff-future-schema", cli_with("diff", lambda s: a_record_file(s, "v41", schema_version=SCHEMA_VERSION + 1),
                                         lambda s: a_record_file(s, "v42")),
          2, ("v41/run.json", f"schema_version {SCHEMA_VERSION + 1} is not one this vlmgate reads"),
          r"read it with the vlmgate version that wrote it"),
    Fault("diff-record-missing-keys", cli_with("diff", lambda s: a_record_file(s, "v41", cases=None),
                                               lambda s: a_record_file(s, "v42")),
          2, ("v41/run.json", "cases: None has the wrong type"), r"rewrite it with pytest --vlmgate-report"),
    Fault("diff-nothing-shared", cli_with(
        "diff", lambda s: str(write_record(a_record(family="rotation"), s.root / "v41")),
        lambda s: a_record_file(s, "v42"), "--fail-on", "regression"),
          2, ("v41/run.json", "v42/run.json", "share no case", "families before: rotation; after: padcrop"),
          r"diff the records of the same suite on the same benchmarks"),
    Fault("diff-incomplete", cli_with("diff", lambda s: a_record_file(s, "v41"), incomplete), 2,
          ("partial/run.json", "incomplete: 9 of 11 cases not run (interrupted (KeyboardInterrupt))"),
          r"re-run the suite to the end, or pass --allow-incomplete"),
    Fault("report-broken-record",
          cli_with("report", lambda s: a_record_file(s, "v41", completeness={"complete": 0, "not_run": []}),
                   "-o", "out.html"),
          2, ("v41/run.json", "completeness.complete: 0 has the wrong type"),
          r"rewrite it with pytest --vlmgate-report"),
    Fault("report-output-is-a-folder", cli_with("report", lambda s: a_record_file(s, "v41"),
                                                "-o", lambda s: (s.root / "out.html").mkdir() or "out.html"),
          2, ("-o out.html", "is a folder, not a file"), r"pass a file path, or remove the folder",
          lambda s, said: (s.root / "out.html").is_dir() or pytest.fail("out.html was replaced")),
    Fault("report-image-outside-its-folder", report_of_outside_image, 0,
          ("image outside the report folder", "secret.png"), r"not embedded", image_left_out),
]


@pytest.fixture
def scene(request: pytest.FixtureRequest, suite_dir: pytest.Pytester, gate, cli, tiny_llava_checkpoint: Path,
          manifest: Path, monkeypatch: pytest.MonkeyPatch) -> Scene:
    monkeypatch.chdir(suite_dir.path)  # the CLI's relative paths, like pytest's, are the folder's
    harness = request.config.pluginmanager.get_plugin(str(Path(__file__).with_name("conftest.py")))
    return Scene(suite_dir, gate, cli, harness.Said, tiny_llava_checkpoint, manifest)


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.id for fault in FAULTS])
def test_fault(scene: Scene, fault: Fault) -> None:
    said = fault.act(scene)
    said.refused(fault.code, *fault.names, fix=fault.fix)
    fault.kept(scene, said)
