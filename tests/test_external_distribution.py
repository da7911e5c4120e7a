"""A separate distribution extends vlmgate through entry points alone: no edit inside ``vlmgate``.

The distribution built here (``vlmgate-colourcast``) adds a perturbation family (a colour
cast, tagged ``colour``) and a suite (``colour_shift``) with one metric. It is installed
with pip into a folder of its own and a pytest run, in a fresh process that sees it on its
path, gates the tiny checkpoint with ``-m colour_shift``: the marker, the cases, the
threshold file, JUnit, the run record and the HTML report all pick it up from the
catalogues, as they do the built-ins. This is the example the extension guide
(docs/how-to/extend.md) walks through: the family and the suite are its own code blocks, read from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support import junit_cases

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "vlmgate-colourcast"
version = "0.1.0"

[project.entry-points."vlmgate.perturbations"]
colourcast = "colourcast.family:ColourCast"

[project.entry-points."vlmgate.suites"]
colour_shift = "colourcast.suite:ColourShiftSuite"

[project.entry-points."vlmgate.thresholds"]
colourcast = "colourcast:LIMITS"

[tool.setuptools]
packages = ["colourcast"]

[tool.setuptools.package-data]
colourcast = ["limits.toml"]
"""

#: The distribution's default limits for its suite, shipped as package data and named by its
#: ``vlmgate.thresholds`` entry point: they apply without any project file.
PACKAGE_INIT = """from importlib.resources import files

LIMITS = str(files(__name__) / "limits.toml")
"""
SHIPPED_LIMITS = """# colourcast's default limits: the drop of the clean answer's log-likelihood under a colour cast.
[score_drop]
"*" = { max = 2.0, max_increase = 0.5 }
"""

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "how-to" / "extend.md"


def guide_example(heading: str) -> str:
    """The first ``python`` block after ``heading`` in the extension guide (docs/how-to/extend.md), as written there."""
    text = GUIDE.read_text(encoding="utf-8")
    after = text[text.index(heading):]
    start = after.index("```python\n") + len("```python\n")
    return after[start:after.index("```", start)]


FAMILY = guide_example("**1. A perturbation family**")
SUITE = guide_example("**2. A suite**")


GATE = '''\
import pytest


@pytest.mark.colour_shift
def test_colour_shift(vlmgate_case, vlmgate):
    vlmgate.assert_within_thresholds(vlmgate.evaluate())
'''


@pytest.fixture(scope="module")
def colourcast_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution's source, built and installed by pip into a folder of its own."""
    source = tmp_path_factory.mktemp("vlmgate-colourcast")
    (source / "pyproject.toml").write_text(PYPROJECT)
    package = source / "colourcast"
    package.mkdir()
    (package / "__init__.py").write_text(PACKAGE_INIT)
    (package / "limits.toml").write_text(SHIPPED_LIMITS)
    (package / "family.py").write_text(FAMILY)
    (package / "suite.py").write_text(SUITE)
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(source)], check=True)
    assert any(site.glob("vlmgate_colourcast-*.dist-info/entry_points.txt"))
    return site


def run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A fresh process with the distribution on its path (entry points are read at start-up)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_a_separate_distribution_adds_a_suite_and_a_family(colourcast_site, tiny_llava_checkpoint, manifest,
                                                            tmp_path):
    (tmp_path / "test_colour.py").write_text(GATE)
    (tmp_path / "limits.toml").write_text(textwrap.dedent("""\
        # The new suite's metric is a threshold key like any built-in's, with the new family.
        [score_drop]
        colourcast = { max = 1000.0 }
    """))
    result = run(colourcast_site, tmp_path, "-m", "pytest", "-p", "no:cacheprovider", "-m", "colour_shift",
                 f"--vlmgate-model=hf:{tiny_llava_checkpoint}", f"--vlmgate-benchmark=jsonl:{manifest}",
                 "--vlmgate-thresholds=limits.toml", "--junitxml=out.xml", "--vlmgate-report=report", "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    case = "hf_checkpoint-jsonl_bench7-colourcast"
    assert f"test_colour.py::test_colour_shift[{case}] PASSED" in result.stdout
    props = junit_cases(tmp_path / "out.xml")[f"test_colour_shift[{case}]"]
    assert props["vlmgate.metric"] == "score_drop"
    assert props["vlmgate.threshold"] == "max 1000 (interval); max increase 0.5 vs baseline"  # over its shipped limit
    record = json.loads((tmp_path / "report" / "run.json").read_text())
    (recorded,) = record["cases"]
    assert recorded["key"] == {"model": f"hf:{tiny_llava_checkpoint}", "benchmark": f"jsonl:{manifest}",
                               "family": "colourcast", "suite": "colour_shift"}
    (metric,) = recorded["metrics"]
    assert (metric["name"], metric["kind"], metric["better"], metric["passed"]) == ("score_drop", "mean", "lower", True)
    # One unit per instance (7 samples x 2 levels), the instances of a sample one cluster, and
    # the interval is vlmgate's own clustered interval over them.
    assert len(metric["units"]) == 14 and len(set(metric["clusters"].values())) == 7
    from vlmgate.api import LOWER, clustered_mean

    own = clustered_mean("score_drop", metric["units"], metric["clusters"], better=LOWER)
    assert (metric["ci_low"], metric["ci_high"]) == pytest.approx((own.ci_low, own.ci_high), abs=1e-12)
    assert metric["n_clusters"] == 7
    assert "score_drop" in (tmp_path / "report" / "report.html").read_text()


def test_the_distributions_default_limit_applies_without_a_project_file_and_composes(colourcast_site,
                                                                                      tiny_llava_checkpoint,
                                                                                      manifest, tmp_path):
    """Shipped defaults, then the distribution's limits, then the project's file, each layer
    overriding only what it names; ``vlmgate thresholds --explain`` says where each key came from."""
    (tmp_path / "test_colour.py").write_text(GATE)
    args = ("-m", "pytest", "-p", "no:cacheprovider", "-m", "colour_shift",
            f"--vlmgate-model=hf:{tiny_llava_checkpoint}", f"--vlmgate-benchmark=jsonl:{manifest}",
            "--junitxml=out.xml")
    bare = run(colourcast_site, tmp_path, *args)
    assert bare.returncode == 0, bare.stdout[-3000:]
    props = junit_cases(tmp_path / "out.xml")["test_colour_shift[hf_checkpoint-jsonl_bench7-colourcast]"]
    assert props["vlmgate.threshold"] == "max 2 (interval); max increase 0.5 vs baseline"
    (tmp_path / "thresholds").mkdir()
    (tmp_path / "thresholds" / "default.toml").write_text('[score_drop]\ncolourcast = { max = 1000.0 }\n')
    layered = run(colourcast_site, tmp_path, *args)
    assert layered.returncode == 0, layered.stdout[-3000:]
    props = junit_cases(tmp_path / "out.xml")["test_colour_shift[hf_checkpoint-jsonl_bench7-colourcast]"]
    assert props["vlmgate.threshold"] == "max 1000 (interval); max increase 0.5 vs baseline"  # the project's max
    explained = run(colourcast_site, tmp_path, "-m", "vlmgate.cli", "thresholds", "--explain",
                    f"--model=hf:{tiny_llava_checkpoint}")
    assert explained.returncode == 0, explained.stderr
    lines = explained.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "colour_shift colourcast score_drop" in line)
    said = "\n".join(lines[at:at + 4])
    assert "thresholds/default.toml" in said and "colourcast/limits.toml" in said, said
    assert "default_thresholds.toml" in lines[0] and "colourcast/limits.toml" in lines[0]  # every layer, in order


def test_the_guide_imports_only_the_public_api():
    """Every ``vlmgate`` import of the guide's examples comes from ``vlmgate.api``, and every name
    it imports is declared there: an example that reached into an internal module would teach
    extensions to break on the next release."""
    import ast

    import vlmgate.api

    for example in (FAMILY, SUITE):
        for node in ast.walk(ast.parse(example)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "vlmgate":
                assert node.module == "vlmgate.api", f"the guide imports from {node.module}"
                assert {alias.name for alias in node.names} <= set(vlmgate.api.__all__)
            if isinstance(node, ast.Import):
                assert not any(alias.name.split(".")[0] == "vlmgate" for alias in node.names)
    assert all(hasattr(vlmgate.api, name) for name in vlmgate.api.__all__)


def test_the_catalogues_list_it_and_its_threshold_keys_are_validated(colourcast_site, tiny_llava_checkpoint,
                                                                     manifest, tmp_path):
    listing = run(colourcast_site, tmp_path, "-m", "vlmgate.cli", "list")
    assert listing.returncode == 0, listing.stderr
    assert "colourcast" in listing.stdout and "suites=colour_shift" in listing.stdout
    assert "colour_shift" in listing.stdout and "metrics: score_drop" in listing.stdout
    (tmp_path / "test_colour.py").write_text(GATE)
    (tmp_path / "limits.toml").write_text('[score_drop]\nrotation = { max = 1.0 }\n')
    refused = run(colourcast_site, tmp_path, "-m", "pytest", "-p", "no:cacheprovider", "-m", "colour_shift",
                  f"--vlmgate-model=hf:{tiny_llava_checkpoint}", f"--vlmgate-benchmark=jsonl:{manifest}",
                  "--vlmgate-thresholds=limits.toml")
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR
    assert "[score_drop]: unknown family 'rotation'" in refused.stderr
    assert "known: *, colourcast" in refused.stderr
