"""Decision fusion: how lexicon hits and contacts move scores, labels, evidence, overrides."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from models.fusion import (
    DEFAULT_WEIGHTS,
    FusionConfigError,
    FusionWeights,
    fuse,
    fused_scores,
    load_fusion_weights,
)
from models.labels import TEXT_LABELS
from models.text.contacts import Contact
from models.text.lexicon import LexiconHit
from models.text.normalize import normalize
from models.text.pipeline import TextAnalysis, analyze

THRESHOLDS = dict.fromkeys(TEXT_LABELS, 0.5)
AD = TEXT_LABELS.index("ad")
INSULT = TEXT_LABELS.index("insult")


def scores(**values: float) -> list[float]:
    row = [0.01] * len(TEXT_LABELS)
    for label, value in values.items():
        row[TEXT_LABELS.index(label)] = value
    return row


def analysis(
    text: str, contacts: list[Contact] | None = None, hits: list[LexiconHit] | None = None
) -> TextAnalysis:
    return TextAnalysis(text, normalize(text), contacts or [], hits or [])


PHONE_TEXT = "有事打我电话 13812345678"
PHONE = Contact("phone", "13812345678", 7, 18)


def test_without_other_evidence_the_model_decides() -> None:
    result = fuse(scores(ad=0.8, insult=0.6), analysis("买买买"), THRESHOLDS)
    assert result.labels == ["ad", "insult"]
    assert result.scores["ad"] == 0.8 and result.flagged
    assert [(e.label, e.source) for e in result.evidence] == [("ad", "model"), ("insult", "model")]
    clean = fuse(scores(), analysis("收到"), THRESHOLDS)
    assert clean.labels == [] and not clean.flagged and clean.evidence == []


def test_labels_are_sorted_by_score_and_threshold_is_inclusive() -> None:
    thresholds = {**THRESHOLDS, "porn": 0.3}
    result = fuse(scores(ad=0.5, porn=0.3, fraud=0.9), analysis("x"), thresholds)
    assert result.labels == ["fraud", "ad", "porn"]
    assert fuse(scores(ad=0.49995), analysis("x"), THRESHOLDS).labels == ["ad"]  # rounds to 0.5


def test_a_contact_alone_does_not_make_an_ad() -> None:
    result = fuse(scores(), analysis(PHONE_TEXT, [PHONE]), THRESHOLDS)
    assert not result.flagged
    assert result.scores["ad"] < 0.1
    assert result.contacts == [PHONE]


def test_a_contact_with_an_ad_ish_score_pushes_it_over() -> None:
    text = "兼职日结, 有意打我电话 13812345678"
    contact = Contact("phone", "13812345678", 13, 24)
    without = fuse(scores(ad=0.2), analysis(text), THRESHOLDS)
    with_contact = fuse(scores(ad=0.2), analysis(text, [contact]), THRESHOLDS)
    assert without.labels == [] and with_contact.labels == ["ad"]
    odds = DEFAULT_WEIGHTS.contact_odds["ad"] * 0.2 / 0.8
    assert with_contact.scores["ad"] == round(odds / (1 + odds), 4)
    sources = [(e.source, e.text, e.start, e.end) for e in with_contact.evidence]
    assert sources == [("model", text, 0, len(text)), ("contact", "13812345678", 13, 24)]


def test_a_lexicon_hit_combines_by_noisy_or() -> None:
    text = "你个傻逼"
    hit = LexiconHit("insult", "傻逼", 2, 4, "text")
    result = fuse(scores(insult=0.3), analysis(text, hits=[hit]), THRESHOLDS)
    w = DEFAULT_WEIGHTS.lexicon["insult"]
    assert math.isclose(result.scores["insult"], 1 - 0.7 * (1 - w), abs_tol=1e-4)
    assert result.labels == ["insult"]
    assert [(e.source, e.text, e.start, e.end) for e in result.evidence] == [
        ("lexicon", "傻逼", 2, 4)
    ]


def test_repeated_terms_count_once_and_pinyin_counts_less() -> None:
    text = "sb sb 傻逼"
    pinyin = [LexiconHit("insult", "sb", i, i + 2, "pinyin") for i in (0, 3)]
    thresholds = {**THRESHOLDS, "insult": 0.3}
    once = fuse(scores(insult=0.0), analysis(text, hits=pinyin), thresholds)
    w = DEFAULT_WEIGHTS.lexicon["insult"] * DEFAULT_WEIGHTS.pinyin_factor
    assert math.isclose(once.scores["insult"], w, abs_tol=1e-4)
    assert len([e for e in once.evidence if e.source == "lexicon"]) == 2  # both spans shown
    both = fuse(
        scores(insult=0.0),
        analysis(text, hits=[*pinyin, LexiconHit("insult", "傻逼", 6, 8, "text")]),
        thresholds,
    )
    assert both.scores["insult"] > once.scores["insult"]


def test_fusion_off_leaves_the_model_scores() -> None:
    hit = LexiconHit("insult", "傻逼", 2, 4, "text")
    row = scores(ad=0.3, insult=0.2)
    result = fuse(row, analysis("你个傻逼", [PHONE], [hit]), THRESHOLDS, FusionWeights.off())
    assert result.scores["ad"] == 0.3 and result.scores["insult"] == 0.2
    assert result.labels == []


def test_scores_stay_in_range_on_odd_model_output() -> None:
    row = [float("nan"), 1.5, -0.2, 1.0, 0.0, 0.999999, 0.5, float("inf")]
    result = fuse(row, analysis(PHONE_TEXT, [PHONE]), THRESHOLDS)
    assert all(0.0 <= s <= 1.0 for s in result.scores.values())
    assert result.scores["ad"] == 0.0 and result.scores["insult"] == 1.0


def test_batch_scores_match_single_fusion() -> None:
    texts = ["加我微信abc12345领取福利", "你个傻逼", "今晚吃什么", "打我电话 13812345678"]
    analyses = [analyze(t) for t in texts]
    rng = np.random.default_rng(0)
    model = rng.uniform(0, 1, size=(len(texts), len(TEXT_LABELS))).astype(np.float32)
    batch = fused_scores(model, analyses)
    for i, a in enumerate(analyses):
        single = fuse(model[i].tolist(), a, THRESHOLDS).scores
        assert np.allclose(batch[i], [single[label] for label in TEXT_LABELS], atol=1e-4)
    off = fused_scores(model, analyses, FusionWeights.off())
    assert np.allclose(off, model)
    with pytest.raises(ValueError):
        fused_scores(model[:2], analyses)


def test_evidence_spans_index_the_original_text() -> None:
    text = "ＨＩ 加 V 信: abc12345 ～ 兼职刷单日结"
    result = fuse(scores(ad=0.6), analyze(text), THRESHOLDS)
    assert result.labels and result.labels[0] == "ad"
    assert {e.source for e in result.evidence} == {"model", "lexicon", "contact"}
    for evidence in result.evidence:
        assert text[evidence.start : evidence.end] == evidence.text


def test_to_dict_is_the_contract_shape() -> None:
    result = fuse(scores(ad=0.3), analysis(PHONE_TEXT, [PHONE]), THRESHOLDS)
    payload = result.to_dict()
    assert set(payload) == {"flagged", "labels", "scores", "evidence", "contacts"}
    assert payload["contacts"] == [{"type": "phone", "value": "13812345678"}]
    assert json.loads(json.dumps(payload)) == payload


def test_release_manifest_can_override_weights(tmp_path: Path) -> None:
    manifest = {"version": "x", "fusion": {"lexicon": {"ad": 0.2}, "pinyin_factor": 0.5}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    weights = load_fusion_weights(tmp_path)
    assert weights.lexicon["ad"] == 0.2 and weights.pinyin_factor == 0.5
    assert weights.lexicon["insult"] == DEFAULT_WEIGHTS.lexicon["insult"]
    assert weights.contact_odds == DEFAULT_WEIGHTS.contact_odds
    (tmp_path / "manifest.json").write_text(json.dumps({"version": "x"}))
    assert load_fusion_weights(tmp_path) == DEFAULT_WEIGHTS


@pytest.mark.parametrize(
    "fusion",
    [
        {"lexicon": {"ad": 1.5}},
        {"lexicon": {"spam": 0.5}},
        {"contact_odds": {"ad": 0.5}},
        {"pinyin_factor": "high"},
        {"lexicon": 0.5},
        {"mystery": 1},
        ["lexicon"],
    ],
)
def test_malformed_overrides_are_refused(tmp_path: Path, fusion: object) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"fusion": fusion}))
    with pytest.raises(FusionConfigError):
        load_fusion_weights(tmp_path)
