"""Every benchmark refuses a count below one or a duration of zero before it starts work."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from benchmarks import images, load, text_pipeline, train_step
from benchmarks.arguments import at_least_one, more_than_zero

CASES: list[tuple[Callable[[list[str]], object], str, str]] = [
    (images.main, "--runs", "0"),
    (images.main, "--threads", "-1"),
    (images.main, "--nsfw-sweep", "0"),
    (text_pipeline.main, "--messages", "0"),
    (text_pipeline.main, "--repeat", "two"),
    (load.main, "--duration", "0"),
    (load.main, "--rate", "nan"),
    (load.main, "--max-requests", "0"),
    (load.main, "--overload-clients", "-5"),
    (load.main, "--batch-clients", "0"),
    (train_step.main, "--steps", "0"),
    (train_step.main, "--length", "0"),
    (train_step.main, "--threads", "0"),
]


@pytest.mark.parametrize(("main", "option", "value"), CASES)
def test_benchmark_refuses_a_bad_count(
    main: Callable[[list[str]], object],
    option: str,
    value: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([option, value])
    assert exit_info.value.code == 2
    assert f"argument {option}: must be" in capsys.readouterr().err


def test_argument_types_pass_good_values_through() -> None:
    assert at_least_one("3") == 3
    assert more_than_zero("0.5") == 0.5
