"""Rewriting messages the way evaders do: homophones, pinyin, separators, traditional
characters, circled digits. `training.robustness` measures a release on rewritten held-out
messages; training can rewrite a share of its texts the same way (homophones and pinyin, the
two kinds text normalisation cannot undo), so the model learns that 沙比 reads as 傻逼.

Hand-written: no library generates Chinese evasions; pypinyin (through models.text.pinyin)
gives the readings and OpenCC the traditional forms.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import opencc

from models.text.normalize import is_han
from models.text.pinyin import syllable

SEPARATORS = ["❤", " ", "·", "🌹", "*", "～", "👉", "  ", "/", "💰"]
CIRCLED = dict(zip("0123456789", "⓪①②③④⑤⑥⑦⑧⑨", strict=True))
_TO_TRADITIONAL = opencc.OpenCC("s2t")


# Regional mergers of pinyin sounds (模糊音): the swaps people make when they write by ear.
_INITIAL_SWAP = {
    "zh": "z",
    "z": "zh",
    "ch": "c",
    "c": "ch",
    "sh": "s",
    "s": "sh",
    "n": "l",
    "l": "n",
}
_FINAL_PAIRS = (("ang", "an"), ("eng", "en"), ("ing", "in"))


def near_syllables(sound: str) -> list[str]:
    """Syllables one regional merger away from `sound` ("sha" -> ["sa"], "lin" -> ["nin",
    "ling"]); they need not exist, the caller looks them up."""
    out = []
    initial = next((i for i in _INITIAL_SWAP if sound.startswith(i)), "")  # zh before z
    if initial:
        out.append(_INITIAL_SWAP[initial] + sound[len(initial) :])
    for with_g, without in _FINAL_PAIRS:
        if sound.endswith(with_g):
            out.append(sound[:-1])
            break
        if sound.endswith(without):
            out.append(sound + "g")
            break
    return out


class Rewriter:
    """The rewritings, with a homophone table built from the characters of `texts`."""

    def __init__(self, texts: Sequence[str], seed: int) -> None:
        self.random = random.Random(seed)
        counts = Counter(ch for text in texts for ch in text if is_han(ch))
        by_sound: dict[str, list[str]] = defaultdict(list)
        for ch, n in counts.most_common():
            if n >= 3 and syllable(ch):
                by_sound[syllable(ch)].append(ch)
        self.homophones = {ch: chars for chars in by_sound.values() for ch in chars}
        self.by_sound = dict(by_sound)

    def kinds(self) -> dict[str, Callable[[str], str]]:
        return {
            "separators": self.separators,
            "traditional": _TO_TRADITIONAL.convert,
            "homophones": self.homophones_of,
            "pinyin": self.pinyin,
            "digits": lambda text: "".join(CIRCLED.get(ch, ch) for ch in text),
            # Last, so that the rows above draw the same random numbers as before they existed.
            "near homophones": self.near_homophones_of,
            "spaced pinyin": self.spaced_pinyin,
        }

    def separators(self, text: str) -> str:
        out = []
        for i, ch in enumerate(text):
            out.append(ch)
            if i + 1 < len(text) and is_han(ch) and self.random.random() < 0.5:
                out.append(self.random.choice(SEPARATORS))
        return "".join(out)

    def homophones_of(self, text: str) -> str:
        chars = list(text)
        spots = [i for i, ch in enumerate(chars) if len(self.homophones.get(ch, ())) > 1]
        for i in self.random.sample(spots, min(2, len(spots))):
            chars[i] = self.random.choice([c for c in self.homophones[chars[i]] if c != chars[i]])
        return "".join(chars)

    def near_homophones_of(self, text: str) -> str:
        """Up to two Chinese characters swapped for one whose syllable differs by a
        regional merger (z/zh, n/l, in/ing...: 傻 sha -> 萨 sa). Training never rewrites this
        way, so it checks what the exact-syllable augmentation and pinyin channel do not give
        for free."""
        chars = list(text)
        options = {i: self._near(ch) for i, ch in enumerate(chars) if is_han(ch)}
        spots = [i for i, near in options.items() if near]
        for i in self.random.sample(spots, min(2, len(spots))):
            chars[i] = self.random.choice(options[i])
        return "".join(chars)

    def _near(self, ch: str) -> list[str]:
        return [c for sound in near_syllables(syllable(ch)) for c in self.by_sound.get(sound, ())]

    def spaced_pinyin(self, text: str) -> str:
        """Three neighbouring Chinese characters as pinyin syllables with spaces between
        (加微信 -> jia wei xin), the way people type it; fewer when the text has fewer."""
        runs = [i for i in range(len(text)) if is_han(text[i])]
        if not runs:
            return text
        start = self.random.choice(runs)
        end = start
        while end < len(text) and end - start < 3 and is_han(text[end]):
            end += 1
        spelled = " ".join(syllable(ch) for ch in text[start:end])
        return f"{text[:start]} {spelled} {text[end:]}".strip()

    def pinyin(self, text: str) -> str:
        pairs = [i for i in range(len(text) - 1) if is_han(text[i]) and is_han(text[i + 1])]
        if not pairs:
            return text
        i = self.random.choice(pairs)
        return text[:i] + syllable(text[i]) + syllable(text[i + 1]) + text[i + 2 :]

    def augment(self, text: str, homophone_rate: float, pinyin_rate: float) -> str:
        """Training augmentation: the homophone rewriting with probability `homophone_rate`,
        then the pinyin one with probability `pinyin_rate` (fresh draws each time)."""
        if homophone_rate and self.random.random() < homophone_rate:
            text = self.homophones_of(text)
        if pinyin_rate and self.random.random() < pinyin_rate:
            text = self.pinyin(text)
        return text
