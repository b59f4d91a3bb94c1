"""Hard-example mining with a real (tiny) release: which rows get repeated more, and why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models.labels import TEXT_LABELS
from models.release import TextModel, read_manifest
from tests.conftest import TINY_VERSION
from tests.ml_fixtures import TINY_CONFIG, train_tiny, write_tiny_corpus
from training.classifier import TrainConfig
from training.data import Example
from training.hard_examples import hard_multipliers, threshold_ratios
from training.train import main as train_main

CHAT = [
    "今天下午开会吗",
    "加我微信领红包",
    "晚上一起吃饭吧",
    "你这个傻逼",
    "明天记得带伞",
    "扫码进群免费领",
    "这周末去爬山",
    "帮我砍一刀谢谢",
    "作业写完了没",
    "哈哈哈笑死我了",
]


def _train_rows() -> list[Example]:
    chat = [Example(text, (), "lccc") for text in CHAT]
    ours = [
        Example("加V信看福利视频", ("porn",), "hand/porn/x"),
        Example("你妈死了", ("insult",), "hand/insult/x"),
        Example("会议改到三点", (), "hand/clean/x"),
    ]
    return chat + ours


def test_the_chat_closest_to_a_threshold_and_missed_positives_are_repeated(
    tiny_releases: Path,
) -> None:
    release = TextModel.load(tiny_releases / TINY_VERSION)
    rows = _train_rows()
    ratios = threshold_ratios(release, [e.text for e in rows])
    multipliers, line = hard_multipliers(
        rows, release, negatives=3, negative_repeat=4, positive_repeat=2
    )

    unflagged_chat = [i for i in range(len(CHAT)) if ratios[i].max() < 1]
    expected_chat = sorted(unflagged_chat, key=lambda i: -ratios[i].max())[:3]
    assert [i for i in range(len(CHAT)) if multipliers[i] == 4] == sorted(expected_chat)
    assert all(multipliers[i] == 1 for i in range(len(CHAT)) if i not in expected_chat)
    for i, example in enumerate(rows[len(CHAT) :], start=len(CHAT)):
        missed = any(ratios[i][TEXT_LABELS.index(label)] < 1 for label in example.labels)
        assert multipliers[i] == (2 if missed else 1), example.text
    assert multipliers[-1] == 1  # our clean rows are never mined
    assert f"mined with {TINY_VERSION}" in line


def test_hard_negatives_can_be_ranked_by_some_labels_only(tiny_releases: Path) -> None:
    release = TextModel.load(tiny_releases / TINY_VERSION)
    rows = _train_rows()
    ratios = threshold_ratios(release, [e.text for e in rows])
    labels = ["ad", "porn"]
    columns = [TEXT_LABELS.index(label) for label in labels]
    multipliers, line = hard_multipliers(
        rows, release, negatives=3, negative_repeat=4, positive_repeat=1, negative_labels=labels
    )
    unflagged_chat = [i for i in range(len(CHAT)) if ratios[i].max() < 1]  # flagged on none
    expected = sorted(unflagged_chat, key=lambda i: -ratios[i][columns].max())[:3]
    assert [i for i in range(len(CHAT)) if multipliers[i] == 4] == sorted(expected)
    assert "x4 by ad/porn" in line
    with pytest.raises(ValueError, match="hard_negative_labels"):
        TrainConfig(hard_negative_labels=["spam"])


def test_nothing_is_scored_when_nothing_is_asked(tiny_releases: Path) -> None:
    release = TextModel.load(tiny_releases / TINY_VERSION)
    release.predict_proba = None  # type: ignore[method-assign]  # would fail if it were scored
    multipliers, line = hard_multipliers(
        _train_rows(), release, negatives=0, negative_repeat=4, positive_repeat=1
    )
    assert multipliers == [1] * len(_train_rows())
    assert line == "hard examples: none asked for"


def test_mining_needs_a_release() -> None:
    with pytest.raises(ValueError, match="need hard_mining_release"):
        TrainConfig(hard_negatives=10)
    with pytest.raises(ValueError, match="hard_negatives must be 0 or more"):
        TrainConfig(hard_negatives=-1, hard_mining_release="x")


def test_training_mines_with_a_release_and_records_it(tmp_path: Path, tiny_releases: Path) -> None:
    config = tmp_path / "hard.json"
    release = tiny_releases / TINY_VERSION
    config.write_text(
        json.dumps(
            {
                "extends": str(TINY_CONFIG),
                "train": {"hard_mining_release": str(release), "hard_positive_repeat": 3},
            }
        ),
        encoding="utf-8",
    )
    corpus = write_tiny_corpus(tmp_path / "corpus", lines=20)
    argv = ["--config", str(config), "--no-evaluate"]
    folder = train_tiny(corpus, tmp_path / "out", "2026.01.02-1", *argv)
    manifest = read_manifest(folder)
    assert manifest.config["train"]["hard_mining_release"] == str(release)
    assert any(f"mined with {TINY_VERSION}" in note for note in manifest.notes)


@pytest.mark.parametrize("broken", ["empty folder", "corrupt model"])
def test_a_mining_release_that_cannot_score_is_refused_before_training(
    tmp_path: Path, tiny_releases: Path, capsys: pytest.CaptureFixture[str], broken: str
) -> None:
    release = tmp_path / "release"
    if broken == "empty folder":
        release.mkdir()
    else:
        shutil.copytree(tiny_releases / TINY_VERSION, release)
        model_file = read_manifest(release).model_file
        (release / model_file).write_bytes(b"not an onnx model")
    config = tmp_path / "hard.json"
    config.write_text(
        json.dumps({"extends": str(TINY_CONFIG), "train": {"hard_mining_release": str(release)}}),
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--config", str(config), "--corpus-only", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"hard_mining_release {release} cannot be used" in capsys.readouterr().err
