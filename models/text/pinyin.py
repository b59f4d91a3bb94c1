"""A pinyin view of normalised text, so pinyin spellings and homophones match.

"傻逼", "沙比", "sha bi" and "shabi" all read "shabi"; "草泥马" and "操你妈" both read
"caonima". Chinese characters become their toneless pinyin syllable, Latin letters and digits
stay, everything else (spaces, punctuation, emoji) is dropped. Every syllable and every Latin
or digit word starts and ends at a *boundary*; a match counts only from boundary to boundary,
so "sb" matches "s b" and "你个sb" but not "lisbon", and "shabi" never matches inside a word.

Speed: pypinyin takes about 70 µs per call, far too slow per message, so the syllable of each
character is computed once (pypinyin, without phrase context) and kept in a dict; per-character
readings are what homophone spellings use anyway (they swap one character for another). The
view itself is one dict lookup per character and a join; the position map back to the
normalised text is built only when a match needs it (matches are rare).
"""

from __future__ import annotations

import re
import zlib
from bisect import bisect_right
from functools import cache
from itertools import accumulate

from pypinyin import Style, lazy_pinyin

from models.text.normalize import CharCache, Normalized, is_han

SYLLABLE, LATIN, DIGIT, DROPPED = 1, 2, 3, 0
_JOINERS = frozenset("_-.")


def _unit(ch: str) -> str:
    """What one normalised character contributes to the view."""
    if ch.isascii():
        return ch if ch.isalnum() else ""
    if is_han(ch):
        reading = lazy_pinyin(ch, style=Style.NORMAL, errors=lambda _: [""])
        syllable = reading[0] if reading else ""
        return syllable if syllable.isascii() and syllable.isalpha() else ""
    return ""


_UNIT: dict[str, str] = CharCache(_unit)


def syllable(ch: str) -> str:
    """Toneless pinyin of one Chinese character ('' when it has none), cached."""
    return _UNIT[ch] if is_han(ch) else ""


def _kind(ch: str, unit: str) -> int:
    if not unit:
        return DROPPED
    if unit != ch:
        return SYLLABLE
    return DIGIT if ch.isdigit() else LATIN


class PinyinView:
    """Lower-case Latin text of a normalised text, and the map back to it."""

    __slots__ = ("text", "_source", "_units", "_offsets", "_kinds")

    def __init__(self, source: str, units: list[str]) -> None:
        self.text: str = "".join(units)
        self._source = source  # the normalised text
        self._units = units  # units[i]: what source[i] contributes
        self._offsets: list[int] | None = None  # offsets[i]: where units[i] starts in text
        self._kinds: list[int] | None = None

    def _maps(self) -> tuple[list[int], list[int]]:
        if self._offsets is None or self._kinds is None:
            self._offsets = [0, *accumulate(len(u) for u in self._units)]
            kinds = [_kind(ch, u) for ch, u in zip(self._source, self._units, strict=True)]
            # "_", "-" and "." inside a Latin word join it: "sb_zhuce" is one word, not "sb".
            for i in range(1, len(kinds) - 1):
                if self._source[i] in _JOINERS and kinds[i - 1] == LATIN == kinds[i + 1]:
                    kinds[i] = LATIN
            self._kinds = kinds
        return self._offsets, self._kinds

    def _char_at(self, pos: int) -> int:
        """Index of the normalised character whose unit covers text[pos]."""
        offsets, _ = self._maps()
        return bisect_right(offsets, pos) - 1

    def normalized_span(self, start: int, end: int) -> tuple[int, int]:
        """Map the pinyin span [start, end) (non-empty) to the normalised text."""
        return self._char_at(start), self._char_at(end - 1) + 1

    def is_aligned(self, start: int, end: int) -> bool:
        """True when [start, end) begins and ends on syllable or word boundaries."""
        offsets, kinds = self._maps()
        first, last = self._char_at(start), self._char_at(end - 1)
        if offsets[first] != start or offsets[last] + len(self._units[last]) != end:
            return False  # inside a syllable
        # A Latin or digit word goes on across neighbours of its own kind.
        if kinds[first] != SYLLABLE and first > 0 and kinds[first - 1] == kinds[first]:
            return False
        after = last + 1
        return not (kinds[last] != SYLLABLE and after < len(kinds) and kinds[after] == kinds[last])

    def is_typed(self, start: int, end: int) -> bool:
        """True when every character of [start, end) was typed in Latin letters."""
        _, kinds = self._maps()
        first, last = self._char_at(start), self._char_at(end - 1)
        return all(k in (LATIN, DROPPED) for k in kinds[first : last + 1])


def pinyin_view(normalized: Normalized) -> PinyinView:
    """Build the pinyin view of a normalised text."""
    units = _UNIT
    source = normalized.text
    return PinyinView(source, [units[ch] for ch in source])


def to_pinyin(text: str) -> str:
    """Syllables of the Chinese characters in normalised `text`, Latin and digits kept, joined."""
    units = _UNIT
    return "".join([units[ch] for ch in text])


# --- sound units: what the text model's pinyin channel sees -----------------------------------
#
# Homophones (沙比 for 傻逼) and typed pinyin (jia wei xin for 加微信) defeat a character model
# that has not seen that exact spelling. The model therefore also reads the text as a sequence
# of *sound units*: every Chinese character is its toneless syllable, a Latin word that splits
# wholly into pinyin syllables is those syllables (its last letter of each syllable carries
# it), and any other character is itself. Blanks carry no unit. 傻逼, 沙比, "sha bi" and "shabi"
# then give one unit sequence, and the tokenizer hashes its pairs and triples.


@cache
def pinyin_syllables() -> frozenset[str]:
    """Every toneless syllable pypinyin gives a CJK ideograph, without the vowel-less
    interjections (m, n, ng, hm, hng), which would split letter strings such as "nm"."""
    chars = "".join(chr(cp) for cp in range(0x4E00, 0xA000))
    readings = lazy_pinyin(chars, style=Style.NORMAL, errors=lambda s: [""] * len(s))
    return frozenset(s for s in readings if s.isascii() and s.isalpha() and set(s) & set("aeiouv"))


_LONGEST_SYLLABLE = 6  # zhuang, shuang, chuang


def split_pinyin(word: str) -> list[str] | None:
    """The fewest pinyin syllables that spell lower-case `word` exactly, or None.

    "jiaweixin" -> ["jia", "wei", "xin"]; "hello" -> None. A dynamic programme over prefixes;
    of two splits with as many syllables, the one with the longer last syllable wins
    ("fangan" -> ["fan", "gan"]).
    """
    known = pinyin_syllables()
    best: list[list[str] | None] = [[]] + [None] * len(word)
    for end in range(1, len(word) + 1):
        for start in range(max(0, end - _LONGEST_SYLLABLE), end):
            head = best[start]
            if head is not None and word[start:end] in known:
                if best[end] is None or len(head) + 1 < len(best[end] or ()):
                    best[end] = [*head, word[start:end]]
    return best[len(word)]


def _sound_id(unit: str) -> int:
    return zlib.crc32(unit.encode("utf-8", "surrogatepass")) + 1  # never 0 (0: no unit)


_CHAR_SOUND: dict[str, int] = CharCache(lambda ch: _sound_id(syllable(ch) or ch))
_LATIN_RUN = re.compile(r"[a-z]+")


def sound_ids(text: str) -> list[int]:
    """One entry per character of normalised `text`: the id of the sound unit that ends
    there, or 0 where none does (blanks, and letters inside a Latin syllable)."""
    sounds = _CHAR_SOUND
    ids = [0 if ch.isspace() else sounds[ch] for ch in text]
    for run in _LATIN_RUN.finditer(text):
        parts = split_pinyin(run.group()) if len(run.group()) > 1 else None
        if not parts:
            continue
        pos = run.start()
        for part in parts:
            ids[pos : pos + len(part)] = [0] * (len(part) - 1) + [_sound_id(part)]
            pos += len(part)
    return ids
