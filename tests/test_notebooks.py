"""The notebooks run headless on a tiny trained release and do what they say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from models.labels import TEXT_LABELS
from models.paths import REPO_ROOT
from models.release import TextModel, read_manifest
from tests.ml_fixtures import copy_release, train_tiny, write_tiny_corpus
from training.data import build_splits, load_corpus
from training.rollout import Layout
from training.thresholds import score_set, thresholds_for_precision, worst_errors

NOTEBOOKS = REPO_ROOT / "notebooks"
SOURCE = "2020.01.01-1"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def trained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(corpus, tmp_path_factory.mktemp("trained"), SOURCE, "--no-evaluate")


def run_notebook(name: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Execute a notebook in a fresh kernel, which inherits the QUNGUARD_NB_* variables."""
    for key, value in env.items():
        monkeypatch.setenv(f"QUNGUARD_NB_{key}", value)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS}}
    )
    client.execute()
    return notebook


def outputs(notebook: Any, mime: str) -> list[str]:
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if mime in output.get("data", {}):
                found.append(output["data"][mime])
            elif mime == "text/plain" and output.get("output_type") == "stream":
                found.append(output["text"])
    return found


def test_threshold_tuning_writes_a_new_release_with_the_chosen_thresholds(
    trained: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = Layout(tmp_path / "releases")
    source = copy_release(trained, layout.releases, SOURCE)
    env = {
        "RELEASE": str(source),
        "RELEASES": str(layout.releases),
        "CORPUS": str(corpus),
        "PUBLIC": "0",
        "TARGET_PRECISION": "0.9",
        "BY_HAND": '{"ad": 0.4321}',
        "WRITE": "1",
    }
    notebook = run_notebook("threshold_tuning.ipynb", env, monkeypatch)
    assert len(outputs(notebook, "image/png")) == 2  # the curves and the confusion matrix
    written = layout.served()
    assert written is not None and written.name != SOURCE
    assert any(f"written: {written}" in text for text in outputs(notebook, "text/plain"))
    model = TextModel.load(written)  # checksums valid, thresholds in range
    splits = build_splits(load_corpus(corpus), public=False)
    expected = thresholds_for_precision(score_set(TextModel.load(source), splits.dev), 0.9)
    assert model.thresholds == {**expected, "ad": 0.4321}
    assert read_manifest(written).metrics["tuned_from"]["release"] == SOURCE


def test_threshold_tuning_writes_nothing_unless_asked(
    trained: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    releases = tmp_path / "releases"
    copy_release(trained, releases, SOURCE)
    env = {"RELEASES": str(releases), "CORPUS": str(corpus), "PUBLIC": "0", "WRITE": "0"}
    notebook = run_notebook("threshold_tuning.ipynb", env, monkeypatch)  # the served release
    assert any("nothing written" in text for text in outputs(notebook, "text/plain"))
    assert [p.name for p in releases.iterdir()] == [SOURCE]


def test_error_analysis_lists_the_worst_errors_with_evidence(
    trained: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"RELEASE": str(trained), "CORPUS": str(corpus), "PUBLIC": "0", "N": "5"}
    notebook = run_notebook("error_analysis.ipynb", env, monkeypatch)
    tables = outputs(notebook, "text/markdown")
    assert len(outputs(notebook, "image/png")) == 1
    model = TextModel.load(trained)
    scored = score_set(model, build_splits(load_corpus(corpus), public=False).heldout)
    worst_fp = worst_errors(scored, model.thresholds, "false positive", n=1)
    worst_fn = worst_errors(scored, model.thresholds, "false negative", n=1)
    assert worst_fp and worst_fn  # a tiny model makes both kinds of mistakes
    error_tables = [t for t in tables if t.startswith("| label | text |")]
    fp_table, fn_table = error_tables[0], error_tables[1]
    assert "| lexicon | contacts | cause |" in fp_table.splitlines()[0]
    assert len(fp_table.splitlines()) == 2 + 5
    first_fp = fp_table.splitlines()[2]
    assert worst_fp[0].text.replace("|", "\\|") in first_fp and worst_fp[0].cause in first_fp
    assert worst_fn[0].text.replace("|", "\\|") in fn_table.splitlines()[2]
    summary = next(t for t in tables if t.startswith("| label | threshold |"))
    assert all(f"| {label} |" in summary for label in TEXT_LABELS)
