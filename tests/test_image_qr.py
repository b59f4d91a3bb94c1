"""QR codes are decoded (zxing-cpp), or located when they cannot be (zxing-cpp, OpenCV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.image.decode import decode_image
from models.image.qr import (
    CONFIDENCE_DECODED,
    CONFIDENCE_LOCATED,
    CONFIDENCE_OPENCV_LOCATED,
    opencv_scan,
    scan,
)

FIXTURES = Path(__file__).parent / "fixtures" / "images"
PAYLOADS = {
    "poster_qr_ad.jpg": "https://weixin.qq.com/g/AbCdEf123",
    "poster_kanjia_qr.jpg": "https://mobile.yangkeduo.com/kanjia.html?goods_id=8848&share=1",
    "qr_plain.png": "https://example.com/invite?code=8848",
    "qr_transparent.png": "https://example.com/invite?code=8848",
}
NO_CODE = [
    "photo_landscape.jpg",
    "photo_skin.jpg",
    "photo_shapes.webp",
    "screenshot_chat.png",
    "poster_text_ad.jpg",
]


def gray(name: str, frame: int = 0) -> np.ndarray:
    return np.asarray(decode_image((FIXTURES / name).read_bytes()).frames[frame].convert("L"))


@pytest.mark.parametrize(("name", "payload"), sorted(PAYLOADS.items()))
def test_codes_are_decoded(name: str, payload: str) -> None:
    codes = scan(gray(name))
    assert [c.payload for c in codes] == [payload]
    assert codes[0].decoded and codes[0].detector == "zxing"
    assert codes[0].confidence == CONFIDENCE_DECODED


@pytest.mark.parametrize("name", NO_CODE)
def test_pictures_without_codes_have_none(name: str) -> None:
    assert scan(gray(name)) == []


def test_code_box_is_where_the_code_is() -> None:
    (code,) = scan(gray("poster_qr_ad.jpg"))
    x, y, w, h = code.box
    assert 200 < x < 300 and 780 < y < 860 and 200 < w < 280 and abs(w - h) < 10


@pytest.mark.parametrize("angle", [90, 33, 180])
def test_rotated_codes_are_decoded(angle: int) -> None:
    img = Image.fromarray(gray("qr_plain.png")).rotate(angle, expand=True, fillcolor=255)
    assert [c.payload for c in scan(np.asarray(img))] == [PAYLOADS["qr_plain.png"]]


def test_small_code_in_a_large_picture_is_decoded() -> None:
    canvas = Image.new("L", (1920, 1080), 200)
    code = Image.fromarray(gray("qr_plain.png")).resize((120, 120), Image.Resampling.NEAREST)
    canvas.paste(code, (1500, 800))
    assert [c.payload for c in scan(np.asarray(canvas))] == [PAYLOADS["qr_plain.png"]]


def test_damaged_code_is_located_but_not_decoded() -> None:
    codes = scan(gray("qr_damaged.png"))
    assert len(codes) == 1
    assert not codes[0].decoded and codes[0].payload == ""
    assert codes[0].confidence == CONFIDENCE_LOCATED


def test_opencv_locates_the_damaged_code_too() -> None:
    codes = opencv_scan(gray("qr_damaged.png"))
    assert len(codes) == 1 and codes[0].detector == "opencv" and not codes[0].decoded
    assert codes[0].confidence == CONFIDENCE_OPENCV_LOCATED
    x, y, w, h = codes[0].box
    assert abs(x - 40) <= 4 and abs(y - 40) <= 4 and abs(w - 290) <= 8 and abs(h - 290) <= 8


def test_opencv_decodes_on_a_downscaled_copy_and_maps_boxes_back() -> None:
    canvas = Image.new("L", (3000, 1500), 255)
    canvas.paste(Image.fromarray(gray("qr_plain.png")).resize((592, 592)), (2000, 600))
    (code,) = opencv_scan(np.asarray(canvas))
    assert code.decoded and code.payload == PAYLOADS["qr_plain.png"]
    assert abs(code.box[0] - 2064) < 20 and abs(code.box[1] - 664) < 20


@pytest.mark.parametrize("name", NO_CODE)
def test_opencv_finds_nothing_in_pictures_without_codes(name: str) -> None:
    assert opencv_scan(gray(name)) == []


def test_animation_code_in_the_last_frame() -> None:
    assert scan(gray("animated.gif", frame=0)) == []
    codes = scan(gray("animated.gif", frame=-1))
    assert [c.payload for c in codes] == ["https://t.example.cn/join/77"]


def test_to_dict_is_json_ready() -> None:
    (code,) = scan(gray("qr_plain.png"))
    assert code.to_dict() == {
        "payload": PAYLOADS["qr_plain.png"],
        "decoded": True,
        "detector": "zxing",
        "confidence": 1.0,
        "box": list(code.box),
    }
