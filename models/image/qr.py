"""QR codes (and square mini-program QR codes) in a picture: located, decoded when possible.

Two detectors, cheapest first:
1. zxing-cpp reads QR, Micro QR and rMQR codes in a few milliseconds, in any rotation, with
   its own multi-scale search. With `return_errors` it also reports QR codes whose finder
   patterns and format were found but whose data failed error correction (smeared, cropped,
   covered by a sticker): located, not decoded.
2. When zxing decodes nothing, OpenCV's ArUco-based QR detector looks again on a downscaled
   copy (a second, independent finder-pattern search) and tries its own decoder: it may decode
   a code zxing only located, or find one zxing missed. What it locates must look like a QR
   code (a convex, roughly square quadrilateral of a readable size) to count; its detector,
   unlike zxing's, is not followed by a format check, so an undecoded find scores lower.

Scores (`QrCode.confidence`, the image's `qrcode` score is the highest of its codes):
decoded 1.0; located by zxing (format read, data not) 0.9; located by OpenCV only 0.7. These
are evidence tiers, not calibrated probabilities; every tier reaches the 0.5 threshold.

WeChat's round "sun" mini-program codes (小程序码) are left out: their encoding is private, no
library decodes them, and a look-alike detector could not be tested against real ones here.
Square mini-program QR codes (普通二维码) are ordinary QR codes and are read.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import zxingcpp

QR_FORMATS = (
    zxingcpp.BarcodeFormat.QRCode,
    zxingcpp.BarcodeFormat.MicroQRCode,
    zxingcpp.BarcodeFormat.RMQRCode,
)
CONFIDENCE_DECODED = 1.0
CONFIDENCE_LOCATED = 0.9
CONFIDENCE_OPENCV_LOCATED = 0.7
OPENCV_MAX_SIDE = 1024
MIN_CODE_SIDE = 42  # pixels at OpenCV's scale: 21 modules (version 1) of 2 pixels
MAX_SIDE_RATIO = 1.6  # longest over shortest side of a located quadrilateral


@dataclass(frozen=True, slots=True)
class QrCode:
    """One code: its payload ("" when located but not decoded) and where it was found."""

    payload: str
    decoded: bool
    detector: str  # zxing | opencv
    confidence: float
    box: tuple[int, int, int, int]  # x, y, width, height in the frame's pixels

    def to_dict(self) -> dict[str, object]:
        return {
            "payload": self.payload,
            "decoded": self.decoded,
            "detector": self.detector,
            "confidence": self.confidence,
            "box": list(self.box),
        }


def scan(gray: np.ndarray, *, opencv_fallback: bool = True) -> list[QrCode]:
    """QR codes in a grayscale (uint8, height x width) image, decoded ones first."""
    codes = zxing_scan(gray)
    if opencv_fallback and not any(c.decoded for c in codes):
        codes = _merge(codes, opencv_scan(gray))
    return sorted(codes, key=lambda c: (-c.confidence, c.box[1], c.box[0]))


def _merge(codes: list[QrCode], extra: list[QrCode]) -> list[QrCode]:
    """zxing's codes, each replaced by an OpenCV code decoded in its place; new places added."""
    merged = list(codes)
    for code in extra:
        same = [i for i, c in enumerate(merged) if _overlaps(c.box, code.box)]
        if not same:
            merged.append(code)
        elif code.decoded:
            merged[same[0]] = code
    return merged


def zxing_scan(gray: np.ndarray) -> list[QrCode]:
    """Codes zxing-cpp decodes, and QR codes it locates but cannot decode."""
    found = zxingcpp.read_barcodes(gray, formats=QR_FORMATS, return_errors=True)
    decoded = [b for b in found if b.valid]
    codes = [
        QrCode(b.text, True, "zxing", CONFIDENCE_DECODED, _box(_points(b.position)))
        for b in decoded
    ]
    for b in found:
        # A failed Micro QR read is usually a big QR code's finder pattern seen alone.
        if b.valid or b.format != zxingcpp.BarcodeFormat.QRCode:
            continue
        box = _box(_points(b.position))
        if not any(_overlaps(box, c.box) for c in codes):
            codes.append(QrCode("", False, "zxing", CONFIDENCE_LOCATED, box))
    return codes


def opencv_scan(gray: np.ndarray) -> list[QrCode]:
    """Codes OpenCV's ArUco-based detector finds on a copy at most OPENCV_MAX_SIDE a side."""
    scale = min(1.0, OPENCV_MAX_SIDE / max(gray.shape))
    small = gray
    if scale < 1.0:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    detector = cv2.QRCodeDetectorAruco()  # cheap to make; one per call keeps this thread-safe
    try:
        ok, texts, quads, _ = detector.detectAndDecodeMulti(small)
    except cv2.error:
        return []
    if not ok or quads is None:
        return []
    codes = []
    for text, quad in zip(texts, quads, strict=False):
        if not _plausible_quad(quad):
            continue
        box = _box([(x / scale, y / scale) for x, y in quad])
        if text:
            codes.append(QrCode(text, True, "opencv", CONFIDENCE_DECODED, box))
        else:
            codes.append(QrCode("", False, "opencv", CONFIDENCE_OPENCV_LOCATED, box))
    return codes


def _plausible_quad(quad: np.ndarray) -> bool:
    """A convex, roughly square quadrilateral at least MIN_CODE_SIDE pixels a side."""
    pts = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    if not cv2.isContourConvex(pts):
        return False
    sides = np.linalg.norm(pts - np.roll(pts, 1, axis=0), axis=1)
    return bool(sides.min() >= MIN_CODE_SIDE and sides.max() <= MAX_SIDE_RATIO * sides.min())


def _points(position: zxingcpp.Position) -> list[tuple[float, float]]:
    corners = (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
    return [(p.x, p.y) for p in corners]


def _box(points: list[tuple[float, float]]) -> tuple[int, int, int, int]:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, y0 = int(min(xs)), int(min(ys))
    return x0, y0, int(max(xs)) - x0, int(max(ys)) - y0


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
