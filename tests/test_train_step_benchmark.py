"""benchmarks/train_step.py runs on a configuration and reports both optimisers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.train_step import main
from tests.ml_fixtures import TINY_CONFIG


def test_train_step_benchmark_times_both_optimisers(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--config", str(TINY_CONFIG), "--steps", "2", "--length", "8", "--threads", "1"]) == 0
    )
    out = capsys.readouterr().out
    assert "length 8, 1 thread\n" in out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    names = [row.split("|")[1].strip() for row in rows[1:]]
    assert names == ["unfused", "fused", "fused + averaging"]
    for row in rows[1:]:
        times = [float(cell) for cell in row.strip("|").split("|")[1:]]
        assert all(t > 0 for t in times) and abs(sum(times[:3]) - times[3]) < 0.2


def test_train_step_benchmark_refuses_a_transformer_configuration(tmp_path: Path) -> None:
    config = tmp_path / "t.json"
    config.write_text('{"model": {"architecture": "transformer"}}', encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["--config", str(config)])


def test_train_step_benchmark_times_every_member(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pair.json"
    config.write_text(
        json.dumps({"extends": str(TINY_CONFIG), "model": {"members": 2}}), encoding="utf-8"
    )
    args = ["--steps", "2", "--length", "8", "--threads", "1"]
    assert main(["--config", str(TINY_CONFIG), *args]) == 0
    alone = capsys.readouterr().out
    assert main(["--config", str(config), *args]) == 0
    pair = capsys.readouterr().out
    assert "1 thread, 2 members\n" in pair and "members" not in alone
    assert len([line for line in pair.splitlines() if line.startswith("| fused")]) == 2
