"""Precision, recall, F1 and threshold choice for multi-label scores (plain numpy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float
    support: int

    def as_dict(self) -> dict[str, float]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "support": self.support,
        }


def prf(truth: np.ndarray, predicted: np.ndarray) -> PRF:
    """Binary precision/recall/F1 of boolean arrays (0 when undefined)."""
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    tp = int(np.sum(truth & predicted))
    fp = int(np.sum(~truth & predicted))
    fn = int(np.sum(truth & ~predicted))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PRF(precision, recall, f1, int(truth.sum()))


def binary_macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean F1 of the positive and the negative class (COLD's macro-F1)."""
    positive = prf(truth, predicted).f1
    negative = prf(~truth.astype(bool), ~predicted.astype(bool)).f1
    return (positive + negative) / 2


def per_label(
    truth: np.ndarray,
    scores: np.ndarray,
    thresholds: Sequence[float],
    labels: Sequence[str],
    masks: np.ndarray | None = None,
) -> dict[str, PRF]:
    """P/R/F1 per label; with `masks`, only rows where the label was annotated count."""
    predicted = scores >= np.asarray(thresholds)[None, :]
    known = np.ones_like(truth, dtype=bool) if masks is None else masks.astype(bool)
    return {
        label: prf(truth[known[:, i], i], predicted[known[:, i], i])
        for i, label in enumerate(labels)
    }


def macro_f1(results: dict[str, PRF]) -> float:
    with_support = [r.f1 for r in results.values() if r.support]
    return float(np.mean(with_support)) if with_support else 0.0


@dataclass(frozen=True)
class Cuts:
    """Every cut of scores sorted high to low: cut i passes rows 0..i. Ties must fall on the
    same side, so only cuts at the last row of a tie (`last_of_tie`) are real thresholds."""

    scores: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    last_of_tie: np.ndarray

    @property
    def f1(self) -> np.ndarray:
        p, r = self.precision, self.recall
        return 2 * p * r / np.maximum(p + r, 1e-9)


def cuts(truth: np.ndarray, scores: np.ndarray) -> Cuts:
    """Precision and recall at every cut of `scores` (recall 0 throughout without positives)."""
    truth = truth.astype(bool)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    tp = np.cumsum(truth[order])
    return Cuts(
        scores=sorted_scores,
        precision=tp / np.arange(1, len(sorted_scores) + 1),
        recall=tp / max(int(truth.sum()), 1),
        last_of_tie=np.r_[sorted_scores[1:] != sorted_scores[:-1], True],
    )


def best_f1(truth: np.ndarray, scores: np.ndarray) -> float:
    """The highest F1 any threshold gives on (truth, scores); ties fall on the same side.

    Threshold-free, so it ranks models by how well their scores separate the classes rather
    than by where 0.5 happens to cut (training.classifier picks the kept epoch with it).
    """
    if not truth.astype(bool).any():
        return 0.0
    every = cuts(truth, scores)
    return float(every.f1[every.last_of_tie].max())


def macro_best_f1(truth: np.ndarray, scores: np.ndarray, masks: np.ndarray | None = None) -> float:
    """Mean over the labels with positives of `best_f1`, on the rows annotated for each."""
    known = np.ones_like(truth, dtype=bool) if masks is None else masks.astype(bool)
    values = [
        best_f1(truth[known[:, i], i], scores[known[:, i], i])
        for i in range(truth.shape[1])
        if truth[known[:, i], i].any()
    ]
    return float(np.mean(values)) if values else 0.0


def threshold_for_precision(
    truth: np.ndarray, scores: np.ndarray, target: float, floor: float = 0.05
) -> float:
    """The lowest threshold whose precision on (truth, scores) reaches `target`.

    The lowest such threshold keeps the most recall. When no threshold reaches the target
    (or the label has no positives), the F1-maximising threshold is used instead, so a label
    never ends up switched off. Thresholds stay within [floor, 0.99].
    """
    if not truth.astype(bool).any():
        return 0.5
    every = cuts(truth, scores)
    ok = np.flatnonzero(every.last_of_tie & (every.precision >= target))
    if ok.size:
        cut = ok[-1]
    else:
        cut = int(np.argmax(np.where(every.last_of_tie, every.f1, -1.0)))
    return float(np.clip(every.scores[cut], floor, 0.99))
