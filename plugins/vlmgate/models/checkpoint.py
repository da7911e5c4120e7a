"""Checkpoint folders as ``hf:`` and ``clip:`` read them: checked, fingerprinted, loaded with a report.

Both adapters load a transformers model from a local folder; they must refuse the same
bad inputs with the same one-line messages and agree on what a checkpoint's identity is,
so that logic lives here once.

Folder checks (``open_checkpoint``) run before transformers sees the folder, because its
loaders answer a bad file with a traceback from deep inside (``AttributeError: 'list'
object has no attribute 'get'``) or, worse, load it: the folder exists; every JSON file
that decides a value (``config.json``, ``processor_config.json``, ``tokenizer.json`` ...)
is a UTF-8 JSON object; there is at least one ``*.safetensors`` (never pickle) and
safetensors can read each one's header and finds it covers the file (a truncated
download or a damaged disk is named here, with the file).

Identity (``files_digest``): sha256 over the relative name and the sha256 of the bytes of
every file that decides a value, ``IDENTITY_PATTERNS``: weights and their shard index,
config, processor, tokenizer, chat-template and generation files, and the modelling code
of a ``trust_remote_code`` checkpoint. Names are relative to the folder, so a moved or
copied folder keeps its digest; files that decide nothing (a README, training notes) are
left out, so that editing them does not throw a cache away. Hashing a multi-GB checkpoint
takes tens of seconds, so a large file's digest is memoised by its stat identity
(``FileStamp``: path, size, mtime, ctime, inode, device) in the process and, given a
folder, in a small JSON side-car record that every later process reads instead of the
bytes; any write to the file changes its ctime (which no tool can set back), so a
changed or touched file is hashed again.

Placement (``weight_placement``): weights load straight onto their device in the
requested dtype (``device_map`` of that one device; no CPU copy first), or sharded over
the visible GPUs and then CPU within ``max_memory`` (``device_map="auto"``; accelerate
places them), optionally quantized by bitsandbytes at load (CUDA only). A checkpoint that
is quantized already (``quantization_config`` in config.json: GPTQ, AWQ,
compressed-tensors ...) loads through transformers' own quantizer; the method is part of
the identity either way (``ModelIdentity.quantization``).

Loading report (``load_weights``): transformers' ``from_pretrained(output_loading_info=True)``
says which weights it did not take from the files: missing keys (initialised at random),
unexpected keys (left unused), mismatched keys (wrong shape, initialised at random; with
``ignore_mismatched_sizes`` transformers reports them instead of raising a bare
``RuntimeError``) and error messages. For a correct checkpoint transformers 5 reports
nothing: weights tied to others (an ``lm_head`` tied to ``embed_tokens``) and
non-persistent buffers are not counted as missing — the bundled shapes checkpoints and
every tiny family of ``tiny_families`` load with an empty report. So any entry is a
``ModelError`` naming the folder and the keys, unless a glob of
``ModelOptions.allow_weight_keys`` matches it; the weights initialised under such a glob
are hashed (``initialised``), because they are random draws that decide every score.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from vlmgate.errors import ModelError
from vlmgate.models.base import DEVICE_MAPS, MEMORY_BUDGET, QUANTIZE_MODES, ModelOptions

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: Files of a checkpoint folder whose bytes decide a value (glob patterns relative to the
#: folder; subfolders other than the named one are not read: transformers loads none).
IDENTITY_PATTERNS = (
    "config.json", "*.safetensors", "*.safetensors.index.json",
    "processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json",
    "tokenizer*.json", "*.model", "vocab*", "merges.txt", "special_tokens_map.json", "added_tokens.json",
    "chat_template.json", "*.jinja", "additional_chat_templates/*.jinja", "generation_config.json", "*.py",
)
#: Keys named in a loading-report message; the rest are counted.
SHOWN_KEYS = 5
_HASH_CHUNK = 1 << 20
#: Files at least this large have their digest memoised (``file_sha256``); smaller ones
#: hash faster than a side-car record reads.
MEMO_MIN_BYTES = 1 << 20
#: ``--vlmgate-quantize`` values (``QUANTIZE_MODES``) and the ``ModelIdentity.quantization`` each records.
QUANTIZE = dict(zip(QUANTIZE_MODES, ("bitsandbytes-nf4", "bitsandbytes-int8")))
#: What transformers needs installed to load a checkpoint quantized with ``quant_method``.
QUANT_PACKAGES = {"gptq": "optimum and gptqmodel", "awq": "gptqmodel (or autoawq)",
                  "compressed-tensors": "compressed-tensors", "bitsandbytes": "bitsandbytes (and a CUDA device)"}
_FIX = "re-save the checkpoint with model.save_pretrained(PATH) and processor.save_pretrained(PATH)"


@dataclass(frozen=True)
class Checkpoint:
    """A checked checkpoint folder: its parsed config and its safetensors files."""

    spec: str
    folder: Path
    config: Mapping[str, Any]
    weights: tuple[Path, ...]

    @property
    def model_type(self) -> str:
        model_type = self.config.get("model_type")
        if not isinstance(model_type, str) or not model_type:
            raise ModelError(f"model spec {self.spec!r}: {self.folder / 'config.json'} has no 'model_type'; {_FIX}")
        return model_type

    @property
    def quantization(self) -> str:
        """``quant_method`` of config.json's ``quantization_config`` ("" for an unquantized checkpoint)."""
        config = self.config.get("quantization_config")
        method = config.get("quant_method") if isinstance(config, Mapping) else None
        return str(method) if method else ""

    def files_digest(self, memo_dir: Path | None = None) -> str:
        return files_digest(self.folder, memo_dir)


def open_checkpoint(path: str, spec: str) -> Checkpoint:
    """The folder ``path`` checked as module docstring says, or a ``ModelError`` naming what is wrong."""
    folder = Path(path).expanduser().resolve()
    if folder.is_file():
        scheme = spec[: -len(path)] if path and spec.endswith(path) else spec.partition(":")[0] + ":"
        raise ModelError(
            f"model spec {spec!r}: {folder} is a file, not a checkpoint folder; the spec takes the folder "
            f"that holds config.json and the *.safetensors files: pass {scheme}{folder.parent}"
        )
    if not folder.is_dir():
        raise ModelError(
            f"model spec {spec!r}: checkpoint folder {folder} does not exist; pass PATH a local folder "
            "holding config.json and *.safetensors (vlmgate never downloads)"
        )
    config_path = folder / "config.json"
    if not config_path.exists():
        raise ModelError(f"model spec {spec!r}: {folder} has no config.json; {_FIX}")
    config = read_json_object(config_path, spec)
    for file in identity_files(folder):
        if file.suffix == ".json" and file != config_path:
            read_json_object(file, spec)
    return Checkpoint(spec, folder, config, checked_weight_files(folder, spec))


def read_json_object(path: Path, spec: str) -> dict[str, Any]:
    """``path`` parsed as a UTF-8 JSON object, or a ``ModelError`` saying which of the three it is not."""
    if not path.is_file():
        raise ModelError(f"model spec {spec!r}: {path} is a directory, not a file; remove it and {_FIX}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"model spec {spec!r}: {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                         f"{_FIX}") from None
    except OSError as exc:
        raise ModelError(f"model spec {spec!r}: {path} cannot be read ({exc.strerror}); check its permissions") \
            from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"model spec {spec!r}: {path} is not valid JSON ({exc}); {_FIX}") from None
    if not isinstance(data, dict):
        raise ModelError(f"model spec {spec!r}: {path} holds a JSON {type(data).__name__}, not an object; {_FIX}")
    return data


def checked_weight_files(folder: Path, spec: str) -> tuple[Path, ...]:
    """The folder's ``*.safetensors`` files, each with a header that covers the file."""
    from safetensors import SafetensorError, safe_open

    weights = tuple(sorted(folder.glob("*.safetensors")))
    if not weights:
        raise ModelError(
            f"model spec {spec!r}: {folder} has no *.safetensors weights (checkpoints load from "
            "safetensors only, never pickle); convert it with model.save_pretrained(PATH), "
            "whose default format is safetensors"
        )
    for file in weights:
        try:
            with safe_open(file, framework="pt"):
                pass
        except (SafetensorError, OSError) as exc:
            raise ModelError(
                f"model spec {spec!r}: {file} is not a readable safetensors file ({exc}); the file is "
                "truncated or damaged: copy or download it again, or re-save the checkpoint with "
                "model.save_pretrained(PATH)"
            ) from None
    return weights


def identity_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that ``IDENTITY_PATTERNS`` names, in relative-path order."""
    found = {file for pattern in IDENTITY_PATTERNS for file in folder.glob(pattern) if not file.is_dir()}
    return sorted(found, key=lambda file: file.relative_to(folder).as_posix())


def files_digest(folder: Path, memo_dir: Path | None = None) -> str:
    """sha256 over the relative name and ``file_sha256`` of every identity file."""
    digest = hashlib.sha256()
    for file in identity_files(folder):
        digest.update(file.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        digest.update(file_sha256(file, memo_dir).encode("ascii") + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class FileStamp:
    """A file's stat identity: equal stamps, same bytes (short of tampering with the clock).

    ``ctime_ns`` changes on every write and cannot be set by ``touch`` or ``rsync -t``,
    so a file rewritten with its old size and mtime still gets a new stamp.
    """

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, path: Path) -> "FileStamp":
        stat = path.stat()
        return cls(str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev)

    @property
    def key(self) -> str:
        """The side-car record's name: sha256 of the stamp."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode("utf-8")).hexdigest()


#: This process's memo of large files' digests by stamp (``file_sha256``).
_DIGESTS: dict[FileStamp, str] = {}


def file_sha256(path: Path, memo_dir: Path | None = None) -> str:
    """sha256 of ``path``'s bytes; memoised by ``FileStamp`` for files of ``MEMO_MIN_BYTES`` or more.

    The memo is this process's, and with ``memo_dir`` a JSON record per stamp there
    (written atomically; a record that does not match its stamp is ignored), so that a
    second process loading the same files does not read them again.
    """
    if path.stat().st_size < MEMO_MIN_BYTES:
        return hash_bytes(path)
    stamp = FileStamp.of(path)
    if stamp in _DIGESTS:
        return _DIGESTS[stamp]
    record = None if memo_dir is None else Path(memo_dir) / f"{stamp.key}.json"
    digest = _read_record(record, stamp) if record is not None else None
    if digest is None:
        digest = hash_bytes(path)
        if record is not None:
            _write_record(record, stamp, digest)
    _DIGESTS[stamp] = digest
    return digest


def hash_bytes(path: Path) -> str:
    """sha256 of the file's bytes, streamed (constant memory): the only place they are read for it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_record(record: Path, stamp: FileStamp) -> str | None:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("stamp") != asdict(stamp):
        return None
    digest = data.get("sha256")
    return digest if isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest) else None


def _write_record(record: Path, stamp: FileStamp, digest: str) -> None:
    """Write ``record`` atomically (a temporary file renamed into place); a failure only costs a re-hash.

    The records' folder is made, not its parent: that is the observation cache's root,
    whose maker writes its ``CACHEDIR.TAG`` and ``.gitignore`` only when it makes it.
    Until the cache exists, this process's memo is the only one.
    """
    try:
        record.parent.mkdir(exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=record.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump({"stamp": asdict(stamp), "sha256": digest}, out)
        os.replace(temporary, record)
    except OSError:
        pass


def torch_dtype(options: ModelOptions, spec: str) -> torch.dtype:
    if options.dtype not in TORCH_DTYPES:
        raise ModelError(f"model spec {spec!r}: dtype {options.dtype!r} is not supported; "
                         f"use one of {', '.join(TORCH_DTYPES)}")
    return TORCH_DTYPES[options.dtype]


def torch_device(options: ModelOptions, spec: str) -> torch.device:
    try:
        return torch.device(options.device)
    except RuntimeError as exc:
        raise ModelError(f"model spec {spec!r}: device {options.device!r} is not a torch device ({exc}); "
                         "use e.g. cpu, cuda or cuda:0") from None


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class Placement:
    """Where and how the weights load (module docstring).

    ``kwargs``: what ``from_pretrained`` takes for it (``device_map``, ``max_memory``,
    ``quantization_config``); ``placed``: the weights land on their device(s) at load, so
    the model must not be moved afterwards; ``quantization``: what the identity records.
    """

    kwargs: Mapping[str, Any]
    placed: bool
    quantization: str


def weight_placement(checkpoint: Checkpoint, options: ModelOptions) -> Placement:
    """The ``Placement`` of ``options`` for ``checkpoint``, or a ``ModelError`` naming the conflict."""
    spec = checkpoint.spec
    device, dtype = torch_device(options, spec), torch_dtype(options, spec)
    kwargs: dict[str, Any] = {}
    if options.device_map is not None:
        if options.device_map not in DEVICE_MAPS:
            raise ModelError(f"model spec {spec!r}: device map {options.device_map!r} is not supported; "
                             "pass --vlmgate-device-map auto (shard over the visible GPUs, then CPU)")
        kwargs["device_map"] = "auto"
        if options.max_memory:
            kwargs["max_memory"] = max_memory(options.max_memory, spec)
    elif options.max_memory:
        raise ModelError(f"model spec {spec!r}: a memory budget per device (--vlmgate-max-memory) applies to a "
                         "sharded model; pass --vlmgate-device-map auto with it")
    elif device.type != "cpu":
        kwargs["device_map"] = {"": device}  # straight onto the device, in dtype: no CPU copy first
    quantization = checkpoint.quantization
    if options.quantize is not None:
        kwargs["quantization_config"] = _bitsandbytes(checkpoint, options, device, dtype)
        kwargs.setdefault("device_map", {"": device})
        quantization = QUANTIZE[options.quantize]
    return Placement(kwargs, "device_map" in kwargs, quantization)


def max_memory(budgets: Iterable[tuple[str, str]], spec: str) -> dict[int | str, str]:
    """``(("0", "20GiB"), ("cpu", "64GiB"))`` as accelerate takes it (GPU indices as ints)."""
    out: dict[int | str, str] = {}
    for key, size in budgets:
        if not MEMORY_BUDGET.match(f"{key}={size}"):
            raise ModelError(f"model spec {spec!r}: memory budget {key}={size} is not DEVICE=SIZE; pass e.g. "
                             "--vlmgate-max-memory 0=20GiB,1=20GiB,cpu=64GiB (GPU index, cpu or disk)")
        out[int(key) if key.isdigit() else key] = size
    return out


def _bitsandbytes(checkpoint: Checkpoint, options: ModelOptions, device: torch.device, dtype: torch.dtype) -> Any:
    """The ``BitsAndBytesConfig`` of ``--vlmgate-quantize``, refused where it cannot run."""
    spec = checkpoint.spec
    if options.quantize not in QUANTIZE:
        raise ModelError(f"model spec {spec!r}: quantize {options.quantize!r} is not supported; "
                         f"use one of {', '.join(QUANTIZE)}")
    if checkpoint.quantization:
        raise ModelError(f"model spec {spec!r}: {checkpoint.folder / 'config.json'} is quantized already "
                         f"({checkpoint.quantization}); load it without --vlmgate-quantize")
    on_cuda = device.type == "cuda" or options.device_map is not None
    if not (on_cuda and torch.cuda.is_available()):
        raise ModelError(f"model spec {spec!r}: --vlmgate-quantize {options.quantize} loads with bitsandbytes, "
                         f"which needs a CUDA device (this run: device {options.device!r}, CUDA "
                         f"{'available' if torch.cuda.is_available() else 'not available to this torch'}); "
                         "pass --vlmgate-device cuda on a machine with a GPU, or drop --vlmgate-quantize")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError(f"model spec {spec!r}: --vlmgate-quantize {options.quantize} needs the bitsandbytes "
                         "package: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    if options.quantize == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def load_weights(model_class: Any, checkpoint: Checkpoint, options: ModelOptions, *,
                 placement: Placement | None = None, **kwargs: Any) -> tuple[Any, str]:
    """``model_class.from_pretrained`` on the checkpoint with its loading report checked.

    The weights load as ``weight_placement`` says (on their device, in their dtype, maybe
    quantized). Returns the model and the digest of the weights initialised at load under
    ``options.allow_weight_keys`` ("" when none). transformers' own exceptions (a missing
    processor package, an unreadable config) propagate for the adapter to word, except a
    missing quantization package, which is named here. ``placement``: the one the caller
    already planned (``weight_placement``), so that it is not planned twice.
    """
    placement = placement or weight_placement(checkpoint, options)
    try:
        model, report = model_class.from_pretrained(
            checkpoint.folder, dtype=torch_dtype(options, checkpoint.spec), use_safetensors=True,
            local_files_only=True, output_loading_info=True, ignore_mismatched_sizes=True, **placement.kwargs,
            **kwargs,
        )
    except ImportError as exc:
        if not checkpoint.quantization:
            raise
        raise ModelError(
            f"model spec {checkpoint.spec!r}: {checkpoint.folder / 'config.json'} is quantized with "
            f"{checkpoint.quantization} (quantization_config), and transformers needs "
            f"{QUANT_PACKAGES.get(checkpoint.quantization, 'the package it names')} to load it ({exc}); "
            "install it, or gate an unquantized checkpoint"
        ) from exc
    initialised = check_loading_report(report, checkpoint, type(model).__name__, options.allow_weight_keys)
    return model, initialised_digest(model, initialised)


def check_loading_report(report: Mapping[str, Any], checkpoint: Checkpoint, architecture: str,
                         allowed: Iterable[str]) -> tuple[str, ...]:
    """Refuse what the loading report lists outside ``allowed``; the allowed keys initialised at load."""
    globs = tuple(allowed)
    missing = sorted(report.get("missing_keys") or ())
    unexpected = sorted(report.get("unexpected_keys") or ())
    mismatched = {key: (tuple(ckpt), tuple(model)) for key, ckpt, model in report.get("mismatched_keys") or ()}
    errors = list(report.get("error_msgs") or ())

    def refused(keys: Iterable[str]) -> list[str]:
        return [key for key in keys if not any(fnmatchcase(key, glob) for glob in globs)]

    problems = []
    if bad := refused(missing):
        problems.append(f"{len(bad)} missing from the files (would be initialised at random): {_shown(bad)}")
    if bad := refused(unexpected):
        problems.append(f"{len(bad)} unexpected (in the files, not in the architecture): {_shown(bad)}")
    if bad := refused(sorted(mismatched)):
        problems.append(f"{len(bad)} with the wrong shape: " + _shown(
            [f"{key} (file {list(mismatched[key][0])}, model {list(mismatched[key][1])})" for key in bad]))
    if errors:
        problems.append(f"{len(errors)} load error(s): {_shown(errors)}")
    if problems:
        raise ModelError(
            f"model spec {checkpoint.spec!r}: the weights in {checkpoint.folder} do not fit {architecture} "
            f"(model_type {checkpoint.config.get('model_type')!r}): {'; '.join(problems)}. Gate the checkpoint "
            "the weights were trained for (re-save it with model.save_pretrained(PATH) from the model you mean "
            "to gate), or, where these weights are meant to be initialised or ignored at load, allow them with "
            "--vlmgate-allow-missing-weights GLOB (repeatable; ModelOptions.allow_weight_keys)"
        )
    return tuple(sorted({*missing, *mismatched}))


def _shown(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN_KEYS])
    return shown if len(items) <= SHOWN_KEYS else f"{shown}, ... (+{len(items) - SHOWN_KEYS} more)"


def initialised_digest(model: torch.nn.Module, keys: Iterable[str]) -> str:
    """sha256 over the names and values of the weights ``keys`` as loaded ("" for none)."""
    keys = sorted(keys)
    if not keys:
        return ""
    state = model.state_dict()
    digest = hashlib.sha256()
    for key in keys:
        digest.update(key.encode("utf-8") + b"\0")
        if key in state:
            digest.update(state[key].detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
