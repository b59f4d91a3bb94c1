"""Decoding refuses every broken, huge or foreign picture with a typed error, and only those."""

from __future__ import annotations

import base64
import io
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from models.image.decode import (
    FRAME_PIXEL_BUDGET,
    MAX_BYTES,
    MAX_FRAMES,
    WORK_MAX_SIDE,
    ImageError,
    ImageTooLargeError,
    InvalidBase64Error,
    InvalidImageError,
    UnsupportedImageFormatError,
    b64_to_bytes,
    decode_image,
    sample_frames,
    sniff_other_format,
)

FIXTURES = Path(__file__).parent / "fixtures" / "images"
GOOD = {
    "poster_qr_ad.jpg": "JPEG",
    "photo_landscape.jpg": "JPEG",
    "photo_shapes.webp": "WEBP",
    "screenshot_chat.png": "PNG",
    "qr_transparent.png": "PNG",
    "animated.gif": "GIF",
}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("name", "fmt"), sorted(GOOD.items()))
def test_accepted_formats_decode_to_rgb_frames(name: str, fmt: str) -> None:
    decoded = decode_image(fixture(name))
    assert decoded.format == fmt
    assert decoded.frames and all(f.mode == "RGB" for f in decoded.frames)
    assert decoded.frames[0].size == (decoded.width, decoded.height)
    assert decoded.byte_size == len(fixture(name))


def test_base64_text_and_data_uri_decode_like_raw_bytes() -> None:
    raw = fixture("qr_transparent.png")
    text = base64.b64encode(raw).decode()
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    for variant in (text, wrapped, "data:image/png;base64," + text):
        decoded = decode_image(variant)
        assert decoded.format == "PNG" and decoded.byte_size == len(raw)


@pytest.mark.parametrize(
    ("name", "error", "status", "code"),
    [
        ("truncated.jpg", InvalidImageError, 422, "invalid_image"),
        ("bomb.png", ImageTooLargeError, 413, "image_too_large"),
        ("image.bmp", UnsupportedImageFormatError, 415, "unsupported_image_format"),
        ("image.tiff", UnsupportedImageFormatError, 415, "unsupported_image_format"),
        ("random.bin", InvalidImageError, 422, "invalid_image"),
    ],
)
def test_broken_and_foreign_files_are_refused_with_typed_errors(
    name: str, error: type[ImageError], status: int, code: str
) -> None:
    with pytest.raises(error) as caught:
        decode_image(fixture(name))
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.message


def test_truncated_jpeg_says_truncated() -> None:
    with pytest.raises(InvalidImageError, match="truncated"):
        decode_image(fixture("truncated.jpg"))


def test_bad_base64_is_invalid_base64() -> None:
    with pytest.raises(InvalidBase64Error) as caught:
        decode_image(fixture("bad_base64.txt").decode())
    assert (caught.value.status, caught.value.code) == (422, "invalid_base64")
    with pytest.raises(InvalidBase64Error):
        decode_image("")


def test_bomb_is_refused_from_its_header_before_decoding() -> None:
    data = fixture("bomb.png")
    assert len(data) < 300 * 1024
    width, height = struct.unpack(">II", data[16:24])  # the PNG header says 400 megapixels
    assert width * height == 400_000_000
    with pytest.raises(ImageTooLargeError, match="pixels"):
        decode_image(base64.b64encode(data).decode())


# 49 megapixels: over our 40 MP limit, under Pillow's error level (twice its limit), where
# Pillow only warns. Refused whether the warning is an error (decode.py's filter) or ignored.
@pytest.mark.parametrize(
    "action",
    [
        pytest.param(
            "error", marks=pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
        ),
        pytest.param(
            "ignore", marks=pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
        ),
    ],
)
def test_pixel_limit_between_pillow_warning_and_error_is_refused(action: str) -> None:
    with pytest.raises(ImageTooLargeError, match="pixels"):
        decode_image(png(Image.new("1", (7000, 7000))))


def test_byte_limit_is_enforced_for_raw_bytes_and_base64() -> None:
    too_big = b"\xff\xd8\xff" + bytes(MAX_BYTES)
    with pytest.raises(ImageTooLargeError) as caught:
        decode_image(too_big)
    assert (caught.value.status, caught.value.code) == (413, "image_too_large")
    with pytest.raises(ImageTooLargeError):
        b64_to_bytes(base64.b64encode(too_big))


def test_empty_input_is_invalid() -> None:
    with pytest.raises(InvalidImageError):
        decode_image(b"")


def test_other_formats_are_recognised_only_to_name_them() -> None:
    assert sniff_other_format(fixture("image.bmp")) == "BMP"
    assert sniff_other_format(fixture("image.tiff")) == "TIFF"
    assert sniff_other_format(b"\x00\x00\x00\x1cftypheic\x00\x00") == "HEIF/AVIF"
    assert sniff_other_format(b'<?xml version="1.0"?><svg xmlns="x"/>') == "SVG"
    assert sniff_other_format(fixture("random.bin")) is None
    with pytest.raises(UnsupportedImageFormatError, match="SVG"):
        decode_image(b"<svg xmlns='http://www.w3.org/2000/svg'></svg>")


def test_animated_gif_keeps_first_last_and_evenly_spaced_frames() -> None:
    decoded = decode_image(fixture("animated.gif"))
    assert decoded.frame_count == 8
    assert len(decoded.frames) == MAX_FRAMES
    assert sample_frames(8, 320 * 320) == [0, 2, 5, 7]
    first, last = decoded.frames[0], decoded.frames[-1]
    assert first.getpixel((160, 160)) != last.getpixel((160, 160))  # spinner vs QR frame


def test_frame_sampling_stays_within_the_pixel_budget() -> None:
    assert sample_frames(1, 10) == [0]
    assert sample_frames(3, 10) == [0, 1, 2]
    frame_pixels = 1920 * 1080
    reachable = FRAME_PIXEL_BUDGET // frame_pixels
    indices = sample_frames(5000, frame_pixels)
    assert indices[0] == 0 and indices[-1] == reachable - 1 and len(indices) == MAX_FRAMES


def test_transparent_pixels_become_white() -> None:
    frame = decode_image(fixture("qr_transparent.png")).frames[0]
    assert frame.getpixel((0, 0)) == (255, 255, 255)
    assert np.asarray(frame.convert("L")).min() == 0  # the modules stay black


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    assert decode_image(buf.getvalue()).frames[0].size == (20, 40)


def test_large_pictures_are_downscaled_for_analysis() -> None:
    big = Image.new("RGB", (4000, 3000), (10, 120, 200))
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=70)
    decoded = decode_image(buf.getvalue())
    assert (decoded.width, decoded.height) == (4000, 3000)
    assert max(decoded.frames[0].size) <= WORK_MAX_SIDE


def _mutations() -> st.SearchStrategy[bytes]:
    seeds = [fixture(name) for name in GOOD] + [fixture("bomb.png"), fixture("truncated.jpg")]

    def mutate(args: tuple[int, int, int, int]) -> bytes:
        which, position, value, cut = args
        data = bytearray(seeds[which % len(seeds)])
        for k in range(8):  # a burst of corrupted bytes
            data[(position + 97 * k) % len(data)] = (value + k) % 256
        return bytes(data[: max(1, len(data) - cut)])

    ints = st.integers(min_value=0, max_value=1 << 20)
    return st.tuples(ints, ints, st.integers(0, 255), st.integers(0, 5000)).map(mutate)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=2048), _mutations()))
def test_no_input_raises_anything_but_typed_errors(data: bytes) -> None:
    try:
        decoded = decode_image(data)
    except ImageError as exc:
        assert exc.status in (413, 415, 422) and exc.code
    else:
        assert decoded.frames and all(f.mode == "RGB" for f in decoded.frames)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_no_base64_text_raises_anything_but_typed_errors(text: str) -> None:
    try:
        decode_image(text)
    except ImageError as exc:
        assert exc.status in (413, 415, 422)
