"""Threshold analysis (curves, confusion, choice, errors) and releasing new thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.labels import TEXT_LABELS
from models.release import ReleaseError, TextModel, read_manifest
from tests.ml_fixtures import copy_release, train_tiny, write_tiny_corpus
from training.data import Example
from training.evaluate import train_command
from training.rollout import Layout
from training.thresholds import (
    CONFUSION_AXES,
    ScoredSet,
    label_confusion,
    markdown_table,
    metrics_at,
    pr_curve,
    thresholds_for_precision,
    worst_errors,
    write_tuned_release,
)

SOURCE = "2020.01.01-1"
AD, INSULT = TEXT_LABELS.index("ad"), TEXT_LABELS.index("insult")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = write_tiny_corpus(tmp_path_factory.mktemp("corpus"))
    return train_tiny(corpus, tmp_path_factory.mktemp("trained"), SOURCE, "--no-evaluate")


def hand_scored(
    rows: list[tuple[str, tuple[str, ...], dict[str, float], dict[str, float]]],
) -> ScoredSet:
    """A ScoredSet from (text, true labels, model scores, fused scores) with 0 elsewhere."""
    examples = [Example(text, labels, "test") for text, labels, _, _ in rows]
    model = np.zeros((len(rows), len(TEXT_LABELS)))
    fused = np.zeros_like(model)
    for i, (_, _, m, f) in enumerate(rows):
        for label, value in m.items():
            model[i, TEXT_LABELS.index(label)] = value
        for label, value in f.items():
            fused[i, TEXT_LABELS.index(label)] = value
    truth = np.array([e.target() for e in examples], dtype=bool)
    return ScoredSet(examples, truth, np.ones_like(truth), model, fused)


def test_pr_curve_has_one_point_per_distinct_score() -> None:
    truth = np.array([1, 1, 0, 1, 0], dtype=bool)
    scores = np.array([0.9, 0.8, 0.7, 0.7, 0.1])
    precision, recall, thresholds = pr_curve(truth, scores)
    assert thresholds.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.1])
    assert precision.tolist() == pytest.approx([1.0, 1.0, 0.75, 0.6])
    assert recall.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])


def test_label_confusion_counts_true_against_predicted_labels() -> None:
    def rows(*label_sets: tuple[str, ...]) -> np.ndarray:
        return np.array([[label in s for label in TEXT_LABELS] for s in label_sets])

    truth = rows(("ad",), ("ad", "fraud"), (), ())
    predicted = rows(("ad",), ("fraud",), ("insult",), ())
    counts = label_confusion(truth, predicted)
    at = {name: i for i, name in enumerate(CONFUSION_AXES)}
    assert counts.shape == (len(TEXT_LABELS) + 1,) * 2
    assert counts[at["ad"], at["ad"]] == 1
    assert counts[at["ad"], at["fraud"]] == 1  # an ad also called fraud, its ad label missed
    assert counts[at["fraud"], at["fraud"]] == 1
    assert counts[at["clean"], at["insult"]] == 1  # a clean message flagged as insult
    assert counts[at["clean"], at["clean"]] == 1
    assert counts.sum() == 5


def test_thresholds_for_precision_per_label_and_only_on_annotated_rows() -> None:
    scored = hand_scored(
        [
            ("a", ("ad",), {}, {"ad": 0.9}),
            ("b", ("ad",), {}, {"ad": 0.6}),
            ("c", (), {}, {"ad": 0.7}),
            ("d", ("ad",), {}, {"ad": 0.4}),
        ]
    )
    assert thresholds_for_precision(scored, 1.0)["ad"] == pytest.approx(0.9)
    assert thresholds_for_precision(scored, {"ad": 0.6}) == {"ad": pytest.approx(0.4)}
    scored.known[2, AD] = False  # the false alarm's source never annotated `ad`
    assert thresholds_for_precision(scored, 1.0)["ad"] == pytest.approx(0.4)
    assert metrics_at(scored, dict.fromkeys(TEXT_LABELS, 0.5))["ad"].support == 3


def test_worst_errors_come_most_confident_first_with_their_evidence() -> None:
    scored = hand_scored(
        [
            ("你个傻逼", (), {"insult": 0.2}, {"insult": 0.76}),
            ("明天开会", (), {"insult": 0.6}, {"insult": 0.6}),
            ("加我微信 abc12345 兼职日结", ("ad",), {"ad": 0.1}, {"ad": 0.4}),
            ("代购面膜", ("ad",), {"ad": 0.45}, {"ad": 0.45}),
        ]
    )
    thresholds = dict.fromkeys(TEXT_LABELS, 0.5)
    fps = worst_errors(scored, thresholds, "false positive")
    assert [(e.text, e.label, e.cause) for e in fps] == [
        ("你个傻逼", "insult", "lexicon"),
        ("明天开会", "insult", "model"),
    ]
    assert fps[0].lexicon == ("insult:傻逼",) and fps[0].model_score == pytest.approx(0.2)
    fns = worst_errors(scored, thresholds, "false negative", n=1)
    assert [(e.text, e.label, e.predicted) for e in fns] == [
        ("加我微信 abc12345 兼职日结", "ad", ())
    ]
    assert fns[0].contacts == ("wechat:abc12345",) and fns[0].cause.endswith("no lexicon hit")
    with pytest.raises(ValueError):
        worst_errors(scored, thresholds, "both")


def test_markdown_table_escapes_cells() -> None:
    table = markdown_table(["text", "score"], [["a|b", 0.5]])
    assert table.splitlines() == ["| text | score |", "|---|---|", "| a\\|b | 0.5000 |"]


def test_tuned_release_is_a_new_servable_version(trained: Path, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "releases")
    source = copy_release(trained, layout.releases, SOURCE)
    before = (source / "manifest.json").read_bytes()
    tuned = dict.fromkeys(TEXT_LABELS, 0.3) | {"ad": 0.61234}
    folder = write_tuned_release(source, tuned, releases=layout.releases, note="for the ad wave")
    assert folder.parent == layout.releases and layout.served() == folder
    model = TextModel.load(folder)  # checksums still valid
    assert model.version == folder.name != SOURCE
    assert model.thresholds == dict.fromkeys(TEXT_LABELS, 0.3) | {"ad": 0.6123}
    manifest = read_manifest(folder)
    assert manifest.metrics["tuned_from"]["release"] == SOURCE
    assert "evaluation" not in manifest.metrics
    assert any("ad " in n and "-> 0.6123" in n for n in manifest.notes)
    assert manifest.notes[-1] == "for the ad wave"
    assert (source / "manifest.json").read_bytes() == before  # the source is untouched
    again = write_tuned_release(source, tuned, releases=layout.releases)
    assert again.name.rsplit("-", 1)[1] == str(int(folder.name.rsplit("-", 1)[1]) + 1)


def test_a_tuned_copy_remembers_the_settings_training_ran_with(
    trained: Path, tmp_path: Path
) -> None:
    releases = tmp_path / "releases"
    source = copy_release(trained, releases, SOURCE)
    trained_caps = read_manifest(source).config.get("label_clean_fpr")
    folder = write_tuned_release(
        source,
        dict.fromkeys(TEXT_LABELS, 0.3),
        releases=releases,
        config={"label_clean_fpr": {"insult": 0.004}},
    )
    manifest = read_manifest(folder)
    assert manifest.config["label_clean_fpr"] == {"insult": 0.004}  # what chose the thresholds
    assert manifest.metrics["tuned_from"]["config"] == {"label_clean_fpr": trained_caps}
    command = train_command(manifest)  # the model card's training command: as trained
    assert "insult=0.004" not in command


def test_a_missing_releases_folder_is_refused_not_created(trained: Path, tmp_path: Path) -> None:
    source = copy_release(trained, tmp_path / "releases", SOURCE)
    with pytest.raises(ReleaseError, match="no releases folder"):
        write_tuned_release(source, dict.fromkeys(TEXT_LABELS, 0.3), releases=tmp_path / "typo")
    assert not (tmp_path / "typo").exists()


def test_invalid_thresholds_write_nothing(trained: Path, tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    source = copy_release(trained, releases, SOURCE)
    with pytest.raises(ValueError):
        write_tuned_release(source, dict.fromkeys(TEXT_LABELS, 1.5), releases=releases)
    with pytest.raises(KeyError):
        write_tuned_release(source, {"ad": 0.5}, releases=releases)
    assert sorted(p.name for p in releases.iterdir()) == [SOURCE]


def test_a_corrupt_source_is_refused(trained: Path, tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    source = copy_release(trained, releases, SOURCE)
    vocab = source / "vocab.json"
    vocab.write_text(json.dumps({"broken": True}), encoding="utf-8")
    with pytest.raises(ReleaseError, match="checksum"):
        write_tuned_release(source, dict.fromkeys(TEXT_LABELS, 0.5), releases=releases)
    assert sorted(p.name for p in releases.iterdir()) == [SOURCE]


def test_tuned_release_can_carry_fusion_weights(trained: Path, tmp_path: Path) -> None:
    from models.fusion import FusionConfigError, load_fusion_weights

    releases = tmp_path / "releases"
    source = copy_release(trained, releases, SOURCE)
    thresholds = dict.fromkeys(TEXT_LABELS, 0.4)
    folder = write_tuned_release(
        source, thresholds, releases=releases, fusion={"lexicon": {"insult": 0.0}}
    )
    weights = load_fusion_weights(folder)
    assert weights.lexicon["insult"] == 0.0 and weights.lexicon["ad"] > 0  # others: defaults
    assert read_manifest(folder).fusion == {"lexicon": {"insult": 0.0}}
    with pytest.raises(FusionConfigError):
        write_tuned_release(source, thresholds, releases=releases, fusion={"lexicon": {"ad": 7}})
    assert sorted(p.name for p in releases.iterdir()) == sorted([SOURCE, folder.name])
