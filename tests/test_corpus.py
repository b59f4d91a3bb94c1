"""Our hand-written corpus stays valid: JSON, known labels, lengths, no duplicates, enough rows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

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


def test_check_reports_bad_rows_and_unreadable_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('[1, 2]\n{"text": "x", "labels": ["nope"], "source": "s"}\nnot json\n', "utf-8")
    problems = check_files([bad, tmp_path / "missing.jsonl"])
    assert any("not a JSON object" in p for p in problems)
    assert any("unknown labels ['nope']" in p for p in problems)
    assert any("length 1" in p for p in problems)
    assert any("not JSON" in p for p in problems)
    assert any("missing.jsonl: cannot read" in p for p in problems)
