"""Character-level tokeniser with hashed character n-grams, and its versioned vocabulary file.

Training and serving both call `CharTokenizer.encode` on `pipeline.model_text(...)`, so the
model sees exactly what it saw in training. Chinese has no spaces, and a model trained from
scratch learns words far better from character pairs and triples than from single characters,
so next to the character ids we emit, for each position, a hashed id of the pair and of the
triple ending there (the fastText trick): no n-gram vocabulary to store, and unseen n-grams
still land in a shared bucket table of `ngram_buckets` rows.

With `pinyin_buckets` set, the same is done on the text's sound units (`models.text.pinyin.
sound_ids`): the hashed pair and triple of syllables ending at each position, so 沙比, "shabi"
and 傻逼 share those ids. A vocabulary without `pinyin_buckets` (releases before it) emits
zeros there, and its models have no such inputs.

Written by hand rather than with `tokenizers`/`transformers` because serving must not depend
on them, and the whole job is a dictionary lookup.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.text.pinyin import sound_ids

VOCAB_FORMAT = "qunguard-char-vocab/1"
PAD, UNK, CLS = "[PAD]", "[UNK]", "[CLS]"
# Placeholders that pipeline.model_text puts where a contact was (private-use characters,
# which normalisation strips from user input, so they never collide with real text).
CONTACT_MARKERS: dict[str, str] = {
    "wechat": "\ue001",
    "qq": "\ue002",
    "phone": "\ue003",
    "url": "\ue004",
    "email": "\ue005",
}
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, CLS, *CONTACT_MARKERS.values())


class VocabularyError(ValueError):
    """The vocabulary file is missing, malformed or of another format."""


@dataclass(frozen=True)
class Encoded:
    """A padded batch: int64 arrays of shape (batch, length), 0 on padding."""

    ids: np.ndarray
    bigrams: np.ndarray
    trigrams: np.ndarray
    mask: np.ndarray
    pinyin_bigrams: np.ndarray
    pinyin_trigrams: np.ndarray


class CharTokenizer:
    """Maps characters to ids; unknown characters map to [UNK]."""

    def __init__(
        self, tokens: Sequence[str], ngram_buckets: int, version: str, pinyin_buckets: int = 0
    ) -> None:
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise VocabularyError("vocabulary must start with the special tokens")
        if len(set(tokens)) != len(tokens):
            raise VocabularyError("vocabulary has duplicate tokens")
        if ngram_buckets < 1:
            raise VocabularyError("ngram_buckets must be positive")
        if pinyin_buckets < 0 or pinyin_buckets == 1:
            raise VocabularyError("pinyin_buckets must be 0 (off) or 2 or more")
        self.pinyin_buckets = pinyin_buckets
        self.tokens = tuple(tokens)
        self.ngram_buckets = ngram_buckets
        self.version = version
        self._index = {token: i for i, token in enumerate(self.tokens)}
        self._unk = self._index[UNK]
        self._cls = self._index[CLS]

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        *,
        min_freq: int = 2,
        max_size: int = 8000,
        ngram_buckets: int = 200_000,
        version: str = "1",
        pinyin_buckets: int = 0,
    ) -> CharTokenizer:
        """Vocabulary of the most frequent characters seen at least `min_freq` times."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text)
        for special in SPECIAL_TOKENS:
            counts.pop(special, None)
        room = max_size - len(SPECIAL_TOKENS)
        chars = [c for c, n in counts.most_common() if n >= min_freq][:room]
        return cls([*SPECIAL_TOKENS, *sorted(chars)], ngram_buckets, version, pinyin_buckets)

    def save(self, path: Path) -> None:
        payload = {
            "format": VOCAB_FORMAT,
            "version": self.version,
            "ngram_buckets": self.ngram_buckets,
            "pinyin_buckets": self.pinyin_buckets,
            "tokens": list(self.tokens),
        }
        path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> CharTokenizer:
        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VocabularyError(f"cannot read vocabulary {path}: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != VOCAB_FORMAT:
            raise VocabularyError(f"{path} is not a {VOCAB_FORMAT} file")
        try:
            return cls(
                payload["tokens"],
                int(payload["ngram_buckets"]),
                str(payload["version"]),
                int(payload.get("pinyin_buckets", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VocabularyError(f"{path} lacks a field or has a malformed one: {exc}") from exc

    def token_ids(self, text: str, max_len: int) -> list[int]:
        """[CLS] followed by the ids of the first `max_len - 1` characters."""
        get, unk = self._index.get, self._unk
        return [self._cls, *(get(c, unk) for c in text[: max_len - 1])]

    def encode(self, texts: Sequence[str], max_len: int = 128) -> Encoded:
        """Encode a batch, padded to its longest text (at most `max_len` tokens)."""
        rows = [self.token_ids(text, max_len) for text in texts]
        length = max((len(row) for row in rows), default=1)
        ids = np.zeros((len(rows), length), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
        mask = (ids != 0).astype(np.int64)
        if self.pinyin_buckets:
            pinyin_bigrams, pinyin_trigrams = self.sound_ngram_ids(texts, max_len, length)
        else:
            pinyin_bigrams = pinyin_trigrams = np.zeros_like(ids)
        return Encoded(
            ids=ids,
            bigrams=self.ngram_ids(ids, mask, n=2),
            trigrams=self.ngram_ids(ids, mask, n=3),
            mask=mask,
            pinyin_bigrams=pinyin_bigrams,
            pinyin_trigrams=pinyin_trigrams,
        )

    def sound_ngram_ids(
        self, texts: Sequence[str], max_len: int, length: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Hashed ids of the sound-unit pairs and triples ending at each position (0 where no
        unit ends), aligned with `encode`'s columns ([CLS] is column 0 and a unit of its own).

        N-grams run over units, not positions: "sha bi" has its two units at columns 3 and 6,
        and their pair lands at column 6, as 傻逼's lands at column 2."""
        units = [[_CLS_SOUND, *sound_ids(text[: max_len - 1])] for text in texts]
        width = max((sum(1 for u in row if u) for row in units), default=1)
        packed = np.zeros((len(units), width), dtype=np.int64)
        rows, cols, where = [], [], []
        for r, row in enumerate(units):
            present = [c for c, u in enumerate(row) if u]
            packed[r, : len(present)] = [row[c] for c in present]
            rows.extend([r] * len(present))
            cols.extend(range(len(present)))
            where.extend(present)
        packed_mask = (packed != 0).astype(np.int64)
        out = []
        for n in (2, 3):
            hashed = _hash_ngrams(
                packed % _PRIME, packed_mask, n, _PINYIN_SALT, self.pinyin_buckets
            )
            grid = np.zeros((len(units), length), dtype=np.int64)
            grid[rows, where] = hashed[rows, cols]
            out.append(grid)
        return out[0], out[1]

    def ngram_ids(self, ids: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
        """Hashed id of the n tokens ending at each position; 0 on padding.

        Ids are 1..ngram_buckets-1. Hashing token ids rather than characters keeps this a few
        vectorised numpy operations; bigrams and trigrams mix differently, so they rarely share
        a bucket.
        """
        return _hash_ngrams(ids, mask, n, _SALT, self.ngram_buckets)


def _hash_ngrams(ids: np.ndarray, mask: np.ndarray, n: int, salt: int, buckets: int) -> np.ndarray:
    mixed = np.full(ids.shape, salt + n, dtype=np.int64)
    for back in range(n):
        shifted = np.zeros_like(ids)
        shifted[:, back:] = ids[:, : ids.shape[1] - back]
        mixed = (mixed * 1_000_003 + shifted * 7_919) % _PRIME
    return (mixed % (buckets - 1) + 1) * mask


_SALT = zlib.crc32(b"qunguard-ngram")
_PINYIN_SALT = zlib.crc32(b"qunguard-pinyin")
_CLS_SOUND = 1  # sound ids of text are crc32 + 1 >= 1; a collision with [CLS] is harmless
_PRIME = 2_147_483_647  # keeps every intermediate product inside int64
