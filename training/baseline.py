"""`python -m training.baseline`: the TF-IDF + linear baseline the neural model must beat.

Character 1-3-grams of the same `model_text` the neural model sees, one logistic regression
per label (scikit-learn), thresholds chosen on dev for the same target precision, evaluated on
the same sets by the same code as a release (without fusion and with it).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from models.labels import TEXT_LABELS
from training.classifier import prepare
from training.data import build_splits
from training.evaluate import evaluate_scorer
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


class TfidfBaseline:
    """fit / predict_proba / predict over raw texts; one logistic regression per label."""

    def __init__(self, c: float = 4.0, max_features: int = 300_000) -> None:
        self.c = c
        self.vectorizer = TfidfVectorizer(
            analyzer="char",
            ngram_range=(1, 3),
            min_df=2,
            sublinear_tf=True,
            max_features=max_features,
        )
        self.models: list[LogisticRegression] = []

    def fit(
        self, texts: Sequence[str], targets: np.ndarray, masks: np.ndarray | None = None
    ) -> TfidfBaseline:
        """Each label learns from the rows that annotate it (`masks`, as for the neural model)."""
        features = self.vectorizer.fit_transform(prepare(texts))
        known = np.ones_like(targets, dtype=bool) if masks is None else masks.astype(bool)
        self.models = [
            LogisticRegression(C=self.c, max_iter=2000).fit(
                features[known[:, i]], targets[known[:, i], i]
            )
            for i in range(targets.shape[1])
        ]
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        features = self.vectorizer.transform(prepare(texts))
        return np.stack([m.predict_proba(features)[:, 1] for m in self.models], axis=1)

    def predict(self, texts: Sequence[str], thresholds: Sequence[float]) -> np.ndarray:
        return self.predict_proba(texts) >= np.asarray(thresholds)[None, :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.baseline", description=__doc__)
    parser.add_argument("--target-precision", type=fraction, default=0.95)
    parser.add_argument("--max-clean-fpr", type=fraction, default=0.002)
    parser.add_argument(
        "--label-clean-fpr", type=label_value, action="append", default=[], metavar="LABEL=SHARE"
    )
    parser.add_argument("--corpus-only", action="store_true")
    args = parser.parse_args(argv)
    try:
        splits = build_splits(public=not args.corpus_only)
    except (OSError, ValueError) as exc:  # ../shared/datasets missing, or a bad data line
        parser.error(str(exc))
    baseline = TfidfBaseline().fit(
        [e.text for e in splits.train], targets_of(splits.train), masks_of(splits.train)
    )
    dev_scores = baseline.predict_proba([e.text for e in splits.dev])
    pick = masks_of(splits.dev) * threshold_rows(splits.dev, "ours")[:, None]
    thresholds = choose_thresholds(
        targets_of(splits.dev),
        dev_scores,
        args.target_precision,
        pick,
        clean_rows(splits.dev),
        clean_caps(args.max_clean_fpr, args.label_clean_fpr),
    )
    print("thresholds:", thresholds)
    report = evaluate_scorer(
        "tfidf-baseline",
        baseline.predict_proba,
        np.array([thresholds[label] for label in TEXT_LABELS]),
        splits,
        fusion=False,
        public=not args.corpus_only,
    )
    print(report.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
