"""The cheap text check tells text pictures from photos; RapidOCR reads the Chinese text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.image.decode import decode_image
from models.image.ocr import MAX_TILES, OcrEngine, has_text, text_lines, tiles

FIXTURES = Path(__file__).parent / "fixtures" / "images"
WITH_TEXT = [
    "poster_qr_ad.jpg",
    "poster_kanjia_qr.jpg",
    "poster_text_ad.jpg",
    "screenshot_chat.png",
]
WITHOUT_TEXT = [
    "photo_landscape.jpg",
    "photo_skin.jpg",
    "photo_shapes.webp",
    "qr_plain.png",
    "qr_damaged.png",
]


def rgb(name: str, frame: int = 0) -> np.ndarray:
    return np.asarray(decode_image((FIXTURES / name).read_bytes()).frames[frame])


def gray(name: str, frame: int = 0) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb(name, frame)).convert("L"))


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine()


@pytest.mark.parametrize("name", WITH_TEXT)
def test_text_pictures_pass_the_check(name: str) -> None:
    assert has_text(gray(name))
    assert text_lines(gray(name)) >= 3


@pytest.mark.parametrize("name", WITHOUT_TEXT)
def test_text_free_pictures_fail_the_check(name: str) -> None:
    assert text_lines(gray(name)) == 0
    assert not has_text(gray(name))


def test_check_does_not_depend_on_resolution() -> None:
    poster = Image.fromarray(gray("poster_qr_ad.jpg"))
    for size in [(540, 960), (1080, 1920), (1440, 2560)]:
        assert has_text(np.asarray(poster.resize(size)))


def test_animation_text_only_in_its_last_frame() -> None:
    assert not has_text(gray("animated.gif", 0))
    assert has_text(gray("animated.gif", -1))


def test_poster_text_is_read(engine: OcrEngine) -> None:
    result = engine.read(rgb("poster_qr_ad.jpg"))
    text = result.text
    for part in ("加微信", "abc12345", "兼职刷单", "扫码进群"):
        assert part in text
    assert all(0.5 <= line.score <= 1.0 for line in result.lines)
    tops = [line.box[1] for line in result.lines]
    assert tops == sorted(tops)  # top to bottom


def test_chat_screenshot_is_read(engine: OcrEngine) -> None:
    text = engine.read(rgb("screenshot_chat.png")).text
    assert "九点开会" in text and "提前接水" in text


def test_photo_has_no_text(engine: OcrEngine) -> None:
    assert engine.read(rgb("photo_landscape.jpg")).lines == []


def test_long_screenshot_is_read_in_slices(engine: OcrEngine) -> None:
    poster = Image.fromarray(rgb("poster_text_ad.jpg")).crop((0, 0, 720, 400))
    tall = Image.new("RGB", (720, 3200), (255, 255, 255))
    tall.paste(poster, (0, 2500))  # the text sits in the third slice
    pixels = np.asarray(tall)
    assert [top for top, _ in tiles(pixels)] == [0, 1440, 2880]
    lines = engine.read(pixels).lines
    assert any("宝妈兼职" in line.text for line in lines)
    assert all(line.box[1] >= 2500 for line in lines)  # boxes in the whole picture's pixels


def test_slices_are_capped() -> None:
    very_tall = np.zeros((100 * 200 * MAX_TILES, 100, 3), dtype=np.uint8)
    assert len(tiles(very_tall)) == MAX_TILES
    assert len(tiles(np.zeros((240, 100, 3), dtype=np.uint8))) == 1
