"""Word splitting ahead of subword tokenization, with gliner2's exact words and offsets.

A word splitter is any callable `splitter(text, lower=True)` that yields `(word, start, end)`,
where `text[start:end]` is the word as written. `lower` lower-cases the yielded word only: the
text itself is never lower-cased first, since case mapping can change a string's length
("İ".lower() is two code points) and the offsets would then point into the wrong places.

Two splitters are built in, matching gliner2.processing.word_splitter:

- "whitespace" (the default): URLs, e-mail addresses and @handles stay whole; runs of word
  characters (including combining marks and the ZWNJ/ZWJ joiners) stay whole and may be chained
  with "-" or "_"; every other non-space character is a word of its own.
- "char": ASCII letters, digits and `@._-+` runs stay whole; every other non-space character is
  a word of its own (for scripts written without spaces, such as Chinese).
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from typing import Callable, Iterator, Optional, Tuple, Type, Union

#: `(text, lower=True) -> Iterator[(word, start, end)]`.
WordSplitter = Callable[[str, bool], Iterator[Tuple[str, int, int]]]
#: What `resolve_word_splitter` accepts: a built-in name, a splitter class or a splitter.
WordSplitterSpec = Union[str, WordSplitter, type]

_MARK_CATEGORIES = frozenset({"Mn", "Mc", "Me"})


@functools.lru_cache(maxsize=None)
def _word_character_class() -> str:
    """The regex class of characters that make up words: `\\w`, combining marks, ZWNJ and ZWJ.

    `\\w` leaves out combining marks, so the class lists every code point whose general category
    is a mark. Finding them means asking `unicodedata` about all 1.1M code points, which costs
    ~0.1 s: doing it at import would slow down every process that merely imports the runtime, so
    it waits for the first text to split. The table is the running Python's `unicodedata`, as in
    gliner2, so both agree on any Python version.
    """
    every_char = map(chr, range(sys.maxunicode + 1))
    marks = "".join([char for char in every_char if unicodedata.category(char) in _MARK_CATEGORIES])
    return f"[\\w{marks}\\u200c\\u200d]"


@functools.lru_cache(maxsize=None)
def _whitespace_pattern() -> re.Pattern[str]:
    """The "whitespace" splitter's regex, built on first use (see `_word_character_class`)."""
    word_char = _word_character_class()
    alternatives = (
        r"(?:https?://|www\.)\S+",  # URL, up to the next space
        r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}",  # e-mail address
        r"@[a-z0-9_]+",  # @handle
        f"{word_char}+(?:[-_]{word_char}+)*",  # word, possibly hyphen- or underscore-joined
        r"\S",  # anything else, one character at a time
    )
    # IGNORECASE rather than spelling out [A-Za-z], on purpose: under it Python's [a-z] also
    # matches "İ", "ı", "ſ" and the Kelvin sign, and gliner2's e-mails and handles include them.
    return re.compile("|".join(alternatives), re.IGNORECASE)


_CHAR_LEVEL_PATTERN = re.compile(r"[A-Za-z0-9@._\-+]+|\S")


def _split_with(pattern: re.Pattern[str], text: str, lower: bool) -> Iterator[Tuple[str, int, int]]:
    for match in pattern.finditer(text):
        word = match.group()
        yield (word.lower() if lower else word), match.start(), match.end()


class WhitespaceSplitter:
    """Splits space-delimited text into words, URLs, e-mail addresses, @handles and symbols."""

    __slots__ = ()

    def __call__(self, text: str, lower: bool = True) -> Iterator[Tuple[str, int, int]]:
        """Yields `(word, start, end)` for each word of `text`, lower-cased if `lower`."""
        return _split_with(_whitespace_pattern(), text, lower)


class CharacterSplitter:
    """Keeps ASCII word runs whole and makes every other non-space character a word."""

    __slots__ = ()

    def __call__(self, text: str, lower: bool = True) -> Iterator[Tuple[str, int, int]]:
        """Yields `(word, start, end)` for each word of `text`, lower-cased if `lower`."""
        return _split_with(_CHAR_LEVEL_PATTERN, text, lower)


_SPLITTER_CLASSES = {"char": CharacterSplitter, "whitespace": WhitespaceSplitter}
#: Names `resolve_word_splitter` accepts.
BUILTIN_WORD_SPLITTERS: Tuple[str, ...] = tuple(sorted(_SPLITTER_CLASSES))
DEFAULT_WORD_SPLITTER = "whitespace"


def resolve_word_splitter(spec: Optional[WordSplitterSpec] = None) -> WordSplitter:
    """Turns a word-splitter specification into a splitter.

    Args:
        spec (`str`, `type` or callable, *optional*):
            A built-in name (see `BUILTIN_WORD_SPLITTERS`), a class whose instances are splitters
            (instantiated without arguments), or a splitter itself. `None` selects
            `DEFAULT_WORD_SPLITTER`.

    Returns:
        `WordSplitter`: a callable `(text, lower=True) -> Iterator[(word, start, end)]`.

    Raises:
        ValueError: `spec` is a string that names no built-in splitter.
        TypeError: `spec` is a class that needs constructor arguments, or resolves to something
            that is not callable.
    """
    if spec is None:
        spec = DEFAULT_WORD_SPLITTER
    if isinstance(spec, str):
        if spec not in _SPLITTER_CLASSES:
            names = ", ".join(map(repr, BUILTIN_WORD_SPLITTERS))
            raise ValueError(f"Unknown word_splitter {spec!r}; the built-in splitters are {names}.")
        spec = _SPLITTER_CLASSES[spec]
    if isinstance(spec, type):
        splitter_class: Type = spec
        try:
            spec = splitter_class()
        except TypeError as error:
            raise TypeError(
                f"word_splitter class {splitter_class.__name__} must be instantiable without "
                "arguments"
            ) from error
    if not callable(spec):
        raise TypeError(
            f"word_splitter must be one of the names {list(BUILTIN_WORD_SPLITTERS)}, a splitter "
            f"class or a callable, not {type(spec).__name__}"
        )
    return spec


__all__ = [
    "BUILTIN_WORD_SPLITTERS",
    "CharacterSplitter",
    "DEFAULT_WORD_SPLITTER",
    "WhitespaceSplitter",
    "WordSplitter",
    "WordSplitterSpec",
    "resolve_word_splitter",
]
