"""The dev rule that picks a clean-chat cap (training/cap_sweep.py)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from models.fusion import DEFAULT_WEIGHTS
from models.labels import TEXT_LABELS
from models.text.pipeline import analyze
from training.cap_sweep import CapResult, choose_cap, flagged_on_other_halves, main
from training.data import Example
from training.fusion_tuning import DevRows, recorded_rule


def test_the_best_dev_f1_within_the_chat_limit_wins() -> None:
    results = [
        CapResult(0.001, 0.870, 0.0070),
        CapResult(0.0015, 0.875, 0.0080),
        CapResult(0.002, 0.880, 0.0090),  # over the limit
    ]
    assert choose_cap(results, chat_limit=0.0085, margin=0.001) == results[1]


def test_a_gain_within_the_margin_does_not_buy_a_larger_cap() -> None:
    results = [
        CapResult(0.00075, 0.8700, 0.0070),
        CapResult(0.001, 0.8766, 0.0077),
        CapResult(0.00125, 0.8774, 0.0082),
    ]
    assert choose_cap(results, chat_limit=0.0085, margin=0.001).cap == 0.001
    assert choose_cap(results, chat_limit=0.0085, margin=0.0).cap == 0.00125
    assert choose_cap(results, chat_limit=0.0085, margin=0.01).cap == 0.00075


def test_no_cap_within_the_limit_chooses_nothing() -> None:
    assert choose_cap([CapResult(0.001, 0.9, 0.02)], chat_limit=0.0085, margin=0.001) is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--caps", "0.001,abc"], "not a number"),
        (["--caps", "0.001,2"], "not between 0 and 1"),
        (["--caps", "0.001,0.001"], "twice"),
        (["--margin", "-1"], "not between 0 and 1"),
        (["--release", "/nonexistent/2026.01.01-1"], "cannot tune"),
        (["--releases", "/nonexistent/releases", "--write"], "no releases folder"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def _half(text: str) -> bool:
    return zlib.crc32(text.encode("utf-8")) % 2 == 0


def test_thresholds_fitted_on_one_half_of_chat_are_measured_on_the_other() -> None:
    """Chat of the first half scores 0.7 for gambling, of the other 0.2; positives score 0.6.
    Fitted on the first half (cap 5%), the threshold must clear 0.7, so the other half is
    never flagged; fitted on the second, precision alone sets it at 0.6, which flags every
    line of the first."""
    positives = [Example(f"第{i}位 下注 开盘了", ("gambling",), "hand/x") for i in range(20)]
    chat = [Example(f"今天第{i}次 去公园散步", (), "lccc") for i in range(60)]
    dev = positives + chat
    gambling = TEXT_LABELS.index("gambling")
    scores = np.zeros((len(dev), len(TEXT_LABELS)), dtype=np.float32)
    scores[: len(positives), gambling] = 0.6
    for i, example in enumerate(chat, start=len(positives)):
        scores[i, gambling] = 0.7 if _half(example.text) else 0.2
    assert 0 < sum(_half(e.text) for e in chat) < len(chat)
    hand = np.array([e.source.startswith("hand") for e in dev])
    rows = DevRows(
        dev,
        scores,
        [analyze(e.text) for e in dev],
        np.repeat(hand[:, None], len(TEXT_LABELS), axis=1).astype(np.float32),
        np.array([e.source == "lccc" for e in dev]),
    )
    caps = dict.fromkeys(TEXT_LABELS, 0.05)
    assert flagged_on_other_halves(rows, 0.9, caps, DEFAULT_WEIGHTS) == (0.0, 1.0)


def test_the_rule_defaults_to_what_the_release_records() -> None:
    config = {"target_precision": 0.9, "label_clean_fpr": {"insult": 0.004}}
    assert recorded_rule(config, None, None) == (0.9, [("insult", 0.004)])
    assert recorded_rule(config, 0.8, [("porn", 0.002)]) == (0.8, [("porn", 0.002)])
    assert recorded_rule({}, None, None) == (0.95, [])  # releases that record no rule
