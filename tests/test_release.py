"""Release folders: loading, verification, refusal of broken ones; the tokenizer file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.release import ReleaseError, TextModel, list_releases, load_latest
from models.text.tokenizer import CharTokenizer, VocabularyError
from tests.conftest import TINY_VERSION


def _copy(tiny_releases: Path, tmp_path: Path) -> Path:
    target = tmp_path / TINY_VERSION
    shutil.copytree(tiny_releases / TINY_VERSION, target)
    return target


def test_tiny_release_loads_and_scores(tiny_releases: Path) -> None:
    model = load_latest(tiny_releases)
    assert model.version == TINY_VERSION
    scores = model.predict_proba(["加我微信领取福利", "明天上午九点开会"])
    assert scores.shape == (2, 8)
    assert model.predict_proba([]).shape == (0, 8)


def test_batching_does_not_change_scores(tiny_releases: Path) -> None:
    model = load_latest(tiny_releases)
    texts = ["短", "一条长一点的消息, 加我微信领取福利, 兼职日结三百", "明天开会"]
    together = model.predict_proba(texts)
    alone = np.concatenate([model.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_corrupt_model_file_is_refused(tiny_releases: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_releases, tmp_path)
    (folder / "model.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(ReleaseError, match="checksum"):
        TextModel.load(folder)


def test_missing_and_invalid_manifest_are_refused(tiny_releases: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_releases, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    manifest["thresholds"]["ad"] = 1.5
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ReleaseError, match="invalid"):
        TextModel.load(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(ReleaseError, match="cannot read"):
        TextModel.load(folder)
    with pytest.raises(ReleaseError, match="no release folder"):
        TextModel.load(tmp_path / "absent")


def test_releases_sort_by_version(tmp_path: Path) -> None:
    for name in ("2026.11.24-10", "2026.11.24-2", "2025.12.01-1", "notes", ".2026.11.25-1.tmp"):
        (tmp_path / name).mkdir()
    assert [p.name for p in list_releases(tmp_path)] == [
        "2025.12.01-1",
        "2026.11.24-2",
        "2026.11.24-10",
    ]
    with pytest.raises(ReleaseError):
        load_latest(tmp_path / "none")


def test_tokenizer_round_trip_and_shapes(tmp_path: Path) -> None:
    tokenizer = CharTokenizer.build(["你好世界", "你好"], min_freq=1, ngram_buckets=101)
    tokenizer.save(tmp_path / "vocab.json")
    loaded = CharTokenizer.load(tmp_path / "vocab.json")
    assert loaded.tokens == tokenizer.tokens
    batch = loaded.encode(["你好", "世界你好啊"], max_len=4)
    assert batch.ids.shape == batch.bigrams.shape == batch.mask.shape == (2, 4)
    assert batch.ids[0, 3] == 0 and batch.mask[0].tolist() == [1, 1, 1, 0]
    assert batch.ids[1, 3] == loaded.tokens.index("你")
    assert batch.bigrams[0, 3] == 0 and np.all(batch.bigrams[batch.mask == 1] > 0)
    assert loaded.encode(["啊"]).ids[0, 1] == 1  # unknown character -> [UNK]


def test_tokenizer_refuses_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "vocab.json"
    path.write_text("{broken", encoding="utf-8")
    with pytest.raises(VocabularyError):
        CharTokenizer.load(path)
    path.write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(VocabularyError):
        CharTokenizer.load(path)
