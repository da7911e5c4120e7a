"""Which case of one run is the same case in another run.

Two releases are rarely gated under the same model spec: release N is
``hf:/runs/ckpt-41``, release N+1 ``hf:/runs/ckpt-42``. Comparing them means pairing
specs across the two runs, per axis (models, benchmarks), in this order:

1. the same spec;
2. the same short name (``hf:/a/ckpt`` and ``hf:/b/ckpt``: the same folder name; a
   benchmark's ``?name=NAME``, ``cases.short_name``);
3. models only: if exactly one model is left on each side, those two (the usual "one
   candidate against one baseline" case). Benchmarks never pair by elimination: two
   benchmarks of different names hold different items, and a change between them would
   be a change of data read as a change of model. A benchmark that moved keeps its pairing
   by keeping its name (``?name=``).

A case then pairs with the case of the other run that has the paired model and
benchmark, the same family and suite, and the same test function (compared by name,
so that runs started from different folders still pair).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from vlmgate.cases import CaseKey, short_name
from vlmgate.report.record import CaseRecord


def pair_specs(before: Sequence[str], after: Sequence[str], *, by_elimination: bool = True) -> dict[str, str]:
    """``after spec -> before spec`` for every spec that has a counterpart (``by_elimination``:
    the one spec left on each side pairs too)."""
    pairs: dict[str, str] = {}
    left_before = list(dict.fromkeys(before))
    left_after = list(dict.fromkeys(after))
    for same in (lambda a, b: a == b, lambda a, b: short_name(a) == short_name(b)):
        for spec in list(left_after):
            match = next((b for b in left_before if same(spec, b)), None)
            if match is not None:
                pairs[spec] = match
                left_after.remove(spec)
                left_before.remove(match)
    if by_elimination and len(left_before) == 1 and len(left_after) == 1:
        pairs[left_after[0]] = left_before[0]
    return pairs


def function_name(test: str) -> str:
    """``dir/test_x.py::test_y`` -> ``test_y``."""
    return test.rsplit("::", 1)[-1]


@dataclass(frozen=True)
class CasePairing:
    """Spec pairs between a ``before`` run and an ``after`` run."""

    models: Mapping[str, str]
    benchmarks: Mapping[str, str]

    @classmethod
    def between(cls, before_models: Iterable[str], before_benchmarks: Iterable[str],
                after_models: Iterable[str], after_benchmarks: Iterable[str]) -> "CasePairing":
        return cls(pair_specs(list(before_models), list(after_models)),
                   pair_specs(list(before_benchmarks), list(after_benchmarks), by_elimination=False))

    def counterpart_key(self, key: CaseKey) -> CaseKey | None:
        """The ``before`` run's key for an ``after`` key (``None`` if a spec is unpaired)."""
        if key.model not in self.models or key.benchmark not in self.benchmarks:
            return None
        return CaseKey(self.models[key.model], self.benchmarks[key.benchmark], key.family, key.suite)


class CaseIndex:
    """The cases of one run, found by (key, test function)."""

    def __init__(self, cases: Iterable[CaseRecord]):
        self._cases = {(case.key, function_name(case.test)): case for case in cases}

    def find(self, key: CaseKey | None, test: str) -> CaseRecord | None:
        if key is None:
            return None
        return self._cases.get((key, function_name(test)))
