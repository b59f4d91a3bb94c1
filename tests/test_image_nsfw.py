"""The pluggable NSFW detector: config, scoring rule, unavailability, and NudeNet when installed.

The scoring tests run a small ONNX model built here with `onnx` (a YOLOv8-shaped output whose
"exposed" confidence is the picture's mean brightness), so they need no NSFW weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.image.decode import decode_image
from models.image.nsfw import (
    DEFAULT_CONFIG,
    NsfwConfig,
    NsfwConfigError,
    NsfwDetector,
    NsfwUnavailableError,
    resolve_model_path,
)

FIXTURES = Path(__file__).parent / "fixtures" / "images"
CLASSES = ["FACE", "EXPOSED_A", "EXPOSED_B"]
NEGATIVES = [
    "poster_qr_ad.jpg",
    "poster_kanjia_qr.jpg",
    "poster_text_ad.jpg",
    "photo_landscape.jpg",
    "photo_skin.jpg",
    "photo_shapes.webp",
    "screenshot_chat.png",
    "qr_plain.png",
    "animated.gif",
]


def fake_detector_onnx(path: Path, *, transposed: bool = False) -> None:
    """YOLOv8-like output (1, 4 + 3 classes, 8 anchors): FACE 0.9 and EXPOSED_B 0.8 fixed,
    EXPOSED_A = the mean of the (0..1 scaled) input pixels."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rows, anchors = 4 + len(CLASSES), 8
    base = np.zeros((1, rows, anchors), dtype=np.float32)
    base[0, :4] = 10.0  # boxes
    base[0, 4] = 0.9  # FACE (not exposed)
    base[0, 6, 3] = 0.8  # EXPOSED_B, one anchor
    mask = np.zeros_like(base)
    mask[0, 5] = 1.0  # EXPOSED_A follows the brightness
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mask", "mean"], ["scaled"]),
        helper.make_node("Add", ["base", "scaled"], ["raw"]),
    ]
    if transposed:
        nodes.append(helper.make_node("Transpose", ["raw"], ["output0"], perm=[0, 2, 1]))
    else:
        nodes.append(helper.make_node("Identity", ["raw"], ["output0"]))
    out_shape = [1, anchors, rows] if transposed else [1, rows, anchors]
    graph = helper.make_graph(
        nodes,
        "fake_nsfw",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(base, "base"), numpy_helper.from_array(mask, "mask")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def write_config(folder: Path, **overrides: object) -> Path:
    config = {
        "name": "fake",
        "model": "fake.onnx",
        "input_size": 64,
        "class_names": CLASSES,
        "exposed": ["EXPOSED_A", "EXPOSED_B"],
        "weights": {"EXPOSED_B": 0.5},
        "threshold": 0.6,
        **overrides,
    }
    path = folder / "nsfw.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture
def fake_config(tmp_path: Path) -> Path:
    fake_detector_onnx(tmp_path / "fake.onnx")
    return write_config(tmp_path)


def test_score_is_the_highest_weighted_exposed_confidence(fake_config: Path) -> None:
    detector = NsfwDetector.load(fake_config)
    white = detector.score(Image.new("RGB", (64, 64), (255, 255, 255)))
    assert white.score == pytest.approx(1.0, abs=1e-3) and white.top_class == "EXPOSED_A"
    # Black: EXPOSED_A is 0, EXPOSED_B's 0.8 weighs 0.5, FACE's 0.9 does not count.
    black = detector.score(Image.new("RGB", (64, 64), (0, 0, 0)))
    assert black.score == pytest.approx(0.4, abs=1e-3) and black.top_class == "EXPOSED_B"
    assert detector.threshold == 0.6


def test_letterbox_padding_is_part_of_the_input(fake_config: Path) -> None:
    detector = NsfwDetector.load(fake_config)
    wide = detector.score(Image.new("RGB", (128, 32), (255, 255, 255)))  # 3/4 black padding
    assert wide.score == pytest.approx(0.4, abs=0.02)  # EXPOSED_A ~0.25 < EXPOSED_B's 0.4
    unpadded = NsfwDetector.load(write_config(fake_config.parent, letterbox=False))
    assert unpadded.score(Image.new("RGB", (128, 32), (255, 255, 255))).score > 0.99


def test_transposed_detector_output_is_read(tmp_path: Path) -> None:
    fake_detector_onnx(tmp_path / "fake.onnx", transposed=True)
    detector = NsfwDetector.load(write_config(tmp_path))
    assert detector.score(Image.new("RGB", (64, 64), (255, 255, 255))).score > 0.99


def test_missing_model_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(NsfwUnavailableError, match="no NSFW model"):
        NsfwDetector.load(write_config(tmp_path, model="missing.onnx"))
    with pytest.raises(NsfwUnavailableError, match="not installed"):
        NsfwDetector.load(write_config(tmp_path, model="package:no_such_package_xyz/m.onnx"))


def test_wrong_output_shape_is_unavailable(tmp_path: Path) -> None:
    fake_detector_onnx(tmp_path / "fake.onnx")
    config = write_config(tmp_path, class_names=["A", "B"], exposed=["A"], weights={})
    with pytest.raises(NsfwUnavailableError, match="outputs"):
        NsfwDetector.load(config)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"exposed": ["NOPE"]}, "unknown classes"),
        ({"weights": {"EXPOSED_A": 2.0}}, "weights"),
        ({"threshold": 1.5}, "less than 1"),
        ({"input_size": 8}, "greater than or equal"),
        ({"output_format": "boxes"}, "yolov8"),
    ],
)
def test_malformed_configs_are_refused(tmp_path: Path, override: dict, message: str) -> None:
    with pytest.raises(NsfwConfigError, match=message):
        NsfwConfig.load(write_config(tmp_path, **override))


def test_unreadable_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(NsfwConfigError):
        NsfwConfig.load(tmp_path / "bad.json")


def test_default_config_describes_nudenet() -> None:
    config = NsfwConfig.load(DEFAULT_CONFIG)
    assert config.model == "package:nudenet/320n.onnx" and config.input_size == 320
    assert len(config.class_names) == 18 and "AGPL" in config.licence
    assert config.threshold == 0.7  # above every generated negative (nsfw.py)
    assert "FEMALE_BREAST_EXPOSED" in config.exposed
    assert not {"FACE_FEMALE", "BELLY_EXPOSED", "FEET_EXPOSED"} & set(config.exposed)
    assert resolve_model_path("model.onnx", Path("/cfg")) == Path("/cfg/model.onnx")


@pytest.fixture(scope="module")
def nudenet() -> NsfwDetector:
    try:
        return NsfwDetector.load(DEFAULT_CONFIG)
    except NsfwUnavailableError:
        pytest.skip("nudenet (the image-nsfw extra) is not installed")


@pytest.mark.parametrize("name", NEGATIVES)
def test_nudenet_scores_ordinary_pictures_below_threshold(nudenet: NsfwDetector, name: str) -> None:
    for frame in decode_image((FIXTURES / name).read_bytes()).frames:
        result = nudenet.score(frame)
        assert 0.0 <= result.score < nudenet.threshold
