"""Decision fusion: the model's scores, lexicon hits and extracted contacts become one verdict.

How each source moves a label's score `s` (model probability to start with):

1. Contacts are supporting evidence only. Colleagues share phone numbers, so a contact must
   never flag a message by itself; but a contact next to ad-ish wording is the typical
   引流 ad. A contact therefore multiplies the model's odds by a per-label likelihood ratio
   `k = contact_odds[label]`:  odds' = k * s / (1 - s),  s' = odds' / (1 + odds').
   With k = 6 a clean-looking message (s = 0.02) stays clean (0.11), while an ad-ish one
   (s = 0.2) goes over a 0.5 threshold (0.6). Several contacts count once.
2. A lexicon hit is evidence on its own (the word lists are curated to be precise), combined
   by noisy-OR with a per-label weight `w = lexicon[label]`:  s' = 1 - (1 - s) * (1 - w),
   once per distinct term. Hits found only through the pinyin view (jia wei xin, nmsl) are
   noisier and count with weight `w * pinyin_factor`.

Contacts are applied before lexicon hits. `FusionWeights.off()` turns fusion off (the model's
scores unchanged), so an evaluation can measure both ways. A release can override the weights
with an optional `fusion` key in its manifest.json (see `load_fusion_weights`).

`labels` are the labels whose (rounded) fused score reaches the release threshold, highest
score first. `evidence` explains each of those labels, with spans in the ORIGINAL text:
- `model`: the whole message, when the model's own score reaches the threshold or a contact
  raised it (a contact only scales the model's odds, so the model is part of the reason);
- `lexicon`: each matched term of the label;
- `contact`: each contact, when contacts raised the label.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.labels import TEXT_LABELS

if TYPE_CHECKING:
    from models.text.contacts import Contact
    from models.text.pipeline import TextAnalysis

SCORE_DECIMALS = 4
_LABEL_INDEX = {label: i for i, label in enumerate(TEXT_LABELS)}

_DEFAULT_LEXICON: dict[str, float] = {
    "ad": 0.5,
    "insult": 0.7,
    "politics": 0.5,
    "porn": 0.6,
    "gambling": 0.7,
    "fraud": 0.5,
    "contraband": 0.7,
    "vote_bargain": 0.6,
}
_DEFAULT_CONTACT_ODDS: dict[str, float] = {
    "ad": 6.0,
    "insult": 1.0,
    "politics": 1.0,
    "porn": 2.0,
    "gambling": 2.0,
    "fraud": 2.0,
    "contraband": 1.5,
    "vote_bargain": 1.5,
}


class FusionConfigError(ValueError):
    """The `fusion` settings of a release are malformed."""


@dataclass(frozen=True)
class FusionWeights:
    """How much lexicon hits and contacts move each label's score (see the module docstring)."""

    lexicon: Mapping[str, float] = field(default_factory=lambda: dict(_DEFAULT_LEXICON))
    pinyin_factor: float = 0.7
    contact_odds: Mapping[str, float] = field(default_factory=lambda: dict(_DEFAULT_CONTACT_ODDS))

    def __post_init__(self) -> None:
        for name in ("lexicon", "contact_odds"):
            table = getattr(self, name)
            unknown = set(table) - set(TEXT_LABELS)
            if unknown:
                raise FusionConfigError(f"fusion.{name} names unknown labels {sorted(unknown)}")
        if not all(_is_number(w) and 0.0 <= w < 1.0 for w in self.lexicon.values()):
            raise FusionConfigError("fusion.lexicon weights must lie in [0, 1)")
        if not all(_is_number(k) and 1.0 <= k <= 1000.0 for k in self.contact_odds.values()):
            raise FusionConfigError("fusion.contact_odds must lie in [1, 1000]")
        if not (_is_number(self.pinyin_factor) and 0.0 <= self.pinyin_factor <= 1.0):
            raise FusionConfigError("fusion.pinyin_factor must lie in [0, 1]")

    @classmethod
    def off(cls) -> FusionWeights:
        """Weights that leave the model's scores unchanged (fusion disabled)."""
        return cls(
            lexicon=dict.fromkeys(TEXT_LABELS, 0.0),
            pinyin_factor=0.0,
            contact_odds=dict.fromkeys(TEXT_LABELS, 1.0),
        )

    def updated(self, overrides: Mapping[str, Any]) -> FusionWeights:
        """These weights with some replaced, e.g. `{"lexicon": {"ad": 0.6}}` (per label)."""
        if not isinstance(overrides, Mapping):
            raise FusionConfigError("fusion settings must be a JSON object")
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise FusionConfigError(f"unknown fusion settings {sorted(unknown)}")
        changes: dict[str, Any] = {}
        for name, value in overrides.items():
            if name == "pinyin_factor":
                changes[name] = value
            elif isinstance(value, Mapping):
                changes[name] = {**getattr(self, name), **value}
            else:
                raise FusionConfigError(f"fusion.{name} must map labels to numbers")
        return replace(self, **changes)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


DEFAULT_WEIGHTS = FusionWeights()


def load_fusion_weights(
    release_folder: Path, base: FusionWeights = DEFAULT_WEIGHTS
) -> FusionWeights:
    """The weights of a release: `base` updated by manifest.json's optional `fusion` key."""
    try:
        raw = json.loads((Path(release_folder) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FusionConfigError(f"cannot read the manifest of {release_folder}: {exc}") from exc
    overrides = raw.get("fusion") if isinstance(raw, dict) else None
    return base if overrides is None else base.updated(overrides)


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a label was given: a span of the ORIGINAL text and the source that saw it."""

    label: str
    source: str  # model | lexicon | contact (ocr | qrcode | rule come with images and policies)
    text: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "source": self.source,
            "text": self.text,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True, slots=True)
class FusionResult:
    """The verdict on one text: labels over threshold (highest first), all scores, evidence."""

    labels: list[str]
    scores: dict[str, float]
    evidence: list[Evidence]
    contacts: list[Contact]

    @property
    def flagged(self) -> bool:
        return bool(self.labels)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready contract fields: flagged, labels, scores, evidence, contacts."""
        return {
            "flagged": bool(self.labels),
            "labels": self.labels,
            "scores": self.scores,
            "evidence": [e.to_dict() for e in self.evidence],
            "contacts": [{"type": c.type, "value": c.value} for c in self.contacts],
        }


def _clean(model_scores: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Model scores as float64 in [0, 1] (NaN counts as 0, infinities as the bounds)."""
    scores = np.array(model_scores, dtype=np.float64)
    if not np.isfinite(scores).all():  # rare; nan_to_num costs more than the check
        scores = np.nan_to_num(scores, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(scores, 0.0, 1.0, out=scores)


def _fuse_row(
    model_row: Sequence[float], analysis: TextAnalysis, weights: FusionWeights
) -> tuple[list[float], set[str]]:
    """Fused scores in TEXT_LABELS order, and the labels that contacts raised.

    `model_row` must already be clean (in [0, 1]); see `_clean`.
    """
    scores = list(model_row)
    raised: set[str] = set()
    if analysis.contacts:
        for i, label in enumerate(TEXT_LABELS):
            k = weights.contact_odds.get(label, 1.0)
            s = scores[i]
            if k > 1.0 and 0.0 < s < 1.0:
                odds = k * s / (1.0 - s)
                scores[i] = odds / (1.0 + odds)
                raised.add(label)
    if analysis.hits:
        seen: set[tuple[str, str]] = set()
        for hit in analysis.hits:
            i = _LABEL_INDEX.get(hit.label)
            if i is None or (hit.label, hit.term) in seen:
                continue
            seen.add((hit.label, hit.term))
            w = weights.lexicon.get(hit.label, 0.0)
            if hit.view == "pinyin":
                w *= weights.pinyin_factor
            scores[i] = 1.0 - (1.0 - scores[i]) * (1.0 - w)
    return scores, raised


def fuse_batch(
    model_scores: np.ndarray | Sequence[Sequence[float]],
    analyses: Sequence[TextAnalysis],
    thresholds: Mapping[str, float],
    weights: FusionWeights = DEFAULT_WEIGHTS,
) -> list[FusionResult]:
    """Combine a batch's model scores (n x labels, TEXT_LABELS order) with its analyses.

    Clipping, rounding and thresholds run on the whole array at once; only messages with
    contacts or lexicon hits go through the per-message arithmetic, and only flagged ones
    get evidence, which keeps fusion to a few microseconds a message.
    """
    if len(model_scores) != len(analyses):
        raise ValueError("one analysis per row of scores is needed")
    model = _clean(model_scores).reshape(len(analyses), len(TEXT_LABELS))
    fused = model.copy()
    raised: dict[int, set[str]] = {}
    for i, analysis in enumerate(analyses):
        if analysis.contacts or analysis.hits:
            fused[i], raised[i] = _fuse_row(model[i].tolist(), analysis, weights)
    rounded = np.round(fused, SCORE_DECIMALS)
    limits = np.array([thresholds[label] for label in TEXT_LABELS], dtype=np.float64)
    over = rounded >= limits
    flagged = over.any(axis=1).tolist()
    rows = rounded.tolist()
    results = []
    for i, analysis in enumerate(analyses):
        scores = dict(zip(TEXT_LABELS, rows[i], strict=True))
        labels: list[str] = []
        evidence: list[Evidence] = []
        if flagged[i]:
            marks = over[i].tolist()
            labels = sorted(
                (label for label, mark in zip(TEXT_LABELS, marks, strict=True) if mark),
                key=lambda label: -scores[label],
            )
            model_row = dict(zip(TEXT_LABELS, model[i].tolist(), strict=True))
            evidence = _evidence(labels, model_row, analysis, thresholds, raised.get(i, set()))
        results.append(FusionResult(labels, scores, evidence, list(analysis.contacts)))
    return results


def fuse(
    model_row: Sequence[float],
    analysis: TextAnalysis,
    thresholds: Mapping[str, float],
    weights: FusionWeights = DEFAULT_WEIGHTS,
) -> FusionResult:
    """Combine one message's model scores (TEXT_LABELS order) with its analysis."""
    return fuse_batch([list(model_row)], [analysis], thresholds, weights)[0]


def _evidence(
    labels: list[str],
    model_score: Mapping[str, float],
    analysis: TextAnalysis,
    thresholds: Mapping[str, float],
    raised: set[str],
) -> list[Evidence]:
    text = analysis.original
    hits = sorted(analysis.hits, key=lambda h: (h.start, h.end))
    evidence: list[Evidence] = []
    for label in labels:
        if model_score[label] >= thresholds[label] or label in raised:
            evidence.append(Evidence(label, "model", text, 0, len(text)))
        for hit in hits:
            if hit.label == label:
                evidence.append(
                    Evidence(label, "lexicon", text[hit.start : hit.end], hit.start, hit.end)
                )
        if label in raised:
            for c in analysis.contacts:
                evidence.append(Evidence(label, "contact", text[c.start : c.end], c.start, c.end))
    return evidence


def fused_scores(
    model_scores: np.ndarray,
    analyses: Sequence[TextAnalysis],
    weights: FusionWeights = DEFAULT_WEIGHTS,
) -> np.ndarray:
    """Fused scores of a batch, shape (n, labels), for evaluation with and without fusion."""
    if len(model_scores) != len(analyses):
        raise ValueError("one analysis per row of scores is needed")
    out = _clean(model_scores)
    for i, analysis in enumerate(analyses):
        if analysis.contacts or analysis.hits:
            out[i] = _fuse_row(out[i].tolist(), analysis, weights)[0]
    return out.astype(np.float32)
