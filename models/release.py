"""A released text model: a folder with the ONNX file, vocabulary, manifest and model card.

Layout of `models/releases/<version>/`:
- `model.onnx`: inputs `input_ids` and any of `bigram_ids`, `trigram_ids`, `attention_mask`,
  `pinyin_bigram_ids`, `pinyin_trigram_ids` (int64, batch x length; the last two need a
  vocabulary with `pinyin_buckets`), output `scores` (float32, batch x labels, sigmoid
  probabilities);
- `vocab.json`: the tokenizer (`models.text.tokenizer`);
- `manifest.json`: `Manifest` below (version, labels, thresholds, data hashes, configuration,
  metrics, file checksums);
- `MODEL_CARD.md`: what it is for, its data and its measured quality.

Loading checks everything before anything is served: a missing, corrupt or mismatched release
raises `ReleaseError` and the caller keeps what it had.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator

from models.labels import TEXT_LABELS
from models.paths import MODELS_DIR
from models.text.tokenizer import CharTokenizer, Encoded, VocabularyError

RELEASE_FORMAT = "qunguard-release/1"
RELEASES_DIR = MODELS_DIR / "releases"
INPUT_NAMES = (
    "input_ids",
    "bigram_ids",
    "trigram_ids",
    "attention_mask",
    "pinyin_bigram_ids",
    "pinyin_trigram_ids",
)
PINYIN_INPUTS = frozenset(INPUT_NAMES[4:])
OUTPUT_NAME = "scores"
_VERSION_RE = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})-(\d+)$")


def model_inputs(batch: Encoded) -> dict[str, np.ndarray]:
    """The ONNX inputs of an encoded batch, by input name."""
    return {
        "input_ids": batch.ids,
        "bigram_ids": batch.bigrams,
        "trigram_ids": batch.trigrams,
        "attention_mask": batch.mask,
        "pinyin_bigram_ids": batch.pinyin_bigrams,
        "pinyin_trigram_ids": batch.pinyin_trigrams,
    }


class ReleaseError(RuntimeError):
    """The release folder cannot be served (missing, corrupt or inconsistent)."""


class Manifest(BaseModel):
    """manifest.json of a release; the record of what produced the model."""

    format: str = RELEASE_FORMAT
    kind: str = "text"
    version: str
    labels: list[str]
    thresholds: dict[str, float]
    max_len: int = Field(gt=1, le=4096)
    model_file: str = "model.onnx"
    vocab_file: str = "vocab.json"
    sha256: dict[str, str]
    created_at: str
    quantized: bool = False
    architecture: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    # Fusion weights overriding models.fusion's defaults (see load_fusion_weights); None: none.
    fusion: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.format != RELEASE_FORMAT:
            raise ValueError(f"format must be {RELEASE_FORMAT}")
        if not _VERSION_RE.match(self.version):
            raise ValueError("version must look like 2026.11.24-1")
        if set(self.thresholds) != set(self.labels):
            raise ValueError("thresholds must name exactly the labels")
        if not all(0.0 < t < 1.0 for t in self.thresholds.values()):
            raise ValueError("thresholds must lie strictly between 0 and 1")
        return self


def version_key(version: str) -> tuple[int, ...]:
    """Sort key of a release version (`2026.11.24-2` after `2026.11.24-1`)."""
    match = _VERSION_RE.match(version)
    if not match:
        raise ValueError(f"not a release version: {version!r}")
    return tuple(int(part) for part in match.groups())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_releases(root: Path = RELEASES_DIR) -> list[Path]:
    """Release folders under `root`, oldest first (by version in the folder name)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _VERSION_RE.match(p.name)]
    return sorted(found, key=lambda p: version_key(p.name))


def read_manifest(folder: Path) -> Manifest:
    path = folder / "manifest.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Manifest.model_validate(raw)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReleaseError(f"cannot read {path}: {exc}") from exc
    except ValidationError as exc:
        raise ReleaseError(f"invalid {path}: {exc.errors()[0]['msg']}") from exc


class TextModel:
    """The ONNX text classifier of one release, ready to score `model_text` strings."""

    def __init__(self, folder: Path, manifest: Manifest, tokenizer: CharTokenizer, session: Any):
        self.folder = folder
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.session = session
        self._input_names = [i.name for i in session.get_inputs()]

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels

    @property
    def thresholds(self) -> dict[str, float]:
        return self.manifest.thresholds

    @classmethod
    def load(cls, folder: Path, *, intra_op_threads: int = 1) -> TextModel:
        """Load and verify a release folder; raises ReleaseError when it cannot be served."""
        import onnxruntime as ort

        folder = Path(folder)
        if not folder.is_dir():
            raise ReleaseError(f"no release folder at {folder}")
        manifest = read_manifest(folder)
        if manifest.labels != list(TEXT_LABELS):
            raise ReleaseError(f"labels {manifest.labels} differ from the contract's")
        for name in (manifest.model_file, manifest.vocab_file):
            path = folder / name
            if not path.is_file():
                raise ReleaseError(f"release {manifest.version} lacks {name}")
            expected = manifest.sha256.get(name)
            if expected != sha256_file(path):
                raise ReleaseError(f"{name} of release {manifest.version} fails its checksum")
        try:
            tokenizer = CharTokenizer.load(folder / manifest.vocab_file)
        except VocabularyError as exc:
            raise ReleaseError(str(exc)) from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(
                str(folder / manifest.model_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ReleaseError(f"ONNX Runtime cannot load {manifest.model_file}: {exc}") from exc
        inputs = tuple(i.name for i in session.get_inputs())
        outputs = [o.name for o in session.get_outputs()]
        if (
            "input_ids" not in inputs
            or not set(inputs) <= set(INPUT_NAMES)
            or (OUTPUT_NAME not in outputs)
        ):
            raise ReleaseError(f"model has inputs {inputs} and outputs {outputs}")
        if PINYIN_INPUTS & set(inputs) and not tokenizer.pinyin_buckets:
            raise ReleaseError(
                f"model reads {sorted(PINYIN_INPUTS & set(inputs))} but "
                f"{manifest.vocab_file} has no pinyin_buckets"
            )
        model = cls(folder, manifest, tokenizer, session)
        model._check_runs()
        return model

    def _check_runs(self) -> None:
        # The pinyin line also builds the pinyin channel's syllable table (a quarter of a
        # second) here at load rather than in the first request that holds a Latin word.
        try:
            scores = self.predict_proba(["你好", "加我微信", "jia wo wei xin"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            # e.g. a vocabulary whose ngram or pinyin buckets outgrow the model's tables
            raise ReleaseError(
                f"model cannot score with {self.manifest.vocab_file}: {exc}"
            ) from exc
        expected = (3, len(self.labels))
        if scores.shape != expected or not np.all(np.isfinite(scores)):
            raise ReleaseError(f"model output has shape {scores.shape}, expected {expected}")

    def predict_proba(self, model_texts: Sequence[str]) -> np.ndarray:
        """Scores in [0, 1], shape (len(model_texts), len(labels))."""
        if not model_texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        batch = self.tokenizer.encode(model_texts, self.manifest.max_len)
        feeds = {name: model_inputs(batch)[name] for name in self._input_names}
        (scores,) = self.session.run([OUTPUT_NAME], feeds)
        return np.clip(scores.astype(np.float32), 0.0, 1.0)


def write_release(
    folder: Path,
    *,
    model_path: Path,
    tokenizer: CharTokenizer,
    manifest_fields: dict[str, Any],
    model_card: str,
) -> Manifest:
    """Write a release folder: copies the ONNX file, saves the vocabulary, checksums both.

    Everything is written to a temporary sibling folder, validated, then renamed into place,
    so a reader (or `POST /v1/admin/reload`) never sees a half-made release.
    """
    import shutil
    import tempfile

    folder = Path(folder)
    if folder.exists():
        raise ReleaseError(f"{folder} exists already")
    folder.parent.mkdir(parents=True, exist_ok=True)
    fields = {"model_file": "model.onnx", "vocab_file": "vocab.json", **manifest_fields}
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        shutil.copyfile(model_path, staging / fields["model_file"])
        tokenizer.save(staging / fields["vocab_file"])
        fields["sha256"] = {
            name: sha256_file(staging / name)
            for name in (fields["model_file"], fields["vocab_file"])
        }
        manifest = Manifest.model_validate(fields)
        (staging / "manifest.json").write_text(
            json.dumps(manifest.model_dump(), ensure_ascii=False, indent=2) + "\n",
            encoding="utf-8",
        )
        (staging / "MODEL_CARD.md").write_text(model_card, encoding="utf-8")
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def load_latest(root: Path = RELEASES_DIR, **kwargs: Any) -> TextModel:
    """The newest release under `root` that loads; raises ReleaseError when none does."""
    releases = list_releases(root)
    if not releases:
        raise ReleaseError(f"no release under {root}")
    return TextModel.load(releases[-1], **kwargs)
