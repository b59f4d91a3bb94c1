"""Text in pictures: a cheap "is there text?" check, then RapidOCR (ONNX, models bundled).

The check (`text_lines`) looks for horizontal text lines, the way the classic morphological
text-region detector does, on a copy at most TEXT_CHECK_SIDE pixels a side:
1. morphological gradient (3x3): strokes of glyphs become thin bright outlines;
2. fixed threshold (gradient >= 48 grey levels): printed or rendered text has strong contrast,
   while a global (Otsu) threshold was pulled up by QR codes and lost pale text on posters;
3. closing with a 9x1 horizontal kernel: glyphs of a line merge into one component;
4. a component counts as a text line when it is 6 to 60 pixels high, at least twice as wide as
   high, fills at least 45 % of its box, and its stroke pixels cover 15 % to 85 % of the box
   (noise textures and shapes give blobs that are too tall, too square, or solid).
A picture with at least MIN_TEXT_LINES such lines goes to OCR. On the fixtures every poster
and chat screenshot passes and no text-free photo does; missing text only costs a missed
`image_ad`, and `ocr="always"` (ImageClassifier setting) skips the check.

OCR runs RapidOCR 3.x without the 180-degree line classifier (`Global.use_cls`: upside-down
text is rare in chat pictures and the classifier costs a pass per line), with the detector
limited to DET_LIMIT_SIDE = 480 pixels on the long side (`Det.limit_type: max`; the default
`min` upscales the short side, which is slow on wide pictures). Recognition still reads each
line from the full-resolution picture, so a small detector input loses little: 18-pixel text
on a 1080x2340 screenshot (under 4 pixels high at the detector's scale) was still read line
for line, and 480 costs 20-30 % less than 640 on the fixtures. Pictures taller than 2.5 times
their width (long screenshots) are read in slices twice as tall as wide, at most MAX_TILES,
so their text is not shrunk away.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

TEXT_CHECK_SIDE = 640
GRADIENT_THRESHOLD = 48
MIN_LINE_HEIGHT, MAX_LINE_HEIGHT = 6, 60
MIN_TEXT_LINES = 1
DET_LIMIT_SIDE = 480
MAX_TILE_RATIO = 2.0  # tile height over width
MAX_TILES = 4
MIN_SCORE = 0.5
MIN_OCR_SIDE = 8  # pixels: a thinner picture holds no legible line (and trips RapidOCR)

log = logging.getLogger(__name__)

_GRADIENT_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_LINE_KERNEL = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 1))


@dataclass(frozen=True, slots=True)
class OcrLine:
    text: str
    score: float
    box: tuple[int, int, int, int]  # x, y, width, height in the picture's pixels


@dataclass(frozen=True, slots=True)
class OcrResult:
    lines: list[OcrLine]

    @property
    def text(self) -> str:
        """The lines, top to bottom, one per line."""
        return "\n".join(line.text for line in self.lines)


def text_lines(gray: np.ndarray) -> int:
    """How many text-line-shaped components a grayscale picture has (see the module doc)."""
    h, w = gray.shape[:2]
    scale = TEXT_CHECK_SIDE / max(h, w)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    gradient = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, _GRADIENT_KERNEL)
    _, strokes = cv2.threshold(gradient, GRADIENT_THRESHOLD - 1, 255, cv2.THRESH_BINARY)
    merged = cv2.morphologyEx(strokes, cv2.MORPH_CLOSE, _LINE_KERNEL)
    count, _, stats, _ = cv2.connectedComponentsWithStats(merged, connectivity=8)
    lines = 0
    for x, y, bw, bh, area in stats[1:]:
        if not (MIN_LINE_HEIGHT <= bh <= MAX_LINE_HEIGHT and bw >= 2 * bh):
            continue
        if area < 0.45 * bw * bh:
            continue
        fill = cv2.countNonZero(strokes[y : y + bh, x : x + bw]) / (bw * bh)
        if 0.15 <= fill <= 0.85:
            lines += 1
    return lines


def has_text(gray: np.ndarray) -> bool:
    """The cheap check: does this picture look like it carries text?"""
    return text_lines(gray) >= MIN_TEXT_LINES


class OcrEngine:
    """RapidOCR, loaded once. Calls are serialised: RapidOCR does not promise thread-safety."""

    def __init__(
        self,
        *,
        det_limit_side: int = DET_LIMIT_SIDE,
        threads: int = 1,
        min_score: float = MIN_SCORE,
    ):
        from rapidocr import RapidOCR

        params: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.use_cls": False,
            "Global.text_score": min_score,
            "Det.limit_type": "max",
            "Det.limit_side_len": det_limit_side,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        self._ocr = RapidOCR(params=params)
        self._lock = threading.Lock()

    def read(self, rgb: np.ndarray) -> OcrResult:
        """The text lines of an RGB picture (uint8, height x width x 3), top to bottom.

        A picture RapidOCR fails on yields no lines (logged): a picture's text is one signal
        among several, and a bad picture must not fail its message.
        """
        lines: list[OcrLine] = []
        for top, tile in tiles(rgb):
            if min(tile.shape[:2]) < MIN_OCR_SIDE:
                continue
            try:
                lines.extend(self._read_tile(tile, top))
            except Exception:  # RapidOCR raises its own untyped errors on odd pictures
                log.warning(
                    "OCR failed on a %dx%d slice", tile.shape[1], tile.shape[0], exc_info=True
                )
        return OcrResult(lines)

    def _read_tile(self, rgb: np.ndarray, top: int) -> list[OcrLine]:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with self._lock:
            out = self._ocr(bgr)
        txts = getattr(out, "txts", None)
        boxes = getattr(out, "boxes", None)
        if not txts or boxes is None:
            return []
        lines = []
        for text, score, quad in zip(txts, out.scores, boxes, strict=False):
            if not text.strip():
                continue
            xs, ys = quad[:, 0], quad[:, 1]
            x0, y0 = int(xs.min()), int(ys.min())
            box = (x0, y0 + top, int(xs.max()) - x0, int(ys.max()) - y0)
            lines.append(OcrLine(text.strip(), round(float(score), 4), box))
        return lines


def tiles(rgb: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Horizontal slices of a tall picture (at most MAX_TILES), each with its top offset."""
    h, w = rgb.shape[:2]
    tile_h = max(1, int(w * MAX_TILE_RATIO))
    if h <= tile_h * 1.25:
        return [(0, rgb)]
    return [(top, rgb[top : top + tile_h]) for top in range(0, h, tile_h)][:MAX_TILES]
