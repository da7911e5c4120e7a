"""Fixtures shared by the project's tests.

Heavy imports (torch, transformers) happen inside the fixtures, so test files that do
not use a model do not pay for them at collection time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

#: The marker of tests against real outside systems: a local Ray cluster, a vLLM server, a
#: browser. They take minutes, so the test command (README) leaves them out and CI runs them
#: as a second step, ``pytest tests -n 2 --integration`` (``.ci/run``): each half runs once.
INTEGRATION = "integration"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--integration", action="store_true", default=False,
                     help="run the integration tests (marker 'integration': Ray, a vLLM server, a browser) "
                          "instead of the others")


def pytest_configure(config: pytest.Config) -> None:
    """A FutureWarning is an error in the project's tests: a deprecated call of a dependency
    fails here (and in ``make upgrade-check``) before the release that removes it breaks users."""
    config.addinivalue_line("filterwarnings", "error::FutureWarning")
    config.addinivalue_line("markers", f"{INTEGRATION}: runs against a real outside system; only with --integration")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``--integration`` only the integration tests, else all the others (see ``INTEGRATION``)."""
    wanted = config.getoption("--integration")
    kept = [item for item in items if (item.get_closest_marker(INTEGRATION) is not None) == wanted]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


#: C extensions a test may import while a ``pytester`` is active (``_blind_copy`` loading a
#: checkpoint with safetensors, a plugin run importing scipy). ``pytester`` snapshots
#: ``sys.modules`` when it is set up and restores the snapshot at teardown, which drops a
#: module first imported during the test; the next import loads its extension a second time
#: in the same process, and the interpreter later crashes in garbage collection. Whether a
#: module was already imported depends on which tests ran before in that process (an xdist
#: worker's share), so they are imported before every snapshot instead. httpx and httpcore
#: are pure Python but hold the same hazard in another form: a second copy of httpcore raises
#: exception classes that the first copy of httpx no longer recognises (and so no longer maps
#: to ``httpx.TransportError``), which turned "server down" into a traceback.
LOAD_ONCE = ("numpy", "scipy.stats", "PIL.Image", "torch", "safetensors.torch", "tokenizers",
             "httpcore", "httpx")


@pytest.fixture
def _extensions_loaded_before_the_snapshot() -> None:
    import importlib

    for name in LOAD_ONCE:
        importlib.import_module(name)


@pytest.fixture
def pytester(_extensions_loaded_before_the_snapshot: None, pytester: pytest.Pytester) -> pytest.Pytester:
    """pytest's ``pytester``, set up after ``LOAD_ONCE`` is imported (see there)."""
    return pytester


@pytest.fixture(scope="session")
def tiny_llava_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved random-weight tiny LLaVA folder (safetensors, config, processor, tokenizer).

    Built once per session with seed 0; tests must not modify it (copy it first).
    """
    from vlmgate.testing.tiny import build_tiny_llava, save_checkpoint

    from support import TINY_CORPUS

    model, processor = build_tiny_llava(TINY_CORPUS, image_size=64, patch_size=16, seed=0)
    return save_checkpoint(model, processor, tmp_path_factory.mktemp("tiny-llava") / "checkpoint")


@pytest.fixture(scope="session")
def ray_cluster() -> dict[str, str]:
    """A private Ray instance with two CPU slots on 127.0.0.1, one per test session (per xdist
    worker), shut down at its end. Yields the environment a pytest run needs to join it
    (``RAY_ADDRESS``, and the token file Ray wrote under the real home, which pytester's
    runs do not see), so that the runs a test starts share it instead of starting their own."""
    from vlmgate.ray_backend import connect

    started = connect(num_cpus=2)  # imports ray (the test extra installs it) bound to the loopback
    import ray

    environ = {"RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    token = Path.home() / ".ray" / "auth_token"
    if token.is_file():
        environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    yield environ
    if started:
        ray.shutdown()


@pytest.fixture
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven 64-px images of random pixels: six with 4-option questions, one with a yes/no item, as JSONL.

    Every item has an image of its own, so the 7 items are 7 independent images (items that
    share an image are one cluster: ``vlmgate.benchmarks.image_groups``)."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("bench") / "bench7"  # the folder names the benchmark's cases: jsonl_bench7
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    colours = ["red", "green", "blue", "yellow"]
    rows = []
    for i in range(6):
        pixels = rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"s{i}.png")
        rows.append({"id": f"s{i}", "image": f"images/s{i}.png", "question": "What colour is the shape?",
                     "options": colours, "answer": colours[i % 4], "meta": {"type": "colour"}})
    Image.fromarray(rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)).save(root / "images" / "p0.png")
    rows.append({"id": "p0", "image": "images/p0.png", "question": "Is there a red circle in the image?",
                 "options": ["Yes", "No"], "answer": "Yes", "kind": "yesno"})
    path = root / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def suite_dir(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester folder holding the flip-rate suite and ``limits.toml`` that judges nothing.

    ``limits.toml`` records ifr and iv without gating them (``gated = false``), so every case
    reads RECORDED: for tests of the gate's mechanics (collection, properties, records). A test
    that needs a verdict writes its own limits. Modules that gate other suites define their
    own ``suite_dir``, which takes precedence.
    """
    from support import FLIP_TEST, RECORD_ONLY

    pytester.makepyfile(test_flip_rate=FLIP_TEST)
    pytester.makefile(".toml", limits=RECORD_ONLY)
    return pytester
