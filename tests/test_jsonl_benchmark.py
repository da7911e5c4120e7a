"""The ``jsonl:`` manifest loader: valid rows, answers in every accepted form, clear errors."""

import json

import pytest
from PIL import Image

from vlmgate.benchmarks.base import MAX_SIDE, load_benchmark
from vlmgate.errors import DataError


def make_manifest(tmp_path, rows, images=("a.png",), size=(16, 12)):
    (tmp_path / "img").mkdir(exist_ok=True)
    for name in images:
        Image.new("RGB", size, (10, 20, 30)).save(tmp_path / "img" / name)
    path = tmp_path / "manifest.jsonl"
    path.write_text("\n".join(json.dumps(r) if not isinstance(r, str) else r for r in rows) + "\n")
    return path


def row(**over):
    base = {"id": "q1", "image": "img/a.png", "question": "What?", "options": ["red", "green", "blue"], "answer": "B"}
    base.update(over)
    return base


def test_loads_rows_lazily_with_answer_forms(tmp_path):
    path = make_manifest(tmp_path, [
        row(), row(id="q2", answer="blue"), row(id="q3", answer=0), row(id="q4", answer=None),
        row(id="q5", kind="yesno", options=["Yes", "No"], answer="no", meta={"type": "yesno"}),
    ])
    bench = load_benchmark(f"jsonl:{path}")
    samples = list(bench.samples())
    assert [s.answer for s in samples] == [1, 2, 0, None, 1]
    assert samples[4].labels == ("Yes", "No") and samples[4].meta_dict == {"type": "yesno"}
    assert samples[0].labels == ("A", "B", "C")
    assert samples[0].image.size == (16, 12) and samples[0].image.mode == "RGB"
    assert len(bench) == 5 and len(bench.fingerprint) == 64


def test_fingerprint_tracks_image_bytes(tmp_path):
    path = make_manifest(tmp_path, [row()])
    before = load_benchmark(f"jsonl:{path}").fingerprint
    Image.new("RGB", (16, 12), (10, 20, 31)).save(tmp_path / "img" / "a.png")
    assert load_benchmark(f"jsonl:{path}").fingerprint != before


def test_large_images_are_capped(tmp_path):
    path = make_manifest(tmp_path, [row()], size=(2048, 1000))
    sample = next(load_benchmark(f"jsonl:{path}").samples())
    assert sample.image.size == (MAX_SIDE, 500)


def test_missing_image_names_sample_and_path(tmp_path):
    path = make_manifest(tmp_path, [row(), row(id="q7", image="img/missing.png")])
    with pytest.raises(DataError) as info:
        load_benchmark(f"jsonl:{path}")
    message = str(info.value)
    assert "'q7'" in message and "missing.png" in message and f"{path}:2" in message


def test_corrupt_image_names_sample_and_file(tmp_path):
    path = make_manifest(tmp_path, [row()])
    (tmp_path / "img" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    bench = load_benchmark(f"jsonl:{path}")
    with pytest.raises(DataError, match=r"sample 'q1' at .*a\.png: the image cannot be decoded"):
        list(bench.samples())


@pytest.mark.parametrize("bad,needle", [
    ("{not json", "not valid JSON"),
    (row(id="q1"), "repeats line 1"),
    ({"id": "x", "image": "img/a.png"}, "missing key(s) question, options"),
    (row(id="x", options=["only"]), "at least two strings"),
    (row(id="x", answer="E"), "neither an option letter"),
    (row(id="x", answer=7), "outside 0..2"),
    (row(id="x", kind="open"), "kind 'open'"),
])
def test_malformed_rows_name_line(tmp_path, bad, needle):
    path = make_manifest(tmp_path, [row(), bad])
    with pytest.raises(DataError) as info:
        load_benchmark(f"jsonl:{path}")
    assert needle in str(info.value) and f"{path}:2" in str(info.value)


def test_missing_manifest_and_bad_spec(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_benchmark(f"jsonl:{tmp_path / 'none.jsonl'}")
    with pytest.raises(DataError, match="has no scheme"):
        load_benchmark("manifest.jsonl")
    with pytest.raises(DataError, match="unknown benchmark 'jsnl'"):
        load_benchmark("jsnl:x")


# -- decoding what the manifest points at -----------------------------------------------------


def test_16_bit_grey_png_keeps_its_grey_levels(tmp_path):
    """PIL's convert("RGB") clips 16-bit values to white; the loader keeps the high byte."""
    import numpy as np

    path = make_manifest(tmp_path, [row()])
    Image.fromarray(np.array([[0, 511, 32768, 65535]], dtype=np.uint16)).save(tmp_path / "img" / "a.png")
    sample = next(load_benchmark(f"jsonl:{path}").samples())
    assert [sample.image.getpixel((x, 0)) for x in range(4)] == [(0, 0, 0), (1, 1, 1), (128, 128, 128),
                                                                  (255, 255, 255)]


def test_transparent_pixel_is_white_not_its_hidden_colour(tmp_path):
    path = make_manifest(tmp_path, [row()])
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255])
    image.putpixel((1, 0), 1)
    image.save(tmp_path / "img" / "a.png", transparency=0)
    sample = next(load_benchmark(f"jsonl:{path}").samples())
    assert sample.image.getpixel((0, 0)) == (255, 255, 255) and sample.image.getpixel((1, 0)) == (0, 0, 255)


def test_image_beyond_the_pixel_budget_names_sample_size_budget_and_fix(tmp_path):
    from vlmgate.benchmarks.base import BenchmarkOptions

    path = make_manifest(tmp_path, [row()], size=(300, 200))
    bench = load_benchmark(f"jsonl:{path}", BenchmarkOptions(max_pixels=50_000))
    with pytest.raises(DataError) as info:
        list(bench.samples())
    message = str(info.value)
    for needle in ("sample 'q1'", "a.png", "300x200", "60,000 pixels", "budget of 50,000",
                   "--vlmgate-max-pixels", "downscale"):
        assert needle in message, message
    assert next(load_benchmark(f"jsonl:{path}", BenchmarkOptions(max_pixels=60_000)).samples()).image.size == (300, 200)


def test_large_images_are_decoded_once_across_passes(tmp_path, monkeypatch):
    """The engine iterates samples once per pass; a source above the cap is decoded only on the first."""
    import PIL.Image

    path = make_manifest(tmp_path, [row(), row(id="q2", image="img/b.png")], images=("a.png",))
    Image.new("RGB", (2400, 900), (40, 50, 60)).save(tmp_path / "img" / "b.png")
    opened: list[str] = []
    real_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda fp, *a, **k: opened.append(str(fp)) or real_open(fp, *a, **k))
    bench = load_benchmark(f"jsonl:{path}")
    first, second = list(bench.samples()), list(bench.samples())
    big = str(tmp_path / "img" / "b.png")
    assert opened.count(big) == 1 and opened.count(str(tmp_path / "img" / "a.png")) == 2
    assert first[1].image.size == second[1].image.size == (MAX_SIDE, 384)
    assert first[1].image.tobytes() == second[1].image.tobytes()


# -- malformed manifests ----------------------------------------------------------------------


def test_non_utf8_manifest_names_file_line_and_byte(tmp_path):
    path = make_manifest(tmp_path, [row()])
    good = path.read_bytes()
    path.write_bytes(good + json.dumps(row(id="q2", question="Qu'est-ce que c'est ?")).encode()
                     .replace(b"Qu", b"\xe9Qu") + b"\n")
    with pytest.raises(DataError) as info:
        load_benchmark(f"jsonl:{path}")
    message = str(info.value)
    offset = len(good) + json.dumps(row(id="q2", question="x")).index('"x"') + 1
    assert f"{path}:2" in message and f"byte {offset}" in message and "UTF-8" in message, message


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    path = make_manifest(tmp_path, [row()])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(load_benchmark(f"jsonl:{path}")) == 1


def test_manifest_path_that_is_a_directory(tmp_path):
    with pytest.raises(DataError, match=r"is a directory.*manifest\.jsonl"):
        load_benchmark(f"jsonl:{tmp_path}")


def test_image_path_that_is_a_directory(tmp_path):
    path = make_manifest(tmp_path, [row(image="img")])
    with pytest.raises(DataError, match=rf"{path}:1: image of sample 'q1' at .*img is a directory"):
        load_benchmark(f"jsonl:{path}")


@pytest.mark.parametrize("bad,needle", [
    (row(id="x", question=None), "question must be a non-empty string"),
    (row(id="x", question=3), "question must be a non-empty string"),
    (row(id="x", question="  "), "question must be a non-empty string"),
    (row(id=None), "id must be a string or an integer"),
    (row(id="x", options=["red", "Red ", "blue"]), "option 'Red ' repeats option A"),
    (row(id="x", options=["red", ""]), "at least two strings, none empty"),
    (row(id="x", hint=["a"]), "hint must be a string"),
    (row(id="x", kind="yesno", options=["Yes", "No", "Maybe"], answer="Yes"), "exactly the options Yes and No"),
    (row(id="x", kind="yesno", options=["Yes", "Nope"], answer="Yes"), "exactly the options Yes and No"),
    (row(id="x", kind="yesno", options=["Yes", "yes"], answer="Yes"), "exactly the options Yes and No"),
    (row(id="x", options=["B", "A", "C"], answer="A"), "is option letter A and also the text of option B"),
])
def test_silently_wrong_rows_are_refused(tmp_path, bad, needle):
    path = make_manifest(tmp_path, [row(), bad])
    with pytest.raises(DataError) as info:
        load_benchmark(f"jsonl:{path}")
    assert needle in str(info.value) and f"{path}:2" in str(info.value), str(info.value)


def test_yesno_options_in_any_order_and_case_become_yes_no(tmp_path):
    """Yes/no samples always hold ("Yes", "No"), the words the prompt asks for; answers follow."""
    path = make_manifest(tmp_path, [
        row(id="a", kind="yesno", options=["No", "Yes"], answer="yes"),
        row(id="b", kind="yesno", options=["no", "YES"], answer=0),  # index 0 is "no" in this row
        row(id="c", kind="yesno", options=["No", "Yes"], answer=None),
    ])
    samples = list(load_benchmark(f"jsonl:{path}").samples())
    assert [s.options for s in samples] == [("Yes", "No")] * 3
    assert [s.answer for s in samples] == [0, 1, None]


def test_single_character_option_texts_are_answers(tmp_path):
    path = make_manifest(tmp_path, [row(options=["1", "2", "3"], answer="2"),
                                    row(id="q2", options=["A", "B"], answer="B")])
    assert [s.answer for s in load_benchmark(f"jsonl:{path}").samples()] == [1, 1]


def test_keys_outside_the_format_are_kept_as_metadata(tmp_path):
    path = make_manifest(tmp_path, [row(category="colour", meta={"type": "c"}), row(id="q2", category="count")])
    samples = list(load_benchmark(f"jsonl:{path}").samples())
    assert samples[0].meta_dict == {"category": "colour", "type": "c"}
    assert samples[1].meta_dict == {"category": "count"}


def test_a_key_given_twice_with_different_values_names_it_and_the_line(tmp_path):
    path = make_manifest(tmp_path, [row(category="colour", meta={"category": "count"})])
    with pytest.raises(DataError, match=r"manifest.jsonl:1 .*'category' given both"):
        list(load_benchmark(f"jsonl:{path}").samples())


def test_a_chosen_name_is_read_past_by_the_loader(tmp_path):
    path = make_manifest(tmp_path, [row()])
    named = load_benchmark(f"jsonl:{path}?name=pets")
    plain = load_benchmark(f"jsonl:{path}")
    assert [s.id for s in named.samples()] == ["q1"] and named.fingerprint == plain.fingerprint


def test_two_folders_manifests_get_different_case_ids_and_a_chosen_name_is_used(suite_dir, tiny_llava_checkpoint,
                                                                                 manifest):
    """Every folder benchmark's file is ``manifest.jsonl``: its folder names its cases, so two such
    benchmarks never share case ids (nor pair in ``vlmgate diff``)."""
    import shutil

    from support import gate_args

    for name in ("pets", "cars"):
        shutil.copytree(manifest.parent, suite_dir.path / name)
    args = gate_args(tiny_llava_checkpoint, suite_dir.path / "pets" / "manifest.jsonl",
                     f"--vlmgate-benchmark=jsonl:{suite_dir.path / 'cars' / 'manifest.jsonl'}", "--collect-only", "-q")
    collected = suite_dir.runpytest_subprocess(*args)
    ids = [line for line in collected.stdout.lines if "test_flip_rate[" in line]
    assert any("-jsonl_pets-rotation]" in i for i in ids) and any("-jsonl_cars-rotation]" in i for i in ids)
    chosen = gate_args(tiny_llava_checkpoint, suite_dir.path / "pets" / "manifest.jsonl", "-k", "clean",
                       "-p", "no:xdist", "--vlmgate-report=reports")
    chosen = [arg.replace("manifest.jsonl", "manifest.jsonl?name=pets-v3") if arg.startswith("--vlmgate-benchmark")
              else arg for arg in chosen]
    ran = suite_dir.runpytest_subprocess(*chosen)
    assert ran.ret == 0, ran.stdout.str()
    record = json.loads((suite_dir.path / "reports" / "run.json").read_text())
    assert [case["id"] for case in record["cases"]] == ["hf_checkpoint-pets-v3-clean"]
