"""Prompt formats: a checkpoint without a chat template is never scored with a guessed prompt.

It is refused at load, naming the folder and the fix, unless a format is named
(``--vlmgate-prompt-format``); a named format scores exactly the text it says, BOS
written out, against a reference built from the processor alone; the format is part of
the adapter's identity (so of the cache key) and of the run record, which shows one
context rendered from the first sample; PaliGemma's processor frame is its own format.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlmgate.errors import ConfigError, ModelError
from vlmgate.models.base import ModelOptions, ScoreRequest, describe_model
from vlmgate.models.hf import load_hf_model
from vlmgate.models.prompt_formats import FORMAT_NAMES, FORMATS, choose_format
from vlmgate.settings import build_settings

from support import FLIP_TEST, RECORD_ONLY, gate_args, outcomes

PROMPT = ("Question: What colour is the shape?\nOptions:\nA. red\nB. blue\n"
          "Please select the correct answer from the options above.")
OPTIONS = ("A. red", "B. blue")


@pytest.fixture(scope="module")
def templateless(tiny_llava_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny LLaVA without its chat template."""
    folder = Path(shutil.copytree(tiny_llava_checkpoint, tmp_path_factory.mktemp("no-template") / "ckpt"))
    (folder / "chat_template.jinja").unlink()
    return folder


def _image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8))


def test_a_checkpoint_without_a_chat_template_is_refused_naming_the_folder_and_the_fix(templateless):
    with pytest.raises(ModelError) as info:
        load_hf_model(str(templateless), ModelOptions(), spec="hf:no-template")
    message = str(info.value)
    assert str(templateless) in message and "no chat template" in message
    assert "--vlmgate-prompt-format NAME (llava-plain, question-answer)" in message
    with pytest.raises(ModelError, match="names the checkpoint's chat template, but .* has none"):
        load_hf_model(str(templateless), ModelOptions(prompt_format="chat_template"), spec="hf:no-template")


@pytest.mark.parametrize("name", ["llava-plain", "question-answer"])
def test_a_named_format_scores_its_text_with_bos_against_a_processor_reference(templateless, name):
    adapter = load_hf_model(str(templateless), ModelOptions(prompt_format=name), spec="hf:plain")
    processor, model = adapter.processor, adapter.model
    bos = processor.tokenizer.bos_token
    context = {"llava-plain": f"{bos}USER: <image>\n{PROMPT}\nASSISTANT:",
               "question-answer": f"{bos}<image>\n{PROMPT}\nAnswer:"}[name]
    assert adapter.prompt_format == name and adapter.render_context(PROMPT) == context
    image = _image()
    n_context = processor(text=[context], images=[image], add_special_tokens=False)["input_ids"][0]
    expected = []
    for option in OPTIONS:
        full = processor(text=[f"{context} {option}"], images=[image], add_special_tokens=False, return_tensors="pt")
        ids = full["input_ids"][0]
        assert int(ids[0]) == processor.tokenizer.bos_token_id  # the BOS the old plain format left out
        with torch.no_grad():
            logprobs = torch.log_softmax(model(**full).logits[0].double(), dim=-1)
        expected.append(sum(float(logprobs[j - 1, ids[j]]) for j in range(len(n_context), len(ids))))
    np.testing.assert_allclose(adapter.score([ScoreRequest(image, PROMPT, OPTIONS)])[0], expected, atol=1e-4)


def test_the_format_is_part_of_the_identity_and_the_description(tiny_llava_checkpoint, templateless):
    plain = load_hf_model(str(templateless), ModelOptions(prompt_format="llava-plain"), spec="hf:a")
    qa = load_hf_model(str(templateless), ModelOptions(prompt_format="question-answer"), spec="hf:a")
    templated = load_hf_model(str(tiny_llava_checkpoint), ModelOptions(), spec="hf:b")
    overridden = load_hf_model(str(tiny_llava_checkpoint), ModelOptions(prompt_format="llava-plain"), spec="hf:b")
    assert plain.identity.prompt_format == FORMATS["llava-plain"].identity
    assert plain.identity.prompt_format.startswith("llava-plain@")
    assert len({plain.fingerprint, qa.fingerprint}) == 2  # same files, another format: another cache key
    assert templated.identity.prompt_format == "chat_template" != overridden.identity.prompt_format
    assert templated.fingerprint != overridden.fingerprint
    description = describe_model(plain, PROMPT)
    assert description.prompt_format == "llava-plain"
    assert description.example_context == f"<s>USER: <image>\n{PROMPT}\nASSISTANT:"
    assert description.identity == plain.identity.to_json()
    assert describe_model(templated, PROMPT).example_context.startswith("<s><|user|>")


def test_an_edited_format_is_another_identity():
    from dataclasses import replace

    fmt = FORMATS["llava-plain"]
    assert replace(fmt, separator="").identity != fmt.identity
    assert replace(fmt, context=fmt.context.replace("{bos}", "")).identity != fmt.identity
    assert replace(fmt, description="reworded").identity == fmt.identity  # words about it decide no score


def test_choosing_a_format():
    where = {"spec": "hf:x", "folder": "/ckpt"}
    assert choose_format(None, has_chat_template=True, model_type="llava", **where) is None
    assert choose_format("question-answer", has_chat_template=True, model_type="llava", **where).name == \
        "question-answer"
    assert choose_format(None, has_chat_template=False, model_type="paligemma", **where).name == "paligemma"
    with pytest.raises(ModelError, match=r"paligemma processor of /ckpt frames the prompt itself.*paligemma"):
        choose_format("llava-plain", has_chat_template=False, model_type="paligemma", **where)
    with pytest.raises(ModelError, match=r"'paligemma' is the frame the paligemma processor builds.*'llava'"):
        choose_format("paligemma", has_chat_template=False, model_type="llava", **where)
    with pytest.raises(ModelError, match="unknown prompt format 'plain'"):
        choose_format("plain", has_chat_template=False, model_type="llava", **where)


def test_the_option_and_the_pyproject_key_are_checked(tmp_path):
    assert build_settings(tmp_path, {"prompt_format": "llava-plain"}).model_options().prompt_format == "llava-plain"
    assert build_settings(tmp_path, {}).model_options().prompt_format is None
    with pytest.raises(ConfigError, match=r"--vlmgate-prompt-format must be one of chat_template, llava-plain"):
        build_settings(tmp_path, {"prompt_format": "plain"})
    (tmp_path / "pyproject.toml").write_text('[tool.vlmgate]\nprompt_format = "question-answer"\n')
    assert build_settings(tmp_path, {}).prompt_format == "question-answer"
    (tmp_path / "pyproject.toml").write_text('[tool.vlmgate]\nprompt_format = "llava"\n')
    with pytest.raises(ConfigError, match=r"prompt_format = \"llava\" must be one of"):
        build_settings(tmp_path, {})
    assert set(FORMAT_NAMES) == {"chat_template", "llava-plain", "question-answer", "paligemma"}


def test_paligemma_scores_in_its_processor_frame(tmp_path):
    """Image tokens, BOS and the prompt with a newline as the prefix, the option as the suffix: the
    processor's own training layout (``suffix=``), end-of-sequence not scored."""
    from vlmgate.testing.tiny import save_checkpoint
    from vlmgate.testing.tiny_families import build_tiny_vlm

    from support import TINY_CORPUS

    folder = save_checkpoint(*build_tiny_vlm("paligemma", TINY_CORPUS, seed=1), tmp_path / "paligemma")
    adapter = load_hf_model(str(folder), ModelOptions(), spec="hf:pg")
    assert adapter.prompt_format == "paligemma"
    assert adapter.render_context(PROMPT) == f"<image><bos>{PROMPT}\n"
    with pytest.raises(ModelError, match="frames the prompt itself"):
        load_hf_model(str(folder), ModelOptions(prompt_format="llava-plain"), spec="hf:pg")
    image, processor = _image(), adapter.processor
    expected = []
    for option in OPTIONS:
        built = processor(text=[f"<image>{PROMPT}"], images=[image], suffix=[option], return_tensors="np")
        inputs = {key: torch.as_tensor(value) for key, value in built.items() if key != "labels"}
        ids = inputs["input_ids"][0]
        n_context = int((inputs["token_type_ids"][0] == 0).sum())
        with torch.no_grad():
            logprobs = torch.log_softmax(adapter.model(**inputs).logits[0].double(), dim=-1)
        expected.append(sum(float(logprobs[j - 1, ids[j]]) for j in range(n_context, len(ids) - 1)))  # no <eos>
    np.testing.assert_allclose(adapter.score([ScoreRequest(image, PROMPT, OPTIONS)])[0], expected, atol=1e-4)


def test_the_run_record_and_report_show_the_format_and_an_example_context(pytester, templateless, manifest):
    pytester.makepyfile(test_flip_rate=FLIP_TEST)
    pytester.makefile(".toml", limits=RECORD_ONLY)
    refused = pytester.runpytest_inprocess(*gate_args(templateless, manifest, "--vlmgate-limit=2", "-m", "rotation"))
    refused.assert_outcomes(failed=1)
    refused.stdout.fnmatch_lines(["*no chat template*--vlmgate-prompt-format NAME*"])
    result = pytester.runpytest_inprocess(*gate_args(templateless, manifest, "--vlmgate-limit=2", "-m", "rotation",
                                                     "--vlmgate-prompt-format=llava-plain", "--vlmgate-report=out"))
    counts = outcomes(result)
    assert counts.pop("recorded") == 1 and set(counts) <= {"deselected"}, counts
    record = json.loads((pytester.path / "out" / "run.json").read_text())
    spec = f"hf:{templateless}"
    description = record["model_descriptions"][spec]
    assert description["prompt_format"] == "llava-plain"
    assert description["identity"]["prompt_format"] == FORMATS["llava-plain"].identity
    assert description["example_prompt"].startswith("Question: What colour is the shape?\nOptions:\nA. red")
    assert description["example_context"] == f"<s>USER: <image>\n{description['example_prompt']}\nASSISTANT:"
    html = (pytester.path / "out" / "report.html").read_text()
    assert "llava-plain" in html and "USER: &lt;image&gt;" in html
