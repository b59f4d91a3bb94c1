"""Fusion weights learned on dev instead of set by hand.

`models/fusion.py` moves a label's score by a lexicon weight (noisy-OR per matched term) and a
contact likelihood ratio. Hand-set, they doubled the false positives on our held-out clean
messages for no F1 (our hard negatives quote the very words the lexicons list). Here each
label gets the pair from a small grid that gives the best F1 on the dev rows that choose
thresholds, with the threshold chosen for each pair by the usual rule (training.train:
precision target, clean-chat cap). Labels do not interact in fusion, so one fused matrix per
grid point scores every label at once. Ties keep the smaller weights (less of a lexicon that
cannot see context).

    python -m training.fusion_tuning --release models/releases/2026.11.25-2   # a tuned copy
    python -m training.fusion_tuning --release models/candidates/2026.11.26-45  # lands beside it
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from models.fusion import (
    DEFAULT_WEIGHTS,
    FusionConfigError,
    FusionWeights,
    fused_scores,
    load_fusion_weights,
)
from models.labels import TEXT_LABELS
from models.release import RELEASES_DIR, ReleaseError, TextModel, list_releases
from models.text.pipeline import TextAnalysis
from training.data import Example
from training.evaluate import model_scores
from training.metrics import binary_macro_f1, prf
from training.threshold_rule import (
    choose_thresholds,
    clean_caps,
    clean_rows,
    fraction,
    label_value,
    masks_of,
    targets_of,
    threshold_rows,
)

LEXICON_GRID = (0.0, 0.1, 0.2, 0.35, 0.5, 0.7)
CONTACT_GRID = (1.0, 2.0, 4.0, 6.0)


@dataclass
class FusionChoice:
    """Per-label fusion weights with the thresholds chosen under them, and dev F1 for both."""

    weights: FusionWeights
    thresholds: dict[str, float]
    dev_f1: dict[str, float]
    current_f1: dict[str, float]
    clean_flagged: float  # share of the dev clean-chat rows that any label flags

    @property
    def dev_macro_f1(self) -> float:
        """Mean dev F1 over the labels, as served (these fusion weights and thresholds)."""
        return float(np.mean(list(self.dev_f1.values())))

    def overrides(self) -> dict[str, object]:
        """The manifest's `fusion` key (models.fusion.load_fusion_weights reads it)."""
        return {
            "lexicon": dict(self.weights.lexicon),
            "contact_odds": dict(self.weights.contact_odds),
            "pinyin_factor": self.weights.pinyin_factor,
        }


def tune_fusion(
    scores: np.ndarray,
    analyses: list[TextAnalysis],
    truth: np.ndarray,
    precision_masks: np.ndarray,
    clean: np.ndarray,
    target_precision: float,
    max_clean_fpr: float | Mapping[str, float],
    current: FusionWeights = DEFAULT_WEIGHTS,
) -> FusionChoice:
    """The best (lexicon weight, contact odds) per label on dev; see the module docstring.

    `scores` are the model's own dev scores, `precision_masks` (n x labels) the rows that
    measure precision and F1, `clean` the dev clean-chat rows that bound false positives;
    `current` are the weights to compare with (reported as `current_f1`).
    """
    rows = precision_masks.astype(bool)

    def evaluate(weights: FusionWeights) -> tuple[dict[str, float], dict[str, float]]:
        fused = fused_scores(scores, analyses, weights)
        thresholds = choose_thresholds(
            truth, fused, target_precision, precision_masks, clean, max_clean_fpr
        )
        f1 = {
            label: prf(truth[rows[:, i], i], fused[rows[:, i], i] >= thresholds[label]).f1
            for i, label in enumerate(TEXT_LABELS)
        }
        return thresholds, f1

    _, current_f1 = evaluate(current)
    best: dict[str, tuple[float, float, float, float]] = {}  # label -> (f1, w, k, threshold)
    for weight in LEXICON_GRID:
        for odds in CONTACT_GRID:
            grid_point = FusionWeights(
                lexicon=dict.fromkeys(TEXT_LABELS, weight),
                pinyin_factor=DEFAULT_WEIGHTS.pinyin_factor,
                contact_odds=dict.fromkeys(TEXT_LABELS, odds),
            )
            thresholds, f1 = evaluate(grid_point)
            for label in TEXT_LABELS:
                if label not in best or f1[label] > best[label][0] + 1e-9:
                    best[label] = (f1[label], weight, odds, thresholds[label])
    weights = FusionWeights(
        lexicon={label: best[label][1] for label in TEXT_LABELS},
        pinyin_factor=DEFAULT_WEIGHTS.pinyin_factor,
        contact_odds={label: best[label][2] for label in TEXT_LABELS},
    )
    thresholds, dev_f1 = evaluate(weights)  # the same as best[...], computed as served
    flagged = flagged_share(scores, analyses, weights, thresholds, clean)
    return FusionChoice(weights, thresholds, dev_f1, current_f1, flagged)


def flagged_share(
    scores: np.ndarray,
    analyses: Sequence[TextAnalysis],
    weights: FusionWeights,
    thresholds: Mapping[str, float],
    rows: np.ndarray,
) -> float:
    """Share of the `rows` (a boolean mask) that any label flags under these fusion weights
    and thresholds; 0 when there are none. Only those rows are fused."""
    if not rows.any():
        return 0.0
    picked = np.flatnonzero(rows)
    fused = fused_scores(scores[picked], [analyses[i] for i in picked], weights)
    cut = np.array([thresholds[label] for label in TEXT_LABELS])
    return float((fused >= cut).any(axis=1).mean())


def cold_dev_macro_f1(
    dev: list[Example], scores: np.ndarray, analyses: list[TextAnalysis], choice: FusionChoice
) -> float:
    """COLD's macro-F1 on its dev rows under the chosen insult weights and threshold: the
    dev-side view of what an insult clean-chat cap costs on COLD (its test set stays unseen)."""
    rows = [i for i, e in enumerate(dev) if e.source == "cold/dev"]
    if not rows:
        return float("nan")
    insult = TEXT_LABELS.index("insult")  # fused on the COLD rows alone, not the whole dev set
    fused = fused_scores(scores[rows], [analyses[i] for i in rows], choice.weights)[:, insult]
    truth = np.array(["insult" in dev[i].labels for i in rows])
    return binary_macro_f1(truth, fused >= choice.thresholds["insult"])


@dataclass
class DevRows:
    """A model's own scores on the dev split, with the rows the threshold rule reads."""

    dev: list[Example]
    scores: np.ndarray
    analyses: list[TextAnalysis]
    masks: np.ndarray  # rows that measure precision and F1, per label
    clean: np.ndarray  # dev clean-chat rows that bound false positives

    @classmethod
    def score(cls, model: TextModel, dev: list[Example]) -> DevRows:
        scores, analyses = model_scores(model, [e.text for e in dev])
        config = model.manifest.config
        masks = masks_of(dev) * threshold_rows(dev, config.get("threshold_on", "ours"))[:, None]
        return cls(dev, scores, analyses, masks, clean_rows(dev))

    @cached_property
    def truth(self) -> np.ndarray:
        return targets_of(self.dev)

    def tune(
        self, target: float, caps: Mapping[str, float], current: FusionWeights
    ) -> FusionChoice:
        return tune_fusion(
            self.scores, self.analyses, self.truth, self.masks, self.clean, target, caps, current
        )

    def cold_macro_f1(self, choice: FusionChoice) -> float:
        return cold_dev_macro_f1(self.dev, self.scores, self.analyses, choice)


def write_choice(
    folder: Path,
    choice: FusionChoice,
    releases: Path,
    target: float,
    cap: float,
    per_label: list[tuple[str, float]],
    command: str = "training.fusion_tuning",
) -> Path:
    """A tuned copy of `folder` under `releases` with the chosen weights and thresholds;
    its manifest's note names the `command` that chose them."""
    from training.thresholds import write_tuned_release

    caps = clean_caps(cap, per_label)
    return write_tuned_release(
        folder,
        choice.thresholds,
        releases=releases,
        fusion=choice.overrides(),
        config={
            "target_precision": target,
            "max_clean_fpr": cap,
            "label_clean_fpr": dict(per_label),
        },
        note=f"fusion weights and thresholds tuned on dev ({command}) from "
        f"{folder.name}: target precision {target}, clean-chat caps {caps}",
    )


def print_choice(choice: FusionChoice, cold_dev: float) -> None:
    print("| label | lexicon | contact odds | threshold | dev F1 (tuned) | dev F1 (current) |")
    print("|---|---|---|---|---|---|")
    for label in TEXT_LABELS:
        print(
            f"| {label} | {choice.weights.lexicon[label]} | {choice.weights.contact_odds[label]} "
            f"| {choice.thresholds[label]} | {choice.dev_f1[label]:.3f} "
            f"| {choice.current_f1[label]:.3f} |"
        )
    print(f"\ndev macro-F1: {choice.dev_macro_f1:.4f}")
    print(f"dev clean chat flagged by any label: {choice.clean_flagged:.3%}")
    print(f"COLD dev macro-F1 at the insult threshold: {cold_dev:.3f}")


def recorded_rule(
    config: Mapping[str, Any],
    target: float | None,
    per_label: list[tuple[str, float]] | None,
) -> tuple[float, list[tuple[str, float]]]:
    """The target precision and per-label caps given on the command line, or else those the
    release's manifest records (`config`), so that re-tuning keeps the rule it was made by."""
    recorded = config.get("label_clean_fpr") or {}
    return (
        target if target is not None else float(config.get("target_precision", 0.95)),
        per_label or list(recorded.items()),
    )


def copy_destination(releases: Path | None, folder: Path) -> Path:
    """Where a tuned copy of `folder` goes: `--releases` when given, else beside `folder`, so
    a candidate's tuned copy stays a candidate (the gate decides what is served) instead of
    landing among the served releases."""
    return releases if releases is not None else folder.parent


RELEASES_HELP = (
    "where the default release is looked for (default: models/releases) and where the tuned "
    "copy goes (default: beside the release tuned)"
)


def load_for_tuning(
    parser: argparse.ArgumentParser, release: Path | None, releases: Path
) -> tuple[Path, TextModel, FusionWeights, list[Example]]:
    """The release to tune (default: the newest under `releases`), its current fusion
    weights and the dev split; parser.error on what cannot be read."""
    from training.data import build_splits

    found = list_releases(releases)
    folder = release or (found[-1] if found else None)
    if folder is None:
        parser.error(f"no release under {releases}; pass --release")
    try:
        model = TextModel.load(folder)
        current = load_fusion_weights(folder)
    except (ReleaseError, FusionConfigError) as exc:
        parser.error(f"cannot tune {folder}: {exc}")
    try:
        dev = build_splits().dev
    except (OSError, ValueError) as exc:  # ../shared/datasets missing, or a bad corpus line
        parser.error(str(exc))
    return folder, model, current, dev


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.fusion_tuning", description=__doc__)
    parser.add_argument("--release", type=Path, help="release folder (default: the served one)")
    parser.add_argument("--releases", type=Path, help=RELEASES_HELP)
    parser.add_argument("--target-precision", type=fraction)
    parser.add_argument("--max-clean-fpr", type=fraction)
    parser.add_argument(
        "--label-clean-fpr", type=label_value, action="append", metavar="LABEL=SHARE"
    )
    parser.add_argument("--dry-run", action="store_true", help="print, write no release")
    args = parser.parse_args(argv)
    if not args.dry_run and args.releases and not args.releases.is_dir():  # before tuning
        parser.error(f"no releases folder at {args.releases}")
    found_in = args.releases or RELEASES_DIR
    folder, model, current, dev = load_for_tuning(parser, args.release, found_in)
    config = model.manifest.config
    target, per_label = recorded_rule(config, args.target_precision, args.label_clean_fpr)
    cap = args.max_clean_fpr if args.max_clean_fpr is not None else config.get("max_clean_fpr", 0)
    rows = DevRows.score(model, dev)
    choice = rows.tune(target, clean_caps(float(cap), per_label), current)
    print_choice(choice, rows.cold_macro_f1(choice))
    if args.dry_run:
        return 0
    try:
        destination = copy_destination(args.releases, folder)
        written = write_choice(folder, choice, destination, target, float(cap), per_label)
    except ReleaseError as exc:  # e.g. a newer release is already served
        parser.error(str(exc))
    print(f"written: {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
