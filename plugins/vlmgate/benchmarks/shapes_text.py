"""The bundled ``shapes-text`` benchmark: the ``shapes`` questions as text items.

The cross-modal suite judges text items shown as text, as an image and mixed; the bundled
default needs one so that the main job runs that gate too (an image benchmark has no text
to render). These items are the ``bundled:shapes`` items told in words: the stem describes
the scene of item *i* ("Shapes on a checks background: a red circle at the top right and
an orange cross at the bottom left."), the question and options are item *i*'s, so every
answer follows from the text alone, in the vocabulary the bundled checkpoints were trained
on. The mixed form renders the description and keeps the question as text.

Each item comes from ``shapes.generate`` with the same seed, so item *i* here describes
``shapes-0000i`` there. ``python -m vlmgate.benchmarks.shapes_text --out DIR --n 300
--seed 0`` writes ``DIR/items.jsonl`` (``textqa:`` rows), byte for byte the shipped
``fixtures/benchmarks/shapes-text``; ``bundled:shapes-text`` loads it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from vlmgate.benchmarks import shapes
from vlmgate.benchmarks.bundled import TEXT_ITEMS


def describe(meta: dict[str, Any]) -> str:
    """The scene of a shapes item in one sentence, shapes in their drawing order."""
    parts = [f"{_article(s['colour'])} {s['colour']} {s['shape']} at the {s['quadrant']}" for s in meta["shapes"]]
    listed = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return f"Shapes on a {meta['background']} background: {listed}."


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def text_row(item: shapes.ShapesItem) -> dict[str, Any]:
    """One ``textqa:`` row: the description as context, the item's question, options and answer."""
    return {"id": f"{item.id}-text", "context": describe(item.meta), "question": item.question,
            "options": list(item.options), "answer": item.answer,
            "meta": {"source": item.id, "type": item.meta["type"]}}


def write_split(out_dir: str | Path, n: int, seed: int) -> Path:
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / TEXT_ITEMS
    path.write_text("".join(json.dumps(text_row(item), sort_keys=True) + "\n" for item in shapes.generate(n, seed)),
                    encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlmgate.benchmarks.shapes_text",
                                     description="Write the shapes questions as text items (textqa: rows).")
    parser.add_argument("--out", required=True, help=f"output folder ({TEXT_ITEMS})")
    parser.add_argument("--n", type=int, default=shapes.EVAL_SIZE, help=f"items (default {shapes.EVAL_SIZE})")
    parser.add_argument("--seed", type=int, default=shapes.EVAL_SEED,
                        help=f"seed (default {shapes.EVAL_SEED}, the evaluation split)")
    args = parser.parse_args(argv)
    path = write_split(args.out, args.n, args.seed)
    print(f"wrote {args.n} items to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
