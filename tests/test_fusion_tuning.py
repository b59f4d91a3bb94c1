"""Fusion weights learned on dev (training/fusion_tuning.py), on hand-made score tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.labels import TEXT_LABELS
from models.text.pipeline import analyze
from training.data import Example
from training.fusion_tuning import cold_dev_macro_f1, copy_destination, main, tune_fusion

GAMBLING = TEXT_LABELS.index("gambling")
WITH_TERM = "今晚百家乐开局"  # a gambling lexicon term
WITHOUT_TERM = "今天天气不错"


def tune(texts: list[str], gambling_scores: list[float], truth_gambling: list[bool]):  # type: ignore[no-untyped-def]
    n = len(texts)
    scores = np.zeros((n, len(TEXT_LABELS)), dtype=np.float32)
    scores[:, GAMBLING] = gambling_scores
    truth = np.zeros((n, len(TEXT_LABELS)), dtype=bool)
    truth[:, GAMBLING] = truth_gambling
    return tune_fusion(
        scores,
        [analyze(t) for t in texts],
        truth,
        np.ones_like(scores),
        np.zeros(n, dtype=bool),
        target_precision=0.9,
        max_clean_fpr=0.0,
    )


def test_a_lexicon_that_flags_negatives_is_switched_off() -> None:
    # Positives score 0.5 without the term; negatives score 0.1 but quote it (warnings).
    choice = tune(
        [WITHOUT_TERM] * 10 + [WITH_TERM] * 10, [0.5] * 10 + [0.1] * 10, [True] * 10 + [False] * 10
    )
    assert choice.weights.lexicon["gambling"] == 0.0  # ties keep the smallest weight
    assert choice.dev_f1["gambling"] == 1.0
    assert choice.current_f1["gambling"] < 1.0  # the hand-set 0.7 flags the warnings


def test_a_lexicon_that_finds_what_the_model_misses_keeps_weight() -> None:
    # Positives score 0.1 but use the term; negatives score 0.3 without it.
    choice = tune(
        [WITH_TERM] * 10 + [WITHOUT_TERM] * 10, [0.1] * 10 + [0.3] * 10, [True] * 10 + [False] * 10
    )
    assert choice.weights.lexicon["gambling"] == 0.35  # the smallest grid weight that separates
    assert choice.dev_f1["gambling"] == 1.0
    assert 0.3 < choice.thresholds["gambling"] <= 0.415  # the fused positives: 1 - 0.9 * 0.65
    assert choice.overrides()["lexicon"]["gambling"] == 0.35


def test_the_share_of_clean_chat_flagged_is_reported() -> None:
    scores = np.zeros((4, len(TEXT_LABELS)), dtype=np.float32)
    scores[:, GAMBLING] = [0.9, 0.1, 0.95, 0.05]
    truth = np.zeros_like(scores, dtype=bool)
    truth[0, GAMBLING] = True
    clean = np.array([False, False, True, True])
    choice = tune_fusion(
        scores,
        [analyze(WITHOUT_TERM)] * 4,
        truth,
        np.repeat(~clean[:, None], len(TEXT_LABELS), axis=1),
        clean,
        target_precision=0.9,
        max_clean_fpr=1.0,  # no cap: the chat line at 0.95 passes the 0.9 threshold
    )
    assert choice.clean_flagged == 0.5


def test_cold_dev_macro_f1_counts_only_cold_dev_rows_at_the_insult_threshold() -> None:
    insult = TEXT_LABELS.index("insult")
    dev = [
        Example("你个傻子", ("insult",), "cold/dev", ("insult",)),
        Example("今天天气不错", (), "cold/dev", ("insult",)),
        Example("滚出去", ("insult",), "cold/dev", ("insult",)),
        Example("他骂人了", (), "hand/clean_hard/quote"),  # not COLD: ignored
    ]
    scores = np.zeros((4, len(TEXT_LABELS)), dtype=np.float32)
    scores[:, insult] = [0.9, 0.1, 0.4, 0.99]
    analyses = [analyze(e.text) for e in dev]
    choice = tune(["x"] * 2, [0.9, 0.1], [True, False])  # any choice; thresholds are set below
    choice.weights.lexicon["insult"] = 0.0
    choice.thresholds["insult"] = 0.5
    # Predicted (T, F, F) against truth (T, F, T): F1 positive 2/3, negative 2/3.
    assert cold_dev_macro_f1(dev, scores, analyses, choice) == pytest.approx(2 / 3)
    choice.thresholds["insult"] = 0.3
    assert cold_dev_macro_f1(dev, scores, analyses, choice) == 1.0
    assert np.isnan(cold_dev_macro_f1(dev[3:], scores[3:], analyses[3:], choice))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--release", "/nonexistent/2026.01.01-1"], "cannot tune"),
        (["--target-precision", "1.5"], "not between 0 and 1"),
        (["--label-clean-fpr", "insult=-0.1"], "not between 0 and 1"),
        (["--label-clean-fpr", "insults=0.1"], "unknown label"),
        (["--releases", "/nonexistent/releases"], "no releases folder"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_tuned_copy_lands_beside_its_source_unless_told_otherwise() -> None:
    candidate = Path("models/candidates/2026.11.26-45")
    assert copy_destination(None, candidate) == Path("models/candidates")  # stays a candidate
    assert copy_destination(Path("/elsewhere"), candidate) == Path("/elsewhere")
