"""``soebench:KEY=VALUE,...`` — generated systems of linear equations (spec §3, SoEBench).

SoEBench asks for one unknown of a small linear system whose solution is a unique set of
integers, written with digits 0–9 and the letters A–E only (plus ``+``, ``=``, spaces and
line breaks), so that reading the rendering is easy for any OCR and a wrong answer is
about reasoning across the modality, not about reading.

The generator is **reconstructed** (the paper gives its constraints, not its procedure):
for item ``i``, a generator seeded by (``seed``, ``"soebench"``, ``i``) draws the number
of unknowns k in ``unknowns``, k distinct names from A–E (in alphabetical order), a
solution x with entries in 0..``max_value``, and digit coefficients 1–9, resampled until
the determinant (exact integer arithmetic) is non-zero; then ``b = A·x`` and the asked
unknown. A non-zero determinant makes the solution unique; it is integral by
construction. Because every item has its own generator, ``n=10`` gives the first ten
items of ``n=1000``.

Spec keys (all optional; ``soebench:default`` takes the defaults): ``n`` (items, 100),
``seed`` (0), ``unknowns`` (``2-3``, or a single count; 1–5), ``max_value`` (9).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Iterator, Mapping, Sequence

from vlmgate.benchmarks.base import DEFAULT_OPTIONS, BenchmarkOptions, items_kind, text_only_samples
from vlmgate.errors import DataError
from vlmgate.records import Sample, TextItem
from vlmgate.seeding import rng_for

#: Names of the unknowns (spec §3: letters A–E).
NAMES = "ABCDE"
#: Every character an equation system may contain.
ALPHABET = frozenset("0123456789" + NAMES + "+= \n")
#: Bumped whenever the generator changes what it draws, so fingerprints change with it.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class SoEConfig:
    """The generator's parameters, parsed from the spec."""

    n: int = 100
    seed: int = 0
    min_unknowns: int = 2
    max_unknowns: int = 3
    max_value: int = 9


@dataclass(frozen=True)
class LinearSystem:
    """``coefficients · solution = constants`` over the unknowns ``names``; ``asked`` is an index."""

    names: tuple[str, ...]
    coefficients: tuple[tuple[int, ...], ...]
    constants: tuple[int, ...]
    solution: tuple[int, ...]
    asked: int

    def equations(self) -> str:
        """One equation per line, ``2A + B = 7`` (a coefficient of 1 is left out)."""
        lines = []
        for row, constant in zip(self.coefficients, self.constants):
            terms = [name if c == 1 else f"{c}{name}" for c, name in zip(row, self.names)]
            lines.append(f"{' + '.join(terms)} = {constant}")
        return "\n".join(lines)


def determinant(matrix: Sequence[list[int]]) -> int:
    """Exact integer determinant by Laplace expansion (the systems are at most 5×5)."""
    if len(matrix) == 1:
        return matrix[0][0]
    return sum((-1) ** j * matrix[0][j] * determinant([row[:j] + row[j + 1:] for row in matrix[1:]])
               for j in range(len(matrix)))


def generate_system(config: SoEConfig, index: int) -> LinearSystem:
    """Item ``index``'s system (see the module docstring for the procedure)."""
    rng = rng_for(config.seed, "soebench", index)
    k = int(rng.integers(config.min_unknowns, config.max_unknowns + 1))
    names = tuple(sorted(str(name) for name in rng.choice(list(NAMES), size=k, replace=False)))
    solution = tuple(int(v) for v in rng.integers(0, config.max_value + 1, size=k))
    while True:
        coefficients = tuple(tuple(int(c) for c in row) for row in rng.integers(1, 10, size=(k, k)))
        if determinant([list(row) for row in coefficients]) != 0:
            break
    constants = tuple(sum(c * x for c, x in zip(row, solution)) for row in coefficients)
    return LinearSystem(names, coefficients, constants, solution, int(rng.integers(k)))


def system_item(system: LinearSystem, config: SoEConfig, index: int) -> TextItem:
    name = system.names[system.asked]
    meta = {"unknowns": len(system.names), "asked": name,
            "solution": ",".join(f"{n}={v}" for n, v in zip(system.names, system.solution))}
    return TextItem(f"soebench-{config.seed}-{index:05d}", system.equations(), f"What is the value of {name}?",
                    (), system.solution[system.asked], "numeric", tuple(sorted(meta.items())))


def parse_spec(rest: str, spec: str) -> SoEConfig:
    """``n=100,seed=0,unknowns=2-3,max_value=9`` (or ``default``) into a ``SoEConfig``."""
    values: dict[str, int] = {}
    if rest.strip() != "default":
        for part in rest.split(","):
            key, sep, value = (s.strip() for s in part.partition("="))
            where = f"benchmark spec {spec!r}: {part.strip()!r}"
            if not sep or key not in ("n", "seed", "unknowns", "max_value"):
                raise DataError(f"{where} is not KEY=VALUE with KEY one of n, seed, unknowns, max_value "
                                "(e.g. soebench:n=100,seed=0,unknowns=2-3)")
            if key == "unknowns":
                low, _, high = value.partition("-")
                try:
                    values["min_unknowns"], values["max_unknowns"] = int(low), int(high or low)
                except ValueError:
                    raise DataError(f"{where}: unknowns must be a count or a range such as 2-3") from None
                continue
            try:
                values[key] = int(value)
            except ValueError:
                raise DataError(f"{where}: {key} must be an integer") from None
    config = SoEConfig(**values)
    if config.n < 1 or config.max_value < 0:
        raise DataError(f"benchmark spec {spec!r}: n must be >= 1 and max_value >= 0")
    if not 1 <= config.min_unknowns <= config.max_unknowns <= len(NAMES):
        raise DataError(f"benchmark spec {spec!r}: unknowns must lie within 1-{len(NAMES)} (names A-E), low <= high")
    return config


class SoEBenchmark:
    """A seeded, generated SoEBench split; nothing is read from disk."""

    def __init__(self, config: SoEConfig, spec: str):
        self.spec = spec
        self.config = config
        #: Generated items are never filtered (the generator keeps them short and LaTeX-free).
        self.dropped: Mapping[str, int] = {}

    def __len__(self) -> int:
        return self.config.n

    @property
    def fingerprint(self) -> str:
        """Hash of the generator version and parameters: equal fingerprints, equal items."""
        payload = json.dumps({"version": GENERATOR_VERSION, **asdict(self.config)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def systems(self) -> Iterator[LinearSystem]:
        for index in range(self.config.n):
            yield generate_system(self.config, index)

    def items(self) -> Iterator[TextItem]:
        for index, system in enumerate(self.systems()):
            yield system_item(system, self.config, index)

    def samples(self) -> Iterator[Sample]:
        raise text_only_samples(self.spec)


@items_kind("text")
def load_soebench(rest: str, *, spec: str, options: BenchmarkOptions = DEFAULT_OPTIONS) -> SoEBenchmark:
    """Generated text items hold no images, so ``options`` (the pixel budget) do not apply."""
    return SoEBenchmark(parse_spec(rest, spec), spec)
