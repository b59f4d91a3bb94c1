"""Curated word lists per label, matched with Aho-Corasick on the normalised and pinyin views.

One file per label, `data/lexicons/<label>.txt`: one term per line, `#` starts a comment line.
Terms are normalised like messages (so 傻 逼, 傻逼 and traditional spellings are one term).
A term that is only Latin letters (and spaces) is a pinyin term: it is matched on the pinyin
view, from syllable or word boundary to boundary ("caonima" also matches 操你妈, 草泥马, 曹尼玛
and "cao ni ma"; "sb" matches "s b" but not "lisbon" or "sb_zhuce"). A pinyin term written
`latin:shabi` only matches text typed in Latin letters, for spellings whose Chinese reading is
innocent (啥比赛 reads "shabisai"). Other terms are matched on the normalised text; where a
term begins or ends with a Latin letter or digit, the neighbouring character must not be one.

Per-group overrides (GroupOverrides) add terms to a label (deny) or suppress hits on terms
(allow; allow wins over deny). Their automaton is built once per distinct overrides value and
cached, so the base automaton is never rebuilt per message.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

import ahocorasick

from models.paths import DATA_DIR
from models.text.normalize import Normalized, is_han, normalize
from models.text.pinyin import PinyinView, pinyin_view

LEXICON_DIR: Path = DATA_DIR / "lexicons"
_PINYIN_TERM = re.compile(r"[a-z ]+")
_LATIN_ONLY_PREFIX = "latin:"
_OVERRIDES_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class LexiconHit:
    label: str
    term: str  # the term as normalised (pinyin terms without spaces)
    start: int  # span in the ORIGINAL text
    end: int
    view: str  # "text" or "pinyin"


@dataclass(frozen=True)
class GroupOverrides:
    """A group's own terms. Equal values share one compiled automaton (see Lexicon.match)."""

    allow: frozenset[str] = frozenset()
    deny: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow", frozenset(self.allow))
        deny = {label: frozenset(terms) for label, terms in self.deny.items()}
        object.__setattr__(self, "deny", MappingProxyType(deny))

    @cached_property
    def key(self) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
        """A hashable value identifying these overrides (cached on the instance)."""
        pairs = frozenset((label, t) for label, terms in self.deny.items() for t in terms)
        return self.allow, pairs

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GroupOverrides) and self.key == other.key


def _normalize_term(term: str) -> tuple[str, str] | None:
    """Return (view, key) for a term, or None when nothing is left after normalising.

    view is "text", "pinyin", or "latin" (pinyin view, typed Latin letters only)."""
    latin_only = term.startswith(_LATIN_ONLY_PREFIX)
    if latin_only:
        term = term[len(_LATIN_ONLY_PREFIX) :]
    text = normalize(term).text
    if not text:
        return None
    if _PINYIN_TERM.fullmatch(text):
        key = text.replace(" ", "")
        return ("latin" if latin_only else "pinyin", key) if key else None
    if latin_only:
        raise ValueError(f"{term!r}: only Latin letters can follow {_LATIN_ONLY_PREFIX!r}")
    return "text", text


def _is_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


class _Matcher:
    """Two automata, one per view, for a set of (label, term) pairs."""

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        text_terms: dict[str, set[str]] = {}
        # pinyin key -> (labels matching any reading, labels matching typed Latin only)
        pinyin_terms: dict[str, tuple[set[str], set[str]]] = {}
        for label, term in entries:
            normalized = _normalize_term(term)
            if normalized is None:
                continue
            view, key = normalized
            if view == "text":
                text_terms.setdefault(key, set()).add(label)
            else:
                any_reading, typed = pinyin_terms.setdefault(key, (set(), set()))
                (typed if view == "latin" else any_reading).add(label)
        self.size = len(text_terms) + len(pinyin_terms)
        self.text = self._build(
            {key: (key, tuple(sorted(labels))) for key, labels in text_terms.items()}
        )
        self.pinyin = self._build(
            {
                key: (key, tuple(sorted(any_reading)), tuple(sorted(typed - any_reading)))
                for key, (any_reading, typed) in pinyin_terms.items()
            }
        )

    @staticmethod
    def _build(values: dict[str, tuple[object, ...]]) -> ahocorasick.Automaton | None:
        if not values:
            return None
        automaton = ahocorasick.Automaton()
        for key, value in values.items():
            automaton.add_word(key, value)
        automaton.make_automaton()
        return automaton

    def match_text(self, text: str, out: list[tuple[str, str, int, int, str]]) -> None:
        if self.text is None:
            return
        n = len(text)
        for end, (key, labels) in self.text.iter(text):
            start = end - len(key) + 1
            if _is_alnum(key[0]) and start > 0 and _is_alnum(text[start - 1]):
                continue
            if _is_alnum(key[-1]) and end + 1 < n and _is_alnum(text[end + 1]):
                continue
            for label in labels:
                out.append((label, key, start, end + 1, "text"))

    def match_pinyin(self, view: PinyinView, out: list[tuple[str, str, int, int, str]]) -> None:
        if self.pinyin is None or not view.text:
            return
        for end, (key, any_reading, typed) in self.pinyin.iter(view.text):
            start = end - len(key) + 1
            if not view.is_aligned(start, end + 1):
                continue
            labels = any_reading
            if typed and view.is_typed(start, end + 1):
                labels = any_reading + typed
            if not labels:
                continue
            nstart, nend = view.normalized_span(start, end + 1)
            for label in labels:
                out.append((label, key, nstart, nend, "pinyin"))


@dataclass(frozen=True, slots=True)
class _CompiledOverrides:
    allow: frozenset[str]
    deny: _Matcher


class Lexicon:
    """Per-label curated terms; `match` finds them in a normalised message."""

    def __init__(self, terms: Mapping[str, Iterable[str]]) -> None:
        self.terms: dict[str, tuple[str, ...]] = {label: tuple(t) for label, t in terms.items()}
        self._base = _Matcher((label, t) for label, ts in self.terms.items() for t in ts)
        self._overrides: OrderedDict[GroupOverrides, _CompiledOverrides] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: Path | None = None) -> Lexicon:
        """Read every `<label>.txt` in `directory` (default: data/lexicons)."""
        directory = directory or LEXICON_DIR
        terms: dict[str, list[str]] = {}
        for path in sorted(directory.glob("*.txt")):
            terms[path.stem] = read_terms(path)
        if not terms:
            raise FileNotFoundError(f"no <label>.txt lexicon files in {directory}")
        return cls(terms)

    @property
    def size(self) -> int:
        """Number of distinct normalised terms in the base lists."""
        return self._base.size

    def match(
        self,
        normalized: Normalized,
        pinyin: PinyinView | None = None,
        overrides: GroupOverrides | None = None,
        original: str | None = None,
    ) -> list[LexiconHit]:
        """All hits, sorted by start; a pinyin hit is dropped where a text hit of the same
        label overlaps it (傻逼 is reported once, not also as "shabi").

        With the `original` text, a hit that only exists because normalisation joined two
        words across a space or punctuation mark is dropped: 一下 注册 reads 一下注册, but
        下注 is not there (see `joins_words`). analyze() always passes it."""
        text = normalized.text
        if not text:
            return []
        matchers = [self._base]
        allow: frozenset[str] = frozenset()
        if overrides is not None and (overrides.allow or overrides.deny):
            compiled = self._compile(overrides)
            matchers.append(compiled.deny)
            allow = compiled.allow
        raw: list[tuple[str, str, int, int, str]] = []
        for matcher in matchers:
            matcher.match_text(text, raw)
        if any(m.pinyin is not None for m in matchers):
            view = pinyin if pinyin is not None else pinyin_view(normalized)
            for matcher in matchers:
                matcher.match_pinyin(view, raw)
        if not raw:
            return []
        if original is not None:
            raw = [r for r in raw if not joins_words(normalized, original, r[2], r[3])]
        return self._to_hits(raw, allow, normalized)

    @staticmethod
    def _to_hits(
        raw: list[tuple[str, str, int, int, str]], allow: frozenset[str], normalized: Normalized
    ) -> list[LexiconHit]:
        text_spans = [(label, s, e) for label, _, s, e, view in raw if view == "text"]
        seen: set[tuple[str, str, int, int]] = set()
        hits = []
        for label, key, start, end, view in sorted(raw, key=lambda r: (r[2], r[3], r[4] != "text")):
            if key in allow or (label, key, start, end) in seen:
                continue
            if view == "pinyin" and any(
                lab == label and s < end and start < e for lab, s, e in text_spans
            ):
                continue
            seen.add((label, key, start, end))
            ostart, oend = normalized.original_span(start, end)
            hits.append(LexiconHit(label, key, ostart, oend, view))
        return hits

    def _compile(self, overrides: GroupOverrides) -> _CompiledOverrides:
        with self._lock:  # serving threads share one Lexicon
            compiled = self._overrides.get(overrides)
            if compiled is not None:
                self._overrides.move_to_end(overrides)
                return compiled
        allow = set()
        for term in overrides.allow:
            normalized = _normalize_term(term)
            if normalized is not None:
                allow.add(normalized[1])
        deny = _Matcher((label, t) for label, terms in overrides.deny.items() for t in terms)
        compiled = _CompiledOverrides(frozenset(allow), deny)
        with self._lock:
            self._overrides[overrides] = compiled
            if len(self._overrides) > _OVERRIDES_CACHE_SIZE:
                self._overrides.popitem(last=False)
        return compiled


# Gaps an ordinary sentence has between words; symbols and emoji in a gap are evasion.
_NATURAL_GAP = re.compile(r"[\s,.!?;:，。！？、；：…~～\"'“”‘’()（）]+")


def joins_words(normalized: Normalized, original: str, start: int, end: int) -> bool:
    """True when the normalised span [start, end) bridges a space or punctuation gap of the
    original while its first and last characters are glued to Chinese characters outside it:
    the span straddles two words (一下 注册 -> 下注, 搞笑，气急 -> 笑气). A spaced-out term on
    its own ("约 炮", "法 轮 功") is not a join."""
    starts, ends, text = normalized.starts, normalized.ends, normalized.text
    if not any(
        starts[k + 1] > ends[k] and _NATURAL_GAP.fullmatch(original, ends[k], starts[k + 1])
        for k in range(start, end - 1)
    ):
        return False
    glued_left = start > 0 and starts[start] == ends[start - 1] and is_han(text[start - 1])
    glued_right = end < len(text) and starts[end] == ends[end - 1] and is_han(text[end])
    return glued_left and glued_right


def read_terms(path: Path) -> list[str]:
    """Terms of one lexicon file: stripped lines, blank lines and `#` comment lines skipped."""
    terms = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            terms.append(line)
    return terms
