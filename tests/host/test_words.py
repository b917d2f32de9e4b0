"""optimum_gliner2.runtime.words splits text exactly as gliner2.processing.word_splitter does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from itertools import zip_longest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimum_gliner2.runtime import words
from optimum_gliner2.runtime.words import (
    BUILTIN_WORD_SPLITTERS,
    CharacterSplitter,
    WhitespaceSplitter,
    resolve_word_splitter,
)

reference = pytest.importorskip("gliner2.processing.word_splitter")

EXAMPLES = int(os.environ.get("HOST_FUZZ_EXAMPLES", "300"))
fuzz = settings(max_examples=EXAMPLES, derandomize=True, deadline=None)

OURS = {"whitespace": WhitespaceSplitter(), "char": CharacterSplitter()}
THEIRS = {"whitespace": reference.WhitespaceTokenSplitter(), "char": reference.CharLevelSplitter()}

# Pieces that exercise each branch of the splitters' regexes, and their boundaries.
FRAGMENTS = [
    "http://example.com/a?b=1&c=d", "HTTPS://Example.org/Path", "https://", "http:// x",
    "www.foo.bar/baz", "www.", "a.b@c.de", "John.Doe+tag@Mail.Example.COM", "x@y.z", "x@y.",
    "@handle_1", "@Handle", "@", "@-x", "e\u0301", "a\u0308\u0301", "\u0301", "\u20dd", "\u0903",
    "\u200d", "\u200c", "x\u200dy", "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0001f44d\U0001f3fd",
    "\u0130", "\u0130stanbul", "\u0131", "\u017f", "\u212a", "K\u212aelvin@x.io", "\u017f@x.io",
    "\u6771\u4eac", "\u65e5\u672c\u8a9e", "\uac00\ub098", "foo-bar_baz", "a--b", "a_-b", "-x-",
    "__init__", "...", "!?", "\u00bf", "''", "\"", "(", ")", "123", "3.14", "x\u00b2", "\ufb01",
    "\u00df", "\u03a3\u03c3\u03c2", "\u0345", "\u1fbe", "\ud800", "\ufeff", " ", "  ", "\t", "\n",
    "\r\n", "\u00a0", "\u3000", "\u2028", "\u0085", "\x1c", "A", "z", "Z9", "caf\u00e9",
    "\u0915\u094d\u0937", "\u0645\u0631\u062d\u0628\u0627",
]
texts = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.characters(), st.text(max_size=4)), max_size=24
).map("".join)


def split_pair(name: str, text: str, **kwargs):
    return list(OURS[name](text, **kwargs)), list(THEIRS[name](text, **kwargs))


@fuzz
@given(text=texts, lower=st.booleans(), name=st.sampled_from(sorted(OURS)))
def test_splitters_match_gliner2(text, lower, name):
    ours, theirs = split_pair(name, text, lower=lower)
    assert ours == theirs
    ours_default, theirs_default = split_pair(name, text)
    assert ours_default == theirs_default
    for word, start, end in ours:
        source = text[start:end]
        assert word == (source.lower() if lower else source)


def test_word_class_holds_the_same_code_points():
    # The only Unicode table our whitespace regex computes itself is its word class (\\w plus every
    # combining mark); check it on every code point, with the regex flags the splitter uses.
    every_char = "".join(map(chr, range(sys.maxunicode + 1)))
    ours = re.compile(words._word_character_class(), re.IGNORECASE)
    theirs = re.compile(reference._WORD, re.IGNORECASE)
    assert ours.findall(every_char) == theirs.findall(every_char)


@pytest.mark.skipif(EXAMPLES < 1000, reason="thorough runs only (HOST_FUZZ_EXAMPLES >= 1000)")
@pytest.mark.parametrize("name", sorted(OURS))
def test_every_code_point_splits_the_same(name):
    # Every code point alone, inside words, joined, in e-mails and handles: all Unicode tables
    # and IGNORECASE foldings the regexes consult. ~20 s per splitter, hence thorough runs only.
    chunk = 4096
    for first in range(0, sys.maxunicode + 1, chunk):
        text = "".join(
            f"{c}a{c}{c} 1{c}-{c}_x@{c}.io @{c} " for c in map(chr, range(first, first + chunk))
        )
        for ours, theirs in zip_longest(OURS[name](text), THEIRS[name](text)):
            assert ours == theirs, (hex(first), ours, theirs)


@pytest.mark.parametrize(
    "text, expected",
    [
        # Offsets index the original text even where lower-casing changes length.
        ("\u0130stanbul is", [("i\u0307stanbul", 0, 8), ("is", 9, 11)]),
        # A combining mark and a ZWJ stay inside the word; an emoji ZWJ sequence is split.
        ("cafe\u0301 a\u200db", [("cafe\u0301", 0, 5), ("a\u200db", 6, 9)]),
        (
            "\U0001f468\u200d\U0001f469",
            [("\U0001f468", 0, 1), ("\u200d", 1, 2), ("\U0001f469", 2, 3)],
        ),
        # IGNORECASE lets the Kelvin sign into the ASCII e-mail class (a quirk kept on purpose).
        ("\u212a@x.io", [("k@x.io", 0, 6)]),
        ("see https://x.y/z, now", [("see", 0, 3), ("https://x.y/z,", 4, 18), ("now", 19, 22)]),
        (
            "@me_2 foo-bar_baz --",
            [("@me_2", 0, 5), ("foo-bar_baz", 6, 17), ("-", 18, 19), ("-", 19, 20)],
        ),
    ],
)
def test_documented_whitespace_behaviour(text, expected):
    assert list(WhitespaceSplitter()(text)) == expected
    assert list(THEIRS["whitespace"](text)) == expected


def test_char_splitter_keeps_ascii_runs():
    text = "\u6771\u4eacTokyo a.b+c@d \u00e9"
    expected = [
        ("\u6771", 0, 1), ("\u4eac", 1, 2), ("Tokyo", 2, 7), ("a.b+c@d", 8, 15), ("\u00e9", 16, 17)
    ]
    assert list(CharacterSplitter()(text, lower=False)) == expected
    assert list(THEIRS["char"](text, lower=False)) == expected


class ArglessSplitter:
    def __call__(self, text, lower=True):
        yield from ((text.upper(), 0, len(text)),)


class NeedsArguments:
    def __init__(self, required):
        self.required = required

    def __call__(self, text, lower=True):
        return iter(())


class BrokenConstructor:
    def __init__(self):
        raise RuntimeError("boom")


class NotCallableInstances:
    pass


def plain_function(text, lower=True):
    return iter([(text, 0, len(text))])


VALID_SPECS = [None, "whitespace", "char", ArglessSplitter, plain_function, ArglessSplitter()]
INVALID_SPECS = [
    "nope", "", "WHITESPACE", " char", NeedsArguments, BrokenConstructor, NotCallableInstances,
    int, str, 3, 2.5, b"char", object(), ["char"],
]


@pytest.mark.parametrize("spec", VALID_SPECS, ids=repr)
def test_resolve_accepts_what_gliner2_accepts(spec):
    ours = resolve_word_splitter(spec)
    theirs = reference.resolve_word_splitter(spec)
    assert callable(ours)
    for text in ["Hello, W\u00f6rld! \u6771\u4eac e\u0301", ""]:
        for lower in (True, False):
            assert list(ours(text, lower=lower)) == list(theirs(text, lower=lower))
    if spec is plain_function or isinstance(spec, ArglessSplitter):
        assert ours is spec


@pytest.mark.parametrize("spec", INVALID_SPECS, ids=repr)
def test_resolve_rejects_what_gliner2_rejects(spec):
    with pytest.raises(Exception) as theirs:
        reference.resolve_word_splitter(spec)
    with pytest.raises(Exception) as ours:
        resolve_word_splitter(spec)
    assert type(ours.value) is type(theirs.value)
    assert type(ours.value.__cause__) is type(theirs.value.__cause__)


def test_unknown_name_lists_the_builtin_names():
    with pytest.raises(ValueError) as error:
        resolve_word_splitter("words")
    message = str(error.value)
    assert "'words'" in message
    assert all(repr(name) in message for name in BUILTIN_WORD_SPLITTERS)
    assert set(BUILTIN_WORD_SPLITTERS) == set(reference.WORD_SPLITTERS)


def test_default_is_gliner2s_default():
    assert words.DEFAULT_WORD_SPLITTER == reference.DEFAULT_WORD_SPLITTER
    assert isinstance(resolve_word_splitter(), WhitespaceSplitter)


def test_import_defers_the_combining_mark_scan():
    # The scan of all code points is what makes gliner2's module slow to import; ours must not
    # run it until a text is split. Loaded by path so that only this module is imported.
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('words_alone', {words.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert module._whitespace_pattern.cache_info().currsize == 0\n"
        "words = list(module.WhitespaceSplitter()('a\u0301b c'))\n"
        "assert words == [('a\u0301b', 0, 3), ('c', 4, 5)]\n"
        "assert module._whitespace_pattern.cache_info().currsize == 1\n"
        "assert not any(name.split('.')[0] in {'gliner2', 'torch', 'transformers', 'regex'} "
        "for name in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
