"""Prompt texts and scored continuations, exactly as the source protocol states them.

The scorer (spec §1) reads each option's log-likelihood as the assistant turn after a
user turn holding the image and this prompt. Training the bundled checkpoints and
scoring them must use the same strings, so both import them from here.
"""

from __future__ import annotations

from vlmgate.interleaving import as_text
from vlmgate.records import Sample

MCQ_INSTRUCTION = "Please select the correct answer from the options above."
YESNO_INSTRUCTION = "Answer with exactly one word: Yes or No."
OPEN_INSTRUCTION = "Answer the question."
#: The kind of a sample whose prompt and continuations were prepared elsewhere (used verbatim).
PREPARED = "prompt"


def mcq_prompt(sample: Sample) -> str:
    """``[Hint: …\\n]Question: {q}\\nOptions:\\nA. …\\n…\\nPlease select …`` (spec §1)."""
    lines = []
    if sample.hint:
        lines.append(f"Hint: {sample.hint}")
    lines.append(f"Question: {sample.question}")
    lines.append("Options:")
    lines.extend(f"{label}. {text}" for label, text in zip(sample.labels, sample.options))
    lines.append(MCQ_INSTRUCTION)
    return "\n".join(lines)


def yesno_prompt(sample: Sample) -> str:
    """POPE prompt: ``Question: {q}\\nAnswer with exactly one word: Yes or No.``"""
    return f"Question: {sample.question}\n{YESNO_INSTRUCTION}"


def open_prompt(sample: Sample) -> str:
    """``[Hint: …\n]Question: {q}\nAnswer the question.``: the question without options.

    The ``ctx_open`` probe reads the model's state under this prompt. It carries the
    question but no option list, so drift seen here is not an artefact of how the options
    are laid out in the scoring prompt.
    """
    lines = [f"Hint: {sample.hint}"] if sample.hint else []
    lines.append(f"Question: {sample.question}")
    lines.append(OPEN_INSTRUCTION)
    return "\n".join(lines)


def prompt_for(sample: Sample) -> str:
    """The scoring prompt of ``sample`` (a prepared ``prompt`` sample's question as it is)."""
    if sample.kind == PREPARED:
        return sample.question
    return yesno_prompt(sample) if sample.kind == "yesno" else mcq_prompt(sample)


def option_continuations(sample: Sample) -> tuple[str, ...]:
    """The assistant-turn texts whose summed log-probabilities are the option scores.

    Multiple-choice options are scored as ``"{letter}. {text}"`` so that both the letter
    (what a text overlay like "Answer is B" pushes on) and the content count; yes/no
    items score the bare word. All continuations of an item have the same shape, which
    keeps the spec's unnormalised sum fair between options.
    """
    if sample.kind in ("yesno", PREPARED):
        return sample.options
    texts = sample.options
    if sample.more_images:  # a picture is shown in the prompt; the reply names it, as "[image 2]"
        texts = tuple(as_text(text) for text in texts)
    return tuple(f"{label}. {text}" for label, text in zip(sample.labels, texts))


# -- cross-modal consistency (spec §3) ---------------------------------------------------
# The paper states four prompts per item (OCR, text, mixed, image) but not their wording;
# these are **reconstructed**. The instruction differs between forms only where the form
# forces it (the options are "in the image" only when they are rendered).

#: Appended to a numeric item in every form; the reply is parsed for an integer.
NUMERIC_INSTRUCTION = "Answer with a single integer."
#: The MCQ instruction when the options are part of the image.
MCQ_IMAGE_INSTRUCTION = "Please select the correct answer from the options in the image."
#: Lead-in of the image form: the whole item is in the picture.
IMAGE_FORM_PROMPT = "Answer the question shown in the image."
#: The OCR control: transcribe the rendered item (its CER says whether the model could read it).
OCR_PROMPT = "Transcribe all the text in the image exactly, line by line."
