"""The dev rule that picks a clean-chat cap (training/cap_sweep.py)."""

from __future__ import annotations

import pytest

from training.cap_sweep import CapResult, choose_cap, main


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
