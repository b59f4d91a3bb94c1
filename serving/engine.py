"""One loaded release, ready to classify batches of texts (runs in the batch worker thread)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.fusion import (
    DEFAULT_WEIGHTS,
    FusionConfigError,
    FusionResult,
    FusionWeights,
    fuse_batch,
    load_fusion_weights,
)
from models.labels import TEXT_LABELS
from models.release import ReleaseError, TextModel, list_releases
from models.text.pipeline import analyze, model_text

log = logging.getLogger("qunguard.engine")

# A length group closes when the next text is more than twice as long as the group's shortest
# (so padding at most doubles a row), unless the group is still smaller than this: many tiny
# ONNX calls cost more than some padding.
MIN_GROUP = 4
WARMUP_LENGTHS = (8, 16, 32, 64)

EMPTY_RESULT = FusionResult(
    labels=[], scores=dict.fromkeys(TEXT_LABELS, 0.0), evidence=[], contacts=[]
)


@dataclass(frozen=True, slots=True)
class Classified:
    """The verdict on one message and its JSON-ready fields, computed once in the worker."""

    result: FusionResult
    payload: dict[str, Any]


_EMPTY = Classified(EMPTY_RESULT, EMPTY_RESULT.to_dict())


def length_groups(lengths: Sequence[int], max_len: int) -> list[list[int]]:
    """Indices grouped by length (shortest first) so that each group pads little."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    current: list[int] = []
    floor = 1
    for i in order:
        n = max(1, min(lengths[i], max_len))
        if current and n > 2 * floor and len(current) >= MIN_GROUP:
            groups.append(current)
            current = []
        if not current:
            floor = n
        current.append(i)
    if current:
        groups.append(current)
    return groups


class Engine:
    """A release's model with its fusion weights; `classify` is thread-safe but blocking."""

    def __init__(self, model: TextModel, weights: FusionWeights = DEFAULT_WEIGHTS) -> None:
        self.model = model
        self.weights = weights
        self.thresholds = dict(model.thresholds)
        self.max_len = model.manifest.max_len

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def folder(self) -> Path:
        return self.model.folder

    def classify(self, texts: Sequence[str | None]) -> list[Classified]:
        """Analyse, score (grouped by length) and fuse; results in the order of `texts`."""
        out: list[Classified] = [_EMPTY] * len(texts)
        present = [(i, text) for i, text in enumerate(texts) if text is not None]
        if not present:
            return out
        positions = [i for i, _ in present]
        analyses = [analyze(text) for _, text in present]
        inputs = [model_text(a) for a in analyses]
        scores = np.empty((len(inputs), len(TEXT_LABELS)), dtype=np.float32)
        for group in length_groups([len(t) for t in inputs], self.max_len):
            scores[group] = self.model.predict_proba([inputs[j] for j in group])
        fused = fuse_batch(scores, analyses, self.thresholds, self.weights)
        for position, result in zip(positions, fused, strict=True):
            out[position] = Classified(result, result.to_dict())
        return out

    def warm_up(self, max_batch: int) -> None:
        """Run every batch size (powers of two up to max_batch) at every length bucket once.

        ONNX Runtime grows its memory arena and picks kernels on the first runs of a shape;
        doing it here keeps those first slow runs away from real requests.
        """
        sizes = sorted({min(2**p, max_batch) for p in range(11)} | {max_batch})
        lengths = sorted({min(n, self.max_len - 1) for n in (*WARMUP_LENGTHS, self.max_len - 1)})
        for size in sizes:
            for length in lengths:
                self.model.predict_proba(["测" * length] * size)
        self.classify(["加我微信 abc12345 领取福利", "今晚吃什么呀", None])


def load_engine(folder: Path, *, intra_op_threads: int = 1) -> Engine:
    """Load one release folder; raises ReleaseError when it cannot be served."""
    model = TextModel.load(folder, intra_op_threads=intra_op_threads)
    try:
        weights = load_fusion_weights(model.folder)
    except FusionConfigError as exc:
        raise ReleaseError(f"release {model.version}: {exc}") from exc
    return Engine(model, weights)


def load_newest(root: Path, *, intra_op_threads: int = 1) -> Engine:
    """The newest release under `root`, refused (ReleaseError) when it does not load."""
    releases = list_releases(root)
    if not releases:
        raise ReleaseError(f"no release under {root}")
    return load_engine(releases[-1], intra_op_threads=intra_op_threads)


def load_newest_servable(root: Path, *, intra_op_threads: int = 1) -> Engine:
    """At start-up: the newest release that loads, falling back to older ones with a warning."""
    releases = list_releases(root)
    if not releases:
        raise ReleaseError(f"no release under {root}")
    errors: list[str] = []
    for folder in reversed(releases):
        try:
            engine = load_engine(folder, intra_op_threads=intra_op_threads)
        except ReleaseError as exc:
            log.warning("release refused", extra={"folder": str(folder), "reason": str(exc)})
            errors.append(str(exc))
            continue
        return engine
    raise ReleaseError("; ".join(errors))
