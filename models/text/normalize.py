"""Text normalisation with an offset map back to what the user wrote.

Steps, in order (each keeps, for every output character, the span of original characters
behind it, so spans found on the normalised text can be reported on the original):

1. per character (cached): drop zero-width, control, private-use, surrogate and combining
   characters; enclosed and other-script digits (① ⑴ ㈠ ❶ ٣) to 0-9; NFKC (full width to half
   width); case folding; every kind of whitespace to " ";
2. separators: a run of spaces, punctuation, symbols or emoji between two characters of which
   one is Chinese is removed (加 V 信, 薇❤信, 微·信); between Latin words or digits, symbols and
   emoji are removed, punctuation is kept and whitespace becomes one space ("jia wei xin",
   "hello world", "www.a.com" stay readable); spaces at either end are removed;
3. traditional to simplified Chinese (OpenCC t2s, phrase-aware);
4. Chinese numerals in number runs of 5+ digits, 3+ of them Chinese (幺三八一二三四五六七八),
   to 0-9;
5. runs of 4+ identical characters (digits excepted) collapsed to 3 (哈哈哈哈哈 -> 哈哈哈);
6. the evasion vocabulary of data/variants.tsv (薇信/vx/扣扣 ...), with its context rules.

normalize(normalize(x).text).text == normalize(x).text holds (a property test checks it).

Hand-written around the libraries: unicodedata (NFKC, categories, digit values) and OpenCC do
the character work, but no library normalises while keeping a map back to the original.

Speed: most messages need few changes, so each step first checks with a compiled regex or
str.translate whether it has anything to do, and offsets are rebuilt only around changes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import opencc

from models.paths import DATA_DIR

VARIANTS_PATH: Path = DATA_DIR / "variants.tsv"


@dataclass(frozen=True, slots=True)
class Normalized:
    """The normalised string and, per character, the original span behind it."""

    text: str
    starts: tuple[int, ...]  # starts[i]: index in the original of the first char behind text[i]
    ends: tuple[int, ...]  # ends[i]: index just after the last original char behind text[i]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map the normalised span [start, end) to a span of the original text."""
        n = len(self.text)
        start = min(max(start, 0), n)
        end = min(max(end, start), n)
        if start == end:
            pos = self.starts[start] if start < n else (self.ends[-1] if n else 0)
            return pos, pos
        # starts and ends never decrease (every step keeps the order of characters).
        return self.starts[start], self.ends[end - 1]


class CharCache(dict):  # type: ignore[type-arg]
    """A dict filled on first use by `compute`; stops growing past `limit` entries, so a
    flood of distinct characters cannot exhaust memory."""

    def __init__(self, compute: Callable[[str], object], limit: int = 200_000) -> None:
        super().__init__()
        self._compute = compute
        self._limit = limit

    def __missing__(self, ch: str) -> object:
        value = self._compute(ch)
        if len(self) < self._limit:
            self[ch] = value
        return value


# --- character classes -------------------------------------------------------------------------

HAN, WORD, SPACE, PUNCT, DECOR = 1, 2, 3, 4, 5

_HAN_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3134F))
_HAN_EXTRA = frozenset("〇々〆")


def is_han(ch: str) -> bool:
    """True for a CJK ideograph (the characters whose neighbouring separators we remove)."""
    if ch in _HAN_EXTRA:
        return True
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _HAN_RANGES)


def _classify(ch: str) -> int:
    if ch == " ":
        return SPACE
    if is_han(ch):
        return HAN
    if ch == "+":  # kept as a word: "1+1", "+86", "+v" (an add-me cue) must survive
        return WORD
    category = unicodedata.category(ch)
    if category[0] in "LN":
        return WORD
    if category[0] == "P" or category in ("Sm", "Sc") or (ch.isascii() and ch.isprintable()):
        return PUNCT
    return DECOR  # So, Sk, unassigned (newer emoji) ...


CHAR_CLASS: dict[str, int] = CharCache(_classify)
# Everything that is not a word character by the classes above: "_" and all that \w misses,
# except "+" (\w covers exactly the letters and numbers, which _classify calls words).
_SEPARATOR_RUN = re.compile(r"(?:[^\w+]|_)+")


# --- step 1: per-character map ----------------------------------------------------------------

# Invisible "letters" and blanks used to pad or split words; they are not Cf, so named here.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e\u034f")
_DROP_CATEGORIES = frozenset(("Cf", "Co", "Cs", "Mn", "Me"))
_PLUS_LIKE = frozenset("➕✚✙✛✜﹢＋")


def _map_once(ch: str) -> str:
    if ch in _INVISIBLE:
        return ""
    category = unicodedata.category(ch)
    if category == "Cc":
        return " " if ch.isspace() else ""
    if category in _DROP_CATEGORIES:
        return ""
    if category == "Nd":  # digits of every script: ３ 𝟑 ٣ ৩
        return str(unicodedata.decimal(ch))
    if category == "No":  # ① ⑴ ⒈ ❶ ➀ ㈠ ㊀ ²: enclosed or styled digits
        value = unicodedata.numeric(ch, -1.0)
        if value >= 0 and value == int(value) and value <= 50:
            return str(int(value))
    if ch in _PLUS_LIKE:
        return "+"
    if ch.isspace():
        return " "
    out = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", ch).casefold())
    return "".join(" " if c.isspace() else c for c in out)


def _map_char(ch: str) -> str:
    """Step 1 for one character, iterated until every output character maps to itself."""
    out = _map_once(ch)
    for _ in range(4):
        again = "".join(_map_once(c) for c in out)
        if again == out:
            break
        out = again
    return out


# Characters seen so far that map to 0 or 2+ characters: a text without any maps one to one.
_NOT_ONE_TO_ONE: set[str] = set()
_NOT_ONE_TO_ONE_LIMIT = 100_000
_one_to_one_known = True  # False once the set is full: then every text takes the slow path


def _map_char_noting_length(ch: str) -> str:
    global _one_to_one_known
    out = _map_char(ch)
    if len(out) != 1:
        if len(_NOT_ONE_TO_ONE) < _NOT_ONE_TO_ONE_LIMIT:
            _NOT_ONE_TO_ONE.add(ch)
        else:
            _one_to_one_known = False
    return out


class _TranslateTable(CharCache):
    """str.translate looks characters up by code point."""

    def __missing__(self, cp: int) -> object:  # type: ignore[override]
        value = _map_char_noting_length(chr(cp))
        if len(self) < self._limit:
            self[cp] = value
        return value


_TRANSLATE = _TranslateTable(_map_char_noting_length)


def _map_chars(text: str) -> tuple[str, list[int], list[int]]:
    mapped = text.translate(_TRANSLATE)  # fills _NOT_ONE_TO_ONE for new characters
    if len(mapped) == len(text) and _one_to_one_known and _NOT_ONE_TO_ONE.isdisjoint(text):
        return mapped, list(range(len(text))), list(range(1, len(text) + 1))
    parts: list[str] = []
    starts: list[int] = []
    table = _TRANSLATE
    for i, ch in enumerate(text):
        out = table[ord(ch)]
        if out:
            parts.append(out)
            starts.extend([i] * len(out))
    return "".join(parts), starts, [s + 1 for s in starts]


# --- step 2: separators -------------------------------------------------------------------------


def _remove_separators(
    text: str, starts: list[int], ends: list[int]
) -> tuple[str, list[int], list[int]]:
    runs = list(_SEPARATOR_RUN.finditer(text))
    if not runs:
        return text, starts, ends
    n = len(text)
    parts: list[str] = []
    out_s: list[int] = []
    out_e: list[int] = []
    pos = 0
    for m in runs:
        a, b = m.span()
        parts.append(text[pos:a])
        out_s.extend(starts[pos:a])
        out_e.extend(ends[pos:a])
        pos = b
        if a == 0 or b == n:  # at either end: keep all but the spaces
            for i in range(a, b):
                if text[i] != " ":
                    parts.append(text[i])
                    out_s.append(starts[i])
                    out_e.append(ends[i])
        elif CHAR_CLASS[text[a - 1]] != HAN and CHAR_CLASS[text[b]] != HAN:
            _keep_between_words(text, a, b, starts, ends, parts, out_s, out_e)
        # else: next to a Chinese character, the whole run goes
    parts.append(text[pos:])
    out_s.extend(starts[pos:])
    out_e.extend(ends[pos:])
    return "".join(parts), out_s, out_e


def _keep_between_words(
    text: str,
    a: int,
    b: int,
    starts: list[int],
    ends: list[int],
    parts: list[str],
    out_s: list[int],
    out_e: list[int],
) -> None:
    """A run between two non-Chinese words: keep punctuation, one space, no symbols."""
    last_space = False
    for i in range(a, b):
        c = CHAR_CLASS[text[i]]
        if c == DECOR:
            continue
        if c == SPACE and last_space:
            out_e[-1] = ends[i]
            continue
        parts.append(text[i])
        out_s.append(starts[i])
        out_e.append(ends[i])
        last_space = c == SPACE


# --- step 3: traditional to simplified ---------------------------------------------------------

_T2S = opencc.OpenCC("t2s")
_T2S_CHAR: dict[str, str] = CharCache(lambda ch: _T2S.convert(ch) or ch)


def _to_simplified(text: str) -> str:
    converted = _T2S.convert(text)  # phrase-aware: 乾淨 -> 干净 but 乾隆 stays
    if len(converted) == len(text):
        return converted
    # A phrase rule changed the length: fall back to characters so offsets stay exact.
    return "".join(c if len(c) == 1 else ch for ch in text for c in (_T2S_CHAR[ch],))


# --- step 4: Chinese numerals in number runs ----------------------------------------------------

_CN_DIGITS = {
    "〇": "0", "零": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3", "四": "4",
    "五": "5", "六": "6", "七": "7", "八": "8", "九": "9",
    "壹": "1", "贰": "2", "叁": "3", "肆": "4", "伍": "5", "陆": "6", "柒": "7", "捌": "8",
    "玖": "9",
}  # fmt: skip
_CN_DIGITS_TABLE = str.maketrans(_CN_DIGITS)
_CN_DIGIT_CLASS = "".join(_CN_DIGITS)
# 3+ numerals, digits and numerals, single spaces or hyphens between them ("幺三八 1234-5678").
_NUMBER_RUN = re.compile(
    f"[0-9{_CN_DIGIT_CLASS}]*[{_CN_DIGIT_CLASS}][0-9{_CN_DIGIT_CLASS}]*"
    f"(?:[ -][0-9{_CN_DIGIT_CLASS}]+)*"
)
_MIN_RUN_DIGITS = 5
# At least 3 Chinese numerals: a lone one next to digits is a word (跟1615726686一样, 138元一个).
_MIN_RUN_NUMERALS = 3
_HAS_NUMERAL = re.compile(f"[{_CN_DIGIT_CLASS}]")
_DELETE_NUMERALS = str.maketrans("", "", _CN_DIGIT_CLASS)


def _convert_numerals(text: str) -> str:
    if not _HAS_NUMERAL.search(text):
        return text
    if len(text) - len(text.translate(_DELETE_NUMERALS)) < _MIN_RUN_NUMERALS:
        return text
    parts = []
    pos = 0
    for m in _NUMBER_RUN.finditer(text):
        run = m.group()
        digits = len(run) - run.count(" ") - run.count("-")
        numerals = sum(1 for c in run if c in _CN_DIGITS)
        if digits >= _MIN_RUN_DIGITS and numerals >= _MIN_RUN_NUMERALS:
            parts.append(text[pos : m.start()])
            parts.append(run.translate(_CN_DIGITS_TABLE))
            pos = m.end()
    if not parts:
        return text
    parts.append(text[pos:])
    return "".join(parts)


# --- step 5: long repeats -----------------------------------------------------------------------

_MAX_REPEAT = 3
_REPEAT = re.compile(rf"([^0-9])\1{{{_MAX_REPEAT},}}", re.DOTALL)


def _collapse_repeats(
    text: str, starts: list[int], ends: list[int]
) -> tuple[str, list[int], list[int]]:
    runs = list(_REPEAT.finditer(text))
    if not runs:
        return text, starts, ends
    parts: list[str] = []
    out_s: list[int] = []
    out_e: list[int] = []
    pos = 0
    for m in runs:
        keep_end = m.start() + _MAX_REPEAT  # keep the first three
        parts.append(text[pos:keep_end])
        out_s.extend(starts[pos:keep_end])
        out_e.extend(ends[pos:keep_end])
        out_e[-1] = ends[m.end() - 1]  # the last kept one stands for the rest of the run
        pos = m.end()
    parts.append(text[pos:])
    out_s.extend(starts[pos:])
    out_e.extend(ends[pos:])
    return "".join(parts), out_s, out_e


# --- step 6: the variant map (data/variants.tsv) ------------------------------------------------

# Cues that announce a contact: 加 V, 加我薇, +v, 联系扣扣 ...
_ADD_CUES = ("加", "+", "加个", "加下", "加我", "加一下", "联系", "私")
_ADD_BEHIND = "(?:" + "|".join(f"(?<={re.escape(c)})" for c in _ADD_CUES) + ")"
# What follows a contact word: 号, 群, or an ID/number of 5+ characters (":" allowed between).
_ID_AHEAD = r"(?=:? ?(?:号|群|[a-z0-9][a-z0-9_-]{4}))"
_NOT_HAN_AHEAD = r"(?![\u3400-\u9fff\uf900-\ufaff])"

CONTEXTS: dict[str, Callable[[str], str]] = {
    # everywhere
    "always": lambda v: v,
    # announced by an add cue, or followed by 号/群/an ID: 加扣扣, 扣扣123456, 威信号
    "cue": lambda v: f"(?:{_ADD_BEHIND}{v}|{v}{_ID_AHEAD})",
    # only right after an add cue and not followed by another Chinese character: 加薇, +微
    "add": lambda v: f"{_ADD_BEHIND}{v}{_NOT_HAN_AHEAD}",
}


@dataclass(frozen=True, slots=True)
class VariantRule:
    variant: str
    canonical: str
    context: str


def load_variants(path: Path = VARIANTS_PATH) -> list[VariantRule]:
    """Read the TSV: variant, canonical, context (default always), note. '#' starts a comment."""
    rules: list[VariantRule] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) < 2 or not cols[0] or not cols[1]:
            raise ValueError(f"{path}:{lineno}: need variant<TAB>canonical[<TAB>context]")
        context = cols[2].strip() if len(cols) > 2 and cols[2].strip() else "always"
        if context not in CONTEXTS:
            raise ValueError(f"{path}:{lineno}: unknown context {context!r}")
        # Rules apply to normalised text, so their words are written the way it writes them.
        variant = _normalize_simple(cols[0])
        canonical = _normalize_simple(cols[1])
        if not variant or not canonical:
            raise ValueError(f"{path}:{lineno}: nothing left of the variant after normalising")
        rules.append(VariantRule(variant, canonical, context))
    return rules


def _normalize_simple(text: str) -> str:
    """Steps 1 to 3 only: what a rule's own words look like in normalised text."""
    mapped, starts, ends = _map_chars(text)
    return _to_simplified(_remove_separators(mapped, starts, ends)[0])


def _rule_pattern(rule: VariantRule) -> str:
    pattern = re.escape(rule.variant)
    # Latin edges only match whole words: "v" in 加v, never in "vip", "love" or "wx_2024abc".
    if rule.variant[0].isascii() and rule.variant[0].isalpha():
        pattern = "(?<![a-z0-9_-])" + pattern
    if rule.variant[-1].isascii() and rule.variant[-1].isalpha():
        pattern += "(?![a-z0-9_-])"
    return CONTEXTS[rule.context](pattern)


class _VariantMap:
    def __init__(self, rules: list[VariantRule]) -> None:
        # Rules are grouped by first character: a regex scan finds the positions where some
        # rule can start, and only that character's few rules are tried there.
        by_first: dict[str, list[VariantRule]] = {}
        for rule in sorted(rules, key=lambda r: -len(r.variant)):  # longest first: 扣扣 before 扣
            by_first.setdefault(rule.variant[0], []).append(rule)
        self.trigger = re.compile("[" + "".join(re.escape(c) for c in sorted(by_first)) + "]")
        self.rules = {c: [r.canonical for r in group] for c, group in by_first.items()}
        self.regex = {
            c: re.compile("|".join(f"({_rule_pattern(r)})" for r in group))
            for c, group in by_first.items()
        }

    def apply(
        self, text: str, starts: list[int], ends: list[int]
    ) -> tuple[str, list[int], list[int]] | None:
        """Return the rewritten text and offsets, or None when no rule applied."""
        parts: list[str] = []
        out_s: list[int] = []
        out_e: list[int] = []
        pos = 0
        for candidate in self.trigger.finditer(text):
            a = candidate.start()
            if a < pos:
                continue
            first = text[a]
            m = self.regex[first].match(text, a)  # lookbehinds still see text before a
            if m is None:
                continue
            canonical = self.rules[first][m.lastindex - 1]  # type: ignore[operator]
            b = m.end()
            parts.append(text[pos:a])
            out_s.extend(starts[pos:a])
            out_e.extend(ends[pos:a])
            parts.append(canonical)
            if len(canonical) == b - a:  # same length: character for character
                out_s.extend(starts[a:b])
                out_e.extend(ends[a:b])
            else:  # every output character stands for the whole variant
                out_s.extend([starts[a]] * len(canonical))
                out_e.extend([ends[b - 1]] * len(canonical))
            pos = b
        if not parts:
            return None
        parts.append(text[pos:])
        out_s.extend(starts[pos:])
        out_e.extend(ends[pos:])
        return "".join(parts), out_s, out_e


@cache
def _variant_map() -> _VariantMap:
    return _VariantMap(load_variants())


# --- the pipeline -------------------------------------------------------------------------------


def normalize(text: str) -> Normalized:
    """Normalise `text` for matching and for the model; see the module docstring."""
    mapped, starts, ends = _map_chars(text)
    mapped, starts, ends = _remove_separators(mapped, starts, ends)
    if not mapped.isascii():
        mapped = _convert_numerals(_to_simplified(mapped))  # both keep the length
    mapped, starts, ends = _collapse_repeats(mapped, starts, ends)
    variants = _variant_map()
    for _ in range(3):
        changed = variants.apply(mapped, starts, ends)
        if changed is None:
            break
        # A variant can turn Latin into Chinese ("wx abc" -> "微信 abc"), so separators and
        # repeats next to it are looked at again.
        mapped, starts, ends = _remove_separators(*changed)
        mapped, starts, ends = _collapse_repeats(mapped, starts, ends)
    return Normalized(mapped, tuple(starts), tuple(ends))
