"""The package's import graph: no circle, and nothing imports upwards.

Data flows one way (options → settings → session → case context → suite → engine →
metrics → judgement → outputs), and a module may depend only on what lies below it. The
layers, lowest first:

0. ``core``: the records every stage passes on (records, errors, cases, seeding,
   registry, tomlfile, the progress a pass reports)
1. ``inputs``: what a case is made of: perturbations, models, benchmarks, prompts,
   renderings, fonts, device placement, the cache, the batches and the dispatchers that run
   them, and the description of a model whose replicas run elsewhere
2. ``engine``: batching, memoising and dispatching requests (engine, Ray replicas)
3. ``metrics``: pure functions over observations
4. ``suites``: cases → metric results (suites, the minimal-failure search, selection)
5. ``judgement``: thresholds, verdicts and what a gate can detect at its n
6. ``run``: settings, the option table, output locations, the session, the progress display,
   the split of a run into shards
7. ``outputs``: run records, diffs, reports
8. ``entry``: pytest hooks and their stash keys, the gate fixture, the command, test helpers

An import is allowed within a layer or to a lower one; imports inside functions and under
``TYPE_CHECKING`` count too (a type a module names is a dependency of its design). The
check reads the source with ``ast``: ``pytest tests/test_architecture.py`` runs it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "plugins" / "vlmgate"

#: Module prefix -> layer; the longest matching prefix wins.
LAYERS: dict[str, int] = {
    "vlmgate": 0, "vlmgate.records": 0, "vlmgate.errors": 0, "vlmgate.cases": 0, "vlmgate.seeding": 0,
    "vlmgate.registry": 0, "vlmgate.tomlfile": 0, "vlmgate.progress": 0, "vlmgate.interleaving": 0,
    "vlmgate.perturbations": 1, "vlmgate.models": 1, "vlmgate.benchmarks": 1, "vlmgate.prompts": 1,
    "vlmgate.render": 1, "vlmgate.modalities": 1, "vlmgate.fonts": 1, "vlmgate.fixture_paths": 1,
    "vlmgate.placement": 1, "vlmgate.cache": 1, "vlmgate.claims": 1, "vlmgate.dispatch": 1, "vlmgate.batches": 1,
    "vlmgate.remote_model": 1, "vlmgate.observations": 1,
    "vlmgate.engine": 2, "vlmgate.ray_backend": 2,
    "vlmgate.metrics": 3,
    "vlmgate.suites": 4, "vlmgate.search": 4, "vlmgate.selection": 4,
    "vlmgate.thresholds": 5, "vlmgate.sensitivity": 5, "vlmgate.decision": 5,
    "vlmgate.settings": 6, "vlmgate.options": 6, "vlmgate.outputs": 6, "vlmgate.session": 6,
    "vlmgate.progress_display": 6, "vlmgate.shards": 6,
    "vlmgate.report": 7,
    "vlmgate.plugin": 8, "vlmgate.gate": 8, "vlmgate.stash": 8, "vlmgate.cli": 8, "vlmgate.testing": 8,
    "vlmgate.live_output": 8, "vlmgate.api": 8,
}
NAMES = ("core", "inputs", "engine", "metrics", "suites", "judgement", "run", "outputs", "entry")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[prefix]


def imports(path: Path) -> set[str]:
    """Every ``vlmgate`` module ``path`` imports, at any depth (functions, TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "vlmgate")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "vlmgate":
                continue
            for alias in node.names:  # `from vlmgate import stash` names a module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists()
                          or (PACKAGE.parent / Path(*candidate.split("."))).is_dir() else base)
    found.discard(module_name(path))
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_layer():
    """A new module is placed deliberately: none falls back to the package's own layer."""
    unplaced = [module for module in graph() if module != "vlmgate"
                and max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len) == "vlmgate"]
    assert unplaced == [], f"add these modules to LAYERS: {unplaced}"


def test_nothing_imports_upwards():
    upward = sorted(
        f"{module} ({NAMES[layer(module)]}) imports {target} ({NAMES[layer(target)]})"
        for module, targets in graph().items() for target in targets if layer(target) > layer(module)
    )
    assert upward == [], "\n".join(upward)


def test_the_import_graph_has_no_circle():
    edges = graph()
    # Tarjan would name every strongly connected component; a depth-first search that
    # reports the first circle it walks into is enough to fail with a readable path.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges.get(module, ())):
            if target not in edges:
                continue
            if state.get(target) == 1:
                return [*stack[stack.index(target):], target]
            if target not in state and (circle := visit(target)):
                return circle
        state[module] = 2
        stack.pop()
        return None

    for module in sorted(edges):
        if module not in state and (circle := visit(module)):
            pytest.fail("import circle: " + " -> ".join(circle))


def test_the_plugin_module_imports_only_pytest_and_the_standard_library_at_module_level():
    """``vlmgate.plugin`` loads for every pytest session: torch, PIL or numpy must wait for a gate."""
    import sys

    tree = ast.parse((PACKAGE / "plugin.py").read_text(encoding="utf-8"))
    top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    top |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    allowed = {"__future__", "pytest", "vlmgate", *sys.stdlib_module_names}
    assert top <= allowed, top - allowed
