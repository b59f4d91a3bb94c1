"""The contract's happy paths: /v1/classify, /v1/labels, /healthz, /readyz, /metrics, OpenAPI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from models.image.classify import PIPELINE_VERSION
from models.labels import IMAGE_LABELS, TEXT_LABELS
from serving.schemas import ClassifyResponse
from tests.conftest import TINY_VERSION
from tests.serving_fixtures import USER, assert_error, classify, running, settings_for


@pytest.fixture(scope="module")
def client(tiny_releases: Path) -> Iterator[TestClient]:
    with running(settings_for(tiny_releases)) as client:
        yield client


def test_classify_answers_every_message_in_order(client: TestClient) -> None:
    texts = ["加我微信abc12345领取福利, 兼职日结", "明天上午九点开会, 大家准时", "你个傻逼, 滚出去"]
    response = classify(client, *texts)
    assert response.status_code == 200
    body = response.json()
    ClassifyResponse.model_validate(body)
    assert body["model_version"] == {"text": TINY_VERSION, "image": PIPELINE_VERSION}
    results = body["results"]
    assert [r["id"] for r in results] == ["m0", "m1", "m2"]
    for text, result in zip(texts, results, strict=True):
        assert list(result["scores"]) == list(TEXT_LABELS)
        assert all(0.0 <= s <= 1.0 for s in result["scores"].values())
        expected = [label for label in TEXT_LABELS if result["scores"][label] >= 0.5]
        assert sorted(result["labels"]) == sorted(expected)
        ordered = [result["scores"][label] for label in result["labels"]]
        assert ordered == sorted(ordered, reverse=True)
        assert result["flagged"] == bool(result["labels"])
        assert result["image"] is None and result["action"] is None
        for evidence in result["evidence"]:
            assert text[evidence["start"] : evidence["end"]] == evidence["text"]
            assert evidence["label"] in result["labels"]
    assert results[0]["labels"][0] == "ad"
    assert {"type": "wechat", "value": "abc12345"} in results[0]["contacts"]
    assert not results[1]["flagged"] and results[1]["evidence"] == []
    assert "insult" in results[2]["labels"]
    sources = {(e["label"], e["source"]) for e in results[2]["evidence"]}
    assert ("insult", "model") in sources


def test_model_evidence_spans_the_whole_message(client: TestClient) -> None:
    text = "你个傻逼, 滚出去"
    result = classify(client, text).json()["results"][0]
    model = [e for e in result["evidence"] if e["source"] == "model"]
    assert model and all((e["start"], e["end"], e["text"]) == (0, len(text), text) for e in model)


def test_events_without_text_are_clean(client: TestClient) -> None:
    body = {"messages": [{"id": "j", "event": "join", "nickname": "新人", "user_id": "u1"}]}
    response = client.post("/v1/classify", json=body, headers=USER)
    assert response.status_code == 200
    result = response.json()["results"][0]
    assert result["id"] == "j" and result["flagged"] is False
    assert result["scores"] == dict.fromkeys(TEXT_LABELS, 0.0)


def test_optional_fields_and_ids_are_accepted(client: TestClient) -> None:
    message = {
        "text": "收到, 谢谢老师",
        "group_id": "g1",
        "user_id": "u1",
        "nickname": "张薇",
        "sent_at": "2026-11-24T08:00:00+08:00",
        "event": "message",
        "is_admin": True,
    }
    response = client.post(
        "/v1/classify", json={"messages": [message], "dry_run": True}, headers=USER
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["id"] is None


def test_control_characters_are_accepted(client: TestClient) -> None:
    response = classify(client, "\x00\x07加\u200b我\x1b微信\x7f", "\u202e\ufeff")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 2


def test_lone_surrogates_never_crash(client: TestClient) -> None:
    headers = {**USER, "Content-Type": "application/json"}
    echoed = client.post(
        "/v1/classify", content='{"messages": [{"id": "\\ud800", "text": "hi"}]}', headers=headers
    )
    assert echoed.status_code == 200
    assert json.loads(echoed.content)["results"][0]["id"] == "\ud800"
    refused = client.post(
        "/v1/classify", content='{"messages": [{"text": "hi \\udfff"}]}', headers=headers
    )
    assert_error(refused, 422, "invalid_request")


def test_full_request_of_256_long_messages(client: TestClient) -> None:
    texts = [f"第{i}条: " + "测" * 9_990 for i in range(256)]
    response = classify(client, *texts)
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [f"m{i}" for i in range(256)]


def test_labels_lists_thresholds_of_the_release(client: TestClient) -> None:
    response = client.get("/v1/labels", headers=USER)
    assert response.status_code == 200
    body = response.json()
    assert [item["name"] for item in body["text"]] == list(TEXT_LABELS)
    assert all(item["threshold"] == 0.5 and item["description"] for item in body["text"])
    assert [item["name"] for item in body["image"]] == list(IMAGE_LABELS)


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["model_version"] == {"text": TINY_VERSION, "image": PIPELINE_VERSION}


def test_metrics_count_requests_batches_and_labels(client: TestClient) -> None:
    classify(client, "加我微信abc12345领取福利, 兼职日结")
    client.get("/nowhere")
    text = client.get("/metrics").text
    assert 'qunguard_requests_total{method="POST",route="/v1/classify",status="200"}' in text
    assert 'qunguard_errors_total{code="not_found",route="unmatched",status="404"}' in text
    assert 'qunguard_labels_total{label="ad"}' in text
    assert "qunguard_batch_size_count" in text
    assert 'qunguard_request_duration_seconds_bucket{le="0.05",route="/v1/classify"}' in text
    assert "qunguard_queue_depth 0.0" in text
    assert f'qunguard_model_info{{version="{TINY_VERSION}"}} 1.0' in text


def test_apps_have_separate_metrics(tiny_releases: Path) -> None:
    with (
        running(settings_for(tiny_releases)) as first,
        running(settings_for(tiny_releases)) as second,
    ):
        classify(first, "收到")
        assert 'route="/v1/classify"' in first.get("/metrics").text
        assert 'route="/v1/classify"' not in second.get("/metrics").text


def test_openapi_describes_the_contract(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert set(paths["/v1/classify"]) == {"post"}
    for path, method in [
        ("/v1/labels", "get"),
        ("/v1/admin/reload", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ]:
        assert method in paths[path]
    schemas = spec["components"]["schemas"]
    assert set(schemas["Message"]["properties"]) == {
        "id",
        "text",
        "image",
        "group_id",
        "user_id",
        "nickname",
        "sent_at",
        "event",
        "is_admin",
    }
    assert schemas["Message"]["properties"]["text"]["anyOf"][0]["maxLength"] == 10_000
    messages = schemas["ClassifyRequest"]["properties"]["messages"]
    assert (messages["minItems"], messages["maxItems"]) == (1, 256)
    assert set(schemas["MessageResult"]["properties"]) == {
        "id",
        "flagged",
        "labels",
        "scores",
        "evidence",
        "contacts",
        "image",
        "action",
    }
    assert list(schemas["Scores"]["properties"]) == list(TEXT_LABELS)
    assert set(schemas["Scores"]["required"]) == set(TEXT_LABELS)
    assert set(schemas["Evidence"]["properties"]["source"]["enum"]) == {
        "model",
        "lexicon",
        "contact",
        "ocr",
        "qrcode",
        "rule",
    }
    assert set(schemas["Contact"]["properties"]["type"]["enum"]) == {
        "wechat",
        "qq",
        "phone",
        "url",
        "email",
    }
    assert set(schemas["Action"]["properties"]["type"]["enum"]) == {
        "none",
        "remind",
        "warn",
        "remove",
        "review",
    }
    assert set(schemas["ModelVersion"]["properties"]) == {"text", "image"}
    errors = paths["/v1/classify"]["post"]["responses"]
    for status in ("400", "401", "413", "422", "503"):
        ref = errors[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/ErrorResponse"
    assert "HTTPValidationError" not in schemas
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
