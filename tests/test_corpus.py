"""Our hand-written corpus stays valid: JSON, known labels, lengths, no duplicates, enough rows."""

from __future__ import annotations

from collections import Counter

from models.labels import TEXT_LABELS
from models.paths import DATA_DIR
from training.corpus_check import check_files
from training.data import load_corpus

MIN_PER_LABEL = 800
MIN_CLEAN = 4000


def test_corpus_files_have_no_problems() -> None:
    assert check_files(sorted((DATA_DIR / "corpus").glob("*.jsonl"))) == []


def test_corpus_is_large_enough_for_every_label() -> None:
    counts: Counter[str] = Counter()
    for example in load_corpus():
        counts.update(example.labels or ["clean"])
    for label in TEXT_LABELS:
        assert counts[label] >= MIN_PER_LABEL, f"{label}: {counts[label]}"
    assert counts["clean"] >= MIN_CLEAN
