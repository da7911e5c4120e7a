"""Items of several pictures through the engine's layers: what a family does to each picture,
which items cluster together, what the cache key covers, and how a prompt places the pictures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vlmgate.batches import shown
from vlmgate.benchmarks.image_groups import group_samples
from vlmgate.cache import sample_digest
from vlmgate.interleaving import image_order, interleaved
from vlmgate.perturbations.base import chosen_image, get_family
from vlmgate.records import Sample, Variant


def _picture(value: int, size: int = 64) -> Image.Image:
    rng = np.random.default_rng(value)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def _item(item_id: str, *pictures: Image.Image, question: str = "<image 1> or <image 2>: which is brighter?"
          ) -> Sample:
    first, *more = pictures
    return Sample(item_id, first, question, ("first", "second"), 0, more_images=tuple(more))


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and a.convert("RGB").tobytes() == b.convert("RGB").tobytes()


def test_a_family_perturbs_each_picture_with_a_draw_of_its_own():
    """``each``: every picture changes, and a picture's draw does not depend on the others: the
    same first picture beside another second one is perturbed identically."""
    noise = get_family("gaussian_noise")
    assert noise.several_images == "each"
    variant = noise.at_level(3)
    a, b, c = _picture(1), _picture(2), _picture(3)
    with_b = shown(_item("x", a, b), variant, seed=0)
    with_c = shown(_item("x", a, c), variant, seed=0)
    assert not _same(with_b.image, a) and not _same(with_b.more_images[0], b)
    assert _same(with_b.image, with_c.image)
    # Two pictures alike get two draws, not one noise pattern copied.
    twice = shown(_item("x", a, a), variant, seed=0)
    assert not _same(twice.image, twice.more_images[0])
    # Seeded: the same run seed shows the same pixels; another seed other ones.
    assert _same(shown(_item("x", a, b), variant, seed=0).more_images[0], with_b.more_images[0])
    assert not _same(shown(_item("x", a, b), variant, seed=1).more_images[0], with_b.more_images[0])


def test_an_overlay_and_its_controls_write_on_one_picture_the_same_for_every_variant():
    pictures = (_picture(4), _picture(5), _picture(6))
    items = [_item(f"item-{k}", *pictures, question="Which picture is brightest?") for k in range(12)]
    chosen = {chosen_image(item) for item in items}
    assert len(chosen) > 1  # chosen per item, not always the first
    for name in ("textoverlay", "textoverlay_empty", "textoverlay_random"):
        family = get_family(name)
        assert family.several_images == "one"
        for item in items[:4]:
            view = shown(item, family.at_level(4, label="B"), seed=0)
            changed = [not _same(before, after) for before, after in zip(item.images, view.images)]
            assert changed == [k == chosen_image(item) for k in range(3)], name


def test_a_prompt_side_family_leaves_every_picture_alone():
    item = _item("x", _picture(7), _picture(8))
    view = shown(item, Variant.of("option_order", 0.5, shift=1), seed=0)
    assert all(before is after for before, after in zip(item.images, view.images))


def test_items_sharing_any_picture_are_one_cluster_named_by_the_first():
    p = [_picture(k) for k in range(10, 16)]
    items = [_item("a", p[0], p[1]), _item("b", p[2], p[3]), _item("c", p[4], p[1]),  # c shares a's second
             _item("d", p[3], p[5]),  # d shares b's second picture as its first
             _item("e", p[5], p[5])]  # and e shares d's: a chain b - d - e
    groups = group_samples(items)
    assert groups.cluster_of == {"a": "a", "b": "b", "c": "a", "d": "b", "e": "b"}
    assert groups.summary() == {"rows": 5, "images": 2, "rows_sharing": 5, "declared": 0}
    # A chain joined late keeps the earliest sample's name.
    late = group_samples([_item("x", p[0], p[2]), _item("y", p[3], p[4]), _item("z", p[2], p[4])])
    assert late.cluster_of == {"x": "x", "y": "x", "z": "x"}


def test_the_cache_key_covers_every_picture_in_order():
    a, b, c = _picture(20), _picture(21), _picture(22)
    base = sample_digest(_item("x", a, b))
    assert sample_digest(_item("x", a, c)) != base
    assert sample_digest(_item("x", b, a)) != base
    assert sample_digest(_item("x", a, b, c)) != base
    # A one-picture item keys as it always has: its digest does not depend on the new field.
    single = Sample("x", a, "Q?", ("first", "second"), 0)
    assert sample_digest(single) == sample_digest(_item("x", a, question="Q?"))


@pytest.mark.parametrize(("text", "n", "pieces"), [
    ("Q?", 1, (0, "Q?")),  # one picture: first, text untouched
    ("see <image 1>", 1, (0, "see <image 1>")),  # one picture is never split
    ("Q?", 3, (0, 1, 2, "Q?")),  # unplaced pictures lead, in order
    ("A <image 2> B <image 1>.", 2, ("A ", 1, " B ", 0, ".")),
    ("<image 1> then <image 1> again", 2, (1, 0, " then [image 1] again")),  # shown once, at its first place
])
def test_a_prompt_places_pictures_where_it_names_them(text, n, pieces):
    assert interleaved(text, n) == pieces
    assert image_order(text, n) == tuple(p for p in pieces if isinstance(p, int))


def test_a_marker_beyond_the_items_pictures_is_an_error():
    with pytest.raises(ValueError, match=r"names <image 3> but the item has 2 images"):
        interleaved("<image 3>", 2)


def test_a_picture_named_as_an_option_is_shown_in_the_prompt_and_named_in_the_reply():
    from vlmgate.prompts import option_continuations, prompt_for

    item = Sample("x", _picture(30), "Which painting matches <image 1>?", ("<image 2>", "<image 3>"), 0,
                  more_images=(_picture(31), _picture(32)))
    pieces = interleaved(prompt_for(item), 3)
    assert [p for p in pieces if isinstance(p, int)] == [0, 1, 2]  # each at its place: question, option A, B
    assert option_continuations(item) == ("A. [image 2]", "B. [image 3]")


def test_the_flip_rate_suite_gates_a_two_picture_benchmark_and_the_rest_leave_it_out(pytester):
    """``bundled:shapes-pairs`` on ``bundled:shapes-v1`` (a LLaVA checkpoint: it takes several
    pictures): the flip-rate cases run and record what each family did to the pictures; the
    suites that read one picture are no cases, each with its reason, never a skip."""
    import json
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    for name in ("test_flip_rate", "test_drift", "test_ras"):
        pytester.makepyfile(**{name: (repo / "robustness_tests" / f"{name}.py").read_text()})
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--vlmgate-model=bundled:shapes-v1", "--vlmgate-benchmark=bundled:shapes-pairs",
        "--vlmgate-limit=10", "--vlmgate-report=out", "-m", "rotation or textoverlay")
    result.stdout.fnmatch_lines(["*vlmgate: combinations left out*",
                                 "*test_drift*bundled_shapes-pairs: the drift suite judges one picture per item*",
                                 "*test_ras*bundled_shapes-pairs: the ras suite judges one picture per item*"])
    assert "skipped" not in result.parseoutcomes()  # nothing was skipped
    record = json.loads((pytester.path / "out" / "run.json").read_text())
    policies = {case["key"]["family"]: {m["details"].get("several_images") for m in case["metrics"]}
                for case in record["cases"]}
    assert policies["rotation"] == {"each"} and policies["textoverlay"] == {"one"}
    assert set(policies) == {"rotation", "textoverlay", "textoverlay_empty", "textoverlay_random"}


def test_a_records_example_context_shows_several_pictures_only_where_the_adapter_can_render_them():
    """The run record's example context: an adapter that renders one picture per prompt is
    never asked to render a two-picture prompt (it would show it wrongly); it says nothing."""
    from vlmgate.models.base import rendered_context

    class OnePicture:
        def render_context(self, prompt):
            return f"<image>{prompt}"

    class Several:
        def render_context(self, prompt, n_images=1):
            return "<image>" * n_images + prompt

    assert rendered_context(OnePicture(), "Q?") == "<image>Q?"
    assert rendered_context(OnePicture(), "Q?", 2) is None
    assert rendered_context(Several(), "Q?", 2) == "<image><image>Q?"
    assert rendered_context(object(), "Q?") is None
