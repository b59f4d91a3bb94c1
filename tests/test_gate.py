"""The release gate: a candidate is promoted only when no worse and better on its reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.labels import TEXT_LABELS
from models.release import TextModel, read_manifest
from tests.ml_fixtures import copy_release, train_tiny, write_tiny_corpus
from training.data import Example, Splits, load_corpus
from training.evaluate import Report, evaluate_scorer, score_texts
from training.gate import compare_evaluations, compare_metric, main, not_worse_share, reports_row
from training.rollout import Layout

CURRENT = "2020.01.01-1"
CANDIDATE = "2020.01.02-1"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def trained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(corpus, tmp_path_factory.mktemp("trained"), CURRENT)


@pytest.fixture
def layout(trained: Path, tmp_path: Path) -> Layout:
    """releases/ serving the trained model as CURRENT, candidates/ empty."""
    layout = Layout(tmp_path / "models" / "releases")
    copy_release(trained, layout.releases, CURRENT)
    layout.candidates.mkdir()
    return layout


def gate(layout: Layout, corpus: Path, *extra: str) -> int:
    candidate = layout.candidates / CANDIDATE
    argv = ["--candidate", str(candidate), "--releases", str(layout.releases)]
    return main([*argv, "--corpus", str(corpus), "--corpus-only", *extra])


def gate_entry(folder: Path) -> dict:
    return read_manifest(folder).metrics["gate"]


def test_verdict_of_one_number() -> None:
    assert compare_metric("s", "ad", "F1", 0.5, 0.6, 0.01).verdict == "better"
    assert compare_metric("s", "ad", "F1", 0.5, 0.5, 0.01).verdict == "same"
    assert compare_metric("s", "ad", "F1", 0.5, 0.495, 0.01).verdict == "within tolerance"
    worse = compare_metric("s", "ad", "F1", 0.5, 0.48, 0.01)
    assert worse.verdict == "WORSE" and not worse.passed
    fpr_up = compare_metric("s", "FPR", "FPR", 0.02, 0.05, 0.01, higher_is_better=False)
    fpr_down = compare_metric("s", "FPR", "FPR", 0.05, 0.02, 0.01, higher_is_better=False)
    assert (fpr_up.verdict, fpr_down.verdict) == ("WORSE", "better")


INSULTS = [Example(f"第{i}句骂人的话", ("insult",), "hand/t") for i in range(40)]
CHAT = [Example(f"第{i}句正常聊天", (), "hand/t") for i in range(40)]


def insult_report(caught: int) -> Report:
    """A model that flags exactly the first `caught` insults and nothing else."""
    flagged = {e.text for e in INSULTS[:caught]}
    column = TEXT_LABELS.index("insult")

    def scorer(texts: list[str]) -> np.ndarray:
        scores = np.zeros((len(texts), len(TEXT_LABELS)))
        scores[:, column] = [t in flagged for t in texts]
        return scores

    splits = Splits(heldout=INSULTS + CHAT)
    return evaluate_scorer("m", scorer, np.full(len(TEXT_LABELS), 0.5), splits, fusion=False)


def test_a_drop_within_noise_passes_and_a_real_drop_is_refused() -> None:
    current = insult_report(30)
    one_less = compare_evaluations(current, insult_report(29), 0.01, samples=300)
    (insult,) = [r for r in one_less if (r.section, r.label) == ("heldout (ours)", "insult")]
    assert insult.candidate < insult.current - 0.01  # beyond the tolerance
    assert insult.verdict == "within noise" and insult.passed
    assert 0.2 < insult.not_worse_share < 0.6  # the one missed line is left out of ~37%
    ten_less = compare_evaluations(current, insult_report(20), 0.01, samples=300)
    (insult,) = [r for r in ten_less if (r.section, r.label) == ("heldout (ours)", "insult")]
    assert insult.verdict == "WORSE" and not insult.passed and insult.not_worse_share < 0.05
    strict = compare_evaluations(current, insult_report(29), 0.01, samples=0)
    assert any(r.verdict == "WORSE" for r in strict)  # --samples 0: the tolerance alone


def test_the_bootstrap_needs_the_same_set_for_both() -> None:
    other = Splits(heldout=INSULTS[:20] + CHAT)
    smaller = evaluate_scorer(
        "m",
        lambda t: np.zeros((len(t), len(TEXT_LABELS))),
        np.full(len(TEXT_LABELS), 0.5),
        other,
        fusion=False,
    )
    key = ("heldout (ours)", "insult")
    assert not_worse_share(insult_report(30), smaller, key, 100) is None
    assert not_worse_share(insult_report(30), insult_report(30), key, 100) == 1.0


def test_reports_must_get_better_unless_all_are_right() -> None:
    assert reports_row(3, 5, 10).passed
    assert not reports_row(5, 5, 10).passed and reports_row(5, 5, 10).verdict == "NOT BETTER"
    assert not reports_row(6, 5, 10).passed
    assert reports_row(10, 10, 10).passed


def test_identical_candidate_passes_and_moves_into_releases(
    layout: Layout, trained: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_release(trained, layout.candidates, CANDIDATE)
    assert gate(layout, corpus) == 0
    out = capsys.readouterr().out
    assert "| heldout (ours) | ad | F1 |" in out and "Verdict: PASSED" in out
    assert not (layout.candidates / CANDIDATE).exists()
    assert layout.served() == layout.releases / CANDIDATE
    entry = gate_entry(layout.releases / CANDIDATE)
    assert entry["verdict"] == "passed" and entry["forced"] is False
    assert entry["current"] == CURRENT
    assert entry["comparison"] and {r["verdict"] for r in entry["comparison"]} == {"same"}
    TextModel.load(layout.releases / CANDIDATE)  # still valid after the manifest was rewritten


def test_worse_candidate_is_refused_and_stays_a_candidate(
    layout: Layout, trained: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deaf = dict.fromkeys(TEXT_LABELS, 0.999)  # flags (almost) nothing: recall collapses
    copy_release(trained, layout.candidates, CANDIDATE, thresholds=deaf)
    assert gate(layout, corpus) == 1
    out = capsys.readouterr().out
    assert "WORSE" in out and "Verdict: REFUSED" in out
    assert (layout.candidates / CANDIDATE).is_dir()
    assert layout.served() == layout.releases / CURRENT
    entry = gate_entry(layout.candidates / CANDIDATE)
    assert entry["verdict"] == "refused" and entry["forced"] is False
    worse = [r for r in entry["comparison"] if r["verdict"] == "WORSE"]
    assert worse and all(r["candidate"] < r["current"] for r in worse if r["metric"] == "F1")


def test_force_promotes_a_refused_candidate_and_records_why(
    layout: Layout, trained: Path, corpus: Path
) -> None:
    copy_release(
        trained, layout.candidates, CANDIDATE, thresholds=dict.fromkeys(TEXT_LABELS, 0.999)
    )
    assert gate(layout, corpus, "--force", "--reason", "legal asked for it") == 0
    folder = layout.releases / CANDIDATE
    assert layout.served() == folder
    entry = gate_entry(folder)
    assert entry["verdict"] == "refused" and entry["forced"] is True
    assert entry["reason"] == "legal asked for it"
    assert any("forced: legal asked for it" in note for note in read_manifest(folder).notes)


def test_force_without_reason_is_an_error(layout: Layout, trained: Path, corpus: Path) -> None:
    copy_release(trained, layout.candidates, CANDIDATE)
    with pytest.raises(SystemExit) as exc:
        gate(layout, corpus, "--force")
    assert exc.value.code == 2
    assert (layout.candidates / CANDIDATE).is_dir()


def _reports_where_they_differ(
    current: Path, candidate: Path, corpus: Path, path: Path, right: str
) -> int:
    """Reports on the texts the two releases label differently, labelled as `right` does."""
    texts = [e.text for e in load_corpus(corpus)]
    predictions = {}
    for name, folder in (("current", current), ("candidate", candidate)):
        model = TextModel.load(folder)
        limits = np.array([model.thresholds[label] for label in TEXT_LABELS])
        predictions[name] = score_texts(model, texts) >= limits
    differ = np.flatnonzero((predictions["current"] != predictions["candidate"]).any(axis=1))
    assert differ.size >= 3
    with path.open("w", encoding="utf-8") as handle:
        for n, i in enumerate(differ[:20]):
            labels = [lab for lab, on in zip(TEXT_LABELS, predictions[right][i], strict=True) if on]
            row = {"id": f"r{n}", "text": texts[i], "labels": labels, "group_id": "g"}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return min(int(differ.size), 20)


@pytest.mark.parametrize("right, code", [("candidate", 0), ("current", 1)])
def test_reports_decide_when_quality_is_within_tolerance(
    layout: Layout,
    trained: Path,
    corpus: Path,
    tmp_path: Path,
    right: str,
    code: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    candidate = copy_release(
        trained, layout.candidates, CANDIDATE, thresholds=dict.fromkeys(TEXT_LABELS, 0.5)
    )
    reports = tmp_path / "reports.jsonl"
    total = _reports_where_they_differ(layout.releases / CURRENT, candidate, corpus, reports, right)
    assert gate(layout, corpus, "--reports", str(reports), "--tolerance", "1") == code
    assert f"| reports | right of {total} | count |" in capsys.readouterr().out
    folder = layout.releases / CANDIDATE if code == 0 else candidate
    (row,) = [r for r in gate_entry(folder)["comparison"] if r["section"] == "reports"]
    expected = (0, total) if right == "candidate" else (total, 0)
    assert (row["current"], row["candidate"]) == expected


def test_a_bad_corpus_line_stops_the_gate_with_a_usage_error(
    layout: Layout, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_release(trained, layout.candidates, CANDIDATE)
    bad = tmp_path / "bad_corpus"
    bad.mkdir()
    (bad / "x.jsonl").write_text('{"text": "加我微信", "labels": ["spam"]}\n', encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        gate(layout, bad)
    assert exc.value.code == 2
    assert "x.jsonl:1: unknown labels" in capsys.readouterr().err
    assert (layout.candidates / CANDIDATE).is_dir()


def test_candidate_older_than_the_served_release_is_refused(
    layout: Layout, trained: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_release(trained, layout.candidates, "2019.12.31-1")
    argv = ["--candidate", str(layout.candidates / "2019.12.31-1")]
    assert main([*argv, "--releases", str(layout.releases), "--corpus-only"]) == 1
    assert "not newer than the served" in capsys.readouterr().out
    assert (layout.candidates / "2019.12.31-1").is_dir()


def test_first_release_passes_with_nothing_to_compare(
    trained: Path, corpus: Path, tmp_path: Path
) -> None:
    layout = Layout(tmp_path / "releases")
    copy_release(trained, layout.candidates.parent / "candidates", CANDIDATE)
    assert gate(layout, corpus) == 0
    assert layout.served() == layout.releases / CANDIDATE
    assert gate_entry(layout.served())["current"] is None


def test_a_current_release_that_does_not_load_stops_the_gate(
    layout: Layout, trained: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_release(trained, layout.candidates, CANDIDATE)
    model = layout.releases / CURRENT / "model.onnx"
    model.write_bytes(model.read_bytes()[:100])
    assert gate(layout, corpus) == 2
    assert "cannot compare" in capsys.readouterr().out
    assert (layout.candidates / CANDIDATE).is_dir()
