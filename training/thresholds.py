"""Looking at a release's thresholds on an evaluation set, and releasing new ones.

Used by notebooks/threshold_tuning.ipynb and notebooks/error_analysis.ipynb:
- `score_set` scores examples as serving does: the model's scores, and the fused scores
  (lexicon hits, contacts; models/fusion.py) that the thresholds apply to;
- `pr_curve`, `label_confusion`, `thresholds_for_precision`, `worst_errors` look at them;
- `write_tuned_release` copies a release under a new version with other thresholds into
  releases/, where the service finds it on `POST /v1/admin/reload` (the model and vocabulary
  files are copied unchanged, so their checksums stay valid).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.fusion import load_fusion_weights
from models.labels import TEXT_LABELS
from models.release import (
    RELEASES_DIR,
    Manifest,
    ReleaseError,
    TextModel,
    list_releases,
    sha256_file,
    version_key,
)
from models.text.pipeline import analyze
from training.data import Example
from training.evaluate import as_served, model_scores, rounded
from training.metrics import PRF, cuts, per_label, threshold_for_precision
from training.rollout import Layout
from training.train import next_version

CLEAN = "clean"
CONFUSION_AXES: tuple[str, ...] = (*TEXT_LABELS, CLEAN)


@dataclass
class ScoredSet:
    """An evaluation set scored by one release (rows: examples, columns: TEXT_LABELS)."""

    examples: list[Example]
    truth: np.ndarray  # bool
    known: np.ndarray  # bool: the example's source annotated the label (Example.mask)
    model: np.ndarray  # the model's own scores (fusion off)
    fused: np.ndarray  # final scores, compared with the thresholds

    def predicted(self, thresholds: Mapping[str, float]) -> np.ndarray:
        return self.fused >= np.array([thresholds[label] for label in TEXT_LABELS])


def score_set(model: TextModel, examples: Sequence[Example]) -> ScoredSet:
    scores, analyses = model_scores(model, [e.text for e in examples])
    shape = (-1, len(TEXT_LABELS))
    return ScoredSet(
        list(examples),
        np.array([e.target() for e in examples], dtype=bool).reshape(shape),
        np.array([e.mask() for e in examples], dtype=bool).reshape(shape),
        rounded(scores),
        as_served(model, scores, analyses),
    )


def pr_curve(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and threshold at each distinct score, highest threshold first.

    A message is flagged when its score >= the threshold, as in serving.
    """
    every = cuts(truth, scores)
    kept = every.last_of_tie
    return every.precision[kept], every.recall[kept], every.scores[kept]


def thresholds_for_precision(
    scored: ScoredSet, target: float | Mapping[str, float]
) -> dict[str, float]:
    """Per label, the lowest threshold whose precision reaches the target (most recall).

    `target` is one precision for every label, or a precision per label (only those labels
    are returned). Only rows that annotate the label count. See
    `training.metrics.threshold_for_precision` for the fallbacks.
    """
    targets = target if isinstance(target, Mapping) else dict.fromkeys(TEXT_LABELS, target)
    chosen = {}
    for i, label in enumerate(TEXT_LABELS):
        if label in targets:
            rows = scored.known[:, i]
            limit = threshold_for_precision(
                scored.truth[rows, i], scored.fused[rows, i], targets[label]
            )
            chosen[label] = round(limit, 4)
    return chosen


def metrics_at(scored: ScoredSet, thresholds: Mapping[str, float]) -> dict[str, PRF]:
    """Precision, recall and F1 per label at the given thresholds (annotated rows only)."""
    limits = [thresholds[label] for label in TEXT_LABELS]
    return per_label(scored.truth, scored.fused, limits, TEXT_LABELS, scored.known)


def label_confusion(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Counts[i, j]: messages with true label i that got predicted label j (CONFUSION_AXES).

    Multi-label: a message counts once for every pair of its true and predicted labels; the
    last row and column, `clean`, are messages with no true / no predicted label.
    """
    truth_ = np.c_[truth.astype(bool), ~truth.any(axis=1)].astype(np.int64)
    predicted_ = np.c_[predicted.astype(bool), ~predicted.any(axis=1)].astype(np.int64)
    return truth_.T @ predicted_


@dataclass(frozen=True)
class ErrorCase:
    """One wrong decision on one label, with the evidence serving would have seen."""

    kind: str  # false positive | false negative
    label: str
    text: str
    true_labels: tuple[str, ...]
    predicted: tuple[str, ...]
    model_score: float
    fused_score: float
    threshold: float
    lexicon: tuple[str, ...]  # "label:term" (pinyin-view hits marked)
    contacts: tuple[str, ...]  # "type:value"
    cause: str


def _labels_of(row: np.ndarray) -> tuple[str, ...]:
    return tuple(label for label, on in zip(TEXT_LABELS, row, strict=True) if on)


def worst_errors(
    scored: ScoredSet, thresholds: Mapping[str, float], kind: str, n: int | None = 20
) -> list[ErrorCase]:
    """The `n` (None: all) most confident false positives (highest fused score over the
    threshold) or false negatives (lowest fused score of a true label), over all labels."""
    if kind not in ("false positive", "false negative"):
        raise ValueError("kind is 'false positive' or 'false negative'")
    predicted = scored.predicted(thresholds)
    wrong = predicted & ~scored.truth if kind == "false positive" else scored.truth & ~predicted
    wrong &= scored.known
    rows, cols = np.nonzero(wrong)
    order = np.argsort(scored.fused[rows, cols], kind="stable")
    if kind == "false positive":
        order = order[::-1]
    cases = []
    for k in order[:n]:
        i, j = int(rows[k]), int(cols[k])
        label, text = TEXT_LABELS[j], scored.examples[i].text
        analysis = analyze(text)
        hits = tuple(
            f"{h.label}:{h.term}" + (" (pinyin)" if h.view == "pinyin" else "")
            for h in analysis.hits
        )
        own_hit = any(h.label == label for h in analysis.hits)
        model_score, threshold = float(scored.model[i, j]), float(thresholds[label])
        if kind == "false positive":
            cause = "model" if model_score >= threshold else "lexicon" if own_hit else "contacts"
        else:
            cause = "model too low" + ("; lexicon hit too weak" if own_hit else "; no lexicon hit")
        cases.append(
            ErrorCase(
                kind,
                label,
                text,
                _labels_of(scored.truth[i]),
                _labels_of(predicted[i]),
                round(model_score, 4),
                round(float(scored.fused[i, j]), 4),
                threshold,
                hits,
                tuple(f"{c.type}:{c.value}" for c in analysis.contacts),
                cause,
            )
        )
    return cases


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table (for IPython.display.Markdown); `|` in cells is escaped."""

    def cell(value: object) -> str:
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_tuned_release(
    source: Path,
    thresholds: Mapping[str, float],
    *,
    releases: Path = RELEASES_DIR,
    note: str = "",
    today: dt.date | None = None,
    fusion: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Copy `source` into `releases` under the next version, with new thresholds (and new
    fusion weights, the manifest's `fusion` key, and `config` entries that chose them, when
    given).

    The copy is made in a hidden staging folder, checked (checksums, manifest, the model
    loads), then renamed into place, so a reload never sees half of it. The new version must
    be the newest under `releases`, or the service would not serve it.
    """
    source, releases = Path(source), Path(releases)
    if not releases.is_dir():  # a mistyped folder would hold a release nobody serves
        raise ReleaseError(f"no releases folder at {releases}")
    raw: dict[str, Any] = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    version = next_version([*Layout(releases).folders(), source.parent], today)
    newest = list_releases(releases)
    if newest and version_key(version) <= version_key(newest[-1].name):
        raise ReleaseError(f"{version} would not be newer than the served {newest[-1].name}")
    old_thresholds = dict(raw["thresholds"])
    raw_fusion_before = raw.get("fusion")
    new_thresholds = {label: round(float(thresholds[label]), 4) for label in raw["labels"]}
    changed = {
        k: (old_thresholds.get(k), v)
        for k, v in new_thresholds.items()
        if old_thresholds.get(k) != v
    }
    raw.update(
        version=version,
        thresholds=new_thresholds,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    if fusion is not None:
        raw["fusion"] = dict(fusion)
    trained_with = {k: raw.get("config", {}).get(k) for k in config or {}}
    if config:
        raw["config"] = {**raw.get("config", {}), **config}
    metrics = {k: v for k, v in raw.get("metrics", {}).items() if k not in ("evaluation", "gate")}
    metrics["tuned_from"] = {
        "release": source.name,
        "thresholds": old_thresholds,
        "fusion": raw_fusion_before,
        "config": trained_with,  # the settings training ran with, where tuning changed them
    }
    raw["metrics"] = metrics
    summary = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()) or "none changed"
    raw["notes"] = [*raw.get("notes", []), f"thresholds tuned from {source.name}: {summary}"]
    if note:
        raw["notes"].append(note)
    Manifest.model_validate(raw)  # thresholds: every label, strictly between 0 and 1

    releases.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=releases))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        for name, digest in raw["sha256"].items():
            if sha256_file(staging / name) != digest:
                raise ReleaseError(f"{name} of {source} fails its checksum")
        (staging / "manifest.json").write_text(
            json.dumps(raw, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        card = staging / "MODEL_CARD.md"
        with card.open("a", encoding="utf-8") as handle:
            handle.write(
                f"\n## Release {version}: thresholds changed\n\n"
                f"Copied from {source.name} with new thresholds ({summary}). Measurements above "
                f"are at {source.name}'s thresholds; re-run `python -m training.evaluate "
                f"--release {releases / version}`.\n"
            )
        TextModel.load(staging)
        load_fusion_weights(staging)  # FusionConfigError if the weights are malformed
        target = releases / version
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
