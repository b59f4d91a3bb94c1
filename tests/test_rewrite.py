"""Evasion rewritings (training/rewrite.py), the augmentation built on them, and the
robustness command that measures a release on rewritten held-out messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.labels import TEXT_LABELS
from models.release import TextModel, read_manifest
from models.text.normalize import is_han, normalize
from models.text.pinyin import syllable
from tests.conftest import TINY_VERSION
from tests.ml_fixtures import TINY_CONFIG, train_tiny, write_tiny_corpus
from training.classifier import TrainConfig
from training.data import Example
from training.rewrite import Rewriter, near_syllables
from training.robustness import main as robustness_main
from training.robustness import robustness_table

TEXTS = [
    "你这个傻逼快滚",
    "沙比沙比杀笔",
    "加我微信领红包",
    "明天下午三点开会",
    "群里不要发广告",
] * 3
MESSAGE = "你这个傻逼加我微信123"


def test_homophones_swap_at_most_two_characters_for_ones_that_sound_the_same() -> None:
    rewriter = Rewriter(TEXTS, seed=3)
    for _ in range(20):
        rewritten = rewriter.homophones_of(MESSAGE)
        changed = [(a, b) for a, b in zip(MESSAGE, rewritten, strict=True) if a != b]
        assert len(changed) <= 2
        assert all(syllable(a) == syllable(b) for a, b in changed)
    assert any(rewriter.homophones_of(MESSAGE) != MESSAGE for _ in range(5))


def test_pinyin_writes_two_neighbouring_characters_in_letters() -> None:
    rewritten = Rewriter(TEXTS, seed=3).pinyin(MESSAGE)
    assert len(rewritten) > len(MESSAGE)
    han_left = [ch for ch in rewritten if is_han(ch)]
    assert len(han_left) == sum(map(is_han, MESSAGE)) - 2
    assert Rewriter(TEXTS, seed=3).pinyin("ok 123") == "ok 123"  # nothing to rewrite


@pytest.mark.parametrize("kind", ["separators", "traditional", "digits"])
def test_normalisation_undoes_the_rewritings_it_is_built_for(kind: str) -> None:
    rewritten = Rewriter(TEXTS, seed=5).kinds()[kind](MESSAGE)
    assert rewritten != MESSAGE
    assert normalize(rewritten).text == normalize(MESSAGE).text


def test_augmentation_rewrites_only_at_its_rates() -> None:
    rewriter = Rewriter(TEXTS, seed=1)
    assert all(rewriter.augment(MESSAGE, 0.0, 0.0) == MESSAGE for _ in range(20))
    changed = sum(rewriter.augment(MESSAGE, 0.5, 0.0) != MESSAGE for _ in range(400))
    assert 150 < changed < 250
    with pytest.raises(ValueError, match="homophone_rate must be at least 0 and below 1"):
        TrainConfig(homophone_rate=1.0)


def test_training_with_evasion_augmentation_records_its_rates(tmp_path: Path) -> None:
    config = tmp_path / "evasion.json"
    rates = {"homophone_rate": 0.5, "pinyin_rate": 0.5}
    config.write_text(json.dumps({"extends": str(TINY_CONFIG), "train": rates}), encoding="utf-8")
    corpus = write_tiny_corpus(tmp_path / "corpus", lines=20)
    folder = train_tiny(corpus, tmp_path / "out", "2026.01.03-1", "--config", str(config))
    train = read_manifest(folder).config["train"]
    assert (train["homophone_rate"], train["pinyin_rate"]) == (0.5, 0.5)


def test_robustness_prints_recall_for_each_rewriting(
    tiny_releases: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert robustness_main(["--release", str(tiny_releases / TINY_VERSION)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "rewriting" not in line]
    names = [row.split("|")[1].strip() for row in rows]
    assert names == [
        "as written",
        "separators",
        "traditional",
        "homophones",
        "pinyin",
        "digits",
        "near homophones",
        "spaced pinyin",
    ]
    for row in rows:
        values = [float(cell) for cell in row.strip("|").split("|")[1:]]
        assert len(values) == 10 and all(0 <= v <= 1 for v in values)


def test_robustness_refuses_a_folder_that_is_not_a_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        robustness_main(["--release", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "cannot load the release" in capsys.readouterr().err


def test_a_label_without_held_out_messages_prints_n_a(tiny_releases: Path) -> None:
    model = TextModel.load(tiny_releases / TINY_VERSION)
    heldout = [Example("你这个傻逼", ("insult",), "hand/x"), Example("明天开会", (), "hand/y")]
    table = robustness_table(model, heldout, Rewriter(TEXTS, seed=1))
    as_written = table.splitlines()[2].split("|")[2:-1]
    assert as_written[TEXT_LABELS.index("ad")].strip() == "n/a"
    assert as_written[TEXT_LABELS.index("insult")].strip() in ("0.000", "1.000")
    assert "nan" not in table


def test_near_syllables_are_one_regional_merger_away() -> None:
    assert near_syllables("sha") == ["sa"]
    assert near_syllables("zi") == ["zhi"]
    assert sorted(near_syllables("lin")) == ["ling", "nin"]
    assert near_syllables("shang") == ["sang", "shan"]
    assert near_syllables("a") == []


def test_near_homophones_swap_characters_for_merged_sounds() -> None:
    rewriter = Rewriter([*TEXTS, "萨萨萨杀"], seed=2)
    rewritten = rewriter.near_homophones_of("傻")
    assert rewritten == "萨"  # sha -> sa, the only near sound the corpus has
    for _ in range(10):
        out = rewriter.near_homophones_of(MESSAGE)
        changed = [(a, b) for a, b in zip(MESSAGE, out, strict=True) if a != b]
        assert len(changed) <= 2
        assert all(syllable(b) in near_syllables(syllable(a)) for a, b in changed)


def test_spaced_pinyin_spells_up_to_three_characters_with_spaces() -> None:
    rewriter = Rewriter(TEXTS, seed=4)
    assert rewriter.spaced_pinyin("你好") == "ni hao"
    assert rewriter.spaced_pinyin("ok 123") == "ok 123"
    out = rewriter.spaced_pinyin(MESSAGE)
    assert sum(map(is_han, out)) in (sum(map(is_han, MESSAGE)) - 3, sum(map(is_han, MESSAGE)) - 2)
    assert " " in out.strip()
