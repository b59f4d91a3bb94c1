"""`ImageClassifier`: one picture in, the contract's `image` object (and its text verdict) out.

Steps, per sampled frame (one for still pictures, up to four for animations):
1. decode safely (`decode.py`; typed `ImageError`s with HTTP status and code);
2. QR codes (`qr.py`) and the cheap text check on the frame, NSFW (`nsfw.py`, when
   installed) on a small copy; OCR (`ocr.py`) on frames that look like they carry text (or
   always/never);
3. the OCR text and each decoded QR payload go through the text path of messages:
   `analyze` -> `model_text` -> `TextModel.predict_proba` -> `fuse`, so contacts (a WeChat ID,
   a URL in a payload) and lexicon hits count as they do in a message;
4. the perceptual hash of the first frame feeds the flood counter (`phash.py`) when a group is
   given.

Labels: `qrcode` when a code is found (score >= 0.5: every evidence tier of qr.py reaches
it), `nsfw` when the detector's score reaches its configured threshold, and `image_ad` when the
image's text (OCR or QR payload) gets a text label; those text labels follow `image_ad` in
`labels`. The `image_ad` score is the highest fused text score.

Evidence carries `source` `ocr` (spans index `ocr_text`), `qrcode` (spans index that code's
payload) or `model` (NSFW: the detector's class, no span); `basis` says which part of text
fusion saw it (model, lexicon, contact), `detector` (QR, NSFW) or `fusion` (image_ad).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from models.fusion import (
    DEFAULT_WEIGHTS,
    Evidence,
    FusionResult,
    FusionWeights,
    fuse,
    load_fusion_weights,
)
from models.image.decode import DecodedImage, decode_image
from models.image.nsfw import DEFAULT_CONFIG, NsfwDetector, NsfwUnavailableError
from models.image.ocr import DET_LIMIT_SIDE, OcrEngine, has_text
from models.image.phash import FloodCounter, image_hash, is_near_duplicate
from models.image.qr import QrCode, scan
from models.labels import TEXT_LABELS
from models.text.pipeline import analyze, model_text

if TYPE_CHECKING:
    from models.release import TextModel

log = logging.getLogger(__name__)

PIPELINE_VERSION = "2026.11.24-1"
QRCODE_THRESHOLD = 0.5
SMALL_SIDE = 640  # the copy used by the NSFW model and the hash
DEFAULT_TEXT_THRESHOLD = 0.5  # per text label, when no text model gives its own

OcrMode = Literal["auto", "always", "never"]


@dataclass(frozen=True, slots=True)
class ImageEvidence(Evidence):
    """Evidence from a picture. `basis`: model | lexicon | contact (which part of text fusion
    saw it), detector (the QR or NSFW detector), fusion (image_ad: the text got a label)."""

    basis: str = "detector"


@dataclass(frozen=True, slots=True)
class ImageResult:
    """The contract's image object (`to_dict`) and the details behind it."""

    labels: list[str]
    scores: dict[str, float]  # nsfw (absent when the detector is unavailable), qrcode, image_ad
    qrcodes: list[QrCode]
    ocr_text: str
    duplicate_count: int
    text: FusionResult  # verdict on the image's text (OCR and QR payloads), for merging
    evidence: list[Evidence]  # ImageEvidence items
    unavailable: list[str] = field(default_factory=list)  # detectors not installed
    ocr_ran: bool = False
    image_hash: int = 0
    format: str = ""
    width: int = 0
    height: int = 0
    frame_count: int = 1

    @property
    def flagged(self) -> bool:
        return bool(self.labels)

    def to_dict(self) -> dict[str, Any]:
        """The contract's `image` object."""
        out: dict[str, Any] = {
            "labels": self.labels,
            "scores": self.scores,
            "qrcodes": [c.payload for c in self.qrcodes if c.decoded],
            "ocr_text": self.ocr_text,
            "duplicate_count": self.duplicate_count,
        }
        if self.unavailable:
            out["unavailable"] = self.unavailable
        return out


@dataclass(frozen=True)
class ImageSettings:
    ocr: OcrMode = "auto"  # auto: only when the text check says the picture carries text
    nsfw_config: Path | None = DEFAULT_CONFIG  # None: no NSFW detector
    threads: int = 1  # ONNX Runtime intra-op threads per model
    ocr_det_limit: int = DET_LIMIT_SIDE  # RapidOCR detector's long side
    opencv_qr_fallback: bool = True
    warmup: bool = True


@dataclass
class _FrameFindings:
    codes: list[QrCode] = field(default_factory=list)
    nsfw: float = 0.0
    nsfw_class: str | None = None
    ocr_lines: list[str] = field(default_factory=list)
    ocr_ran: bool = False


class ImageClassifier:
    """Loads the image models once; `classify` is thread-safe."""

    def __init__(
        self,
        text_model: TextModel | None = None,
        *,
        flood_counter: FloodCounter | None = None,
        settings: ImageSettings | None = None,
        fusion_weights: FusionWeights | None = None,
    ):
        self.settings = settings or ImageSettings()
        self.text_model = text_model
        self.flood_counter = flood_counter
        if fusion_weights is None and text_model is not None:
            fusion_weights = load_fusion_weights(text_model.folder)
        self.fusion_weights = fusion_weights or DEFAULT_WEIGHTS
        self.nsfw: NsfwDetector | None = None
        self.unavailable: list[str] = []
        if self.settings.nsfw_config is not None:
            try:
                self.nsfw = NsfwDetector.load(
                    self.settings.nsfw_config, threads=self.settings.threads
                )
            except NsfwUnavailableError as exc:
                log.warning("NSFW detector unavailable: %s", exc)
        if self.nsfw is None:
            self.unavailable.append("nsfw")
        self.ocr: OcrEngine | None = None
        if self.settings.ocr != "never":
            self.ocr = OcrEngine(
                det_limit_side=self.settings.ocr_det_limit, threads=self.settings.threads
            )
        if self.settings.warmup:
            self._warm_up()

    @property
    def version(self) -> str:
        return PIPELINE_VERSION

    def components(self) -> dict[str, str | None]:
        """What each step runs, for /readyz and logs."""
        return {
            "nsfw": self.nsfw.name if self.nsfw else None,
            "ocr": "rapidocr" if self.ocr else None,
            "qrcode": "zxing-cpp" + (" + opencv" if self.settings.opencv_qr_fallback else ""),
        }

    def _warm_up(self) -> None:
        img = Image.new("RGB", (320, 120), (255, 255, 255))
        frame = np.asarray(img)
        if self.ocr is not None:
            self.ocr.read(frame)
        scan(np.asarray(img.convert("L")), opencv_fallback=self.settings.opencv_qr_fallback)

    def classify(
        self,
        image: str | bytes,
        *,
        group_id: str | None = None,
        user_id: str | None = None,
        now: datetime | None = None,
        text_model: TextModel | None = None,
    ) -> ImageResult:
        """Classify base64 text (str) or raw bytes; raises `ImageError` for refused input.

        `text_model` overrides the classifier's own (e.g. after a reload); `now` defaults to
        the current time and only matters to the flood counter.
        """
        decoded = decode_image(image)
        hashes: list[int] = []
        findings: list[_FrameFindings] = []
        for frame in decoded.frames:
            small = small_copy(frame)
            frame_hash = image_hash(small)
            if any(is_near_duplicate(frame_hash, h) for h in hashes):
                continue  # an animation's still frames: nothing new to see
            hashes.append(frame_hash)
            findings.append(self._look(frame, small))
        codes = _unique_codes([c for f in findings for c in f.codes])
        ocr_text = "\n".join(_unique([line for f in findings for line in f.ocr_lines]))
        text = self._text_verdict(ocr_text, codes, text_model or self.text_model)
        duplicates = self._count_duplicates(hashes[0], group_id, user_id, now)
        return self._result(decoded, findings, codes, ocr_text, text, duplicates, hashes[0])

    def _look(self, frame: Image.Image, small: Image.Image) -> _FrameFindings:
        found = _FrameFindings()
        gray = np.asarray(frame.convert("L"))
        found.codes = scan(gray, opencv_fallback=self.settings.opencv_qr_fallback)
        if self.nsfw is not None:
            result = self.nsfw.score(small)
            found.nsfw, found.nsfw_class = result.score, result.top_class
        mode = self.settings.ocr
        if self.ocr is not None and (mode == "always" or (mode == "auto" and has_text(gray))):
            found.ocr_ran = True
            found.ocr_lines = [line.text for line in self.ocr.read(np.asarray(frame)).lines]
        return found

    def _text_verdict(
        self, ocr_text: str, codes: Sequence[QrCode], text_model: TextModel | None
    ) -> FusionResult:
        """The image's text through the message text path, merged over OCR and payloads."""
        texts: list[tuple[str, str]] = [("ocr", ocr_text)] if ocr_text.strip() else []
        texts += [("qrcode", c.payload) for c in codes if c.decoded and c.payload.strip()]
        analyses = [analyze(t) for _, t in texts]
        thresholds = text_model.thresholds if text_model else _default_thresholds()
        if text_model is not None and analyses:
            rows = text_model.predict_proba([model_text(a) for a in analyses])
        else:  # no model: lexicon hits alone (contacts only scale a model's score)
            rows = np.zeros((len(analyses), len(TEXT_LABELS)), dtype=np.float32)
        verdicts = [
            fuse(row.tolist(), analysis, thresholds, self.fusion_weights)
            for row, analysis in zip(rows, analyses, strict=True)
        ]
        return _merge_verdicts(verdicts, [source for source, _ in texts], thresholds)

    def _count_duplicates(
        self, frame_hash: int, group_id: str | None, user_id: str | None, now: datetime | None
    ) -> int:
        if self.flood_counter is None or not group_id:
            return 0
        moment = now or datetime.now(UTC)
        return self.flood_counter.record(group_id, user_id, frame_hash, moment).group

    def _result(
        self,
        decoded: DecodedImage,
        findings: list[_FrameFindings],
        codes: list[QrCode],
        ocr_text: str,
        text: FusionResult,
        duplicates: int,
        frame_hash: int,
    ) -> ImageResult:
        scores: dict[str, float] = {}
        labels_scored: list[tuple[str, float]] = []
        evidence: list[Evidence] = []
        if self.nsfw is not None:
            best = max(findings, key=lambda f: f.nsfw)
            scores["nsfw"] = best.nsfw
            if best.nsfw >= self.nsfw.threshold:
                labels_scored.append(("nsfw", best.nsfw))
                evidence.append(ImageEvidence("nsfw", "model", best.nsfw_class or "", 0, 0))
        scores["qrcode"] = max((c.confidence for c in codes), default=0.0)
        if scores["qrcode"] >= QRCODE_THRESHOLD:
            labels_scored.append(("qrcode", scores["qrcode"]))
            for code in codes:
                evidence.append(
                    ImageEvidence("qrcode", "qrcode", code.payload, 0, len(code.payload))
                )
        scores["image_ad"] = max(text.scores.values(), default=0.0)
        if text.labels:
            labels_scored.append(("image_ad", scores["image_ad"]))
            if ocr_text:
                evidence.append(
                    ImageEvidence("image_ad", "ocr", ocr_text, 0, len(ocr_text), "fusion")
                )
        labels = [label for label, _ in sorted(labels_scored, key=lambda p: -p[1])]
        return ImageResult(
            labels=labels + list(text.labels),
            scores=scores,
            qrcodes=codes,
            ocr_text=ocr_text,
            duplicate_count=duplicates,
            text=text,
            evidence=evidence + list(text.evidence),
            unavailable=list(self.unavailable),
            ocr_ran=any(f.ocr_ran for f in findings),
            image_hash=frame_hash,
            format=decoded.format,
            width=decoded.width,
            height=decoded.height,
            frame_count=decoded.frame_count,
        )


def _default_thresholds() -> dict[str, float]:
    return dict.fromkeys(TEXT_LABELS, DEFAULT_TEXT_THRESHOLD)


def _merge_verdicts(
    verdicts: Sequence[FusionResult],
    sources: Sequence[str],
    thresholds: Mapping[str, float],
) -> FusionResult:
    """One verdict over several texts: the highest score per label, evidence re-sourced."""
    scores = {label: max((v.scores[label] for v in verdicts), default=0.0) for label in TEXT_LABELS}
    labels = sorted(
        (label for label in TEXT_LABELS if scores[label] >= thresholds[label]),
        key=lambda label: -scores[label],
    )
    evidence: list[Evidence] = []
    contacts = []
    for verdict, source in zip(verdicts, sources, strict=True):
        for item in verdict.evidence:
            evidence.append(
                ImageEvidence(item.label, source, item.text, item.start, item.end, item.source)
            )
        contacts.extend(verdict.contacts)
    return FusionResult(labels=labels, scores=scores, evidence=evidence, contacts=contacts)


def small_copy(frame: Image.Image) -> Image.Image:
    """At most SMALL_SIDE a side, by an integer box reduction (5x faster than a resize)."""
    factor = -(-max(frame.size) // SMALL_SIDE)
    return frame if factor <= 1 else frame.reduce(factor)


def _unique_codes(codes: Sequence[QrCode]) -> list[QrCode]:
    """Codes of all frames, one per payload (undecoded ones kept once)."""
    seen: set[str] = set()
    out = []
    for code in sorted(codes, key=lambda c: -c.confidence):
        key = code.payload if code.decoded else "\0undecoded"
        if key not in seen:
            seen.add(key)
            out.append(code)
    return out


def _unique(lines: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(lines))
