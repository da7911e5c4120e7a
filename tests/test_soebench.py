"""SoEBench generation (unique integer solutions, allowed symbols, seeding) and the textqa loader."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest

from vlmgate.benchmarks.base import load_benchmark
from vlmgate.benchmarks.textqa import MAX_CHARS, has_latex
from vlmgate.errors import DataError, NotApplicable

ALLOWED = set("0123456789ABCDE") | set("+= \n")
TERM = re.compile(r"^(\d*)([A-E])$")


def parse_system(text: str) -> tuple[list[str], list[list[Fraction]], list[Fraction]]:
    """Read ``2A + B = 7`` lines back into (names, coefficient rows, constants), independently of the generator."""
    rows = []
    for line in text.split("\n"):
        lhs, rhs = line.split(" = ")
        terms = {}
        for term in lhs.split(" + "):
            coefficient, name = TERM.match(term).groups()
            assert name not in terms
            terms[name] = Fraction(int(coefficient or 1))
        rows.append((terms, Fraction(int(rhs))))
    names = sorted({name for terms, _ in rows for name in terms})
    return names, [[terms.get(n, Fraction(0)) for n in names] for terms, _ in rows], [c for _, c in rows]


def solve_exactly(matrix: list[list[Fraction]], constants: list[Fraction]) -> list[Fraction] | None:
    """Gauss-Jordan elimination over the rationals; ``None`` when the solution is not unique."""
    n = len(matrix)
    if any(len(row) != n for row in matrix):
        return None
    augmented = [row[:] + [c] for row, c in zip(matrix, constants)]
    for col in range(n):
        pivot = next((r for r in range(col, n) if augmented[r][col] != 0), None)
        if pivot is None:
            return None
        augmented[col], augmented[pivot] = augmented[pivot], augmented[col]
        for r in range(n):
            if r != col and augmented[r][col] != 0:
                factor = augmented[r][col] / augmented[col][col]
                augmented[r] = [a - factor * b for a, b in zip(augmented[r], augmented[col])]
    return [augmented[i][n] / augmented[i][i] for i in range(n)]


@pytest.mark.parametrize("spec", ["soebench:n=300", "soebench:n=100,seed=7,unknowns=1-5,max_value=20"])
def test_every_item_has_a_unique_integer_solution_and_only_allowed_symbols(spec):
    items = list(load_benchmark(spec).items())
    assert len(items) == int(re.search(r"n=(\d+)", spec).group(1))
    for item in items:
        assert set(item.stem) <= ALLOWED, item.stem
        names, matrix, constants = parse_system(item.stem)
        assert set(names) <= set("ABCDE") and len(matrix) == len(names)
        solution = solve_exactly(matrix, constants)
        assert solution is not None, f"{item.id}: singular system\n{item.stem}"
        assert all(value.denominator == 1 for value in solution)
        asked = re.fullmatch(r"What is the value of ([A-E])\?", item.query).group(1)
        assert item.kind == "numeric" and item.options == ()
        assert item.answer == solution[names.index(asked)]
        meta = dict(item.meta)
        assert meta["solution"] == ",".join(f"{n}={int(v)}" for n, v in zip(names, solution))


def test_generation_is_seeded_and_prefix_stable():
    first = list(load_benchmark("soebench:n=20,seed=3").items())
    assert first == list(load_benchmark("soebench:n=20,seed=3").items())
    assert first[:5] == list(load_benchmark("soebench:n=5,seed=3").items())
    assert [i.stem for i in first] != [i.stem for i in load_benchmark("soebench:n=20,seed=4").items()]
    assert load_benchmark("soebench:default").__len__() == 100
    assert load_benchmark("soebench:n=5,seed=3").fingerprint != load_benchmark("soebench:n=5,seed=4").fingerprint


@pytest.mark.parametrize("spec, message", [
    ("soebench:n=abc", "n must be an integer"),
    ("soebench:size=3", "KEY=VALUE with KEY one of n, seed"),
    ("soebench:unknowns=0-6", "unknowns must lie within 1-5"),
    ("soebench:unknowns=x", "count or a range"),
])
def test_bad_soebench_specs_name_the_key_and_the_fix(spec, message):
    with pytest.raises(DataError, match=re.escape(message)):
        load_benchmark(spec)


def test_text_benchmarks_refuse_image_suites_with_a_skip_reason():
    with pytest.raises(NotApplicable, match="text-only items"):
        list(load_benchmark("soebench:n=2").samples())


def _write(tmp_path, rows):
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_textqa_loads_mcq_and_numeric_items_and_counts_what_it_drops(tmp_path):
    path = _write(tmp_path, [
        {"id": "arc-1", "question": "Which gas do plants take in?", "options": ["oxygen", "carbon dioxide"],
         "answer": "B"},
        {"id": "gsm-1", "context": "Tom has 3 apples and buys 4 more. They cost $5 and $2.",
         "question": "How many apples does he have?", "answer": "7"},
        {"id": "long", "question": "x " * (MAX_CHARS // 2 + 1), "answer": 1},
        {"id": "tex", "question": r"What is $\frac{1}{2}$ of 4?", "answer": 2},
        {"id": "tex2", "question": "Evaluate $x^2$ at x = 3.", "answer": 9},
    ])
    bench = load_benchmark(f"textqa:{path}")
    items = list(bench.items())
    assert [i.id for i in items] == ["arc-1", "gsm-1"] and len(bench) == 2
    assert bench.dropped == {"too_long": 1, "latex": 2}
    assert (items[0].kind, items[0].answer, items[0].stem, items[0].query) == (
        "mcq", 1, "Which gas do plants take in?", "")
    assert (items[1].kind, items[1].answer, items[1].query) == ("numeric", 7, "How many apples does he have?")
    assert items[1].stem.startswith("Tom has 3 apples")
    assert not has_latex("It costs $5 and $10.") and has_latex(r"\(x\)") and has_latex("$$x$$")


@pytest.mark.parametrize("row, message", [
    ({"id": "a", "question": "How many?", "answer": "seven"}, "is not an integer"),
    ({"id": "a", "question": "Pick", "options": ["x"], "answer": "A"}, "at least two strings"),
    ({"id": "a", "question": "Pick", "options": ["x", "y"], "answer": "C"}, "neither an option letter"),
    ({"id": "a", "answer": 1}, "missing key(s) question"),
])
def test_textqa_errors_name_file_line_and_key(tmp_path, row, message):
    path = _write(tmp_path, [row])
    with pytest.raises(DataError, match=re.escape(f"{path}:1")) as info:
        load_benchmark(f"textqa:{path}")
    assert message in str(info.value)


def test_textqa_refuses_an_image_manifest_and_says_use_jsonl(tmp_path):
    path = _write(tmp_path, [{"id": "s0", "image": "images/s0.png", "question": "What colour?",
                              "options": ["red", "blue"], "answer": "A"}])
    with pytest.raises(DataError, match=re.escape(f"{path}:1") + r".*'image'.*jsonl:"):
        load_benchmark(f"textqa:{path}")


@pytest.mark.parametrize("row, message", [
    ({"id": "a", "question": "Pick", "options": ["cat", "dog", "Cat"], "answer": "cat"},
     "option 'Cat' repeats option A"),
    ({"id": "a", "question": None, "answer": 1}, "question must be a non-empty string"),
])
def test_textqa_ambiguous_rows_are_refused(tmp_path, row, message):
    path = _write(tmp_path, [row])
    with pytest.raises(DataError, match=re.escape(f"{path}:1")) as info:
        load_benchmark(f"textqa:{path}")
    assert message in str(info.value)


def test_textqa_non_utf8_and_directory_name_the_file(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_bytes(b'{"id": "a", "question": "\xff?", "answer": 1}\n')
    with pytest.raises(DataError, match=re.escape(f"{path}:1") + r": byte 25 .*not UTF-8"):
        load_benchmark(f"textqa:{path}")
    with pytest.raises(DataError, match=r"is a directory"):
        load_benchmark(f"textqa:{tmp_path}")
