"""The threshold rule: per label, a target precision on our written messages, bounded by how
much ordinary chat a threshold may flag. Used by training, the baseline and fusion tuning."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping

import numpy as np

from models.labels import TEXT_LABELS
from training.data import Example
from training.metrics import threshold_for_precision


def targets_of(examples: list[Example]) -> np.ndarray:
    return np.array([e.target() for e in examples], dtype=np.float32).reshape(-1, len(TEXT_LABELS))


def masks_of(examples: list[Example]) -> np.ndarray:
    return np.array([e.mask() for e in examples], dtype=np.float32).reshape(-1, len(TEXT_LABELS))


def choose_thresholds(
    truth: np.ndarray,
    scores: np.ndarray,
    target: float,
    masks: np.ndarray | None = None,
    clean: np.ndarray | None = None,
    max_clean_fpr: float | Mapping[str, float] = 0.0,
) -> dict[str, float]:
    """Per label, the lowest threshold reaching `target` precision on annotated rows, raised
    where needed so that at most `max_clean_fpr` of the `clean` rows (ordinary chat) pass it.

    Precision alone does not bound the false-positive rate on ordinary chat: the dev rows
    that measure precision are mostly messages written for the labels, and one score
    threshold can flag few of them wrongly yet many of the far more numerous clean messages
    a group sends. The cap is per label (eight labels at 0.2% flag at most 1.6% of chat);
    a mapping gives each label its own (labels it leaves out get no cap).
    """
    known = np.ones_like(truth, dtype=bool) if masks is None else masks.astype(bool)
    chosen = {}
    for i, label in enumerate(TEXT_LABELS):
        threshold = threshold_for_precision(truth[known[:, i], i], scores[known[:, i], i], target)
        cap = max_clean_fpr.get(label, 0.0) if isinstance(max_clean_fpr, Mapping) else max_clean_fpr
        if clean is not None and clean.any() and cap > 0:
            threshold = max(threshold, threshold_for_fpr(scores[clean, i], cap))
        chosen[label] = round(min(threshold, 0.99), 4)
    return chosen


def fraction(text: str) -> float:
    """A share between 0 and 1, for argparse (precision targets, clean-chat caps)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def label_value(text: str) -> tuple[str, float]:
    """`insult=0.003` -> ("insult", 0.003), for argparse."""
    label, _, value = text.partition("=")
    if label not in TEXT_LABELS:
        raise argparse.ArgumentTypeError(f"unknown label {label!r}")
    return label, fraction(value)


def clean_caps(default: float, overrides: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Every label's clean-chat cap: `default`, except the labels named in `overrides`."""
    return {**dict.fromkeys(TEXT_LABELS, default), **dict(overrides)}


def threshold_for_fpr(clean_scores: np.ndarray, max_fpr: float) -> float:
    """The lowest threshold (4 decimals, as serving compares) that at most `max_fpr` of
    `clean_scores` reach."""
    allowed = int(np.floor(max_fpr * len(clean_scores)))
    ordered = np.sort(np.round(clean_scores, 4))[::-1]
    if allowed >= len(ordered):
        return 0.0
    return float(ordered[allowed]) + 1e-4  # above the first score that must not pass


# Dev examples of these source families measure precision by default: the traffic we serve,
# written like ours. COLD and SWSR are annotated by other guidelines (group bias, sexism) and
# would pull the insult threshold towards their ambiguity. Clean chat (LCCC) dev rows bound
# the false-positive rate instead (--max-clean-fpr).
THRESHOLD_SOURCES = ("hand", "mc_qq", "report")
CLEAN_SOURCES = ("lccc",)


def threshold_rows(examples: list[Example], sources: str) -> np.ndarray:
    if sources == "all":
        return np.ones(len(examples), dtype=bool)
    return np.array([e.source.split("/")[0] in THRESHOLD_SOURCES for e in examples], dtype=bool)


def clean_rows(examples: list[Example]) -> np.ndarray:
    return np.array([e.source.split("/")[0] in CLEAN_SOURCES for e in examples], dtype=bool)


def add_rule_arguments(parser: argparse.ArgumentParser) -> None:
    """The threshold rule's options, shared by the commands that choose thresholds for a new
    model (training.train, training.merge), so both take and record them alike."""
    parser.add_argument("--target-precision", type=fraction, default=0.95)
    parser.add_argument(
        "--max-clean-fpr",
        type=fraction,
        default=0.002,
        help="per label, the largest share of dev clean chat (LCCC) a threshold may flag",
    )
    parser.add_argument(
        "--label-clean-fpr",
        type=label_value,
        action="append",
        default=[],
        metavar="LABEL=SHARE",
        help="another cap for one label (repeatable), e.g. insult=0.003",
    )
    parser.add_argument(
        "--threshold-on",
        choices=("ours", "all"),
        default="ours",
        help="dev rows that choose thresholds: ours = " + ",".join(THRESHOLD_SOURCES),
    )


def rule_config(args: argparse.Namespace) -> dict[str, object]:
    """The rule's settings as a release's manifest records them (`config`)."""
    return {
        "target_precision": args.target_precision,
        "max_clean_fpr": args.max_clean_fpr,
        "label_clean_fpr": dict(args.label_clean_fpr),
        "threshold_on": args.threshold_on,
    }
