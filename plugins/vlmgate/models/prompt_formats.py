"""How a checkpoint without a chat template is prompted: named formats, never a made-up default.

A score is the log-likelihood of an option *after a context*, so the context's format
decides the value as much as the weights do. A checkpoint's own chat template is the
format it was trained to read (``chat_template``, the default whenever the checkpoint
ships one). Without one there is no right answer to guess: a tiny LLaVA scored with an
invented ``USER: <image>…ASSISTANT:`` context and no BOS picks the option with the fewest
tokens every time, lands exactly on chance, and every robustness gate stays green. So a
checkpoint without a template loads only when the user names the format
(``--vlmgate-prompt-format NAME``), and the name, with a digest of its definition, is part
of the adapter's identity: the cache key and the run record change with it.

A format is a typed record (``PromptFormat``): the context handed to the processor, the
context as the model reads it once the processor has built its own prefix around it
(``shown``; the same text for every family but PaliGemma), and the text joined between
the context and an option. Placeholders: ``{bos}`` (the tokenizer's BOS token, empty for a
tokenizer without one), ``{image}`` (the processor's image placeholder, expanded by the
processor) and ``{prompt}``.

Families whose processor writes the prompt's frame itself (``PROCESSOR_FORMATS``:
PaliGemma puts BOS after the image and ends the prefix with a newline) have that frame as
their own format, the default when they ship no template; no other format can describe
what such a model reads, so naming another for them is an error, as is naming theirs for
another family.

Only the standard library is imported here: the settings validate the option against
``FORMAT_NAMES`` at start-up.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Mapping

from vlmgate.errors import ModelError

#: The checkpoint's own chat template: rendered by its processor, its text hashed with the files.
CHAT_TEMPLATE = "chat_template"


@dataclass(frozen=True)
class PromptFormat:
    """One named prompt format (see the module docstring for the placeholders).

    ``context`` is the text handed to the processor with the image; ``shown`` what the
    model reads after the processor has framed it (``None``: the same text); an option is
    scored as the tokens of ``shown + separator + option`` after those of ``shown``.
    """

    name: str
    description: str
    context: str
    separator: str = " "
    shown: str | None = None

    @property
    def identity(self) -> str:
        """``name@digest``: the name, and a digest of the texts that decide a score, so that an
        edited format keys other cache entries than the ones computed with the old one."""
        texts = {key: value for key, value in asdict(self).items() if key != "description"}
        definition = json.dumps(texts, sort_keys=True).encode("utf-8")
        return f"{self.name}@{hashlib.sha256(definition).hexdigest()[:12]}"

    def handed(self, prompt: str, *, image: str, bos: str) -> str:
        """The context text handed to the processor."""
        return self.context.format(prompt=prompt, image=image, bos=bos)

    def read(self, prompt: str, *, image: str, bos: str) -> str:
        """The context as the model reads it (image placeholder unexpanded)."""
        return (self.shown or self.context).format(prompt=prompt, image=image, bos=bos)


FORMATS: Mapping[str, PromptFormat] = {fmt.name: fmt for fmt in (
    PromptFormat("llava-plain", "LLaVA-1.5's plain conversation: BOS, 'USER: <image>\\n{prompt}\\nASSISTANT:', "
                 "the option after a space", "{bos}USER: {image}\n{prompt}\nASSISTANT:"),
    PromptFormat("question-answer", "BOS, the image, the prompt (vlmgate's prompts open with 'Question: …'), "
                 "then 'Answer:' and the option after a space", "{bos}{image}\n{prompt}\nAnswer:"),
    PromptFormat("paligemma", "PaliGemma's processor frame: image tokens, BOS, the prompt and a newline as the "
                 "bidirectional prefix; the option follows directly", "{image}{prompt}", separator="",
                 shown="{image}{bos}{prompt}\n"),
)}
#: Every name ``--vlmgate-prompt-format`` takes.
FORMAT_NAMES: tuple[str, ...] = (CHAT_TEMPLATE, *FORMATS)
#: Families whose processor frames the prompt itself -> the format that describes that frame.
PROCESSOR_FORMATS: Mapping[str, str] = {"paligemma": "paligemma"}


def choose_format(requested: str | None, *, has_chat_template: bool, model_type: str, spec: str,
                  folder: object) -> PromptFormat | None:
    """The format a checkpoint is scored with; ``None`` means its own chat template.

    ``requested`` is the user's ``--vlmgate-prompt-format`` (``None`` when not given). Every
    combination that would score with a format the checkpoint does not define, or that
    its processor would rewrite, is a ``ModelError`` naming the folder and the fix.
    """
    own = PROCESSOR_FORMATS.get(model_type)
    general = ", ".join(name for name in FORMATS if name not in PROCESSOR_FORMATS.values())
    if requested is None:
        if has_chat_template:
            return None
        if own is not None:
            return FORMATS[own]
        raise ModelError(
            f"model spec {spec!r}: {folder} has no chat template, so vlmgate cannot know how the model expects "
            "its prompt, and a guessed format gates the model on text it was never trained to read. "
            "Save the checkpoint's chat_template.jinja beside its processor, or name the format it was trained "
            f"on with --vlmgate-prompt-format NAME ({general})"
        )
    if requested == CHAT_TEMPLATE:
        if has_chat_template:
            return None
        raise ModelError(f"model spec {spec!r}: --vlmgate-prompt-format {CHAT_TEMPLATE} names the checkpoint's "
                         f"chat template, but {folder} has none; save chat_template.jinja there or name another "
                         f"format ({', '.join(FORMATS)})")
    if requested not in FORMATS:
        raise ModelError(f"model spec {spec!r}: unknown prompt format {requested!r}; known: {', '.join(FORMAT_NAMES)}")
    if own is not None and requested != own:
        raise ModelError(f"model spec {spec!r}: the {model_type} processor of {folder} frames the prompt itself "
                         f"(prompt format {own!r}), so format {requested!r} would not be what the model reads; "
                         f"pass --vlmgate-prompt-format {own} or leave the option out")
    owner = next((family for family, name in PROCESSOR_FORMATS.items() if name == requested), None)
    if owner is not None and owner != model_type:
        raise ModelError(f"model spec {spec!r}: prompt format {requested!r} is the frame the {owner} processor "
                         f"builds, but {folder} holds a {model_type!r} model; name another format "
                         f"({', '.join(name for name in FORMAT_NAMES if name != requested)})")
    return FORMATS[requested]
