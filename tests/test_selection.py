"""``vlmgate select``: inconsistency scores, clusters, the choice, the manifest, the command."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from PIL import Image

from vlmgate import cli
from vlmgate.benchmarks.base import load_benchmark
from vlmgate.errors import ConfigError
from vlmgate.models.base import ScoreRequest
from vlmgate.records import Sample
from vlmgate.selection import choose, cluster, pixel_descriptor, select_subset, write_manifest

from support import ListBenchmark

COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200), "grey": (128, 128, 128)}


@dataclass
class NoiseSensitiveAdapter:
    """Answers B when the image is noisy *and* the prompt carries ``marker``, else A.

    The benchmark's images are flat colours, so a channel standard deviation above zero
    means a corrupted copy; the marker (in the sample's hint, which the prompt shows)
    says which items this model is fragile on. An item's flips are thus known in advance.
    """

    marker: str
    spec: str = "stub:noise"
    fingerprint: str = "stub-noise"

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        out = []
        for request in requests:
            noisy = float(np.asarray(request.image, dtype=np.float64).std(axis=(0, 1)).max()) > 1.0
            answer = 1 if noisy and self.marker in request.prompt else 0
            out.append(np.array([1.0 if i == answer else 0.0 for i in range(len(request.continuations))]))
        return out


def item(sample_id: str, colour: str, hint: str) -> Sample:
    image = Image.new("RGB", (16, 16), COLOURS[colour])
    return Sample(sample_id, image, "What colour is the square?", ("red", "green", "blue", "grey"),
                  list(COLOURS).index(colour), hint=hint)


def benchmark(fragility: dict[str, str]) -> ListBenchmark:
    """Four items per colour; ``fragility[id]`` is the hint, naming the models that flip on it."""
    items = tuple(item(f"{colour}{i}", colour, fragility.get(f"{colour}{i}", "none"))
                  for colour in COLOURS for i in range(4))
    return ListBenchmark(items)


MODELS = (NoiseSensitiveAdapter("alpha"), NoiseSensitiveAdapter("beta"))
#: Both models flip on red0-red2, one on red3 and green0; nothing else ever flips.
FRAGILE = {"red0": "alpha beta", "red1": "alpha beta", "red2": "alpha beta", "red3": "alpha", "green0": "beta"}


def run(size: int, **options) -> list:
    options = {"corruptions": ["gaussian_noise"], "severities": [1, 3], **options}
    return list(select_subset(benchmark(FRAGILE), MODELS, size=size, **options).items)


def test_inconsistency_counts_flips_over_models_corruptions_and_severities():
    chosen = {i.sample.id: i.inconsistency for i in run(16, clusters=1)}
    # 2 models x 1 corruption x 2 severities = 4 comparisons per item.
    assert {sid: (c.flips, c.of) for sid, c in chosen.items() if c.flips} == {
        "red0": (4, 4), "red1": (4, 4), "red2": (4, 4), "red3": (2, 4), "green0": (2, 4)}
    assert chosen["red3"].score == 0.5 and chosen["blue2"].score == 0.0


def test_inconsistent_items_come_first():
    chosen = run(4, clusters=1)
    assert [i.sample.id for i in chosen] == ["red0", "red1", "red2", "red3"]
    assert [i.rank for i in chosen] == [0, 1, 2, 3]


def test_every_cluster_is_represented_when_the_size_allows():
    chosen = run(6, clusters=4)
    colours = [i.sample.id.rstrip("0123456789") for i in chosen]
    assert set(colours) == set(COLOURS)
    # One leader per cluster (the most inconsistent first), then the most inconsistent rest.
    assert [i.sample.id for i in chosen] == ["red0", "green0", "blue0", "grey0", "red1", "red2"]
    assert len({i.cluster for i in chosen}) == 4
    assert [i.sample.id for i in run(2, clusters=4)] == ["red0", "green0"]


def test_same_seed_same_subset_and_size_is_exact():
    first, second = run(5, clusters=3, seed=7), run(5, clusters=3, seed=7)
    assert len(first) == 5 and len({i.sample.id for i in first}) == 5
    assert [(i.sample.id, i.cluster, i.reason) for i in first] == [(i.sample.id, i.cluster, i.reason) for i in second]


def test_choose_by_hand():
    scores = [0.0, 0.5, 0.5, 1.0, 0.25, 0.5]
    clusters = [0, 0, 1, 1, 2, 2]
    # Leaders: cluster 1 -> item 3 (1.0), cluster 0 -> item 1 (0.5, before 0.0), cluster 2 -> item 5 (0.5).
    # Rest: item 2 (0.5), item 4 (0.25), item 0 (0.0).
    assert [c.index for c in choose(scores, clusters, 6)] == [3, 1, 5, 2, 4, 0]
    assert [c.index for c in choose(scores, clusters, 2)] == [3, 1]


def test_clusters_separate_flat_colours_and_are_numbered_by_first_appearance():
    samples = list(benchmark({}).samples())
    labels = cluster(np.stack([pixel_descriptor(s) for s in samples]), 4, np.random.default_rng(0))
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    # More clusters than distinct items: capped, not an error.
    assert set(cluster(np.stack([pixel_descriptor(s) for s in samples]), 9, np.random.default_rng(0))) == {0, 1, 2, 3}


def test_manifest_round_trips_through_the_jsonl_loader(tmp_path):
    source = benchmark(FRAGILE)
    selection = select_subset(source, MODELS, size=5, clusters=4, corruptions=["gaussian_noise"], severities=[3])
    path = write_manifest(selection, source, tmp_path / "ci" / "subset.jsonl")
    loaded = list(load_benchmark(f"jsonl:{path}").samples())
    assert [s.id for s in loaded] == [i.sample.id for i in selection.items]
    originals = {s.id: s for s in source.samples()}
    for sample, chosen in zip(loaded, selection.items):
        original = originals[sample.id]
        assert (sample.question, sample.options, sample.answer, sample.hint) == \
               (original.question, original.options, original.answer, original.hint)
        assert np.array_equal(np.asarray(sample.image), np.asarray(original.image))
        meta = sample.meta_dict["selection"]
        assert (meta["rank"], meta["cluster"], meta["flips"], meta["of"]) == \
               (chosen.rank, chosen.cluster, chosen.inconsistency.flips, 2)
        assert meta["inconsistency"] == chosen.inconsistency.score and meta["reason"] == chosen.reason


def test_select_command_writes_a_manifest_referencing_the_source_images(tiny_llava_checkpoint, manifest, tmp_path,
                                                                        capsys):
    out = tmp_path / "subset.jsonl"
    args = ["select", "--models", f"hf:{tiny_llava_checkpoint}", "--benchmark", f"jsonl:{manifest}", "--size", "4",
            "--corruptions", "gaussian_noise", "contrast", "--clusters", "2", "--out", str(out)]
    assert cli.main(args) == 0
    assert f"written: {out} (4 of 7 samples" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["meta"]["selection"]["rank"] for r in rows] == [0, 1, 2, 3]
    assert all((out.parent / r["image"]).resolve() == (manifest.parent / "images").resolve() / Path(r["image"]).name
               for r in rows)
    assert len(list(load_benchmark(f"jsonl:{out}").samples())) == 4
    first = out.read_text()
    assert cli.main(args) == 0 and out.read_text() == first  # deterministic


def test_unknown_corruption_is_a_config_error_with_the_closest_name():
    with pytest.raises(ConfigError, match="unknown corruption 'gausian_noise' .*did you mean 'gaussian_noise'"):
        run(3, corruptions=["gausian_noise"])
    with pytest.raises(ConfigError, match="--size 40: choose between 1 and the 16 samples"):
        run(40)


def test_probe_embedding_needs_models_that_offer_probes():
    with pytest.raises(ConfigError, match=r"--embedding probe: model\(s\) stub:noise, stub:noise return option scores"):
        run(3, embedding="probe")


def test_probe_embeddings_cluster_the_models_ctx_mcq_states(tiny_llava_checkpoint, manifest):
    from vlmgate.models.base import ModelOptions, load_model

    model = load_model(f"hf:{tiny_llava_checkpoint}", ModelOptions())
    source = load_benchmark(f"jsonl:{manifest}")
    selection = select_subset(source, [model], size=3, clusters=2, corruptions=["contrast"], embedding="probe")
    assert len(selection.items) == 3 and selection.embedding == "probe" and 1 <= selection.clusters <= 2
    assert [i.rank for i in selection.items] == [0, 1, 2]


@dataclass
class SeveralPictures(NoiseSensitiveAdapter):
    takes_several_images: bool = True


@pytest.mark.parametrize("source_kind", ["jsonl", "in-memory"])
def test_a_subset_of_interleaved_items_keeps_every_picture_in_order(tmp_path, source_kind):
    """A selected item of several pictures is written as an ``images`` row: the subset shows the
    model the same pictures, in the same order, as the source."""
    pairs = load_benchmark("bundled:shapes-pairs")
    if source_kind == "in-memory":
        pairs = ListBenchmark(tuple(sample for sample, _ in zip(pairs.samples(), range(12))))
    models = (SeveralPictures("alpha"),)
    selection = select_subset(pairs, models, size=4, clusters=2, corruptions=["gaussian_noise"], severities=[3])
    path = write_manifest(selection, pairs, tmp_path / "subset.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert all("images" in row and "image" not in row and len(row["images"]) == 2 for row in rows)
    originals = {s.id: s for s in pairs.samples()}
    for sample in load_benchmark(f"jsonl:{path}").samples():
        assert len(sample.images) == 2
        for loaded, original in zip(sample.images, originals[sample.id].images):
            assert np.array_equal(np.asarray(loaded), np.asarray(original))
