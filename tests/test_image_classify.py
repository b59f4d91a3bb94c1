"""ImageClassifier end to end: ad posters are flagged, ordinary pictures are not, broken ones
raise only typed errors, floods are counted.

The tiny test release (tests/conftest.py) stands in for the text model, so text-label
assertions rest on lexicon and contact evidence, which does not depend on the model.
"""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from models.image import (
    ImageClassifier,
    ImageError,
    ImageResult,
    ImageSettings,
    MemoryFloodCounter,
)
from models.image.classify import ImageEvidence
from models.image.nsfw import DEFAULT_CONFIG
from models.labels import TEXT_LABELS
from models.release import TextModel, load_latest

FIXTURES = Path(__file__).parent / "fixtures" / "images"
ORDINARY = ["photo_landscape.jpg", "photo_skin.jpg", "photo_shapes.webp", "screenshot_chat.png"]
BROKEN = {
    "truncated.jpg": (422, "invalid_image"),
    "bomb.png": (413, "image_too_large"),
    "image.bmp": (415, "unsupported_image_format"),
    "image.tiff": (415, "unsupported_image_format"),
    "random.bin": (422, "invalid_image"),
}
T0 = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)


def b64(name: str) -> str:
    return base64.b64encode((FIXTURES / name).read_bytes()).decode()


@pytest.fixture(scope="module")
def text_model(tiny_releases: Path) -> TextModel:
    return load_latest(tiny_releases)


@pytest.fixture(scope="module")
def classifier(text_model: TextModel) -> ImageClassifier:
    return ImageClassifier(text_model, flood_counter=MemoryFloodCounter())


@pytest.fixture(scope="module")
def always_ocr(text_model: TextModel) -> ImageClassifier:
    return ImageClassifier(text_model, settings=ImageSettings(ocr="always", warmup=False))


def evidence(result: ImageResult, label: str, source: str, basis: str) -> list[str]:
    return [
        e.text
        for e in result.evidence
        if isinstance(e, ImageEvidence) and (e.label, e.source, e.basis) == (label, source, basis)
    ]


def test_qr_ad_poster_is_flagged_qrcode_and_image_ad(classifier: ImageClassifier) -> None:
    result = classifier.classify(b64("poster_qr_ad.jpg"))
    assert {"qrcode", "image_ad", "ad"} <= set(result.labels)
    assert result.labels.index("image_ad") < result.labels.index("ad")  # text labels follow
    assert result.scores["qrcode"] == 1.0 and result.scores["image_ad"] >= 0.5
    assert [c.payload for c in result.qrcodes] == ["https://weixin.qq.com/g/AbCdEf123"]
    assert "加微信 abc12345" in result.ocr_text and "扫码进群" in result.ocr_text
    # Model-independent evidence: the lexicon's 扫码进群 and the WeChat ID, both from OCR.
    assert "扫码进群" in evidence(result, "ad", "ocr", "lexicon")
    assert "abc12345" in evidence(result, "ad", "ocr", "contact")
    assert {"type": "wechat", "value": "abc12345"} in [
        {"type": c.type, "value": c.value} for c in result.text.contacts
    ]
    assert evidence(result, "qrcode", "qrcode", "detector") == ["https://weixin.qq.com/g/AbCdEf123"]
    for item in result.evidence:  # OCR spans index ocr_text
        if item.source == "ocr":
            assert result.ocr_text[item.start : item.end] == item.text


def test_qr_payload_goes_through_the_text_pipeline(classifier: ImageClassifier) -> None:
    result = classifier.classify(b64("poster_qr_ad.jpg"))
    url = "https://weixin.qq.com/g/AbCdEf123"
    assert {"type": "url", "value": url.lower()} in [
        {"type": c.type, "value": c.value} for c in result.text.contacts
    ]
    for item in result.evidence:
        if item.source == "qrcode" and item.label in TEXT_LABELS:
            assert url[item.start : item.end] == item.text


def test_kanjia_poster_gets_vote_bargain_from_its_text(classifier: ImageClassifier) -> None:
    result = classifier.classify(b64("poster_kanjia_qr.jpg"))
    assert {"qrcode", "image_ad", "vote_bargain"} <= set(result.labels)
    assert "砍一刀" in evidence(result, "vote_bargain", "ocr", "lexicon")
    assert result.text.scores["vote_bargain"] >= result.text.scores["insult"]


def test_text_only_ad_poster_is_image_ad_without_qrcode(classifier: ImageClassifier) -> None:
    result = classifier.classify(b64("poster_text_ad.jpg"))
    assert "qrcode" not in result.labels and result.scores["qrcode"] == 0.0
    assert {"image_ad", "ad"} <= set(result.labels)
    assert {"宝妈兼职", "躺赚"} <= set(evidence(result, "ad", "ocr", "lexicon"))
    assert "1234567890" in evidence(result, "ad", "ocr", "contact")


@pytest.mark.parametrize("name", ORDINARY)
def test_ordinary_pictures_are_not_flagged(classifier: ImageClassifier, name: str) -> None:
    result = classifier.classify(b64(name))
    assert "qrcode" not in result.labels and "nsfw" not in result.labels
    assert result.qrcodes == [] and result.scores["qrcode"] == 0.0
    if "nsfw" in result.scores:
        assert result.scores["nsfw"] < classifier.nsfw.threshold


def test_photos_skip_ocr_and_screenshots_are_read(classifier: ImageClassifier) -> None:
    photo = classifier.classify(b64("photo_landscape.jpg"))
    assert not photo.ocr_ran and photo.ocr_text == "" and photo.labels == []
    chat = classifier.classify(b64("screenshot_chat.png"))
    assert chat.ocr_ran and "九点开会" in chat.ocr_text
    assert chat.text.labels == [] and chat.labels == []


def test_damaged_code_is_flagged_without_payload(classifier: ImageClassifier) -> None:
    result = classifier.classify(b64("qr_damaged.png"))
    assert result.labels == ["qrcode"]
    assert 0.5 <= result.scores["qrcode"] < 1.0
    assert result.to_dict()["qrcodes"] == []


def test_animation_is_read_past_its_first_frame(classifier: ImageClassifier) -> None:
    result = classifier.classify(b64("animated.gif"))
    assert result.frame_count == 8
    assert [c.payload for c in result.qrcodes] == ["https://t.example.cn/join/77"]
    assert "扫码进群" in result.ocr_text
    assert "扫码进群" in evidence(result, "ad", "ocr", "lexicon")


@pytest.mark.parametrize(("name", "expected"), sorted(BROKEN.items()))
def test_broken_pictures_raise_typed_errors(
    classifier: ImageClassifier, name: str, expected: tuple[int, str]
) -> None:
    with pytest.raises(ImageError) as caught:
        classifier.classify(b64(name), group_id="g", user_id="u")
    assert (caught.value.status, caught.value.code) == expected


@pytest.mark.parametrize("size", [(1, 1), (5000, 1), (1, 5000), (3, 40), (4000, 4000)])
@pytest.mark.parametrize(
    ("mode", "fmt"), [("RGBA", "PNG"), ("P", "GIF"), ("L", "JPEG"), ("RGB", "WEBP")]
)
def test_extreme_shapes_are_classified_without_errors(
    always_ocr: ImageClassifier, size: tuple[int, int], mode: str, fmt: str
) -> None:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, fmt)
    result = always_ocr.classify(buf.getvalue())
    assert result.labels == [] and (result.width, result.height) == size


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["poster_qr_ad.jpg", "animated.gif", "qr_plain.png", "photo_shapes.webp"]),
    position=st.integers(min_value=0, max_value=1 << 20),
    value=st.integers(0, 255),
    cut=st.integers(0, 2000),
)
def test_corrupted_pictures_give_a_result_or_a_typed_error(
    classifier: ImageClassifier, name: str, position: int, value: int, cut: int
) -> None:
    data = bytearray((FIXTURES / name).read_bytes())
    for k in range(16):
        data[(position + 131 * k) % len(data)] = (value + 7 * k) % 256
    try:
        result = classifier.classify(bytes(data[: len(data) - cut]), group_id="fuzz")
    except ImageError as exc:
        assert exc.status in (413, 415, 422)
    else:
        assert all(0.0 <= v <= 1.0 for v in result.scores.values())


def test_bad_base64_raises_typed_error(classifier: ImageClassifier) -> None:
    text = (FIXTURES / "bad_base64.txt").read_text(encoding="utf-8")
    with pytest.raises(ImageError) as caught:
        classifier.classify(text)
    assert (caught.value.status, caught.value.code) == (422, "invalid_base64")


def test_to_dict_is_the_contract_image_object(classifier: ImageClassifier) -> None:
    result = classifier.classify(b64("poster_qr_ad.jpg"), group_id="contract", user_id="u")
    out = json.loads(json.dumps(result.to_dict(), ensure_ascii=False))
    expected_keys = {"labels", "scores", "qrcodes", "ocr_text", "duplicate_count"}
    assert expected_keys <= set(out) <= expected_keys | {"unavailable"}
    assert out["qrcodes"] == ["https://weixin.qq.com/g/AbCdEf123"]
    assert {"qrcode", "image_ad"} <= set(out["scores"])
    assert all(0.0 <= v <= 1.0 for v in out["scores"].values())
    assert out["duplicate_count"] == 0
    assert set(result.text.to_dict()["scores"]) == set(TEXT_LABELS)
    for item in result.evidence:
        assert set(item.to_dict()) == {"label", "source", "text", "start", "end"}
        assert item.source in {"model", "ocr", "qrcode"}


def test_repeated_picture_counts_as_duplicates(text_model: TextModel) -> None:
    counter = MemoryFloodCounter(window=timedelta(minutes=10))
    classifier = ImageClassifier(
        text_model, flood_counter=counter, settings=ImageSettings(ocr="never", warmup=False)
    )
    data = b64("photo_shapes.webp")
    counts = [
        classifier.classify(data, group_id="g", user_id="u", now=T0 + timedelta(seconds=i))
        for i in range(5)
    ]
    assert [r.duplicate_count for r in counts] == [0, 1, 2, 3, 4]
    assert classifier.classify(data, group_id="other", now=T0).duplicate_count == 0
    assert classifier.classify(data, now=T0).duplicate_count == 0  # no group: nothing counted
    later = T0 + timedelta(minutes=30)
    assert classifier.classify(data, group_id="g", user_id="u", now=later).duplicate_count == 0


def test_ocr_settings_never_and_always(text_model: TextModel) -> None:
    never = ImageClassifier(text_model, settings=ImageSettings(ocr="never", warmup=False))
    result = never.classify(b64("poster_qr_ad.jpg"))
    assert result.ocr_text == "" and "qrcode" in result.labels
    always = ImageClassifier(text_model, settings=ImageSettings(ocr="always", warmup=False))
    assert always.classify(b64("photo_landscape.jpg")).ocr_ran


def test_lexicon_alone_works_without_a_text_model() -> None:
    classifier = ImageClassifier(None, settings=ImageSettings(warmup=False))
    result = classifier.classify(b64("poster_text_ad.jpg"))
    assert {"image_ad", "ad"} <= set(result.labels)
    assert evidence(result, "ad", "ocr", "model") == []  # no model, no model evidence


def test_missing_nsfw_model_is_reported_unavailable(text_model: TextModel, tmp_path: Path) -> None:
    config = json.loads(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    config["model"] = "package:not_installed_nsfw_pkg/model.onnx"
    (tmp_path / "nsfw.json").write_text(json.dumps(config), encoding="utf-8")
    classifier = ImageClassifier(
        text_model, settings=ImageSettings(nsfw_config=tmp_path / "nsfw.json", warmup=False)
    )
    result = classifier.classify(b64("photo_skin.jpg"))
    assert "nsfw" not in result.scores and result.unavailable == ["nsfw"]
    assert result.to_dict()["unavailable"] == ["nsfw"]
    assert classifier.components()["nsfw"] is None


def test_nsfw_label_from_a_plugged_in_detector(text_model: TextModel, tmp_path: Path) -> None:
    from tests.test_image_nsfw import fake_detector_onnx, write_config

    fake_detector_onnx(tmp_path / "fake.onnx")
    settings = ImageSettings(nsfw_config=write_config(tmp_path), ocr="never", warmup=False)
    classifier = ImageClassifier(text_model, settings=settings)
    white = Image.new("RGB", (200, 200), (255, 255, 255))
    path = tmp_path / "white.png"
    white.save(path)
    result = classifier.classify(path.read_bytes())
    assert result.labels == ["nsfw"] and result.scores["nsfw"] > 0.99
    assert evidence(result, "nsfw", "model", "detector") == ["EXPOSED_A"]


def test_concurrent_calls_agree_with_sequential_ones(classifier: ImageClassifier) -> None:
    names = ["poster_qr_ad.jpg", "photo_landscape.jpg", "screenshot_chat.png", "qr_plain.png"]
    sequential = [classifier.classify(b64(n)).to_dict() for n in names]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda n: classifier.classify(b64(n)).to_dict(), names * 2))
    assert concurrent == sequential * 2
