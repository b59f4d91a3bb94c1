"""The one entry point used by training and serving: normalise, extract contacts, match words.

`model_text` is exactly what the neural model sees, in training and in serving: the normalised
text with every contact replaced by one private-use marker character per contact type
(normalisation removes private-use characters from user input, so markers never collide).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from functools import cache

from models.text.contacts import Contact, extract_contacts
from models.text.lexicon import GroupOverrides, Lexicon, LexiconHit
from models.text.normalize import Normalized, normalize
from models.text.pinyin import pinyin_view
from models.text.tokenizer import CONTACT_MARKERS


@dataclass(frozen=True, slots=True)
class TextAnalysis:
    original: str
    normalized: Normalized
    contacts: list[Contact]
    hits: list[LexiconHit]


@cache
def default_lexicon() -> Lexicon:
    """The lexicon of data/lexicons, loaded once per process."""
    return Lexicon.load()


def analyze(
    text: str, lexicon: Lexicon | None = None, overrides: GroupOverrides | None = None
) -> TextAnalysis:
    """Normalise `text`, extract its contacts and match the lexicon (default: data/lexicons)."""
    normalized = normalize(text)
    contacts = extract_contacts(text, normalized)
    lexicon = lexicon if lexicon is not None else default_lexicon()
    hits = lexicon.match(normalized, pinyin_view(normalized), overrides, original=text)
    return TextAnalysis(text, normalized, contacts, hits)


def model_text(analysis: TextAnalysis) -> str:
    """The normalised text with each contact span replaced by its type's marker."""
    text = analysis.normalized.text
    if not analysis.contacts:
        return text
    starts = analysis.normalized.starts
    pieces = []
    pos = 0
    for contact in analysis.contacts:  # sorted by start, never overlapping
        # Contacts were found on the normalised text; starts never decrease, so bisect finds
        # the normalised span back from the original one.
        nstart = bisect_left(starts, contact.start, pos)
        nend = bisect_left(starts, contact.end, nstart)
        pieces.append(text[pos:nstart])
        pieces.append(CONTACT_MARKERS[contact.type])
        pos = nend
    pieces.append(text[pos:])
    return "".join(pieces)
