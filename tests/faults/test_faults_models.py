"""Fault battery, model inputs: broken checkpoints and stale or damaged cache entries.

Each fault starts from a copy of the tiny LLaVA checkpoint in ``tmp_path`` and breaks one
thing. A checkpoint that cannot be gated faithfully fails every case with one message
naming the folder, the file or the weights, and the fix — never a traceback, never a
gate judged on randomly initialised or truncated inputs. Anything that changes a value
(a processor or template edit, the dtype, a perturbation's implementation) makes the
observation cache miss, and an entry that cannot be the value of its request is a miss
that is rewritten whole.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from vlmgate.models.base import ModelOptions, ScoreRequest, load_model

LM_HEAD = "language_model.lm_head.weight"
#: The gate of one case (rotation), enough to load the model and run the clean pass.
ONE_CASE = ("-m", "rotation")


def _copy(checkpoint: Path, tmp_path: Path, name: str = "broken") -> Path:
    return Path(shutil.copytree(checkpoint, tmp_path / name))


def _edit_tensors(folder: Path, edit: Callable[[dict], None]) -> None:
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def _edit_json(folder: Path, name: str, edit: Callable[[dict], None]) -> None:
    data = json.loads((folder / name).read_text())
    edit(data)
    (folder / name).write_text(json.dumps(data))


def _delete_nine(tensors: dict) -> None:
    for name in sorted(tensors)[:9]:
        del tensors[name]


def _config_directory(folder: Path) -> None:
    (folder / "config.json").unlink()
    (folder / "config.json").mkdir()


def _truncate_weights(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:len(data) // 2])


#: (fault, break the folder, what the message names besides the folder, the fix).
LOAD_FAULTS = [
    ("deleted tensors", lambda f: _edit_tensors(f, _delete_nine), ("9 missing from the files", "(+4 more)"),
     r"--vlmgate-allow-missing-weights GLOB"),
    ("unexpected tensor",
     lambda f: _edit_tensors(f, lambda t: t.update({"extra.adapter.weight": t[LM_HEAD][:2].clone()})),
     ("1 unexpected", "extra.adapter.weight"), r"re-save it with model\.save_pretrained"),
    ("mis-shaped tensor", lambda f: _edit_tensors(f, lambda t: t.update({LM_HEAD: t[LM_HEAD][:100]})),
     ("1 with the wrong shape", "lm_head.weight (file [100, 64], model [512, 64])"),
     r"re-save it with model\.save_pretrained"),
    ("truncated safetensors", _truncate_weights, ("model.safetensors", "not a readable safetensors file"),
     r"copy or download it again"),
    ("garbage safetensors", lambda f: (f / "model.safetensors").write_bytes(b"\xff" * 64),
     ("model.safetensors", "header too large"), r"copy or download it again"),
    ("config.json not an object", lambda f: (f / "config.json").write_text("[1, 2]"),
     ("config.json holds a JSON list, not an object",), r"re-save the checkpoint with model\.save_pretrained"),
    ("config.json a directory", _config_directory, ("config.json is a directory, not a file",),
     r"remove it and re-save the checkpoint"),
    ("config.json not UTF-8", lambda f: (f / "config.json").write_bytes(b'{"model_type": "llava\xff"}'),
     ("config.json is not UTF-8 text", "at byte 21"), r"re-save the checkpoint"),
    ("config.json without model_type", lambda f: _edit_json(f, "config.json", lambda c: c.pop("model_type")),
     ("config.json has no 'model_type'",), r"re-save the checkpoint"),
    ("processor_config.json not an object", lambda f: (f / "processor_config.json").write_text("[1]"),
     ("processor_config.json holds a JSON list",), r"processor\.save_pretrained"),
    ("chat template that does not render", lambda f: (f / "chat_template.jinja").write_text("{% if %}"),
     ("chat template", "does not render", "TemplateSyntaxError"), r"fix chat_template\.jinja"),
]


@pytest.mark.parametrize("breaker, names, fix", [fault[1:] for fault in LOAD_FAULTS],
                         ids=[fault[0] for fault in LOAD_FAULTS])
def test_a_broken_checkpoint_fails_every_case_naming_the_folder(gate, tiny_llava_checkpoint, tmp_path,
                                                                breaker, names, fix):
    folder = _copy(tiny_llava_checkpoint, tmp_path)
    breaker(folder)
    said = gate(*ONE_CASE, "--vlmgate-no-cache", checkpoint=folder)
    said.refused(1, "ModelError", str(folder.resolve()), *names, fix=fix)


def test_clip_on_a_llava_folder_is_refused(tiny_llava_checkpoint, tmp_path):
    from vlmgate.errors import ModelError

    folder = _copy(tiny_llava_checkpoint, tmp_path)
    with pytest.raises(ModelError) as info:
        load_model(f"clip:{folder}", ModelOptions())
    message = str(info.value)
    assert "model_type 'llava', not 'clip'" in message and str(folder / "config.json") in message
    assert f"gate a vision-language model with hf:{folder}" in message and "\n" not in message


def test_allowed_missing_weights_are_gated_only_when_asked(gate, tiny_llava_checkpoint, tmp_path):
    folder = _copy(tiny_llava_checkpoint, tmp_path)
    _edit_tensors(folder, lambda t: t.pop(LM_HEAD))
    gate(*ONE_CASE, "--vlmgate-no-cache", checkpoint=folder).refused(
        1, "1 missing from the files", "lm_head.weight", fix=r"--vlmgate-allow-missing-weights")
    allowed = gate(*ONE_CASE, "--vlmgate-no-cache", "--vlmgate-allow-missing-weights=*lm_head*", checkpoint=folder)
    assert allowed.exit_code == 0, allowed.output


# -- tokenizer and context length ---------------------------------------------------------

def _manifest_requests(manifest: Path) -> list[ScoreRequest]:
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    return [ScoreRequest(Image.open(manifest.parent / row["image"]).convert("RGB"),
                         f"Question: {row['question']}", tuple(row["options"]), sample_id=row["id"]) for row in rows]


def test_a_fixed_length_tokenizer_scores_whole_sequences(gate, tiny_llava_checkpoint, manifest, tmp_path):
    folder = _copy(tiny_llava_checkpoint, tmp_path)
    _edit_json(folder, "tokenizer.json", lambda t: t.update(
        truncation={"direction": "Right", "max_length": 26, "strategy": "LongestFirst", "stride": 0},
        padding={"strategy": {"Fixed": 260}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0,
                 "pad_type_id": 0, "pad_token": "<pad>"}))
    requests = _manifest_requests(manifest)
    clean = load_model(f"hf:{tiny_llava_checkpoint}", ModelOptions()).score(requests)
    fixed = load_model(f"hf:{folder}", ModelOptions()).score(requests)
    for got, expected in zip(fixed, clean):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    said = gate(*ONE_CASE, "--vlmgate-no-cache", checkpoint=folder)
    assert said.exit_code == 0, said.output


def test_a_context_beyond_the_models_positions_names_the_sample(gate, tiny_llava_checkpoint, manifest, tmp_path):
    folder = _copy(tiny_llava_checkpoint, tmp_path)
    _edit_json(folder, "config.json", lambda c: c["text_config"].update(max_position_embeddings=160))
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    long_question = "Looking closely at every part of the picture, " * 12 + "what colour is the shape?"
    rows.append({**rows[0], "id": "long-question", "image": str(manifest.parent / rows[0]["image"]),
                 "question": long_question})
    longer = tmp_path / "long.jsonl"
    longer.write_text("".join(json.dumps({**row, "image": str(manifest.parent / row["image"])}) + "\n"
                              for row in rows))
    said = gate(*ONE_CASE, "--vlmgate-no-cache", checkpoint=folder, manifest=longer)
    said.refused(1, "sample 'long-question' needs", "but the model has 160 positions",
                 str(folder.resolve() / "config.json"), fix=r"shorten the sample's question and options")
    assert not re.search(r"sample '(s\d|p0)' needs", said.output)  # the short samples fit


# -- the observation cache ----------------------------------------------------------------

def _cache_counts(said) -> tuple[int, int]:
    """(hits, misses) of a gate run, from its cache summary line."""
    found = re.search(r"this run: (\d+) hits, (\d+) misses", said.output)
    assert found, said.output
    return int(found[1]), int(found[2])


def _edit_processor_mean(folder: Path) -> None:
    _edit_json(folder, "processor_config.json", lambda p: p["image_processor"].update(image_mean=[0.5, 0.5, 0.5]))


def _edit_chat_template(folder: Path) -> None:
    template = (folder / "chat_template.jinja").read_text()  # a system line before every conversation
    (folder / "chat_template.jinja").write_text(
        template.replace("{{- bos_token -}}", "{{- bos_token -}}Be brief.\n", 1))


#: (fault, edit of the folder, extra gate args and model options of the second run).
VALUE_CHANGES = [
    ("processor_config.json image mean", _edit_processor_mean, (), {}),
    ("chat template", _edit_chat_template, (), {}),
    ("bfloat16 over a float32 cache", lambda folder: None, ("--vlmgate-dtype=bfloat16",), {"dtype": "bfloat16"}),
]


@pytest.mark.parametrize("edit, args, options", [fault[1:] for fault in VALUE_CHANGES],
                         ids=[fault[0] for fault in VALUE_CHANGES])
def test_a_change_that_changes_scores_misses_the_cache(gate, tiny_llava_checkpoint, manifest, tmp_path,
                                                       edit, args, options):
    folder = _copy(tiny_llava_checkpoint, tmp_path)
    cache = f"--vlmgate-cache={tmp_path / 'cache'}"
    first = gate(*ONE_CASE, cache, checkpoint=folder)
    assert first.exit_code == 0 and _cache_counts(first)[0] == 0, first.output
    requests = _manifest_requests(manifest)
    before = load_model(f"hf:{folder}", ModelOptions()).score(requests)
    edit(folder)
    after = load_model(f"hf:{folder}", ModelOptions(**options)).score(requests)
    assert not all(np.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(after, before))  # a hit would be stale
    second = gate(*ONE_CASE, cache, *args, checkpoint=folder)
    assert second.exit_code == 0, second.output
    assert _cache_counts(second) == (0, _cache_counts(first)[1])


def test_a_changed_perturbation_implementation_misses_its_entries(gate, tmp_path, monkeypatch):
    from vlmgate import registry

    # The class the registry serves: an in-process run drops the modules it imported, so a
    # fresh ``import`` here could give another class object than the gate will use.
    rotation = registry.load(registry.PERTURBATIONS, "rotation")
    cache = f"--vlmgate-cache={tmp_path / 'cache'}"
    first = gate(*ONE_CASE, cache)
    monkeypatch.setattr(rotation, "version", rotation.version + 1)
    second = gate(*ONE_CASE, cache)
    hits, misses = _cache_counts(second)
    assert second.exit_code == 0 and hits == 7 and misses == _cache_counts(first)[1] - 7  # clean hits, rotations miss


def test_a_cache_entry_with_the_wrong_option_count_is_a_miss(gate, tmp_path):
    root = tmp_path / "cache"
    first = gate(*ONE_CASE, f"--vlmgate-cache={root}")
    entries = sorted(root.glob("*/*.npy"))
    lengths = {path: np.load(path).shape for path in entries}
    assert len(entries) == _cache_counts(first)[1] and set(lengths.values()) == {(2,), (4,)}
    for path in entries:  # one score fewer than the request has options
        np.save(path, np.load(path)[:-1], allow_pickle=False)
    second = gate(*ONE_CASE, f"--vlmgate-cache={root}")
    assert second.exit_code == 0 and _cache_counts(second) == (0, len(entries)), second.output
    for path in entries:  # rewritten whole, with the request's option count
        value = np.load(path)
        assert value.shape == lengths[path] and value.dtype == np.float64 and np.isfinite(value).all()
    assert _cache_counts(gate(*ONE_CASE, f"--vlmgate-cache={root}")) == (len(entries), 0)
