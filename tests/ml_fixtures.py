"""Helpers for the ML-loop tests (gate, rollout, thresholds, notebooks): tiny trained releases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from models.paths import DATA_DIR, REPO_ROOT
from training.train import main as train_main

TINY_CONFIG = REPO_ROOT / "training" / "configs" / "tiny.json"


def write_tiny_corpus(folder: Path, lines: int = 40) -> Path:
    """The first `lines` lines of each of our corpus files: real data, tiny."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((DATA_DIR / "corpus").glob("*.jsonl")):
        head = path.read_text(encoding="utf-8").splitlines()[:lines]
        (folder / path.name).write_text("\n".join(head) + "\n", encoding="utf-8")
    return folder


def train_tiny(corpus: Path, out: Path, version: str, *extra: str) -> Path:
    """Train a release with the real training command on the tiny corpus (a few seconds)."""
    argv = ["--config", str(TINY_CONFIG), "--corpus", str(corpus), "--corpus-only"]
    argv += ["--out", str(out), "--version", version, "--no-quantize", "--quiet", *extra]
    assert train_main(argv) == 0
    return out / version


def copy_release(
    source: Path, parent: Path, version: str, thresholds: dict[str, float] | None = None
) -> Path:
    """A copy of a release folder as another version (and other thresholds) under `parent`."""
    folder = parent / version
    shutil.copytree(source, folder)
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["version"] = version
    if thresholds is not None:
        manifest["thresholds"] = thresholds
    path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return folder
