"""Rollout and rollback: restore an older release, retire one, and the service follows on reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ml_fixtures import copy_release, train_tiny, write_tiny_corpus
from tests.serving_fixtures import ADMIN, running, settings_for
from training.rollout import Layout, RolloutError, describe, main, restore, retire

OLD, MIDDLE, NEW = "2020.01.01-1", "2020.01.02-1", "2020.01.03-1"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = write_tiny_corpus(tmp_path_factory.mktemp("corpus"))
    return train_tiny(corpus, tmp_path_factory.mktemp("trained"), OLD, "--no-evaluate")


@pytest.fixture
def layout(trained: Path, tmp_path: Path) -> Layout:
    """Three releases, NEW served."""
    layout = Layout(tmp_path / "models" / "releases")
    for version in (OLD, MIDDLE, NEW):
        copy_release(trained, layout.releases, version)
    return layout


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_restore_retires_every_newer_release(layout: Layout) -> None:
    moves = restore(layout, OLD)
    assert [(a.name, b.parent) for a, b in moves] == [
        (NEW, layout.retired),
        (MIDDLE, layout.retired),
    ]
    assert names(layout.releases) == [OLD]
    assert names(layout.retired) == [MIDDLE, NEW]
    assert layout.served() == layout.releases / OLD


def test_restore_brings_a_retired_release_back(layout: Layout) -> None:
    restore(layout, OLD)
    restore(layout, MIDDLE)
    assert names(layout.releases) == [OLD, MIDDLE]
    assert names(layout.retired) == [NEW]
    assert restore(layout, MIDDLE) == []  # already served: nothing moves


def test_restore_refuses_a_broken_release_before_moving_anything(layout: Layout) -> None:
    model = layout.releases / OLD / "model.onnx"
    model.write_bytes(model.read_bytes()[:100])
    with pytest.raises(RolloutError, match="cannot be served"):
        restore(layout, OLD)
    assert names(layout.releases) == [OLD, MIDDLE, NEW] and not layout.retired.exists()


def test_restore_refuses_candidates_and_unknown_versions(layout: Layout, trained: Path) -> None:
    copy_release(trained, layout.candidates, "2020.02.01-1")
    with pytest.raises(RolloutError, match="training.gate"):
        restore(layout, "2020.02.01-1")
    with pytest.raises(RolloutError, match="no release"):
        restore(layout, "2019.01.01-1")


def test_retire_the_served_release_serves_the_previous_one(layout: Layout) -> None:
    assert retire(layout, NEW) == layout.retired / NEW
    assert layout.served() == layout.releases / MIDDLE
    retire(layout, OLD)  # not the served one: just tidied away
    with pytest.raises(RolloutError, match="only release"):
        retire(layout, MIDDLE)
    assert names(layout.releases) == [MIDDLE] and names(layout.retired) == [OLD, NEW]


def test_a_move_never_overwrites(layout: Layout, trained: Path) -> None:
    copy_release(trained, layout.retired, MIDDLE)  # a stray copy already sits in retired/
    with pytest.raises(RolloutError, match="exists already"):
        restore(layout, OLD)
    assert names(layout.releases) == [OLD, MIDDLE, NEW]  # checked before anything moved


def test_list_shows_where_each_release_is(
    layout: Layout, trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_release(trained, layout.candidates, "2020.02.01-1")
    retire(layout, OLD)
    states = {row["version"]: row["state"] for row in describe(layout)}
    assert states == {
        "2020.02.01-1": "candidate",
        NEW: "SERVED",
        MIDDLE: "release",
        OLD: "retired",
    }
    assert main(["--releases", str(layout.releases), "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["2020.02.01-1", "candidate"]
    assert lines[2].split()[:2] == [NEW, "SERVED"]


def test_cli_exit_codes(layout: Layout, capsys: pytest.CaptureFixture[str]) -> None:
    root = ["--releases", str(layout.releases)]
    assert main([*root, "restore", MIDDLE]) == 0
    assert f"served after reload: {MIDDLE}" in capsys.readouterr().out
    assert main([*root, "retire", "2019.01.01-1"]) == 1
    assert "refused" in capsys.readouterr().out


def test_the_service_serves_the_restored_release_after_reload(layout: Layout) -> None:
    with running(settings_for(layout.releases, warmup=False)) as client:
        assert client.get("/readyz").json()["model_version"]["text"] == NEW
        assert main(["--releases", str(layout.releases), "restore", OLD]) == 0
        response = client.post("/v1/admin/reload", headers=ADMIN)
        assert response.status_code == 200, response.text
        assert response.json()["model_version"]["text"] == OLD
        assert response.json()["previous"] == NEW
