"""Our review of LCCC's "clean" lines: violating lines are relabelled, and the false-positive
rate is reported both as published and without them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.labels import TEXT_LABELS
from training.classifier import TrainConfig, repeats_for
from training.data import (
    AUDITED_SOURCE,
    LCCC_AUDIT,
    Example,
    Splits,
    apply_lccc_audit,
    audit_key,
    build_splits,
    datasets_dir,
    load_lccc,
    load_lccc_audit,
)
from training.evaluate import evaluate_scorer
from training.threshold_rule import clean_rows

CHAT = [Example("今天食堂的饭不错", (), "lccc"), Example("你是不是脑子有病啊", (), "lccc")]


def test_audited_violations_are_relabelled_and_reviewed_clean_lines_stay_chat(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    rows = [
        {"key": audit_key("今天食堂的饭不错"), "labels": []},
        {"key": audit_key("你是不是脑子有病啊"), "labels": ["insult"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    audit = load_lccc_audit(path)
    assert audit == {audit_key(CHAT[0].text): (), audit_key(CHAT[1].text): ("insult",)}
    relabelled = apply_lccc_audit(CHAT, audit)
    assert relabelled[0] == CHAT[0]
    assert relabelled[1] == Example(CHAT[1].text, ("insult",), AUDITED_SOURCE)
    assert clean_rows(relabelled).tolist() == [True, False]  # kept out of the clean-chat caps


def test_a_bad_audit_line_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"key": "ab12", "labels": ["rude"]}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="audit.jsonl:1"):
        load_lccc_audit(path)
    path.write_text('{"text": "滚", "labels": ["insult"]}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="audit.jsonl:1: needs an object with a key"):
        load_lccc_audit(path)
    assert load_lccc_audit(tmp_path / "missing.jsonl") == {}


def test_audited_chat_lines_are_real_group_chat_in_training() -> None:
    cfg = TrainConfig(corpus_repeat=4, group_chat_repeat=3, clean_chat_repeat=2)
    assert repeats_for([AUDITED_SOURCE, "lccc"], cfg) == [3, 2]


def test_the_unseen_chat_fpr_is_reported_as_published_and_audited() -> None:
    unseen = apply_lccc_audit(
        [*CHAT, Example("周末去爬山吗", (), "lccc"), Example("哈哈哈哈", (), "lccc")],
        {audit_key(CHAT[1].text): ("insult",)},
    )
    flags_insults = np.zeros(len(TEXT_LABELS))
    flags_insults[TEXT_LABELS.index("insult")] = 1.0

    def scorer(texts: list[str]) -> np.ndarray:
        return np.array([flags_insults if "病" in t else np.zeros(len(TEXT_LABELS)) for t in texts])

    report = evaluate_scorer(
        "x",
        scorer,
        np.full(len(TEXT_LABELS), 0.5),
        Splits(clean_unseen=unseen),
        fusion=False,
        public=False,
    )
    assert report.extra["FPR unseen clean chat (LCCC)"] == pytest.approx(0.25)
    assert report.extra["FPR unseen clean chat (LCCC, audited)"] == 0.0


@pytest.mark.skipif(not datasets_dir().is_dir(), reason="../shared/datasets is not beside the repo")
@pytest.mark.skipif(not LCCC_AUDIT.is_file(), reason="data/lccc_audit.jsonl is not in this tree")
def test_the_committed_audit_relabels_lccc_lines_in_every_split() -> None:
    audit = load_lccc_audit()
    violating = {key for key, labels in audit.items() if labels}
    splits = build_splits()
    found = [e for part in (splits.train, splits.dev, splits.clean_unseen) for e in part]
    audited = [e for e in found if e.source == AUDITED_SOURCE]
    assert audited and all(e.labels for e in audited)
    assert {audit_key(e.text) for e in audited} <= violating
    clean_chat = [e for e in found if e.source == "lccc"]
    assert not {audit_key(e.text) for e in clean_chat} & violating


@pytest.mark.skipif(not datasets_dir().is_dir(), reason="../shared/datasets is not beside the repo")
@pytest.mark.skipif(not LCCC_AUDIT.is_file(), reason="data/lccc_audit.jsonl is not in this tree")
def test_every_audit_key_names_an_lccc_line_and_the_lines_can_be_shown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from training.lccc_audit import main

    audit = load_lccc_audit()
    assert set(audit) <= {audit_key(e.text) for e in load_lccc()}
    assert main([]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert len(shown) == sum(bool(labels) for labels in audit.values())
    assert all(line.split("\t")[0] != "clean" for line in shown)


def test_showing_the_audit_without_lccc_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.lccc_audit import main

    monkeypatch.setenv("QUNGUARD_DATASETS", str(tmp_path / "none"))
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "lccc_base_small" in capsys.readouterr().err


@pytest.mark.skipif(not datasets_dir().is_dir(), reason="../shared/datasets is not beside the repo")
@pytest.mark.parametrize("module", ["training.evaluate", "training.baseline"])
def test_a_bad_audit_line_stops_a_command_with_a_usage_error(
    module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib

    import training.data

    def bad_audit() -> dict[str, tuple[str, ...]]:
        raise ValueError("data/lccc_audit.jsonl:3: unknown labels ['spam']")

    monkeypatch.setattr(training.data, "load_lccc_audit", bad_audit)
    with pytest.raises(SystemExit) as exc:
        importlib.import_module(module).main([])
    assert exc.value.code == 2
    assert "lccc_audit.jsonl:3: unknown labels" in capsys.readouterr().err
