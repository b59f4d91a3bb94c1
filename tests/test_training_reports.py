"""Moderator reports as training data: read, validated, and overriding the corpus label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.release import read_manifest
from tests.ml_fixtures import train_tiny, write_tiny_corpus
from training.data import build_splits, dedup_key, load_corpus
from training.reports import ReportError, read_reports


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus"))


def write_reports(path: Path, *rows: dict) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def report(report_id: str, text: str, labels: list[str]) -> dict:
    return {
        "id": report_id,
        "text": text,
        "labels": labels,
        "group_id": "g-1",
        "reporter": "mod-1",
        "note": "",
        "created_at": "2026-11-24T10:00:00+00:00",
    }


def a_trained_clean_text(corpus: Path) -> str:
    splits = build_splits(load_corpus(corpus), public=False)
    return next(e.text for e in splits.train if not e.labels and len(e.text) >= 4)


def test_reports_become_examples_with_their_id_as_source(tmp_path: Path) -> None:
    path = write_reports(
        tmp_path / "r.jsonl", report("r1", "加我微信", ["ad", "fraud"]), report(7, "好的", [])
    )
    (first, second) = read_reports(path)
    assert (first.text, first.labels, first.source) == ("加我微信", ("ad", "fraud"), "report/r1")
    assert (second.labels, second.source) == ((), "report/7")


@pytest.mark.parametrize(
    "row, message",
    [
        (report("r1", "x", ["spam"]), "unknown labels"),
        (report("r1", "  ", ["ad"]), "text"),
        ({"text": "x", "labels": ["ad"]}, "id"),
        (report("r1", "x", "ad"), "labels"),
    ],
)
def test_malformed_reports_name_their_line(tmp_path: Path, row: dict, message: str) -> None:
    path = write_reports(tmp_path / "r.jsonl", report("ok", "好的", []), row)
    with pytest.raises(ReportError, match=message) as exc:
        read_reports(path)
    assert f"{path}:2" in str(exc.value)


def test_a_report_overrides_the_corpus_label_of_the_same_normalised_text(
    corpus: Path, tmp_path: Path
) -> None:
    original = a_trained_clean_text(corpus)
    spelled = " ".join(original)  # another spelling, the same normalised text
    assert spelled != original and dedup_key(spelled) == dedup_key(original)
    path = write_reports(
        tmp_path / "r.jsonl",
        report("r1", spelled, ["fraud"]),
        report("r2", "兄弟们这个群主是骗子专门收会费跑路", ["fraud"]),
    )
    splits = build_splits(load_corpus(corpus), reports=read_reports(path), public=False)
    same = [e for e in splits.train if dedup_key(e.text) == dedup_key(original)]
    assert [(e.labels, e.source) for e in same] == [(("fraud",), "report/r1")]
    assert any(e.source == "report/r2" for e in splits.train)
    assert splits.sources["report"] == 2


def test_training_with_reports_trains_on_them(corpus: Path, tmp_path: Path) -> None:
    path = write_reports(
        tmp_path / "r.jsonl", report("r1", " ".join(a_trained_clean_text(corpus)), ["ad"])
    )
    folder = train_tiny(corpus, tmp_path / "out", "2020.01.01-1", "--reports", str(path))
    data = read_manifest(folder).data
    assert data["train_sources"]["report"] == 1
    without = build_splits(load_corpus(corpus), public=False)
    ads = sum("ad" in e.labels for e in without.train)
    assert data["train_positives"]["ad"] == ads + 1
