"""An item's answer options and which one is correct, read so that the answer is never ambiguous.

Loaders of every format share these checks because each one closes a way for a
benchmark row to be judged wrongly without an error:

* an item with more than 26 options is refused, naming it and its count: prompts label
  options by letter (``A``..``Z``), and a 27th option would be labelled ``[``;
* two options that read the same (``"red"`` / ``"Red "``) make a text answer mean either
  and ask the model to choose between equal options: the row is refused, naming both;
* an answer may be an option letter, an option text or a 0-based index; a one-letter
  answer that is a letter *and* the text of another option is refused (``"A"`` among the
  options ``["B", "A"]``), since it could mean either;
* a yes/no item (``kind`` ``yesno``) must have exactly the options Yes and No, in any
  order and case; the sample always holds ``base.YES_NO`` (``("Yes", "No")``), the words
  the yes/no prompt asks for, in the order the POPE metrics read, with the answer
  re-indexed to match. Nothing assumes a source's option 0 is Yes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from vlmgate.benchmarks.base import YES_NO
from vlmgate.errors import DataError

#: Prompts label options by letter, A to Z: an item may hold at most this many.
MAX_OPTIONS = 26


def letter(index: int) -> str:
    return chr(ord("A") + index)


def check_count(options: Sequence[str], where: Callable[[int], str]) -> None:
    """Refuse more options than there are letters; ``where(i)`` names option ``i``'s place."""
    if len(options) > MAX_OPTIONS:
        raise DataError(
            f"{where(MAX_OPTIONS)}: the item has {len(options)} options, but prompts label options by letter "
            f"(A to Z), so an item holds at most {MAX_OPTIONS}; split the item or drop options beyond Z"
        )


def _same_text(text: str) -> str:
    """What two options are compared by: case and runs of white space do not count."""
    return " ".join(text.split()).casefold()


def check_distinct(options: Sequence[str], where: Callable[[int], str]) -> None:
    """Refuse options that read the same, or more than ``MAX_OPTIONS`` of them; ``where(i)`` names
    option ``i``'s place (line, cell)."""
    check_count(options, where)
    seen: dict[str, int] = {}
    for index, text in enumerate(options):
        first = seen.setdefault(_same_text(text), index)
        if first != index:
            raise DataError(
                f"{where(index)}: option {text!r} repeats option {letter(first)} ({options[first]!r}); a text "
                "answer could mean either and the model would choose between equal options; make the options "
                "distinct or drop the row"
            )


def answer_index(value: Any, options: Sequence[str], kind: str, where: str) -> int | None:
    """The 0-based option index of ``value`` (a letter, an option text or an index); ``where`` names the row."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DataError(f"{where}: answer {value!r} must be a letter, an option text or an index")
    if isinstance(value, int):
        if 0 <= value < len(options):
            return value
        raise DataError(f"{where}: answer index {value} outside 0..{len(options) - 1}")
    text = str(value).strip()
    texts = [_same_text(o) for o in options]
    by_text = texts.index(_same_text(text)) if _same_text(text) in texts else None
    by_letter = None
    if kind == "mcq" and len(text) == 1 and "A" <= text.upper() < letter(len(options)):
        by_letter = ord(text.upper()) - ord("A")
    if by_letter is not None and by_text is not None and by_letter != by_text:
        raise DataError(f"{where}: answer {value!r} is option letter {text.upper()} and also the text of option "
                        f"{letter(by_text)}; write the answer as a 0-based index to say which")
    if by_text is not None and (kind == "yesno" or len(text) > 1 or by_letter is None):
        return by_text
    if by_letter is not None:
        return by_letter
    raise DataError(f"{where}: answer {value!r} is neither an option letter nor one of the options {list(options)}")


def are_yes_no(options: Sequence[str]) -> bool:
    """Whether ``options`` are exactly Yes and No (any case, order or runs of white space)."""
    return sorted(_same_text(str(o)) for o in options) == sorted(_same_text(o) for o in YES_NO)


def yes_no(options: Sequence[str], answer: Any, where: str) -> int | None:
    """Check a yes/no item's options; its answer as an index into ``YES_NO``."""
    if not are_yes_no(options):
        raise DataError(f"{where}: a yes/no item (kind yesno) needs exactly the options Yes and No (any case or "
                        f"order), got {list(options)}; fix the options or make the item kind mcq")
    index = answer_index(answer, options, "yesno", where)
    if index is None:
        return None
    return [_same_text(o) for o in YES_NO].index(_same_text(options[index]))
