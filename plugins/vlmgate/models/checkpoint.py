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

Identity (``files_digest``): sha256 over the relative names and bytes of every file that
decides a value, ``IDENTITY_PATTERNS``: weights and their shard index, config, processor,
tokenizer, chat-template and generation files, and the modelling code of a
``trust_remote_code`` checkpoint. Names are relative to the folder, so a moved or copied
folder keeps its digest; files that decide nothing (a README, training notes) are left
out, so that editing them does not throw a cache away.

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
import json
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from vlmgate.errors import ModelError
from vlmgate.models.base import ModelOptions

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

    def files_digest(self) -> str:
        return files_digest(self.folder)


def open_checkpoint(path: str, spec: str) -> Checkpoint:
    """The folder ``path`` checked as module docstring says, or a ``ModelError`` naming what is wrong."""
    folder = Path(path).expanduser().resolve()
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


def files_digest(folder: Path) -> str:
    """sha256 over the relative name and bytes of every identity file (streamed: constant memory)."""
    digest = hashlib.sha256()
    for file in identity_files(folder):
        digest.update(file.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


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


def load_weights(model_class: Any, checkpoint: Checkpoint, options: ModelOptions, **kwargs: Any) -> tuple[Any, str]:
    """``model_class.from_pretrained`` on the checkpoint with its loading report checked.

    Returns the model and the digest of the weights initialised at load under
    ``options.allow_weight_keys`` ("" when none). transformers' own exceptions (a missing
    processor package, an unreadable config) propagate for the adapter to word.
    """
    model, report = model_class.from_pretrained(
        checkpoint.folder, dtype=torch_dtype(options, checkpoint.spec), use_safetensors=True, local_files_only=True,
        output_loading_info=True, ignore_mismatched_sizes=True, **kwargs,
    )
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
