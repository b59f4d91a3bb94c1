"""Helpers for the serving tests: apps on the tiny release, keys, releases to break."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import Settings

USER_KEY = "user-key-0123456789"
ADMIN_KEY = "admin-key-0123456789"
USER = {"Authorization": f"Bearer {USER_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def settings_for(models_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test app: both kinds of keys, quick warm-up, its own empty database
    (SQLite in a fresh temporary folder, so tests never write the repository's var/)."""
    fields: dict[str, Any] = {
        "models_dir": models_dir,
        "api_keys": (USER_KEY,),
        "admin_keys": (ADMIN_KEY,),
        "max_batch": 8,
        "data_dir": Path(tempfile.mkdtemp(prefix="qunguard-test-")),
        **overrides,
    }
    return Settings(**fields)


@contextmanager
def running(settings: Settings) -> Iterator[TestClient]:
    """A started app (lifespan run) whose start-up model load has finished."""
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 120
        while app.state.service.loading:
            if time.monotonic() > deadline:
                raise TimeoutError("the model did not load in 120 s")
            time.sleep(0.02)
        yield client


def copy_releases(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def add_release(root: Path, version: str, *, corrupt: bool = False) -> Path:
    """A copy of the newest release under `root` as `version` (optionally with a broken model)."""
    newest = sorted(p for p in root.iterdir() if p.is_dir())[-1]
    folder = root / version
    shutil.copytree(newest, folder)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["version"] = version
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    if corrupt:
        model = folder / "model.onnx"
        model.write_bytes(model.read_bytes()[:100] + b"garbage")
    return folder


def classify(client: TestClient, *texts: str, headers: dict[str, str] | None = None) -> Any:
    body = {"messages": [{"id": f"m{i}", "text": t} for i, t in enumerate(texts)]}
    return client.post("/v1/classify", json=body, headers=USER if headers is None else headers)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is the contract's error format with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body
