"""training.merge on two tiny members trained by the real training command with two seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.release import TextModel, read_manifest
from models.text.pipeline import analyze, model_text
from tests.ml_fixtures import TINY_CONFIG, train_tiny, write_tiny_corpus
from training.merge import main as merge_main

TEXTS = ["加我微信领红包", "你这个傻逼", "明天记得带伞", "帮我砍一刀谢谢", "澳门新葡京首充送彩金"]


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(corpus, member with seed 13, member with seed 14), both under one candidates folder."""
    root = tmp_path_factory.mktemp("merge")
    corpus = write_tiny_corpus(root / "corpus")
    seed14 = root / "tiny_s14.json"
    seed14.write_text(json.dumps({"extends": str(TINY_CONFIG), "train": {"seed": 14}}))
    out = root / "candidates"
    first = train_tiny(corpus, out, "2026.01.01-1")
    second = train_tiny(corpus, out, "2026.01.01-2", "--config", str(seed14))
    return corpus, first, second


def _merge(corpus: Path, *args: str) -> int:
    return merge_main(["--corpus", str(corpus), "--corpus-only", *args])


def _scores(folder: Path) -> np.ndarray:
    model = TextModel.load(folder)
    return model.predict_proba([model_text(analyze(t)) for t in TEXTS])


def test_the_merged_release_scores_the_mean_of_its_members(
    members: tuple[Path, Path, Path],
) -> None:
    corpus, first, second = members
    assert not np.allclose(_scores(first), _scores(second))  # the seeds made two models
    out = first.parent
    code = _merge(corpus, "--members", str(first), str(second), "--out", str(out))
    assert code == 0
    written = [p for p in out.iterdir() if p.name not in (first.name, second.name)]
    assert len(written) == 1
    merged = written[0]
    expected = (_scores(first) + _scores(second)) / 2
    np.testing.assert_allclose(_scores(merged), expected, atol=1e-5)
    manifest = read_manifest(merged)
    assert manifest.config["merged_from"] == [first.name, second.name]
    assert manifest.config["model"]["members"] == 2
    assert [m["seed"] for m in manifest.metrics["members"]] == [13, 14]
    assert manifest.data == read_manifest(first).data
    assert "(evaluation pending)" not in (merged / "MODEL_CARD.md").read_text(encoding="utf-8")


def test_one_member_or_a_member_given_twice_is_refused(
    members: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    corpus, first, _ = members
    with pytest.raises(SystemExit) as exit_info:
        _merge(corpus, "--members", str(first), str(first), "--out", str(tmp_path))
    assert exit_info.value.code == 2
    assert "given twice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _merge(corpus, "--members", str(first), "--out", str(tmp_path))
    assert "two or more members" in capsys.readouterr().err


def test_members_trained_on_other_data_are_refused(
    members: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    corpus, first, _ = members
    other = train_tiny(write_tiny_corpus(tmp_path / "corpus", lines=30), tmp_path, "2026.01.02-1")
    with pytest.raises(SystemExit):
        _merge(corpus, "--members", str(first), str(other), "--out", str(tmp_path))
    assert "different data" in capsys.readouterr().err


def test_a_corpus_changed_since_training_is_refused(
    members: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    corpus, first, second = members
    changed = write_tiny_corpus(tmp_path / "corpus", lines=39)
    with pytest.raises(SystemExit):
        _merge(changed, "--members", str(first), str(second), "--out", str(tmp_path))
    assert "not what the members were trained on" in capsys.readouterr().err
    assert not any(p.is_dir() for p in tmp_path.iterdir() if p.name != "corpus")


def test_a_taken_version_and_a_broken_member_are_refused(
    members: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    corpus, first, second = members
    with pytest.raises(SystemExit):
        _merge(
            corpus,
            "--members",
            str(first),
            str(second),
            "--out",
            str(first.parent),
            "--version",
            second.name,
        )
    assert "exists already" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # refused before any scoring, not by the manifest after it
        _merge(
            corpus,
            "--members",
            str(first),
            str(second),
            "--out",
            str(tmp_path),
            "--version",
            "latest",
        )
    assert "must look like" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _merge(corpus, "--members", str(first), str(tmp_path / "missing"), "--out", str(tmp_path))
    assert "no release folder" in capsys.readouterr().err
