"""Base64 or raw bytes to RGB frames, refusing anything unsafe with a typed error.

Limits (the contract's, shared/API.md): at most 10 MiB of decoded bytes, JPEG/PNG/GIF/WebP
only, at most 40 megapixels per frame. Pillow's own guard is set to the same pixel limit
(`Image.MAX_IMAGE_PIXELS`, process-wide) and its DecompressionBombWarning is turned into an
error once, at import (warning filters are global, and `warnings.catch_warnings` is not
thread-safe), so a bomb is refused from its header, before any pixel is decoded.

Animated GIF/WebP: at most `MAX_FRAMES` frames are kept (first, middle, last). Seeking to a
frame decodes every frame before it, so the frames considered are capped by a pixel budget
(`FRAME_PIXEL_BUDGET`): a 10 MiB GIF of 5,000 blank full-HD frames would otherwise take
minutes to seek through.

Truncated files are refused (Pillow's LOAD_TRUNCATED_IMAGES stays off). Transparent images are
composited onto white, so a black QR code on a transparent background stays readable. JPEG
EXIF orientation is applied. Frames larger than `WORK_MAX_SIDE` are downscaled (JPEG decodes
straight to a smaller scale with Pillow's `draft`), which bounds the cost of every later step.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000
MAX_FRAMES = 4
FRAME_PIXEL_BUDGET = 60_000_000
WORK_MAX_SIDE = 2048
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)

# Other image formats, recognised only to answer 415 instead of 422 ("an image, not one we take").
_OTHER_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
)
_FTYP_BRANDS = {b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis"}
_DATA_URI = re.compile(rb"^data:[a-z0-9.+/-]*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(rb"\s+")


class ImageError(ValueError):
    """An image the service refuses; `status` and `code` map to the contract's error format."""

    status: int = 422
    code: str = "invalid_image"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidBase64Error(ImageError):
    status, code = 422, "invalid_base64"


class InvalidImageError(ImageError):
    status, code = 422, "invalid_image"


class ImageTooLargeError(ImageError):
    status, code = 413, "image_too_large"


class UnsupportedImageFormatError(ImageError):
    status, code = 415, "unsupported_image_format"


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """The frames to analyse (RGB, at most WORK_MAX_SIDE on a side) and what the file was."""

    format: str  # JPEG | PNG | GIF | WEBP
    width: int  # of the file, before any downscaling
    height: int
    frame_count: int  # frames in the file (1 for still images)
    frames: list[Image.Image]  # the sampled frames, first one first
    byte_size: int


def b64_to_bytes(data: str | bytes) -> bytes:
    """Decode standard base64 (whitespace and a `data:image/...;base64,` prefix allowed)."""
    raw = data.encode("ascii", errors="replace") if isinstance(data, str) else bytes(data)
    raw = _WHITESPACE.sub(b"", _DATA_URI.sub(b"", raw.lstrip(), count=1))
    if len(raw) // 4 * 3 > MAX_BYTES + 3:  # refuse before allocating the decoded copy
        raise ImageTooLargeError(f"image over {MAX_BYTES} bytes once decoded")
    if not raw:
        raise InvalidBase64Error("empty image")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidBase64Error(f"image is not valid base64: {exc}") from exc


def decode_image(data: str | bytes) -> DecodedImage:
    """Decode base64 text (str) or raw image bytes (bytes) into frames ready to analyse."""
    raw = b64_to_bytes(data) if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_BYTES:
        raise ImageTooLargeError(f"image is {len(raw)} bytes, over {MAX_BYTES}")
    if not raw:
        raise InvalidImageError("empty image")
    img = _open(raw)
    try:
        return _decode_frames(img, len(raw))
    finally:
        img.close()


def _open(raw: bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(raw), formats=ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"image over {MAX_PIXELS} pixels") from exc
    except UnidentifiedImageError as exc:
        other = sniff_other_format(raw)
        if other:
            raise UnsupportedImageFormatError(
                f"{other} images are not accepted (JPEG, PNG, GIF or WebP only)"
            ) from exc
        raise InvalidImageError("not a JPEG, PNG, GIF or WebP image") from exc
    except Exception as exc:  # Pillow's plugins raise many types on bad headers
        raise InvalidImageError(f"cannot read the image header: {exc}") from exc
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InvalidImageError("image has no pixels")
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(f"image is {width}x{height}, over {MAX_PIXELS} pixels")
    return img


def sniff_other_format(raw: bytes) -> str | None:
    """The name of a known image format we do not accept, from its signature, or None."""
    for signature, name in _OTHER_IMAGE_SIGNATURES:
        if raw.startswith(signature):
            return name
    if raw[4:8] == b"ftyp" and raw[8:12] in _FTYP_BRANDS:
        return "HEIF/AVIF"
    head = raw[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in raw[:4096].lower()):
        return "SVG"
    return None


def _decode_frames(img: Image.Image, byte_size: int) -> DecodedImage:
    fmt = img.format or "?"
    width, height = img.size
    try:
        frame_count = max(1, int(getattr(img, "n_frames", 1)))
        frames = [_frame_rgb(img, index) for index in sample_frames(frame_count, width * height)]
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"image over {MAX_PIXELS} pixels") from exc
    except MemoryError as exc:
        raise ImageTooLargeError("image too large to decode") from exc
    except Exception as exc:  # Pillow's plugins raise many types on bad data
        message = str(exc)
        if "truncated" in message.lower():
            raise InvalidImageError("image file is truncated") from exc
        raise InvalidImageError(f"cannot decode the image: {message}") from exc
    return DecodedImage(fmt, width, height, frame_count, frames, byte_size)


def sample_frames(frame_count: int, frame_pixels: int) -> list[int]:
    """Frame indices to analyse: up to MAX_FRAMES evenly spaced, first and last included.

    Only the frames the pixel budget lets us seek to count ("last" is the last of those).
    """
    reachable = max(1, min(frame_count, FRAME_PIXEL_BUDGET // max(1, frame_pixels)))
    if reachable <= MAX_FRAMES:
        return list(range(reachable))
    last = reachable - 1
    return sorted({round(i * last / (MAX_FRAMES - 1)) for i in range(MAX_FRAMES)})


def _frame_rgb(img: Image.Image, index: int) -> Image.Image:
    if index:
        img.seek(index)
    elif img.format == "JPEG":
        img.draft("RGB", _target_size(img.size))  # decode at 1/2, 1/4 or 1/8 scale when large
    img.load()
    frame = img if index else ImageOps.exif_transpose(img)
    frame = _flatten(frame)
    if max(frame.size) > WORK_MAX_SIDE:
        frame.thumbnail((WORK_MAX_SIDE, WORK_MAX_SIDE), Image.Resampling.BILINEAR)
    return frame


def _target_size(size: tuple[int, int]) -> tuple[int, int]:
    scale = min(1.0, WORK_MAX_SIDE / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _flatten(frame: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white."""
    if frame.mode == "P" and "transparency" in frame.info:
        frame = frame.convert("RGBA")
    if frame.mode in ("RGBA", "LA", "PA"):
        rgba = frame.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return frame.convert("RGB") if frame.mode != "RGB" else frame.copy()
