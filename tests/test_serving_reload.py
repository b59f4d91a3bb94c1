"""POST /v1/admin/reload and start-up loading: new models swap in, broken ones are refused."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models.image.classify import PIPELINE_VERSION
from serving.app import create_app
from serving.engine import Engine, load_newest
from tests.conftest import TINY_VERSION
from tests.serving_fixtures import (
    ADMIN,
    add_release,
    assert_error,
    classify,
    copy_releases,
    running,
    settings_for,
)


def text_version(response: Any) -> str:
    return response.json()["model_version"]["text"]


def test_reload_swaps_in_the_newest_release(tiny_releases: Path, tmp_path: Path) -> None:
    root = copy_releases(tiny_releases, tmp_path / "releases")
    with running(settings_for(root)) as client:
        assert text_version(classify(client, "你好")) == TINY_VERSION
        add_release(root, "2026.02.01-1")
        response = client.post("/v1/admin/reload", headers=ADMIN)
        assert response.status_code == 200
        body = response.json()
        assert body["model_version"] == {"text": "2026.02.01-1", "image": PIPELINE_VERSION}
        assert body["previous"] == TINY_VERSION
        assert body["folder"].endswith("2026.02.01-1")
        assert text_version(classify(client, "你好")) == "2026.02.01-1"
        assert client.get("/readyz").json()["model_version"]["text"] == "2026.02.01-1"
        assert 'qunguard_model_reloads_total{outcome="loaded"} 1.0' in client.get("/metrics").text


def test_corrupt_release_is_refused_and_the_old_keeps_serving(
    tiny_releases: Path, tmp_path: Path
) -> None:
    root = copy_releases(tiny_releases, tmp_path / "releases")
    with running(settings_for(root)) as client:
        add_release(root, "2026.03.01-1", corrupt=True)
        body = assert_error(client.post("/v1/admin/reload", headers=ADMIN), 409, "model_invalid")
        assert "2026.03.01-1" in body["error"]["message"]
        response = classify(client, "加我微信abc12345领取福利")
        assert response.status_code == 200 and text_version(response) == TINY_VERSION
        assert client.get("/readyz").status_code == 200
        metrics = client.get("/metrics").text
        assert 'qunguard_model_reloads_total{outcome="refused"} 1.0' in metrics
        assert f'qunguard_model_info{{version="{TINY_VERSION}"}} 1.0' in metrics


def test_release_with_bad_fusion_settings_is_refused(tiny_releases: Path, tmp_path: Path) -> None:
    root = copy_releases(tiny_releases, tmp_path / "releases")
    with running(settings_for(root)) as client:
        folder = add_release(root, "2026.03.02-1")
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["fusion"] = {"lexicon": {"ad": 7}}
        (folder / "manifest.json").write_text(json.dumps(manifest))
        body = assert_error(client.post("/v1/admin/reload", headers=ADMIN), 409, "model_invalid")
        assert "fusion" in body["error"]["message"]
        assert text_version(classify(client, "你好")) == TINY_VERSION


def test_missing_releases_are_refused(tiny_releases: Path, tmp_path: Path) -> None:
    root = copy_releases(tiny_releases, tmp_path / "releases")
    with running(settings_for(root)) as client:
        for folder in root.iterdir():
            for file in folder.iterdir():
                file.unlink()
            folder.rmdir()
        body = assert_error(client.post("/v1/admin/reload", headers=ADMIN), 409, "model_invalid")
        assert "no release" in body["error"]["message"]
        assert classify(client, "你好").status_code == 200


def test_requests_in_flight_finish_on_their_model(tiny_releases: Path, tmp_path: Path) -> None:
    root = copy_releases(tiny_releases, tmp_path / "releases")
    with running(settings_for(root, max_wait_ms=0)) as client:
        service = client.app.state.service  # type: ignore[attr-defined]
        real = service.engine
        gate, entered = threading.Event(), threading.Event()

        class Slow:
            version = real.version

            def classify(self, texts: Any) -> Any:
                entered.set()
                assert gate.wait(30)
                return real.classify(texts)

        service.engine = Slow()
        add_release(root, "2026.04.01-1")
        with ThreadPoolExecutor(2) as pool:
            in_flight = pool.submit(classify, client, "你好")
            assert entered.wait(30)
            reload = pool.submit(client.post, "/v1/admin/reload", headers=ADMIN)
            assert reload.result(60).status_code == 200
            gate.set()
            assert text_version(in_flight.result(60)) == TINY_VERSION
        assert text_version(classify(client, "你好")) == "2026.04.01-1"


def test_start_up_falls_back_to_an_older_release(tiny_releases: Path, tmp_path: Path) -> None:
    root = copy_releases(tiny_releases, tmp_path / "releases")
    add_release(root, "2026.05.01-1", corrupt=True)
    with running(settings_for(root)) as client:
        assert client.get("/readyz").json()["model_version"]["text"] == TINY_VERSION
        assert_error(client.post("/v1/admin/reload", headers=ADMIN), 409, "model_invalid")


def test_not_ready_until_loaded_and_warm(
    tiny_releases: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    warmed: list[int] = []
    real = Engine.warm_up

    def slow_warm_up(self: Engine, max_batch: int) -> None:
        assert gate.wait(30)
        real(self, max_batch)
        warmed.append(max_batch)

    monkeypatch.setattr(Engine, "warm_up", slow_warm_up)
    app = create_app(settings_for(tiny_releases, max_batch=8))
    with TestClient(app) as client:
        body = assert_error(client.get("/readyz"), 503, "not_ready")
        assert "loading" in body["error"]["message"]
        assert client.get("/healthz").status_code == 200
        assert_error(classify(client, "你好"), 503, "model_unavailable")
        gate.set()
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert classify(client, "你好").status_code == 200
    assert warmed == [8]


def test_warm_up_runs_every_batch_size_and_length(tiny_releases: Path) -> None:
    engine = load_newest(tiny_releases)
    shapes: set[tuple[int, int]] = set()
    real = engine.model.predict_proba

    def spy(texts: Any) -> Any:
        shapes.add((len(texts), max(len(t) for t in texts)))
        return real(texts)

    engine.model.predict_proba = spy  # type: ignore[method-assign]
    engine.warm_up(max_batch=12)
    longest = engine.max_len - 1
    for size in (1, 2, 4, 8, 12):
        for length in (8, 16, 32, 64, longest):
            assert (size, length) in shapes
