"""Images through POST /v1/classify: the merged verdict, the image object, errors, floods.

The tiny test release stands in for the text model, so text-label assertions rest on lexicon
and contact evidence from the pictures' OCR text, which does not depend on the model.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models.fusion import Evidence, FusionResult
from models.image import ImageResult
from models.image.classify import PIPELINE_VERSION, ImageEvidence
from models.labels import IMAGE_LABELS, TEXT_LABELS
from models.text.contacts import Contact
from serving.engine import Classified
from serving.images import ImageService, merge_image
from serving.schemas import ClassifyResponse
from tests.serving_fixtures import USER, assert_error, classify, running, settings_for

FIXTURES = Path(__file__).parent / "fixtures" / "images"
MiB = 1024 * 1024
REQUEST_IMAGE_BYTES = 12 * MiB  # the test app's per-request cap (default 24 MiB)
T0 = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
BROKEN = {
    "truncated.jpg": (422, "invalid_image"),
    "bomb.png": (413, "image_too_large"),
    "image.bmp": (415, "unsupported_image_format"),
    "image.tiff": (415, "unsupported_image_format"),
    "random.bin": (422, "invalid_image"),
}


def b64(name: str) -> str:
    return base64.b64encode((FIXTURES / name).read_bytes()).decode()


def junk_b64(size: int) -> str:
    """Base64 of `size` random bytes (not an image)."""
    return base64.b64encode(os.urandom(size)).decode()


def post(client: TestClient, messages: list[dict[str, Any]], *, dry_run: bool = False) -> Any:
    return client.post(
        "/v1/classify", json={"messages": messages, "dry_run": dry_run}, headers=USER
    )


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    ClassifyResponse.model_validate(body)
    return body["results"]


def group() -> str:
    return f"g-{uuid.uuid4().hex[:12]}"


def metric(client: TestClient, name: str) -> float:
    """The value of an unlabelled sample in /metrics (0 when absent)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("images-db")


@pytest.fixture(scope="module")
def client(tiny_releases: Path, data_dir: Path) -> Iterator[TestClient]:
    settings = settings_for(
        tiny_releases, data_dir=data_dir, max_request_image_bytes=REQUEST_IMAGE_BYTES
    )
    with running(settings) as client:
        yield client


@pytest.fixture
def images(client: TestClient) -> ImageService:
    return client.app.state.service.images  # type: ignore[attr-defined]


# --- verdicts ---------------------------------------------------------------------------------


def test_qr_ad_poster_merges_the_picture_text_into_the_message(client: TestClient) -> None:
    text = "看看这个"
    response = post(client, [{"id": "p", "text": text, "image": b64("poster_qr_ad.jpg")}])
    [result] = results(response)
    assert response.json()["model_version"]["image"] == PIPELINE_VERSION
    assert result["id"] == "p"
    image = result["image"]
    assert {"qrcode", "image_ad", "ad"} <= set(image["labels"])
    assert image["qrcodes"] == ["https://weixin.qq.com/g/AbCdEf123"]
    assert "加微信 abc12345" in image["ocr_text"] and image["duplicate_count"] == 0
    assert image["scores"]["qrcode"] == 1.0
    # The message's verdict carries the picture's text label, with OCR and QR evidence.
    assert result["flagged"] is True and "ad" in result["labels"]
    assert result["scores"]["ad"] >= 0.5
    sources = {(e["label"], e["source"]) for e in result["evidence"]}
    assert {("ad", "ocr"), ("qrcode", "qrcode"), ("image_ad", "ocr")} <= sources
    ocr_terms = {e["text"] for e in result["evidence"] if e["source"] == "ocr"}
    assert {"扫码进群", "abc12345"} <= ocr_terms
    for e in result["evidence"]:  # spans: OCR evidence indexes ocr_text, QR a payload
        if e["source"] == "ocr":
            assert image["ocr_text"][e["start"] : e["end"]] == e["text"]
        elif e["source"] == "qrcode":
            assert any(p[e["start"] : e["end"]] == e["text"] for p in image["qrcodes"])
    assert {"type": "wechat", "value": "abc12345"} in result["contacts"]
    assert {"type": "url", "value": "https://weixin.qq.com/g/abcdef123"} in result["contacts"]


def test_text_and_picture_contacts_are_merged_once(client: TestClient) -> None:
    text = "加我微信abc12345"
    [result] = results(post(client, [{"text": text, "image": b64("poster_qr_ad.jpg")}]))
    assert result["contacts"].count({"type": "wechat", "value": "abc12345"}) == 1
    text_evidence = [e for e in result["evidence"] if e["source"] in ("model", "contact")]
    assert text_evidence and all(text[e["start"] : e["end"]] == e["text"] for e in text_evidence)
    assert result["evidence"][: len(text_evidence)] == text_evidence  # the text's come first


def test_image_only_message_is_judged_on_the_picture_text(client: TestClient) -> None:
    [result] = results(post(client, [{"image": b64("poster_text_ad.jpg")}]))
    assert "ad" in result["labels"] and result["flagged"]
    assert {"image_ad", "ad"} <= set(result["image"]["labels"])
    assert "qrcode" not in result["image"]["labels"]
    assert {"宝妈兼职", "躺赚"} <= {e["text"] for e in result["evidence"] if e["source"] == "ocr"}


def test_a_qrcode_alone_flags_the_message(client: TestClient) -> None:
    [result] = results(post(client, [{"text": "收到", "image": b64("qr_plain.png")}]))
    assert "qrcode" in result["image"]["labels"]
    assert result["image"]["qrcodes"] == ["https://example.com/invite?code=8848"]
    assert result["flagged"] is True


@pytest.mark.parametrize("name", ["photo_landscape.jpg", "screenshot_chat.png"])
def test_photo_and_chat_screenshot_are_not_flagged(client: TestClient, name: str) -> None:
    [result] = results(post(client, [{"text": "周末的照片", "image": b64(name)}]))
    image = result["image"]
    assert "qrcode" not in image["labels"] and "nsfw" not in image["labels"]
    assert image["qrcodes"] == [] and image["scores"]["qrcode"] == 0.0
    assert result["flagged"] is False and result["labels"] == []
    if name == "screenshot_chat.png":
        assert "九点开会" in image["ocr_text"]


def test_messages_without_image_keep_image_null(client: TestClient) -> None:
    response = post(client, [{"text": "你好"}, {"text": "看图", "image": b64("qr_plain.png")}])
    first, second = results(response)
    assert first["image"] is None and second["image"] is not None
    assert list(first["scores"]) == list(second["scores"]) == list(TEXT_LABELS)


# --- errors -----------------------------------------------------------------------------------


def assert_still_serving(client: TestClient) -> None:
    assert classify(client, "还在吗").status_code == 200
    [result] = results(post(client, [{"image": b64("photo_shapes.webp")}]))
    assert result["image"] is not None


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_image_fails_the_request_with_its_error(client: TestClient, name: str) -> None:
    status, code = BROKEN[name]
    response = post(client, [{"text": "看图"}, {"image": b64(name)}])
    body = assert_error(response, status, code)
    assert body["error"]["message"].startswith("messages.1.image: ")
    assert_still_serving(client)


def test_bad_base64_is_422(client: TestClient) -> None:
    raw = (FIXTURES / "bad_base64.txt").read_text(encoding="utf-8")
    body = assert_error(post(client, [{"image": raw}]), 422, "invalid_base64")
    assert "messages.0.image" in body["error"]["message"]
    assert_error(post(client, [{"image": "iVBORw0KGgo="}]), 422, "invalid_image")  # PNG magic
    assert_still_serving(client)


def test_image_over_10_mib_is_413(client: TestClient) -> None:
    body = assert_error(
        post(client, [{"image": junk_b64(10 * MiB + 1024)}]), 413, "image_too_large"
    )
    assert "messages.0.image" in body["error"]["message"]
    assert_still_serving(client)


def test_images_over_the_request_cap_are_413_before_any_work(client: TestClient) -> None:
    half = REQUEST_IMAGE_BYTES // 2 + 1024
    before = metric(client, "qunguard_image_duration_seconds_count")
    response = post(client, [{"image": junk_b64(half)}, {"image": junk_b64(half)}])
    assert_error(response, 413, "payload_too_large")
    assert metric(client, "qunguard_image_duration_seconds_count") == before  # no pool work
    assert_still_serving(client)


def test_one_bad_image_fails_the_whole_request_and_records_nothing(client: TestClient) -> None:
    g = group()
    good = {"image": b64("poster_kanjia_qr.jpg"), "group_id": g, "user_id": "u1"}
    response = post(client, [good, good, {"image": b64("truncated.jpg")}, good])
    body = assert_error(response, 422, "invalid_image")
    assert body["error"]["message"].startswith("messages.2.image: ")
    [again] = results(post(client, [good]))
    assert again["image"]["duplicate_count"] == 0  # the refused request counted nothing


def test_broken_images_never_disturb_other_requests(client: TestClient) -> None:
    def send(k: int) -> tuple[int, int]:
        if k % 3 == 0:
            name = sorted(BROKEN)[k % len(BROKEN)]
            return BROKEN[name][0], post(client, [{"image": b64(name)}]).status_code
        if k % 3 == 1:
            return 200, post(client, [{"image": b64("photo_shapes.webp")}]).status_code
        return 200, classify(client, f"第{k}条消息").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(send, range(24)))
    assert all(expected == got for expected, got in outcomes), outcomes
    assert_still_serving(client)


def test_unexpected_analysis_error_is_422_and_the_pool_survives(
    client: TestClient, images: ImageService
) -> None:
    real = images.classifier
    assert real is not None

    class Exploding:
        version = real.version

        def classify(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug in a detector")

    images.classifier = Exploding()  # type: ignore[assignment]
    try:
        response = post(client, [{"text": "看图", "image": b64("qr_plain.png")}])
    finally:
        images.classifier = real
    body = assert_error(response, 422, "invalid_image")
    assert "a bug" not in body["error"]["message"]
    assert 'qunguard_images_total{outcome="analysis_failed"}' in client.get("/metrics").text
    assert_still_serving(client)


def test_image_queue_full_is_503_with_retry_after(client: TestClient, images: ImageService) -> None:
    with images._lock:
        images._pending += 1000  # as if a thousand pictures were waiting
    try:
        response = post(client, [{"image": b64("qr_plain.png")}])
        text_only = classify(client, "文字照常")
    finally:
        with images._lock:
            images._pending -= 1000
    assert_error(response, 503, "overloaded")
    assert response.headers["retry-after"] == "1"
    assert text_only.status_code == 200
    assert_still_serving(client)


def test_without_image_models_images_are_503_and_text_is_served(
    client: TestClient, images: ImageService
) -> None:
    real = images.classifier
    images.classifier = None
    try:
        response = post(client, [{"image": b64("qr_plain.png")}])
        text_only = classify(client, "文字照常")
        version = text_only.json()["model_version"]
    finally:
        images.classifier = real
    assert_error(response, 503, "images_unavailable")
    assert text_only.status_code == 200 and version["image"] is None


# --- floods -----------------------------------------------------------------------------------


def picture(
    g: str, at: datetime, *, user: str = "u1", name: str = "poster_qr_ad.jpg"
) -> dict[str, Any]:
    return {"image": b64(name), "group_id": g, "user_id": user, "sent_at": at.isoformat()}


def duplicate_counts(response: Any) -> list[int]:
    return [r["image"]["duplicate_count"] for r in results(response)]


def test_same_picture_posted_again_counts_up(client: TestClient, data_dir: Path) -> None:
    g = group()
    counts = [
        duplicate_counts(post(client, [picture(g, T0 + timedelta(seconds=10 * k))]))[0]
        for k in range(4)
    ]
    assert counts == [0, 1, 2, 3]
    assert duplicate_counts(post(client, [picture(group(), T0)])) == [0]  # another group
    other = picture(g, T0 + timedelta(seconds=50), name="photo_landscape.jpg")
    assert duplicate_counts(post(client, [other])) == [0]  # another picture
    later = picture(g, T0 + timedelta(minutes=30))
    assert duplicate_counts(post(client, [later])) == [0]  # outside the 10-minute window
    assert (data_dir / "qunguard.db").exists()  # the service database under data_dir


def test_copies_within_one_request_count_each_other(client: TestClient) -> None:
    g = group()
    copies = [picture(g, T0 + timedelta(seconds=k)) for k in range(3)]
    assert duplicate_counts(post(client, copies)) == [0, 1, 2]


def test_dry_run_counts_but_records_nothing(client: TestClient) -> None:
    g = group()
    assert duplicate_counts(post(client, [picture(g, T0)])) == [0]
    dry = [picture(g, T0 + timedelta(seconds=k)) for k in (1, 2)]
    for _ in range(3):  # what a real post would see, however often it is asked
        assert duplicate_counts(post(client, dry, dry_run=True)) == [1, 2]
    assert duplicate_counts(post(client, [picture(g, T0 + timedelta(seconds=3))])) == [1]


def test_without_group_nothing_is_counted(client: TestClient) -> None:
    loose = {"image": b64("poster_qr_ad.jpg"), "user_id": "u1"}
    assert duplicate_counts(post(client, [loose, loose])) == [0, 0]


def test_a_failing_flood_counter_does_not_fail_moderation(
    client: TestClient, images: ImageService
) -> None:
    real = images.flood
    assert real is not None

    class Broken:
        window = real.window

        def record(self, *args: Any) -> Any:
            raise OSError("database is locked")

        count = record

    images.flood = Broken()  # type: ignore[assignment]
    try:
        [result] = results(post(client, [picture(group(), T0)]))
    finally:
        images.flood = real
    assert result["image"]["duplicate_count"] == 0 and "qrcode" in result["image"]["labels"]
    assert metric(client, "qunguard_image_flood_errors_total") >= 1


# --- metrics, readiness, OpenAPI --------------------------------------------------------------


def test_metrics_have_image_latency_and_labels(client: TestClient) -> None:
    results(post(client, [{"image": b64("poster_qr_ad.jpg")}]))
    assert_error(post(client, [{"image": b64("image.bmp")}]), 415, "unsupported_image_format")
    text = client.get("/metrics").text
    assert "qunguard_image_duration_seconds_count" in text
    assert 'qunguard_image_duration_seconds_bucket{le="0.5"}' in text
    assert 'qunguard_images_total{outcome="ok"}' in text
    assert 'qunguard_images_total{outcome="unsupported_image_format"}' in text
    for label in ("qrcode", "image_ad", "ad"):
        assert f'qunguard_labels_total{{label="{label}"}}' in text
    assert "qunguard_image_queue_depth 0.0" in text


def test_readiness_and_labels_report_the_image_pipeline(client: TestClient) -> None:
    ready = client.get("/readyz").json()
    assert ready["model_version"]["image"] == PIPELINE_VERSION
    labels = client.get("/v1/labels", headers=USER).json()
    assert [item["name"] for item in labels["image"]] == list(IMAGE_LABELS)


def test_openapi_documents_the_image_errors(client: TestClient) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/v1/classify"]["post"]["responses"]
    assert "image" in responses["415"]["description"]
    assert "image" in responses["413"]["description"]


# --- the merge rule, directly -----------------------------------------------------------------


def verdict(scores: dict[str, float], labels: list[str], **extra: Any) -> FusionResult:
    full = dict.fromkeys(TEXT_LABELS, 0.0) | scores
    return FusionResult(labels, full, extra.get("evidence", []), extra.get("contacts", []))


def test_merge_rule() -> None:
    thresholds = dict.fromkeys(TEXT_LABELS, 0.5)
    text = verdict(
        {"ad": 0.3, "insult": 0.9},
        ["insult"],
        evidence=[Evidence("insult", "model", "滚", 0, 1)],
        contacts=[Contact("wechat", "abc12345", 0, 8)],
    )
    seen = verdict(
        {"ad": 0.4, "fraud": 0.7},
        ["fraud"],
        evidence=[ImageEvidence("fraud", "ocr", "中奖", 2, 4, "lexicon")],
        contacts=[Contact("wechat", "abc12345", 3, 11), Contact("qq", "12345678", 0, 8)],
    )
    image = ImageResult(
        labels=["qrcode", "image_ad", "fraud"],
        scores={"qrcode": 1.0, "image_ad": 0.7},
        qrcodes=[],
        ocr_text="恭喜中奖",
        duplicate_count=0,
        text=seen,
        evidence=[ImageEvidence("qrcode", "qrcode", "x", 0, 1), *seen.evidence],
    )
    item = Classified(text, text.to_dict())
    merged = merge_image(item, image, thresholds)
    assert merged.result.scores["ad"] == 0.4  # max per label, below threshold
    assert merged.result.labels == ["insult", "fraud"]  # recomputed, highest first
    assert [(e.label, e.source) for e in merged.result.evidence] == [
        ("insult", "model"),
        ("qrcode", "qrcode"),
        ("fraud", "ocr"),
    ]
    assert [(c.type, c.value) for c in merged.result.contacts] == [
        ("wechat", "abc12345"),
        ("qq", "12345678"),
    ]
    assert merged.payload["flagged"] is True and "image" not in merged.payload
    clean = verdict({}, [])
    only_qr = ImageResult(
        labels=["qrcode"],
        scores={"qrcode": 0.9},
        qrcodes=[],
        ocr_text="",
        duplicate_count=0,
        text=clean,
        evidence=[],
    )
    flagged = merge_image(Classified(clean, clean.to_dict()), only_qr, thresholds)
    assert flagged.result.labels == [] and flagged.payload["flagged"] is True
