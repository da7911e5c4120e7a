"""The minimal-failure search without a real model: strategies, minimality, budget, store.

A fake model whose answer flips exactly when a rotated image has grown past the width of
a known angle makes minimality checkable to the level: the search must report that angle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from PIL import Image

from vlmgate.engine import Engine
from vlmgate.errors import ConfigError
from vlmgate.perturbations.base import family_names, get_family
from vlmgate.records import Sample
from vlmgate.search import strategies
from vlmgate.search.counterexamples import CounterexampleStore, render
from vlmgate.search.instance import SearchInstance
from vlmgate.search.minimal import SearchConfig, search_minimal_failure

from support import ListBenchmark

SIZE = 200
FLIP_DEGREES = 7  # the fake model changes its answer from this rotation on


def rotated_width(degrees: int) -> int:
    image = Image.new("RGB", (SIZE, SIZE), "white")
    return get_family("rotation").apply(image, get_family("rotation").at_level(degrees), np.random.default_rng(0)).width


@dataclass
class WidthModel:
    """Answers A, or B once the image is at least ``flip_width`` wide (only for ``flip_ids``' images)."""

    flip_width: int
    spec: str = "fake:width"
    fingerprint: str = "fake"

    def score(self, requests):
        rows = []
        for request in requests:
            scores = np.zeros(len(request.continuations))
            centre = (request.image.width // 2, request.image.height // 2)
            flipped = request.image.width >= self.flip_width and request.image.getpixel(centre) != (0, 0, 0)
            scores[1 if flipped else 0] = 1.0
            rows.append(scores)
        return rows


def benchmark(robust_first: bool = True) -> ListBenchmark:
    """Samples whose image's corner is black never flip; the others flip from FLIP_DEGREES on."""
    colours = ["black", "gray", "gray"] if robust_first else ["gray", "gray"]
    return ListBenchmark(tuple(
        Sample(f"s{i}", Image.new("RGB", (SIZE, SIZE), colour), "What colour is the shape?",
               ("red", "green", "blue", "yellow"), answer=0)
        for i, colour in enumerate(colours)), spec="fake:bench", fingerprint="fake")


def engine(bench: ListBenchmark | None = None) -> Engine:
    return Engine(WidthModel(rotated_width(FLIP_DEGREES)), bench or benchmark())


def test_level_strategies_shrink_toward_the_mildest_change():
    from hypothesis import find

    assert find(strategies.levels("rotation", tolerance=30), lambda level: level >= 5) == 5
    variant = find(strategies.variants("rotation"), lambda v: abs(v.param_dict["degrees"]) >= 3)
    assert variant.param_dict == {"degrees": 3}  # the default sign, the smallest level
    overlay = find(strategies.text_overlays(labels=("B", "C")), lambda v: True)
    assert overlay.param_dict == {"level": 1, "label": "B"}  # centred, red: no placement params


@pytest.mark.parametrize("name", [n for n in family_names()])
def test_every_family_has_a_strategy_that_shrinks_to_level_one(name):
    from hypothesis import find

    family = get_family(name)
    variant = find(strategies.variants(name, labels=("B",)), lambda v: True)
    assert variant.intensity == pytest.approx(family.intensity(1))  # the mildest non-identity change


def test_overlay_position_and_colour_move_and_recolour_the_text():
    overlay = get_family("textoverlay")
    image = Image.new("RGB", (200, 200), "gray")
    rng = np.random.default_rng(0)
    centred = np.asarray(overlay.apply(image, overlay.at_level(4, label="B"), rng))
    left = np.asarray(overlay.apply(image, overlay.at_level(4, label="B", x=-4, colour="blue"), rng))
    white = lambda pixels: np.argwhere((pixels == 255).all(axis=2))[:, 1]  # noqa: E731  columns of the box
    assert white(left).min() == 0 and white(centred).min() > 0
    assert (left[..., 2] > 200).any() and not ((left[..., 0] > 200) & (left[..., 1] < 50)).any()
    assert overlay.at_level(4, label="B").param_dict == {"label": "B", "level": 4}  # defaults not stored


@settings(max_examples=30)
@given(variant=strategies.text_overlays("textoverlay_random"))
def test_text_overlay_strategy_draws_valid_variants(variant):
    params = variant.param_dict
    assert 1 <= params["level"] <= get_family("textoverlay_random").max_level
    image = get_family("textoverlay_random").apply(Image.new("RGB", (96, 96), "gray"), variant,
                                                   np.random.default_rng(0))
    assert image.size == (96, 96)


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"unknown family 'rotaton' \(did you mean 'rotation'\?\)"):
        strategies.variants("rotaton")


def test_search_reports_the_exact_minimal_level_and_saves_images(tmp_path):
    outcome = search_minimal_failure(engine(), "rotation", SearchConfig(image_dir=tmp_path))
    failure = outcome.failure
    assert outcome.status == "found" and failure is not None
    assert failure.instance.level == FLIP_DEGREES and failure.instance.sample_id != "s0"
    assert failure.milder is not None and failure.milder.prediction == failure.clean.prediction
    assert (failure.clean_label, failure.perturbed_label) == ("A", "B")
    assert all(Path(p).is_file() for p in failure.images)
    assert outcome.cost.searched <= outcome.cost.budget
    assert outcome.metric().value == 1.0 and outcome.metric().details["instance"]["level"] == FLIP_DEGREES


def test_search_is_bounded_by_the_budget_and_memoised():
    e = engine()
    outcome = search_minimal_failure(e, "rotation", SearchConfig(budget=3))
    assert outcome.cost.searched <= 3
    # every model call is accounted for: clean pass + default grid + searched + certificate
    grid = sum(len(v) for v in e.variant_grid("rotation").values())
    assert outcome.cost.model_calls <= len(e.samples()) + grid + outcome.cost.searched + outcome.cost.verified
    assert outcome.cost.grid_failing == 2  # s1, s2 flip at 30 degrees; s0 never does


def test_no_failure_below_tolerance_passes():
    robust = ListBenchmark((benchmark().items[0],), spec="fake:bench", fingerprint="fake")
    outcome = search_minimal_failure(Engine(WidthModel(10_000), robust), "translation", SearchConfig(budget=20))
    assert outcome.failure is None and outcome.metric().value == 0.0 and outcome.cost.exhausted


def test_stored_counterexample_replays_first_and_a_cleared_store_searches(tmp_path):
    store_path = tmp_path / "counterexamples.toml"
    first = search_minimal_failure(engine(), "rotation", SearchConfig(store=CounterexampleStore.load(store_path)))
    assert first.recorded and "level = 7" in store_path.read_text()
    replay = search_minimal_failure(engine(), "rotation", SearchConfig(store=CounterexampleStore.load(store_path)))
    assert replay.status == "replayed" and replay.cost.examples == 0 and replay.cost.searched == 0
    assert replay.cost.model_calls <= 3  # clean + stored input + one level milder: no clean pass, no grid
    assert replay.failure.instance == first.failure.instance
    store_path.unlink()
    again = search_minimal_failure(engine(), "rotation", SearchConfig(store=CounterexampleStore.load(store_path)))
    assert again.status == "found" and again.cost.examples > 0


def test_a_fixed_counterexample_is_reported_fixed_and_the_search_runs(tmp_path):
    store_path = tmp_path / "store.toml"
    fixed = SearchInstance("s0", 3, (("sign", 1),))  # s0 never flips
    from vlmgate.search.counterexamples import Counterexample

    store_path.write_text(render([Counterexample("fake:old", "fake:bench", "rotation", fixed)]))
    outcome = search_minimal_failure(engine(), "rotation", SearchConfig(store=CounterexampleStore.load(store_path)))
    assert outcome.status == "found" and [c.instance for c in outcome.fixed] == [fixed]


@pytest.mark.parametrize("text, message", [
    ("version = 1\n[[counterexample]]\nmodel = 'm'\n",
     r"store.toml: \[\[counterexample\]\] #1: missing key\(s\) benchmark"),
    ("[[counterexample]]\nmodel='m'\nbenchmark='b'\nfamily='rotaton'\nsample='s'\nlevel=2\n",
     r"key 'family': unknown family 'rotaton' \(did you mean 'rotation'\?\)"),
    ("[[counterexample]]\nmodel='m'\nbenchmark='b'\nfamily='rotation'\nsample='s'\nlevel='2'\n",
     r"key 'level': '2' is not an integer; write level as an integer, e.g. level = 3"),
    ("[[counterexample]\n", r"store.toml: not valid TOML .*fix the syntax at the line and column given"),
    ("versio = 1\n", r"top level: unknown key 'versio' \(did you mean 'version'\?\)"),
    ("version = 1\ncounterexample = [1, 2]\n",
     r"store.toml: \[\[counterexample\]\] #1: 1 is not a table; write each entry as a \[\[counterexample\]\] table"),
    ("[[counterexample]]\nmodel='m'\nbenchmark='b'\nfamily='rotation'\nsample='s'\nlevel=2\nchoices=3\n",
     r"#1 key 'choices': 3 is not a table; write choices as a table, e.g. choices = \{ sign = 1 \}"),
    ("[[counterexample]]\nmodel='m'\nbenchmark=''\nfamily='rotation'\nsample='s'\nlevel=2\n",
     r"#1 key 'benchmark': the empty string names nothing; write e.g. benchmark = \"bundled:shapes\""),
    ("[[counterexample]]\nmodel='m'\nbenchmark='b'\nfamily='rotation'\nsample='s'\nlevel=2\nintensity=nan\n",
     r"#1 key 'intensity': nan is not a finite number; write intensity as a finite number"),
])
def test_malformed_store_names_file_key_and_fix(tmp_path, text, message):
    path = tmp_path / "store.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        CounterexampleStore.load(path, ["rotation", "translation"])


def test_an_unreadable_store_is_one_line_naming_the_file(tmp_path):
    latin1 = tmp_path / "store.toml"
    latin1.write_bytes(b"# caf\xe9\nversion = 1\n")
    with pytest.raises(ConfigError, match=r"store.toml: not UTF-8 \(byte 0xe9 at offset 5\); save it as UTF-8"):
        CounterexampleStore.load(latin1, ["rotation"])
    folder = tmp_path / "counterexamples.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"counterexamples.toml is a directory, not a counterexample store; "
                                          r"pass the counterexample store itself"):
        CounterexampleStore.load(folder, ["rotation"])


@pytest.fixture
def ci_profile():
    """The repo conftest's ``ci`` profile (derandomized), restoring the active one after."""
    active = settings._current_profile
    settings.load_profile("ci")
    yield
    settings.load_profile(active)


def test_ci_profile_search_is_deterministic(ci_profile):
    runs = [search_minimal_failure(engine(benchmark(False)), "textoverlay_random", SearchConfig(budget=30))
            for _ in range(2)]
    assert runs[0].failure == runs[1].failure and runs[0].cost == runs[1].cost


def test_a_stored_level_beyond_the_family_is_a_clear_error(tmp_path):
    from vlmgate.search.counterexamples import Counterexample

    path = tmp_path / "store.toml"
    path.write_text(render([Counterexample("m", "fake:bench", "rotation", SearchInstance("s1", 500, (("sign", 1),)))]))
    with pytest.raises(ConfigError,
                       match=r"store.toml: counterexample rotation level 500 .*outside \[0, 90\].*delete the entry"):
        search_minimal_failure(engine(), "rotation", SearchConfig(store=CounterexampleStore.load(path)))
