"""Fault battery: broken benchmark inputs (images, manifests, tables, the pixel budget).

Each fault builds one broken input in a temporary folder, runs it as a user would (the
flip-rate gate through pytest, the ``vlmgate`` command, or the loader where the fault is
a value rather than a refusal) and checks the answer: the exit code, a message naming the
file, row or sample and the fix, and no traceback (``Said.refused``).

Gate runs fail the cases of a broken benchmark (exit 1); a bad option or ``[tool.vlmgate]``
value stops pytest at start-up (exit 4); the ``vlmgate`` command answers bad input with 2.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

#: Runs one fault: ``(tmp_path, manifest, request)`` -> what was said, and what it must name.
Scenario = Callable[[Path, Path, pytest.FixtureRequest], "tuple[Any, tuple[str, ...]]"]


@dataclass(frozen=True)
class Fault:
    scenario: Scenario
    code: int
    fix: str


FAULTS: dict[str, Fault] = {}


def fault(code: int, fix: str) -> Callable[[Scenario], Scenario]:
    def register(scenario: Scenario) -> Scenario:
        FAULTS[scenario.__name__] = Fault(scenario, code, fix)
        return scenario
    return register


# -- helpers ----------------------------------------------------------------------------------


def rows_of(manifest: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def write_rows(manifest: Path, rows: list[dict[str, Any]]) -> Path:
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def edit_row(manifest: Path, index: int, **changes: Any) -> Path:
    rows = rows_of(manifest)
    rows[index].update(changes)
    return write_rows(manifest, rows)


def gate(request: pytest.FixtureRequest, *args: str, manifest: Path):
    return request.getfixturevalue("gate")(*args, manifest=manifest)


def cli(request: pytest.FixtureRequest, *argv: str):
    return request.getfixturevalue("cli")(*argv)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


SEED_HEADER = ["index", "image", "question", "A", "B", "C", "D", "answer", "category"]


def seed_tsv(path: Path, image_cell: str | None = None) -> Path:
    """A two-row SEED-Bench TSV (VLMEvalKit layout), written with the csv module."""
    cell = base64.b64encode(png(Image.new("RGB", (32, 24), (200, 10, 10)))).decode("ascii")
    rows = [["1", image_cell or cell, "What colour?", "red", "green", "blue", "grey", "A", "colour"],
            ["2", cell, "How many?", "one", "two", "three", "four", "B", "count"]]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(SEED_HEADER)
        writer.writerows(rows)
    return path


def accuracy(request: pytest.FixtureRequest, spec: str):
    return cli(request, "accuracy", "--model", "bundled:shapes-v1", "--benchmark", spec)


# -- images -----------------------------------------------------------------------------------


def test_16_bit_png_is_decoded_by_its_grey_levels(manifest):
    """Not a refusal: PIL's convert("RGB") turns a 16-bit grey PNG all white; vlmgate keeps the
    high byte of each value (the rule PIL applies to 16-bit colour PNGs)."""
    from vlmgate.benchmarks.base import load_benchmark

    values = np.array([[0, 300, 20000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(manifest.parent / "images" / "s0.png")
    sample = next(load_benchmark(f"jsonl:{manifest}").samples())
    assert [sample.image.getpixel((x, 0))[0] for x in range(4)] == [0, 300 >> 8, 20000 >> 8, 255]


@fault(1, r"raise the budget .*--vlmgate-max-pixels.* or downscale the file")
def image_beyond_the_pixel_budget(tmp_path, manifest, request):
    said = gate(request, "--vlmgate-max-pixels=1000", manifest=manifest)
    return said, ("sample 's0'", "s0.png", "64x64", "4,096 pixels", "budget of 1,000")


@fault(1, r"raise the budget .*--vlmgate-max-pixels.* or downscale the file")
def decompression_bomb_sized_png(tmp_path, manifest, request):
    Image.new("1", (20000, 20000)).save(manifest.parent / "images" / "s3.png")  # ~50 KB on disk
    said = gate(request, manifest=manifest)
    assert "DecompressionBomb" not in said.output
    return said, ("sample 's3'", "s3.png", "20000x20000", "400,000,000 pixels", "budget of 50,000,000")


@fault(1, r"replace the file or drop the row")
def truncated_png(tmp_path, manifest, request):
    image = manifest.parent / "images" / "s2.png"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    return gate(request, manifest=manifest), ("sample 's2'", "s2.png", "cannot be decoded")


@fault(1, r"fix the 'image' path")
def missing_image_file(tmp_path, manifest, request):
    (manifest.parent / "images" / "s4.png").unlink()
    return gate(request, manifest=manifest), (f"{manifest}:5", "sample 's4'", "s4.png")


@fault(1, r"point 'image' at an image file")
def image_path_is_a_directory(tmp_path, manifest, request):
    edit_row(manifest, 1, image="images")
    return gate(request, manifest=manifest), (f"{manifest}:2", "sample 's1'", "is a directory")


@fault(1, r"save it as an 8- or 16-bit image")
def thirty_two_bit_integer_image(tmp_path, manifest, request):
    Image.fromarray(np.full((8, 8), 70000, dtype=np.int32)).save(manifest.parent / "images" / "s5.tif")
    edit_row(manifest, 5, image="images/s5.tif")
    return gate(request, manifest=manifest), ("sample 's5'", "s5.tif", "32-bit integer")


@fault(1, r"scale the values to \[0, 1\] or save an 8-bit image")
def float_image_outside_unit_range(tmp_path, manifest, request):
    Image.fromarray(np.full((8, 8), 300.0, dtype=np.float32)).save(manifest.parent / "images" / "s5.tif")
    edit_row(manifest, 5, image="images/s5.tif")
    return gate(request, manifest=manifest), ("sample 's5'", "s5.tif", "floating-point pixels")


# -- manifests --------------------------------------------------------------------------------


@fault(1, r"re-save the file as UTF-8")
def non_utf8_manifest(tmp_path, manifest, request):
    rows = rows_of(manifest)
    rows[2]["question"] = "Quelle couleur a la forme ?"
    write_rows(manifest, rows)
    data = manifest.read_bytes()
    at = data.index(b"Quelle")
    manifest.write_bytes(data[:at] + b"\xe0 " + data[at:])  # latin-1 "à"
    return gate(request, manifest=manifest), (f"{manifest}:3", f"byte {at}", "0xe0", "not UTF-8")


@fault(1, r"pass the manifest file itself")
def manifest_path_is_a_directory(tmp_path, manifest, request):
    return gate(request, manifest=manifest.parent), (str(manifest.parent), "is a directory")


@fault(1, r"give the question text")
def null_question(tmp_path, manifest, request):
    edit_row(manifest, 3, question=None)
    return gate(request, manifest=manifest), (f"{manifest}:4", "sample 's3'", "question must be a non-empty string")


@fault(1, r"make the options distinct or drop the row")
def duplicate_options(tmp_path, manifest, request):
    edit_row(manifest, 0, options=["red", "green", "Red", "yellow"], answer="red")
    return gate(request, manifest=manifest), (f"{manifest}:1", "sample 's0'", "option 'Red' repeats option A")


@fault(1, r"exactly the options Yes and No")
def yes_no_item_with_other_options(tmp_path, manifest, request):
    edit_row(manifest, 6, options=["Yes", "No", "Maybe"])
    return gate(request, manifest=manifest), (f"{manifest}:7", "sample 'p0'", "'Maybe'")


@fault(2, r"load it with jsonl:")
def textqa_on_an_image_manifest(tmp_path, manifest, request):
    said = cli(request, "render", "--out", str(tmp_path / "out"), "--benchmark", f"textqa:{manifest}")
    return said, (f"{manifest}:1", "'image'", "text-only")


# -- tables -----------------------------------------------------------------------------------


@fault(2, r"re-save the file as UTF-8")
def non_utf8_tsv(tmp_path, manifest, request):
    path = seed_tsv(tmp_path / "seed.tsv")
    data = path.read_bytes()
    at = data.index(b"How many")
    path.write_bytes(data[:at] + b"\xff" + data[at:])
    return accuracy(request, f"seedbench:{path}"), (f"{path}:3", f"byte {at}", "0xff")


@fault(2, r"re-encode the image with base64\.b64encode")
def bad_base64_cell(tmp_path, manifest, request):
    path = seed_tsv(tmp_path / "seed.tsv", image_cell="@@not-base64@@" * 8)
    return accuracy(request, f"seedbench:{path}"), (str(path), "row 1 (line 2), column 'image'", "not valid base64")


@fault(2, r"drop \?split or pass the datasets folder")
def split_on_a_single_table_file(tmp_path, manifest, request):
    path = seed_tsv(tmp_path / "seed.tsv")
    return accuracy(request, f"seedbench:{path}?split=test"), (str(path), "is a file", "?split=test")


# -- the budget option ------------------------------------------------------------------------


@pytest.mark.parametrize("value,said", [
    ("0", "--vlmgate-max-pixels must be an integer >= 1, got 0"),
    ("-5", "--vlmgate-max-pixels must be an integer >= 1, got -5"),
    ("lots", "--vlmgate-max-pixels: 'lots' is not a whole number"),
    ("1.5", "--vlmgate-max-pixels: '1.5' is not a whole number"),
])
def test_max_pixels_option_must_be_a_positive_integer(gate, manifest, value, said):
    gate(f"--vlmgate-max-pixels={value}", manifest=manifest).refused(
        4, said, fix=r"pass e\.g\. --vlmgate-max-pixels 50000000")


@fault(4, r"write max_pixels = 50000000")
def max_pixels_in_pyproject_not_an_integer(tmp_path, manifest, request):
    request.getfixturevalue("suite_dir").makepyprojecttoml('[tool.vlmgate]\nmax_pixels = "huge"\n')
    return gate(request, manifest=manifest), ('[tool.vlmgate] max_pixels = "huge" must be an integer',)


def test_max_pixels_in_pyproject_is_the_budget(gate, manifest, suite_dir):
    suite_dir.makepyprojecttoml("[tool.vlmgate]\nmax_pixels = 4000\n")
    gate(manifest=manifest).refused(1, "sample 's0'", "budget of 4,000", fix=r"raise the budget")
    assert gate("--vlmgate-max-pixels=4096", manifest=manifest).exit_code == 0  # the option wins


# -- the battery ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAULTS)
def test_fault(name: str, tmp_path: Path, manifest: Path, request: pytest.FixtureRequest) -> None:
    case = FAULTS[name]
    said, names = case.scenario(tmp_path, manifest, request)
    said.refused(case.code, *names, fix=case.fix)
