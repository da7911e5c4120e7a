"""Which samples of a benchmark show the same image: the clusters every clustered statistic uses.

A VQA-style benchmark asks several questions of one picture (POPE asks about several
objects in each COCO image, SEED-Bench and MMMU reuse images across items). The answers
about one picture are not independent trials: a picture the model misreads is misread
for every question asked of it. Counting each question as an image of its own makes an
interval too narrow by about the square root of the questions per image, and a gate then
passes or fails on evidence it does not have. So the independent unit of every clustered
statistic (``metrics.clustered``) is the image, not the row.

Two samples are one cluster when

* they declare the same ``Sample.cluster`` key (a video or document id, read by the loader
  from a ``cluster`` key or column): a declared key decides for its samples, whose pixels
  are then not compared, so the frames of one video are one cluster however they differ;
* else their decoded pictures are identical (mode, size and pixel bytes). The decoded
  picture is what the model sees, so two files holding the same pixels (a PNG and its
  re-save, one image stored twice in a table) are one image. An interleaved item's
  pictures are one unit: two items sharing any of their pictures are one cluster.

A cluster is named by its first sample's id in benchmark order: a name as stable across
releases as the benchmark's ids, so the paired tests of ``vlmgate diff`` join the clusters
of two runs. Grouping reads every sample once (its pixels are hashed, not kept) and is
remembered per sample set (``engine.SampleSet``), so an engine's cases pay it once.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass
from typing import Iterable, Mapping

from vlmgate.records import Sample


@dataclass(frozen=True)
class ImageGroups:
    """``cluster_of``: sample id -> cluster id (a sample id), in benchmark order;
    ``declared``: the ids of the samples whose cluster came from a declared key."""

    cluster_of: Mapping[str, str]
    declared: frozenset[str] = frozenset()

    @property
    def shared(self) -> bool:
        """Whether some cluster holds more than one sample."""
        return len(set(self.cluster_of.values())) < len(self.cluster_of)

    def summary(self, ids: Iterable[str] | None = None) -> dict[str, int]:
        """How the samples ``ids`` (all by default) fall into clusters, as a record states it:
        ``rows``, ``images`` (their clusters), ``rows_sharing`` (rows whose cluster holds
        another of them) and ``declared`` (rows clustered by a declared key)."""
        rows = list(dict.fromkeys(self.cluster_of if ids is None else ids))
        sizes: dict[str, int] = {}
        for row in rows:
            sizes[self.cluster_of[row]] = sizes.get(self.cluster_of[row], 0) + 1
        return {"rows": len(rows), "images": len(sizes),
                "rows_sharing": sum(size for size in sizes.values() if size > 1),
                "declared": sum(row in self.declared for row in rows)}


def pixel_digest(image) -> str:
    """sha256 of a decoded picture's mode, size and pixel bytes."""
    digest = hashlib.sha256(f"{image.mode}\x1f{image.size[0]}x{image.size[1]}\x1f".encode("ascii"))
    digest.update(image.tobytes())
    return digest.hexdigest()


def group_samples(samples: Iterable[Sample]) -> ImageGroups:
    """The clusters of ``samples`` (module docstring), computed now.

    An item of several pictures (``Sample.more_images``) joins every cluster one of its
    pictures is in: two items that share any picture are one cluster, and so, transitively,
    is everything they share pictures with (a union of the items' picture sets).
    """
    owner: dict[tuple[str, str], str] = {}  # a key -> the first sample that showed it
    parent: dict[str, str] = {}  # union-find over sample ids; a root is its cluster's first sample
    order: dict[str, int] = {}
    declared: set[str] = set()

    def root(sample_id: str) -> str:
        while parent[sample_id] != sample_id:
            parent[sample_id] = parent[parent[sample_id]]
            sample_id = parent[sample_id]
        return sample_id

    for sample in samples:
        order[sample.id] = len(order)
        parent.setdefault(sample.id, sample.id)
        if sample.cluster is not None:
            keys = [("declared", sample.cluster)]
            declared.add(sample.id)
        else:
            keys = [("pixels", pixel_digest(image)) for image in sample.images]
        for key in keys:
            other = owner.setdefault(key, sample.id)
            a, b = root(other), root(sample.id)
            if a != b:  # the earlier sample stays the root, so a cluster is named by its first sample
                parent[max(a, b, key=order.__getitem__)] = min(a, b, key=order.__getitem__)
    return ImageGroups({sample_id: root(sample_id) for sample_id in order}, frozenset(declared))


_GROUPS: "weakref.WeakKeyDictionary[object, ImageGroups]" = weakref.WeakKeyDictionary()


def image_groups(samples: Iterable[Sample]) -> ImageGroups:
    """``group_samples(samples)``, remembered while the sample set lives (once per engine).

    A set that cannot be remembered by identity (a tuple, a list) is grouped each time.
    """
    try:
        return _GROUPS[samples]
    except KeyError:
        pass
    except TypeError:  # not weakly referable
        return group_samples(samples)
    groups = _GROUPS[samples] = group_samples(samples)
    return groups
