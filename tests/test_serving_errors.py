"""Every error path answers the contract's error format with the right status, never a 500."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.engine import Engine
from tests.serving_fixtures import (
    ADMIN,
    USER,
    assert_error,
    classify,
    running,
    settings_for,
)


@pytest.fixture(scope="module")
def client(tiny_releases: Path) -> Iterator[TestClient]:
    with running(settings_for(tiny_releases, max_body_bytes=64 * 1024 * 1024)) as client:
        yield client


def post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post("/v1/classify", json=body, headers=USER if headers is None else headers)


def test_malformed_json_is_400(client: TestClient) -> None:
    for raw in (b'{"messages": [', b"not json", b'{"messages": [{"text": "a",}]}'):
        response = client.post(
            "/v1/classify", content=raw, headers={**USER, "Content-Type": "application/json"}
        )
        assert_error(response, 400, "malformed_json")


def test_body_that_is_not_utf8_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/classify",
        content=b'{"messages": [{"text": "\xff\xfe"}]}',
        headers={**USER, "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 422)
    assert_error(response, response.status_code, response.json()["error"]["code"])


def test_content_type(client: TestClient) -> None:
    raw = b'{"messages": [{"text": "hi"}]}'
    assert client.post("/v1/classify", content=raw, headers=USER).status_code == 200
    plain = client.post("/v1/classify", content=raw, headers={**USER, "Content-Type": "text/plain"})
    assert_error(plain, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"text": 123}]},
        {"messages": "hello"},
        {"messages": [{"text": "a", "is_admin": "perhaps"}]},
        {"messages": [{"text": "a", "event": "shout"}]},
        {"messages": [{"text": "a", "sent_at": "yesterday"}]},
        {"messages": [{"text": ["a"]}]},
        {"messages": [{"text": "a"}], "dry_run": {"x": 1}},
        [1, 2, 3],
        "text",
        None,
        {},
    ],
)
def test_wrong_types_are_422(client: TestClient, body: Any) -> None:
    assert_error(post(client, body), 422, "invalid_request")


def test_message_count_limits(client: TestClient) -> None:
    assert_error(post(client, {"messages": []}), 422, "invalid_request")
    many = {"messages": [{"text": "a"}] * 257}
    body = assert_error(post(client, many), 422, "invalid_request")
    assert "messages" in body["error"]["message"]
    assert post(client, {"messages": [{"text": "a"}] * 256}).status_code == 200


def test_text_length_limit(client: TestClient) -> None:
    assert_error(post(client, {"messages": [{"text": "字" * 10_001}]}), 422, "invalid_request")
    assert post(client, {"messages": [{"text": "字" * 10_000}]}).status_code == 200


def test_empty_text_and_empty_message_are_422(client: TestClient) -> None:
    assert_error(post(client, {"messages": [{"text": ""}]}), 422, "invalid_request")
    body = assert_error(post(client, {"messages": [{"id": "x"}]}), 422, "invalid_request")
    assert "text or image" in body["error"]["message"]


def test_error_message_never_echoes_the_input(client: TestClient) -> None:
    secret = "私密内容" * 2_600
    body = assert_error(post(client, {"messages": [{"text": secret}]}), 422, "invalid_request")
    assert "私密" not in body["error"]["message"]


def test_unreadable_image_is_422_naming_the_message(client: TestClient) -> None:
    body = {"messages": [{"text": "看图"}, {"image": "iVBORw0KGgo="}]}  # a PNG signature only
    answer = assert_error(post(client, body), 422, "invalid_image")
    assert "messages.1.image" in answer["error"]["message"]


def test_empty_body_and_json_subtypes(client: TestClient) -> None:
    json_type = {**USER, "Content-Type": "application/json"}
    assert_error(
        client.post("/v1/classify", content=b"", headers=json_type), 422, "invalid_request"
    )
    raw = b'{"messages": [{"text": "hi"}]}'
    for content_type in ("application/json; charset=utf-8", "application/vnd.bot+json"):
        headers = {**USER, "Content-Type": content_type}
        assert client.post("/v1/classify", content=raw, headers=headers).status_code == 200


def test_the_key_is_checked_before_the_body_is_read(client: TestClient) -> None:
    response = client.post(
        "/v1/classify", content=b"{broken", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 401, "unauthorized")


def test_missing_and_wrong_keys_are_401(client: TestClient) -> None:
    body = {"messages": [{"text": "a"}]}
    missing = assert_error(post(client, body, headers={}), 401, "unauthorized")
    assert missing["error"]["message"]
    wrong = post(client, body, headers={"Authorization": "Bearer nope"})
    assert_error(wrong, 401, "unauthorized")
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert_error(post(client, body, headers={"Authorization": "Basic abc"}), 401, "unauthorized")
    assert_error(client.get("/v1/labels"), 401, "unauthorized")
    assert post(client, body, headers=ADMIN).status_code == 200


def test_user_key_on_admin_route_is_403(client: TestClient) -> None:
    assert_error(client.post("/v1/admin/reload", headers=USER), 403, "forbidden")
    assert_error(client.post("/v1/admin/reload"), 401, "unauthorized")


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing"), 404, "not_found")
    assert_error(client.get("/"), 404, "not_found")
    response = client.get("/v1/classify", headers=USER)
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


def test_too_large_body_is_413(tiny_releases: Path) -> None:
    with running(settings_for(tiny_releases, max_body_bytes=2048)) as small:
        body = {"messages": [{"text": "字" * 1000}]}
        assert_error(post(small, body), 413, "payload_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
            yield b'{"messages": [{"text": "'
            for _ in range(10):
                yield "字".encode() * 100
            yield b'"}]}'

        chunked = small.post(
            "/v1/classify", content=chunks(), headers={**USER, "Content-Type": "application/json"}
        )
        assert_error(chunked, 413, "payload_too_large")
        assert post(small, {"messages": [{"text": "字" * 100}]}).status_code == 200
        metrics = small.get("/metrics").text
        assert 'code="payload_too_large"' in metrics


def test_no_model_means_503_but_alive(tmp_path: Path) -> None:
    with running(settings_for(tmp_path / "empty")) as client:
        assert client.get("/healthz").status_code == 200
        ready = assert_error(client.get("/readyz"), 503, "not_ready")
        assert "no release" in ready["error"]["message"]
        response = classify(client, "你好")
        assert_error(response, 503, "model_unavailable")
        assert response.headers["retry-after"] == "1"
        labels = client.get("/v1/labels", headers=USER).json()
        assert all(item["threshold"] is None for item in labels["text"])


class BlockingEngine:
    """Wraps an engine; classify waits until released (to hold the worker busy)."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.version = inner.version
        self.release = threading.Event()
        self.entered = threading.Event()

    def classify(self, texts: Any) -> Any:
        self.entered.set()
        assert self.release.wait(30)
        return self.inner.classify(texts)


def test_overload_is_503_with_retry_after(tiny_releases: Path) -> None:
    settings = settings_for(tiny_releases, max_queue=3, max_wait_ms=0, retry_after_s=3)
    with running(settings) as client:
        service = client.app.state.service  # type: ignore[attr-defined]
        blocking = BlockingEngine(service.engine)
        service.engine = blocking

        def wait_queued(n: int) -> None:
            deadline = time.monotonic() + 30
            while service.batcher.queued < n:
                assert time.monotonic() < deadline
                time.sleep(0.01)

        with ThreadPoolExecutor(4) as pool:
            busy = pool.submit(classify, client, "第一条")  # taken by the worker, which blocks
            assert blocking.entered.wait(30)
            queued = pool.submit(classify, client, "第二条", "第三条")
            wait_queued(2)
            # Does not fit (2 + 2 > 3): refused by the batcher.
            refused = classify(client, "第四条", "第五条")
            assert_error(refused, 503, "overloaded")
            assert refused.headers["retry-after"] == "3"
            last = pool.submit(classify, client, "第六条")  # fits: the queue is now full
            wait_queued(3)
            # A full queue: refused at the door, before auth and parsing.
            shed = client.post("/v1/classify", content=b"{not even json")
            assert_error(shed, 503, "overloaded")
            assert shed.headers["retry-after"] == "3"
            assert client.get("/healthz").status_code == 200
            blocking.release.set()
            assert busy.result().status_code == 200
            assert [r["id"] for r in queued.result().json()["results"]] == ["m0", "m1"]
            assert last.result().status_code == 200
        assert classify(client, "之后").status_code == 200
        metrics = client.get("/metrics").text
        assert "qunguard_overload_rejections_total 2.0" in metrics
        assert 'code="overloaded",route="/v1/classify",status="503"' in metrics


def test_a_failing_message_fails_only_its_request(tiny_releases: Path) -> None:
    with running(settings_for(tiny_releases)) as client:
        service = client.app.state.service  # type: ignore[attr-defined]
        real = service.engine

        class Fragile:
            version = real.version

            def classify(self, texts: Any) -> Any:
                if "炸" in "".join(t or "" for t in texts):
                    raise RuntimeError("boom")
                return real.classify(texts)

        service.engine = Fragile()
        assert_error(classify(client, "炸"), 500, "internal_error")
        assert classify(client, "好的").status_code == 200
        assert client.get("/healthz").status_code == 200
