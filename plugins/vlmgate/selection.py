"""Compact CI subsets of a benchmark: items that corruption tells apart, across its variety.

A CI gate cannot afford every item of a benchmark under every corruption. Spec §2's
discriminative selection (Bench-C; **reconstructed**: the paper states the idea, not the
procedure) keeps the items whose predictions change most often between the clean and the
corrupted image, across models × corruptions, and spreads the subset over clusters of
item embeddings so that it still covers the benchmark's kinds of question and image.
``vlmgate select`` runs it and writes the subset as a ``jsonl:`` manifest.

The procedure, deterministic for a given seed:

1. **Inconsistency.** For every model, corruption and chosen severity, an item scores a
   flip when the corrupted prediction differs from that model's clean prediction;
   ``inconsistency = flips / (models × corruptions × severities)``. Variants are the
   corruption families' own default grid (the RAS suite's), filtered to the severities.
2. **Embedding.** By default a cheap, dependency-free descriptor of the clean image and
   the question (``pixel_descriptor``); with ``embedding="probe"`` the models' ``ctx_mcq``
   probe (last prompt token, image and question seen), L2-normalised and concatenated
   over models, where every adapter offers ``embed``.
3. **Clusters.** k-means (``scipy.cluster.vq.kmeans2``, k-means++ start, a generator
   seeded from the run seed), relabelled by first appearance in benchmark order.
4. **Choice.** First the most inconsistent item of every cluster (clusters ordered by
   that item), so every cluster is represented when ``size`` allows; then the remaining
   items by descending inconsistency, ties spread over clusters (an item's rank within
   its cluster) and then broken by benchmark order. Rows are written in that order, so
   the first N rows of the manifest are the best N-item subset (``--vlmgate-limit N``).

Each row keeps its benchmark fields and adds ``meta.selection``: the rank, the
inconsistency with its flip count, the cluster and why the item was taken.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from vlmgate.batches import DEFAULT_BATCH_SIZE
from vlmgate.benchmarks.base import Benchmark
from vlmgate.benchmarks.jsonl import JsonlBenchmark
from vlmgate.cases import safe_name
from vlmgate.engine import Engine
from vlmgate.errors import ConfigError, DataError
from vlmgate.models.base import ModelAdapter
from vlmgate.perturbations.base import family_names, get_family
from vlmgate.records import CLEAN, Sample, Variant
from vlmgate.registry import unknown_name_message
from vlmgate.seeding import rng_for

#: Severity compared when none is given: the middle of ImageNet-C's 1-5.
DEFAULT_SEVERITIES: tuple[int, ...] = (3,)
#: Clusters when none is given: at most this many, and never more than the subset size.
DEFAULT_MAX_CLUSTERS = 8
EMBEDDINGS = ("pixels", "probe")
#: Side of the thumbnail the pixel descriptor is computed on, and its histogram sizes.
THUMBNAIL = 32
COLOUR_LEVELS = 4
ORIENTATION_BINS = 8
LAYOUT_GRID = 4
QUESTION_BINS = 32
PROBE_CHANNEL = "ctx_mcq"


def corruption_names() -> list[str]:
    """The corruption families (tag ``corruption``), whose grids carry a severity."""
    return [name for name in family_names() if "corruption" in get_family(name).tags]


def check_corruptions(names: Sequence[str]) -> list[str]:
    known = corruption_names()
    for name in names:
        if name not in known:
            raise ConfigError(f"--corruptions: {unknown_name_message('corruption', name, known)}")
    if not names:
        raise ConfigError("--corruptions: name at least one corruption (vlmgate list shows them)")
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Inconsistency:
    """How often an item's prediction changed under corruption, over all comparisons."""

    flips: int
    of: int

    @property
    def score(self) -> float:
        return self.flips / self.of if self.of else 0.0


def inconsistency(engines: Sequence[Engine], corruptions: Sequence[str], severities: Sequence[int]
                  ) -> list[Inconsistency]:
    """Per sample of the (shared) benchmark, in order: flips over models × corruptions × severities."""
    samples = engines[0].samples()
    position = {sample.id: index for index, sample in enumerate(samples)}
    flips = np.zeros(len(samples), dtype=np.int64)
    comparisons = 0
    for engine in engines:
        clean = engine.clean()
        for name in corruptions:
            items: list[tuple[Sample, Variant]] = []
            for sample in samples:
                grid = engine.variants(name, sample)
                chosen = [v for v in grid if v.param_dict.get("severity") in severities]
                if len(chosen) != len(severities):
                    raise ConfigError(
                        f"--severities {list(severities)}: corruption {name!r} has severities "
                        f"{[v.param_dict.get('severity') for v in grid]}; pick from those"
                    )
                items.extend((sample, variant) for variant in chosen)
            observed = engine.observe(items)
            for (sample, _), obs in zip(items, observed):
                flips[position[sample.id]] += obs.prediction != clean[sample.id].prediction
            comparisons += len(severities)
    return [Inconsistency(int(count), comparisons) for count in flips]


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def pixel_descriptor(sample: Sample) -> np.ndarray:
    """A cheap embedding of the clean image and the question, each block of unit length.

    Blocks: a joint RGB histogram (4 levels per channel) for colour, a magnitude-weighted
    gradient-orientation histogram for edges and shape, a 4 x 4 grey-level layout (centred)
    for where things are, and a hashed bag of question words for what is asked. Each is
    scaled to unit length so that no block outweighs another by its number of bins.
    """
    thumb = np.asarray(sample.image.convert("RGB").resize((THUMBNAIL, THUMBNAIL), Image.Resampling.BOX),
                       dtype=np.float64) / 255.0
    quantised = np.minimum((thumb * COLOUR_LEVELS).astype(int), COLOUR_LEVELS - 1)
    codes = (quantised[..., 0] * COLOUR_LEVELS + quantised[..., 1]) * COLOUR_LEVELS + quantised[..., 2]
    colour = np.bincount(codes.ravel(), minlength=COLOUR_LEVELS ** 3).astype(np.float64)
    grey = thumb.mean(axis=2)
    gy, gx = np.gradient(grey)
    angle = np.mod(np.arctan2(gy, gx), np.pi)
    bins = np.minimum((angle / np.pi * ORIENTATION_BINS).astype(int), ORIENTATION_BINS - 1)
    edges = np.bincount(bins.ravel(), weights=np.hypot(gx, gy).ravel(), minlength=ORIENTATION_BINS)
    cell = THUMBNAIL // LAYOUT_GRID
    layout = grey.reshape(LAYOUT_GRID, cell, LAYOUT_GRID, cell).mean(axis=(1, 3)).ravel()
    question = np.zeros(QUESTION_BINS)
    for word in re.findall(r"[a-z0-9]+", sample.question.lower()):
        question[int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % QUESTION_BINS] += 1
    return np.concatenate([_unit(colour), _unit(edges), _unit(layout - layout.mean()), _unit(question)])


def probe_embeddings(engines: Sequence[Engine]) -> np.ndarray:
    """``ctx_mcq`` of the clean items, unit length per model, concatenated over models."""
    blocks = []
    for engine in engines:
        samples = engine.samples()
        records = engine.probe([(s, CLEAN) for s in samples])
        blocks.append(np.stack([_unit(np.asarray(r.embeddings[PROBE_CHANNEL], dtype=np.float64)) for r in records]))
    return np.concatenate(blocks, axis=1)


def cluster(embeddings: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means labels, renumbered 0, 1, ... by first appearance (stable, readable ids).

    ``k`` is capped at the number of distinct embeddings: k-means++ cannot seed more
    centres than there are distinct points.
    """
    from scipy.cluster.vq import kmeans2

    k = min(k, len(np.unique(embeddings, axis=0)))
    if k <= 1:
        return np.zeros(len(embeddings), dtype=np.int64)
    _, labels = kmeans2(embeddings, k, iter=20, minit="++", rng=rng)
    renumber: dict[int, int] = {}
    return np.array([renumber.setdefault(int(label), len(renumber)) for label in labels], dtype=np.int64)


@dataclass(frozen=True)
class Choice:
    """An item's place in the subset and why it is there."""

    index: int
    rank: int
    reason: str


def choose(scores: Sequence[float], clusters: Sequence[int] | np.ndarray, size: int) -> list[Choice]:
    """The ``size`` items to keep, in order (module docstring, step 4)."""
    order_in_cluster: dict[int, list[int]] = {}
    for index in sorted(range(len(scores)), key=lambda i: (-scores[i], i)):
        order_in_cluster.setdefault(int(clusters[index]), []).append(index)
    rank_in_cluster = {index: rank for members in order_in_cluster.values() for rank, index in enumerate(members)}
    leaders = sorted((members[0] for members in order_in_cluster.values()), key=lambda i: (-scores[i], i))
    rest = sorted((i for i in range(len(scores)) if rank_in_cluster[i] > 0),
                  key=lambda i: (-scores[i], rank_in_cluster[i], i))
    picked = [(i, f"most inconsistent item of cluster {clusters[i]}") for i in leaders]
    picked += [(i, f"inconsistency rank among the rest (cluster {clusters[i]}, #{rank_in_cluster[i] + 1} there)")
               for i in rest]
    return [Choice(index, rank, reason) for rank, (index, reason) in enumerate(picked[:size])]


@dataclass(frozen=True)
class SelectedItem:
    sample: Sample
    rank: int
    inconsistency: Inconsistency
    cluster: int
    reason: str


@dataclass(frozen=True)
class Selection:
    """The chosen items in order, and how they were chosen."""

    items: tuple[SelectedItem, ...]
    benchmark: str
    available: int
    models: tuple[str, ...]
    corruptions: tuple[str, ...]
    severities: tuple[int, ...]
    clusters: int
    embedding: str
    seed: int


def select_subset(benchmark: Benchmark, models: Sequence[ModelAdapter], *, size: int, seed: int = 0,
                  corruptions: Sequence[str] | None = None, severities: Sequence[int] = DEFAULT_SEVERITIES,
                  clusters: int | None = None, embedding: str = "pixels", limit: int | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> Selection:
    """Score, embed, cluster and choose (module docstring); nothing is written."""
    if not models:
        raise ConfigError("--models: name at least one model whose predictions judge the items")
    if embedding not in EMBEDDINGS:
        raise ConfigError(f"--embedding: {unknown_name_message('embedding', embedding, list(EMBEDDINGS))}")
    if embedding == "probe":
        blind = [m.spec for m in models if not callable(getattr(m, "embed", None))]
        if blind:
            raise ConfigError(f"--embedding probe: model(s) {', '.join(blind)} return option scores only, no probe "
                              "embeddings; use --embedding pixels or hf: / bundled: models")
    names = check_corruptions(corruption_names() if corruptions is None else corruptions)
    severities = tuple(dict.fromkeys(int(s) for s in severities))
    engines = [Engine(model, benchmark, seed=seed, limit=limit, batch_size=batch_size) for model in models]
    samples = engines[0].samples()
    if not 1 <= size <= len(samples):
        raise ConfigError(f"--size {size}: choose between 1 and the {len(samples)} samples of {benchmark.spec}"
                          + (f" (first {limit}, --limit)" if limit is not None else ""))
    k = clusters if clusters is not None else min(DEFAULT_MAX_CLUSTERS, size)
    if k < 1:
        raise ConfigError(f"--clusters {k}: need at least one cluster")
    scores = inconsistency(engines, names, severities)
    vectors = probe_embeddings(engines) if embedding == "probe" else np.stack([pixel_descriptor(s) for s in samples])
    labels = cluster(vectors, k, rng_for(seed, "select", "kmeans"))
    chosen = choose([s.score for s in scores], labels, size)
    items = tuple(SelectedItem(samples[c.index], c.rank, scores[c.index], int(labels[c.index]), c.reason)
                  for c in chosen)
    return Selection(items, benchmark.spec, len(samples), tuple(m.spec for m in models), tuple(names), severities,
                     int(labels.max()) + 1, embedding, seed)


def _image_fields(sample: Sample, benchmark: Benchmark, out: Path, written: set[str]) -> list[str]:
    """Where the row's pictures are, in order: the benchmark's own files when it has them, else
    PNGs written beside ``out`` (an interleaved item's later pictures as ``NAME_2.png``, ...).

    A source file is referenced relative to the manifest when the two share a folder below
    the filesystem root (a repository stays relocatable), else by its absolute path.
    """
    if isinstance(benchmark, JsonlBenchmark):
        row = next(row for row in benchmark.rows if row.id == sample.id)
        folder = out.parent.resolve()
        fields = []
        for path in (row.image_path, *row.more_image_paths):
            source = path.resolve()
            if Path(os.path.commonpath([source, folder])) == Path(folder.anchor):
                fields.append(source.as_posix())
            else:
                fields.append(Path(os.path.relpath(source, folder)).as_posix())
        return fields
    folder = out.parent / f"{out.stem}_images"
    folder.mkdir(parents=True, exist_ok=True)
    name = safe_name(sample.id)
    while name in written:
        name += "_"
    written.add(name)
    fields = []
    for k, image in enumerate(sample.images, start=1):
        file = f"{name}.png" if k == 1 else f"{name}_{k}.png"
        image.save(folder / file)
        fields.append(f"{folder.name}/{file}")
    return fields


def manifest_rows(selection: Selection, benchmark: Benchmark, out: Path) -> list[dict]:
    """One ``jsonl:`` manifest row per chosen item, in selection order."""
    rows: list[dict] = []
    written: set[str] = set()
    for item in selection.items:
        sample = item.sample
        meta = sample.meta_dict
        meta["selection"] = {
            "rank": item.rank, "inconsistency": item.inconsistency.score, "flips": item.inconsistency.flips,
            "of": item.inconsistency.of, "cluster": item.cluster, "clusters": selection.clusters,
            "reason": item.reason, "source": selection.benchmark,
        }
        images = _image_fields(sample, benchmark, out, written)
        row = {"id": sample.id, **({"image": images[0]} if len(images) == 1 else {"images": images}),
               "question": sample.question, "options": list(sample.options), "answer": sample.answer,
               "kind": sample.kind, "meta": meta}
        if sample.hint is not None:
            row["hint"] = sample.hint
        if sample.cluster is not None:  # a declared cluster key, kept so the subset clusters as the source did
            row["cluster"] = sample.cluster
        rows.append(row)
    return rows


def write_manifest(selection: Selection, benchmark: Benchmark, out: str | Path) -> Path:
    """Write the subset as a JSON-lines manifest that ``jsonl:OUT`` loads."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in manifest_rows(selection, benchmark, out):
        try:
            lines.append(json.dumps(row, sort_keys=True))
        except TypeError as exc:
            raise DataError(f"sample {row['id']!r} of {selection.benchmark}: its meta is not JSON-safe ({exc}); "
                            "a manifest row can only carry JSON values") from None
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out
