"""Reasoning before the answer: what a served model thinks is cut off before its reply is read.

Reasoning models (DeepSeek-R1, Qwen3 in thinking mode, QVQ) write a span such as
``<think> … </think>`` before the answer, or, behind vLLM's ``--reasoning-parser``, return
it in a separate message field (``reasoning_content``; ``reasoning`` in newer servers). The
``answer`` tier parses the reply to an option and the cross-modal suite parses generated
replies, so the span must go first: left in, a reply that weighs "B or C?" before answering
"A" would be read as naming several options (no answer) or, worse, the first one it
mentions. The field's harnesses strip it the same way.

The rule, for the delimiters the ``openai:`` spec sets (``reasoning_start`` /
``reasoning_end``, default ``<think>`` / ``</think>``; ``reasoning_end=`` switches it off):

* a reply holding the end delimiter is read from after its *last* occurrence (a chat
  template often writes the opening tag itself, so only the end is certain);
* a reply that opens the span and never closes it has no answer: the reasoning ran out of
  ``answer_tokens``. It is never parsed, since its words are deliberation, not a choice
  (``REASONING_UNFINISHED``, listed with the others that got no answer);
* a separate reasoning field is reasoning as it stands; a reply with such a field and no
  content is the same unfinished case.

How long each stripped span was (in characters) is kept per input, so a case's
``unanswered_rate`` details say how many of its replies reasoned and for how long
(``suites.unanswered``). The delimiters are part of the model's identity, hence of the
cache key: stripping differently can change an answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlmgate.errors import ModelError

DEFAULT_START = "<think>"
DEFAULT_END = "</think>"
#: Why a reply is no answer when its reasoning never ended (``tiers.Unread.why``).
REASONING_UNFINISHED = "the reply's reasoning did not end (raise answer_tokens on the spec)"


@dataclass(frozen=True)
class ReasoningDelimiters:
    """The span a reply's reasoning sits in; an empty ``end`` turns stripping off."""

    start: str = DEFAULT_START
    end: str = DEFAULT_END

    def __post_init__(self) -> None:
        if self.start and not self.end:
            raise ModelError(f"reasoning_start={self.start!r} without reasoning_end: the span could never be "
                             "closed; give reasoning_end too, or neither to switch stripping off")

    @property
    def on(self) -> bool:
        return bool(self.end)

    def describe(self) -> str:
        """What the identity and the record say: ``<think>…</think>``, or ``off``."""
        return f"{self.start}…{self.end}" if self.on else "off"


@dataclass(frozen=True)
class ReplyParts:
    """A reply with its reasoning cut off: ``answer`` is ``None`` when the reasoning never ended."""

    answer: str | None
    reasoning_chars: int = 0
    #: What the server said, for a listing when there is no answer (the reply's end).
    said: str = ""


def split_reply(content: str | None, reasoning_field: str | None, delimiters: ReasoningDelimiters) -> ReplyParts:
    """``content`` (and the server's separate reasoning field) as answer and reasoning length."""
    text = content or ""
    chars = len(reasoning_field or "")
    if reasoning_field and not text.strip():
        return ReplyParts(None, chars, reasoning_field[-200:])
    if delimiters.on:
        cut = text.rfind(delimiters.end)
        if cut >= 0:
            return ReplyParts(text[cut + len(delimiters.end):].strip(), chars + cut + len(delimiters.end))
        if delimiters.start and text.lstrip().startswith(delimiters.start):
            return ReplyParts(None, chars + len(text), text[-200:])
    return ReplyParts(text, chars)
