"""Our reading of the QQ-group ad test (data/qq_test_audit.jsonl): scored beside the published
labels, never gated, and every entry names a published ad of the test."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from models.labels import TEXT_LABELS
from models.paths import DATA_DIR
from training.data import Example, Splits, audit_key, datasets_dir, load_mc_qq, load_qq_test_audit
from training.evaluate import QQ_OUR_READING, Report, evaluate_scorer
from training.gate import compare_evaluations

AD = TEXT_LABELS.index("ad")
# "谁有黑卡" asks for black cards: an ad in the published labels, not one by LABELS.md.
TEST = [
    Example("谁有黑卡", ("ad",), "mc_qq/test"),
    Example("出二手vape", ("ad",), "mc_qq/test"),
    Example("今天服务器卡不卡", (), "mc_qq/test"),
]


def _flag_all_as_ad(texts: Sequence[str]) -> np.ndarray:
    scores = np.zeros((len(texts), len(TEXT_LABELS)))
    scores[:, AD] = 1.0
    return scores


def _report(scorer: Callable[[Sequence[str]], np.ndarray] = _flag_all_as_ad) -> Report:
    thresholds = np.full(len(TEXT_LABELS), 0.5)
    splits = Splits(qq_ad_test=TEST)
    return evaluate_scorer("m", scorer, thresholds, splits, fusion=False, public=False)


def test_the_same_predictions_are_scored_against_both_readings() -> None:
    assert audit_key("谁有黑卡") in load_qq_test_audit()
    report = _report()
    published = report.sections["QQ-group ad test"]["ad"]
    ours = report.sections[QQ_OUR_READING]["ad"]
    assert (published.precision, published.recall) == pytest.approx((2 / 3, 1.0))
    assert (ours.precision, ours.recall) == pytest.approx((1 / 3, 1.0))


def test_the_gate_does_not_compare_our_reading() -> None:
    def flag_only_the_request(texts: Sequence[str]) -> np.ndarray:
        scores = np.zeros((len(texts), len(TEXT_LABELS)))
        scores[:, AD] = [t == "谁有黑卡" for t in texts]
        return scores

    rows = compare_evaluations(_report(), _report(flag_only_the_request), tolerance=0.01)
    assert {row.section for row in rows} >= {"QQ-group ad test"}
    assert QQ_OUR_READING not in {row.section for row in rows}


def test_every_entry_explains_itself() -> None:
    rows = [
        json.loads(line)
        for line in (DATA_DIR / "qq_test_audit.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert rows and all(row["why"] and "ad" not in row["labels"] for row in rows)
    assert len({row["key"] for row in rows}) == len(rows)


@pytest.mark.skipif(not datasets_dir().is_dir(), reason="../shared/datasets is not beside the repo")
def test_every_entry_names_a_published_ad_of_the_test() -> None:
    published_ads = {audit_key(e.text) for e in load_mc_qq("test") if "ad" in e.labels}
    assert set(load_qq_test_audit()) <= published_ads
