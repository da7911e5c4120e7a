"""The counterexample store: minimal failures found on release N, replayed first on N+1.

A TOML file (like the threshold files, and meant to be committed next to them, by default
``thresholds/counterexamples.toml``) holding one ``[[counterexample]]`` table per minimal
failing instance the search found, keyed by the model it was found on, the benchmark and
the family, plus what rebuilds the input (sample id, level, ``at_level`` choices)::

    version = 1

    [[counterexample]]
    model = "bundled:shapes-v2"
    benchmark = "bundled:shapes"
    family = "rotation"
    sample = "shapes-00004"
    level = 3
    choices = { sign = 1 }
    intensity = 0.0333333
    clean = "B"
    perturbed = "C"

Replay: every entry for the case's benchmark and family is tried first, on *every* model
(a counterexample is an input, and release N+1 is usually a different spec than the
release N it was found on), so a fixed failure stays fixed and an unfixed one fails fast
without a new search. ``clean`` / ``perturbed`` (the answers on the model it was found on)
are informational. Delete an entry, or the file, to search again. An entry naming a sample the
benchmark does not hold fails its case, naming the store, the entry and the sample: replaying
it would measure nothing, never a gate that passed.

The store is read once per process at start-up (a malformed file is a usage error before
any test runs, and a failure found during a run is not replayed by later cases of the same
run, so results do not depend on test order or xdist workers). New failures are appended
under a lock with an atomic replace, so concurrent workers do not lose each other's entries.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from vlmgate.errors import ConfigError
from vlmgate.registry import unknown_name_message
from vlmgate.search.instance import SearchInstance
from vlmgate.tomlfile import read_toml

VERSION = 1
TABLE = "counterexample"


@dataclass(frozen=True)
class EntryKey:
    """One key of a ``[[counterexample]]`` entry: the TOML types it takes, and how to write it.

    ``noun`` and ``example`` make the fix of a wrong value (``write level as an integer,
    e.g. level = 3``); a hand-edited store is checked entry by entry at start-up.
    """

    name: str
    types: tuple[type, ...]
    required: bool
    noun: str
    example: str


#: Entry key -> its record. ``choices`` values are ints or strings.
ENTRY_KEYS: Mapping[str, EntryKey] = {key.name: key for key in (
    EntryKey("model", (str,), True, "a string", 'model = "hf:/path/to/checkpoint"'),
    EntryKey("benchmark", (str,), True, "a string", 'benchmark = "bundled:shapes"'),
    EntryKey("family", (str,), True, "a string", 'family = "rotation"'),
    EntryKey("sample", (str,), True, "a string", 'sample = "shapes-00004"'),
    EntryKey("level", (int,), True, "an integer", "level = 3"),
    EntryKey("choices", (dict,), False, "a table", "choices = { sign = 1 }"),
    EntryKey("intensity", (int, float), False, "a number", "intensity = 0.1"),
    EntryKey("clean", (str,), False, "a string", 'clean = "B"'),
    EntryKey("perturbed", (str,), False, "a string", 'perturbed = "C"'),
)}
REQUIRED_KEYS = tuple(key.name for key in ENTRY_KEYS.values() if key.required)
HEADER = (
    "# vlmgate counterexample store: minimal failing instances found by the search suite\n"
    "# (robustness_tests/test_minimal_failures.py). Commit it: the next run replays every entry for\n"
    "# the same benchmark and family first, on every model. Delete an entry (or this file) to search again.\n"
)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Counterexample:
    """One stored minimal failure (see the module docstring for the fields)."""

    model: str
    benchmark: str
    family: str
    instance: SearchInstance
    intensity: float | None = None
    clean: str | None = None
    perturbed: str | None = None

    @property
    def identity(self) -> tuple[str, str, str, SearchInstance]:
        """What makes two entries the same counterexample (the answers are only notes)."""
        return (self.model, self.benchmark, self.family, self.instance)

    def describe(self) -> str:
        choices = json.dumps(self.instance.choice_dict, sort_keys=True)
        return (f"{self.family} level {self.instance.level} {choices} on sample {self.instance.sample_id!r} "
                f"(found on {self.model})")


@dataclass(frozen=True)
class CounterexampleStore:
    """The entries of one store file, as read at start-up."""

    path: Path
    entries: tuple[Counterexample, ...] = ()

    def for_case(self, benchmark: str, family: str) -> tuple[Counterexample, ...]:
        """Entries to replay for a case: same benchmark and family, found on any model."""
        return tuple(e for e in self.entries if e.benchmark == benchmark and e.family == family)

    @classmethod
    def load(cls, path: Path, families: list[str] | None = None) -> "CounterexampleStore":
        """Read ``path`` (a missing file is an empty store); ``families`` are the known names."""
        return cls(Path(path), read_entries(Path(path), families))

    def record(self, entry: Counterexample) -> bool:
        """Append ``entry`` to the file (re-read under a lock); False when already there."""
        with _locked(self.path):
            current = read_entries(self.path, None)
            if any(e.identity == entry.identity for e in current):
                return False
            _write_atomic(self.path, render([*current, entry]))
            return True


def missing_sample(path: Path, entry: Counterexample, benchmark: str) -> ConfigError:
    """The error of a stored entry whose sample ``benchmark`` does not hold.

    Replaying it would measure nothing, and a case that replays nothing must not read as a
    gate that was judged, so the entry is refused by name with the ways to fix it.
    """
    return ConfigError(
        f"{path}: stored counterexample {entry.describe()}: benchmark {benchmark} holds no sample "
        f"{entry.instance.sample_id!r}, so replaying it would measure nothing; remove the entry from {path}, "
        "or run on the benchmark it was found on"
    )


def _fail(path: Path, where: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"{path}: {where}: {problem}; {fix} (or delete the entry to search again)")


def read_entries(path: Path, families: list[str] | None) -> tuple[Counterexample, ...]:
    """Parse and check a store file; every problem names the file, the entry, the key and the fix."""
    try:
        data = read_toml(path, "counterexample store")
    except FileNotFoundError:
        return ()
    for key in data:
        if key not in ("version", TABLE):
            raise _fail(path, "top level", unknown_name_message("key", key, ["version", TABLE]),
                        f"entries are [[{TABLE}]] tables")
    if data.get("version", VERSION) != VERSION:
        raise _fail(path, "version", f"version {data['version']!r} is not supported",
                    f"this vlmgate writes version {VERSION}")
    tables = data.get(TABLE, [])
    if not isinstance(tables, list):
        raise _fail(path, TABLE, "must be an array of tables", f"write each entry as [[{TABLE}]]")
    return tuple(_entry(path, index, table, families) for index, table in enumerate(tables, start=1))


def _entry(path: Path, index: int, table: Any, families: list[str] | None) -> Counterexample:
    where = f"[[{TABLE}]] #{index}"
    if not isinstance(table, Mapping):
        raise _fail(path, where, f"{table!r} is not a table",
                    f"write each entry as a [[{TABLE}]] table with {', '.join(REQUIRED_KEYS)}")
    for name, value in table.items():
        if name not in ENTRY_KEYS:
            raise _fail(path, where, unknown_name_message("key", name, list(ENTRY_KEYS)), "remove or rename it")
        key = ENTRY_KEYS[name]
        if isinstance(value, bool) or not isinstance(value, key.types):
            raise _fail(path, f"{where} key {name!r}", f"{value!r} is not {key.noun}",
                        f"write {name} as {key.noun}, e.g. {key.example}")
        if value == "":
            raise _fail(path, f"{where} key {name!r}", "the empty string names nothing", f"write e.g. {key.example}")
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(path, f"{where} key {name!r}", f"{value!r} is not a finite number",
                        f"write {name} as a finite number, e.g. {key.example}")
    missing = [name for name in REQUIRED_KEYS if name not in table]
    if missing:
        raise _fail(path, where, f"missing key(s) {', '.join(missing)}",
                    f"every entry needs {', '.join(REQUIRED_KEYS)}")
    if families is not None and table["family"] not in families:
        raise _fail(path, f"{where} key 'family'", unknown_name_message("family", table["family"], families),
                    "use a registered family name")
    if table["level"] < 1:
        raise _fail(path, f"{where} key 'level'", f"level {table['level']} is not a failure (0 is the identity)",
                    "give the failing level, >= 1")
    choices = table.get("choices", {})
    for key, value in choices.items():
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise _fail(path, f"{where} key 'choices.{key}'", f"{value!r} is not an integer or a string",
                        "choices are the family's at_level() arguments")
    instance = SearchInstance(table["sample"], table["level"], tuple(sorted(choices.items())))
    intensity = table.get("intensity")
    return Counterexample(table["model"], table["benchmark"], table["family"], instance,
                          None if intensity is None else float(intensity), table.get("clean"), table.get("perturbed"))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in sorted(value.items()))
        return f"{{ {items} }}" if items else "{}"
    raise TypeError(f"cannot write {value!r} to a counterexample store")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def render(entries: list[Counterexample]) -> str:
    """The store file's text for ``entries`` (stable: same entries, same bytes)."""
    lines = [HEADER, f"version = {VERSION}\n"]
    for entry in entries:
        fields: dict[str, Any] = {
            "model": entry.model, "benchmark": entry.benchmark, "family": entry.family,
            "sample": entry.instance.sample_id, "level": entry.instance.level, "choices": entry.instance.choice_dict,
            "intensity": None if entry.intensity is None else round(entry.intensity, 6),
            "clean": entry.clean, "perturbed": entry.perturbed,
        }
        lines.append(f"\n[[{TABLE}]]\n")
        lines.extend(f"{key} = {_toml_value(value)}\n" for key, value in fields.items() if value is not None)
    return "".join(lines)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock for read-modify-write of ``path`` across processes (POSIX; else none).

    The lock file lives in the temporary folder, not beside the store, so the committed
    folder never holds a stray lock file.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: xdist workers may race on the rare write
        yield
        return
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"vlmgate-counterexamples-{digest}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
