"""Fault battery: a benchmark with repeated images (issue 25, "clusters are images, not rows").

Not a refusal but a value: the six images of the battery's manifest, each asked the three
questions the tiny tokenizer knows, gated as a user would (the flip-rate gate through
pytest, ``--vlmgate-report``). Every question was once counted as an image of its own, 18
clusters where there are 6, and intervals about √3 too narrow, without a word. The record
must cluster by image and say how many rows shared images, and ``vlmgate diff`` must pair
the two runs over the images.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from vlmgate.metrics.clustered import clustered_proportion

QUESTIONS = ("What colour is the shape?", "Which shape is in the image?", "Where is the shape?")


def asked_three_times(manifest: Path, folder: Path) -> Path:
    """The battery manifest's six images (its yes/no row left out), each asked the three questions."""
    shutil.copytree(manifest.parent / "images", folder / "images")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    repeated = [{**row, "id": f"{row['id']}-q{k}", "question": question}
                for row in rows if row.get("kind", "mcq") == "mcq" for k, question in enumerate(QUESTIONS)]
    path = folder / "repeated.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in repeated))
    return path


def metrics_of(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {metric["name"]: metric for case in record["cases"] for metric in case["metrics"]}


def test_a_benchmark_with_repeated_images_is_clustered_by_image_and_says_so(gate, cli, manifest, suite_dir, tmp_path,
                                                                            capsys):
    repeated = asked_three_times(manifest, tmp_path)
    said = gate("-m", "rotation", "--vlmgate-no-cache", "--vlmgate-report=report", manifest=repeated)
    assert said.exit_code == 0, said.output
    record = json.loads((suite_dir.path / "report" / "run.json").read_text())
    metrics = metrics_of(record)
    images = {f"s{i}-q0" for i in range(6)}
    for name in ("ifr", "iv"):
        metric = metrics[name]
        assert metric["n_clusters"] == 6, f"{name}: {metric['n_clusters']} clusters for 6 images"
        assert set(metric["clusters"].values()) == images
        assert metric["details"]["shared_images"] == {"rows": 18, "images": 6, "rows_sharing": 18, "declared": 0,
                                                      "reclustered": True}
    ifr = metrics["ifr"]
    assert ifr["n"] == len(ifr["units"]) == 18 * 2  # the two rotations of every row
    assert {ifr["clusters"][unit] for unit in ifr["units"] if unit.startswith("s4-q2|")} == {"s4-q0"}
    # The interval the record states is the one over the 6 images, recomputed here from its own units.
    recomputed = clustered_proportion("ifr", ifr["units"], ifr["clusters"], better="lower")
    assert (ifr["ci_low"], ifr["ci_high"]) == (recomputed.ci_low, recomputed.ci_high)
    assert ifr["details"]["interval"] == recomputed.details["interval"]

    # The paired test between two releases reads the record's clusters: it runs over the 6 images.
    shutil.copytree(suite_dir.path / "report", tmp_path / "again")
    capsys.readouterr()  # the gate run's own output
    compared = cli("diff", str(suite_dir.path / "report" / "run.json"), str(tmp_path / "again" / "run.json"),
                   "--format", "json", "--all")
    assert compared.exit_code == 0, compared.output
    changes = {row["metric"]: row["change"] for row in json.loads(compared.output)["rows"]}
    assert (changes["ifr"]["n_pairs"], changes["ifr"]["n_clusters"]) == (36, 6)
