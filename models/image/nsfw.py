"""NSFW score of a picture from a pluggable ONNX detector (default: NudeNet 3.4's 320n.onnx).

NudeNet is AGPL-3.0, so it is an optional extra (`pip install -e ".[image-nsfw]"`); only its
bundled ONNX file is used, run here with onnxruntime (its python wrapper is not imported).
Without it, `NsfwDetector.load` raises NsfwUnavailableError and the classifier reports the
detector as unavailable.

Any ONNX NSFW model can replace it through a JSON config (see nsfw_nudenet.json, and
`NsfwConfig` for every field): where the .onnx file is, input size and layout, normalisation,
the class names in output order, which classes count as exposed, a weight per class, and the
threshold. Two output formats are read: `yolov8` (detections, batch x (4 + classes) x anchors,
as NudeNet and any Ultralytics YOLOv8 export) and `probabilities` (batch x classes).

The score: the highest `weight[class] * confidence` over the exposed classes (and, for a
detector, over all its boxes). Only exposed private parts count (covered ones, faces, feet,
bellies and armpits do not: swimwear and gym photos are ordinary in chat); exposed buttocks
weigh 0.9. The detector's confidences are used as they are (no recalibration).

Threshold 0.7, measured on negatives only (committing explicit pictures is not an option, so
recall at this threshold is NOT measured here; measure it on a labelled set before trusting
it): the fixtures score at most 0.20 (photo_skin.jpg), and `benchmarks/images.py --nsfw-sweep
150` scores generated pictures: landscapes at most 0.03, random shapes 0.38, and blurred
skin-coloured round blobs (the hardest case: FEMALE_BREAST_EXPOSED) 0.66 at most, 3 of 150
over 0.5. NudeNet itself keeps detections from 0.2 up.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, Field, ValidationError, model_validator

DEFAULT_CONFIG = Path(__file__).with_name("nsfw_nudenet.json")


class NsfwUnavailableError(RuntimeError):
    """The detector's model is not installed or cannot be loaded."""


class NsfwConfigError(ValueError):
    """The detector's JSON config is malformed."""


class NsfwConfig(BaseModel):
    """The JSON config of an ONNX NSFW model."""

    name: str
    model: str  # absolute path, path relative to the config file, or "package:<pkg>/<file>"
    licence: str = ""
    input_size: int = Field(ge=32, le=2048)
    output_format: Literal["yolov8", "probabilities"] = "yolov8"
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    letterbox: bool = True  # pad to a square (bottom and right, black) before resizing
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    class_names: list[str] = Field(min_length=1)
    exposed: list[str] = Field(min_length=1)
    weights: dict[str, float] = Field(default_factory=dict)
    threshold: float = Field(gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> NsfwConfig:
        unknown = (set(self.exposed) | set(self.weights)) - set(self.class_names)
        if unknown:
            raise ValueError(f"exposed/weights name unknown classes {sorted(unknown)}")
        if not all(0.0 < w <= 1.0 for w in self.weights.values()):
            raise ValueError("weights must lie in (0, 1]")
        if any(s == 0 for s in self.std):
            raise ValueError("std must not be 0")
        return self

    @classmethod
    def load(cls, path: Path) -> NsfwConfig:
        try:
            return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise NsfwConfigError(f"cannot read {path}: {exc}") from exc
        except ValidationError as exc:
            raise NsfwConfigError(f"invalid {path}: {exc.errors()[0]['msg']}") from exc


@dataclass(frozen=True, slots=True)
class NsfwResult:
    score: float  # in [0, 1]
    top_class: str | None  # the exposed class behind the score


def resolve_model_path(spec: str, config_dir: Path) -> Path:
    """The .onnx file a config names; `package:nudenet/320n.onnx` looks inside an installed
    package without importing it."""
    if spec.startswith("package:"):
        package, _, name = spec.removeprefix("package:").partition("/")
        found = importlib.util.find_spec(package) if package else None
        if found is None or not found.submodule_search_locations:
            raise NsfwUnavailableError(f"package {package!r} is not installed")
        return Path(next(iter(found.submodule_search_locations))) / name
    path = Path(spec)
    return path if path.is_absolute() else config_dir / path


class NsfwDetector:
    """One ONNX Runtime session (thread-safe to run) and the config that reads its output."""

    def __init__(self, config: NsfwConfig, session: Any):
        self.config = config
        self.session = session
        self._input = session.get_inputs()[0].name
        names = config.class_names
        weights = [config.weights.get(n, 1.0) if n in config.exposed else 0.0 for n in names]
        self._weights = np.asarray(weights, dtype=np.float32)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def threshold(self) -> float:
        return self.config.threshold

    @classmethod
    def load(cls, config_path: Path = DEFAULT_CONFIG, *, threads: int = 1) -> NsfwDetector:
        """Load the model a config names; NsfwUnavailableError when it is not installed."""
        import onnxruntime as ort

        config = NsfwConfig.load(config_path)
        model = resolve_model_path(config.model, Path(config_path).parent)
        if not model.is_file():
            raise NsfwUnavailableError(f"no NSFW model at {model}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise NsfwUnavailableError(f"ONNX Runtime cannot load {model}: {exc}") from exc
        detector = cls(config, session)
        detector.score(Image.new("RGB", (64, 64)))  # fails now, not on the first message
        return detector

    def score(self, rgb: Image.Image) -> NsfwResult:
        """The picture's NSFW score and the class behind it."""
        (output,) = self.session.run(None, {self._input: self._prepare(rgb)})[:1]
        per_class = self._class_confidences(np.asarray(output, dtype=np.float32))
        weighted = per_class * self._weights
        best = int(np.argmax(weighted))
        score = float(np.clip(weighted[best], 0.0, 1.0))
        return NsfwResult(round(score, 4), self.config.class_names[best] if score > 0 else None)

    def _prepare(self, rgb: Image.Image) -> np.ndarray:
        cfg = self.config
        pixels = np.asarray(rgb.convert("RGB"))
        if cfg.letterbox:
            side = max(pixels.shape[:2])
            pad = ((0, side - pixels.shape[0]), (0, side - pixels.shape[1]), (0, 0))
            pixels = np.pad(pixels, pad)
        size = (cfg.input_size, cfg.input_size)
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR).astype(np.float32)
        pixels = (pixels * cfg.scale - np.asarray(cfg.mean, np.float32)) / np.asarray(
            cfg.std, np.float32
        )
        if cfg.layout == "NCHW":
            pixels = pixels.transpose(2, 0, 1)
        return np.ascontiguousarray(pixels[None], dtype=np.float32)

    def _class_confidences(self, output: np.ndarray) -> np.ndarray:
        """One confidence per class (the highest over a detector's boxes)."""
        classes = len(self.config.class_names)
        if self.config.output_format == "probabilities":
            if output.size != classes:
                raise NsfwUnavailableError(
                    f"{self.name} outputs {output.shape}, expected (1, {classes})"
                )
            return output.reshape(-1)
        rows = output[0]
        if rows.shape[0] != 4 + classes and rows.shape[-1] == 4 + classes:
            rows = rows.T  # (anchors, 4 + classes) exports
        if rows.shape[0] != 4 + classes:
            raise NsfwUnavailableError(
                f"{self.name} outputs {output.shape}, expected (1, {4 + classes}, anchors)"
            )
        return rows[4:].max(axis=1)
