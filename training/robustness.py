"""`python -m training.robustness`: does a release still catch held-out messages rewritten the
way evaders rewrite them, and does the rewriting make clean messages look bad?

Each held-out message of our corpus (never trained on) is rewritten once per kind, seeded:
- separators: emoji, spaces or symbols between characters (薇❤信, 加 V 信);
- traditional: traditional characters (OpenCC s2t);
- homophones: up to two Chinese characters swapped for another of the same toneless pinyin
  (傻逼 -> 沙比), drawn from the characters of our corpus;
- pinyin: two neighbouring Chinese characters written in pinyin letters (jia微信 -> jiawei信);
- digits: 0-9 written as circled digits (①③⑤);
- near homophones: up to two Chinese characters swapped for one a regional merger away
  (z/zh, c/ch, s/sh, n/l, an/ang, en/eng, in/ing: 傻逼 -> 萨逼); training never rewrites so;
- spaced pinyin: up to three neighbouring Chinese characters as spaced syllables
  (加微信 -> jia wei xin); training never rewrites so.
It prints, per label, the share of positives still flagged (recall) and the share of clean
held-out messages flagged, for the messages as written and for each rewriting.

    python -m training.robustness                       # the newest release under models/releases
    python -m training.robustness --release models/releases/2026.11.25-6 --seed 2
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.labels import TEXT_LABELS
from models.release import RELEASES_DIR, ReleaseError, TextModel
from training.data import Example, build_splits, load_corpus
from training.evaluate import score_texts
from training.rewrite import Rewriter
from training.rollout import Layout


def flagged(model: TextModel, texts: Sequence[str]) -> np.ndarray:
    """n x labels: which labels the release flags, as served."""
    thresholds = np.array([model.thresholds[label] for label in TEXT_LABELS])
    return score_texts(model, texts) >= thresholds


def robustness_table(model: TextModel, heldout: Sequence[Example], rewriter: Rewriter) -> str:
    """A markdown table: recall per label and clean flagged share, per rewriting."""
    truth = np.array([[label in e.labels for label in TEXT_LABELS] for e in heldout])
    clean = ~truth.any(axis=1)
    texts = [e.text for e in heldout]
    rows = [("as written", texts)]
    rows += [(name, [rewrite(t) for t in texts]) for name, rewrite in rewriter.kinds().items()]
    header = "| rewriting | " + " | ".join(TEXT_LABELS) + " | mean recall | clean flagged |"
    lines = [header, "|" + "---|" * (len(TEXT_LABELS) + 3)]
    for name, rewritten in rows:
        hits = flagged(model, rewritten)
        # A label or the clean part with no held-out rows has no share to print: "n/a".
        recall = [share(hits[truth[:, j], j]) for j in range(len(TEXT_LABELS))]
        known = [r for r in recall if r is not None]
        cells = " | ".join(map(_cell, recall))
        mean = _cell(float(np.mean(known)) if known else None)
        lines.append(f"| {name} | {cells} | {mean} | {_cell(share(hits[clean].any(axis=1)))} |")
    return "\n".join(lines)


def share(hits: np.ndarray) -> float | None:
    """The share of True in `hits`, or None when it is empty."""
    return float(hits.mean()) if len(hits) else None


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.robustness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--release", type=Path, help="release folder (default: newest)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    folder = args.release or Layout().served()
    if folder is None:
        parser.error(f"no release under {RELEASES_DIR}; name one with --release")
    try:
        model = TextModel.load(folder)
    except (OSError, ValueError, ReleaseError) as exc:
        parser.error(f"cannot load the release {folder}: {exc}")
    try:
        corpus = load_corpus()
    except (OSError, ValueError) as exc:  # a bad corpus line
        parser.error(str(exc))
    heldout = build_splits(corpus, public=False).heldout
    rewriter = Rewriter([e.text for e in corpus], args.seed)
    print(f"{model.version}: {len(heldout)} held-out messages, seed {args.seed}\n")
    print(robustness_table(model, heldout, rewriter))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
