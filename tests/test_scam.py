"""A paired typographic-attack set (``scam:``): each photo with its word and without, judged
against each other. The files are written here with pyarrow and PIL, in the published layout."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vlmgate.benchmarks.base import benchmark_twins, load_benchmark
from vlmgate.benchmarks.scam import QUESTION, _object_first
from vlmgate.cache import sample_digest
from vlmgate.errors import DataError
from vlmgate.perturbations.base import VariantContext, get_family

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
ITEMS = [("s01", "apple", "dog"), ("s02", "mug", "taxi"), ("s03", "shoe", "piano"), ("s04", "lamp", "cat")]


def _photo(item: int, word: str | None, synthetic: bool = False) -> bytes:
    """A 48 px "scene": a coloured object and a note, with ``word`` written on it when given."""
    rng = np.random.default_rng(item)
    image = Image.fromarray(rng.integers(0, 255, size=(48, 48, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 28, 44, 44), fill=(250, 240, 120))  # the note
    if word:
        draw.text((6, 30), word, fill=(0, 0, 0) if not synthetic else (40, 40, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _table(rows):
    return pa.table({
        "id": pa.array([r[0] for r in rows]), "type": pa.array([r[1] for r in rows]),
        "object_label": pa.array([r[2] for r in rows]), "attack_word": pa.array([r[3] for r in rows]),
        "image": pa.array([{"bytes": r[4], "path": None} for r in rows], type=IMAGE_TYPE),
    })


def _rows(synthetic: bool = True):
    rows = []
    for n, (item, thing, word) in enumerate(ITEMS):
        rows.append((item, "NoSCAM", thing, word, _photo(n, None)))
        rows.append((item, "SCAM", thing, word, _photo(n, word)))
        if synthetic and n % 2 == 0:
            rows.append((item, "SynthSCAM", thing, word, _photo(n, word, synthetic=True)))
    return rows


@pytest.fixture
def scam_file(tmp_path):
    path = tmp_path / "scam" / "test.parquet"
    path.parent.mkdir()
    pq.write_table(_table(_rows()), path)
    return path


def test_an_item_is_its_no_word_photo_with_the_attack_photo_as_its_twin(scam_file):
    bench = load_benchmark(f"scam:{scam_file}")
    samples = list(bench.samples())
    assert [s.id for s in samples] == [item for item, _, _ in ITEMS]
    for n, (sample, (item, thing, word)) in enumerate(zip(samples, ITEMS)):
        assert sample.question == QUESTION and set(sample.options) == {thing, word}
        assert sample.options[sample.answer] == thing
        assert sample.options[0] == (thing if _object_first(item) else word)
        assert np.array_equal(np.asarray(sample.image), np.asarray(Image.open(io.BytesIO(_photo(n, None)))))
        assert np.array_equal(np.asarray(sample.twin("attack")), np.asarray(Image.open(io.BytesIO(_photo(n, word)))))
        assert ("synthetic" in dict(sample.twins)) == (n % 2 == 0)
        assert sample.meta_dict == {"attack_word": word, "object_label": thing}
    assert {_object_first(item) for item, _, _ in ITEMS} == {True, False}  # both orders occur
    assert benchmark_twins(f"scam:{scam_file}") == ("attack",) and benchmark_twins("bundled:shapes") == ()


def test_the_family_shows_the_attack_photo_and_names_the_word(scam_file):
    family = get_family("scam")
    sample = next(iter(load_benchmark(f"scam:{scam_file}").samples()))
    (variant,) = family.variants(sample, VariantContext(None, np.random.default_rng(0)))
    assert sample.options[sample.labels.index(variant.param_dict["label"])] == "dog"  # the word's option
    shown = family.present(sample, variant, np.random.default_rng(0))
    assert shown.image is sample.twin("attack") and shown.options == sample.options
    retouched = sample.with_image(sample.image)
    other = type(sample)(**{**sample.__dict__, "twins": (("attack", sample.image),)})
    assert sample_digest(retouched) == sample_digest(sample) != sample_digest(other)  # the twin is content


@pytest.mark.parametrize(("rows", "message"), [
    (lambda r: [x for x in r if not (x[0] == "s02" and x[1] == "SCAM")], "item 's02' has no SCAM photo"),
    (lambda r: r + [r[0]], "item 's01' has a second NoSCAM photo"),
    (lambda r: [(x[0], x[1], "pear" if x[1] == "SCAM" and x[0] == "s03" else x[2], x[3], x[4]) for x in r],
     "item 's03': its photos disagree on the object and the word"),
    (lambda r: [(x[0], "Attack" if x[1] == "SCAM" else x[1], *x[2:]) for x in r],
     "form 'Attack' is not one of SCAM, NoSCAM, SynthSCAM"),
])
def test_an_incomplete_or_inconsistent_pair_names_the_item(tmp_path, rows, message):
    path = tmp_path / "bad.parquet"
    pq.write_table(_table(rows(_rows(synthetic=False))), path)
    with pytest.raises(DataError, match=message):
        load_benchmark(f"scam:{path}")


def test_the_attack_is_gated_against_its_twin_and_left_out_where_there_is_none(suite_dir, tiny_llava_checkpoint,
                                                                               manifest, scam_file):
    from support import gate_args

    args = gate_args(tiny_llava_checkpoint, manifest, "-p", "no:xdist")
    listed = suite_dir.runpytest_subprocess(*args, "--collect-only", "-q")
    assert not any("-scam]" in line for line in listed.outlines)
    listed.stdout.fnmatch_lines(["*1 case of hf_checkpoint x jsonl_bench7: the scam family shows each item's "
                                 "attack photo*holds none*"])
    scam = [a if not a.startswith("--vlmgate-benchmark") else f"--vlmgate-benchmark=scam:{scam_file}" for a in args]
    ran = suite_dir.runpytest_subprocess(*scam, "-m", "scam", "--vlmgate-report=reports")
    record = json.loads((suite_dir.path / "reports" / "run.json").read_text())
    (case,) = record["cases"]
    metrics = {m["name"]: m for m in case["metrics"]}
    assert case["key"]["family"] == "scam" and metrics["ifr"]["n"] == len(ITEMS), ran.stdout.str()
    # two options: a flip away from the object is a landing on the word
    assert metrics["follow_rate"]["value"] == metrics["ifr"]["value"]
