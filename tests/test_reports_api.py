"""Moderator reports through HTTP: validation, auth, duplicates and paging on SQLite and on
PostgreSQL, and a report accepted with 201 surviving a SIGKILL of the server right after."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from models.paths import REPO_ROOT
from tests.serving_fixtures import ADMIN, ADMIN_KEY, USER, assert_error, running, settings_for
from tests.test_policy_processes import free_port
from tests.test_store_databases import DATABASES, database_url

AD = "加 薇信 abc12345, 兼职日结"


@pytest.fixture(scope="module", params=DATABASES)
def client(
    request: pytest.FixtureRequest, tiny_releases: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp(f"reports-{request.param}")
    with database_url(request.param, tmp) as url:
        settings = settings_for(tiny_releases, data_dir=tmp, database_url=url, warmup=False)
        with running(settings) as client:
            yield client


def post(client: TestClient, headers: dict[str, str] | None = None, **report: Any) -> Any:
    return client.post("/v1/reports", json=report, headers=USER if headers is None else headers)


def listed(client: TestClient, query: str = "") -> dict[str, Any]:
    response = client.get(f"/v1/reports{query}", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def all_reports(client: TestClient) -> list[dict[str, Any]]:
    return listed(client, "?limit=1000")["reports"]


def png_base64() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def test_a_report_is_stored_and_listed(client: TestClient) -> None:
    created = post(
        client,
        text=AD,
        labels=["fraud", "ad"],
        message_id="m-1",
        group_id="g-stored",
        reporter="mod-1",
        note="引流, missed",
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["duplicate"] is False and isinstance(body["id"], int)
    [stored] = [r for r in all_reports(client) if r["id"] == body["id"]]
    assert stored["text"] == AD and stored["labels"] == ["ad", "fraud"]  # TEXT_LABELS order
    assert (stored["group_id"], stored["reporter"], stored["note"]) == (
        "g-stored",
        "mod-1",
        "引流, missed",
    )
    assert stored["message_id"] == "m-1" and stored["image_sha256"] is None
    assert stored["created_at"].endswith(("Z", "+00:00"))
    clean = post(client, text="明天上午九点开会", labels=[], group_id="g-stored")
    assert clean.status_code == 201


def test_duplicates_answer_the_existing_id(client: TestClient) -> None:
    first = post(client, text="加V信 lili_888 领福利", labels=["ad"], group_id="g-dup")
    assert first.status_code == 201
    # The same normalised text (spacing, full-width, variant spelling), same labels and group.
    again = post(client, text="加 微信 ＬＩＬＩ_888 领福利", labels=["ad", "ad"], group_id="g-dup")
    assert again.status_code == 200, again.text
    assert again.json() == {"id": first.json()["id"], "duplicate": True}
    # Other labels (a correction), another group or no group: new reports.
    for other in (
        {"labels": ["ad", "fraud"], "group_id": "g-dup"},
        {"labels": ["ad"], "group_id": "g-other"},
        {"labels": ["ad"]},
    ):
        response = post(client, text="加V信 lili_888 领福利", **other)
        assert response.status_code == 201, other
        assert response.json()["id"] != first.json()["id"]
    stored = [r for r in all_reports(client) if r["text"] and "lili" in r["text"].lower()]
    assert len(stored) == 4


def test_a_picture_report_keeps_the_picture(client: TestClient) -> None:
    image = png_base64()
    created = post(client, image=image, labels=[], group_id="g-img", note="a harmless picture")
    assert created.status_code == 201, created.text
    assert post(client, image=image, labels=[], group_id="g-img").json()["duplicate"] is True
    [stored] = [r for r in all_reports(client) if r["id"] == created.json()["id"]]
    assert stored["text"] is None and len(stored["image_sha256"]) == 64


@pytest.mark.parametrize(
    "report, status, code, says",
    [
        ({"labels": ["ad"]}, 422, "invalid_request", "text or image"),
        ({"text": "x", "labels": ["spam"]}, 422, "invalid_request", "labels.0"),
        ({"text": "x" * 10_001, "labels": []}, 422, "invalid_request", "10000 characters"),
        ({"text": "x"}, 422, "invalid_request", "labels: Field required"),
        ({"text": 12, "labels": []}, 422, "invalid_request", "text"),
        ({"text": "x", "labels": "ad"}, 422, "invalid_request", "labels"),
        ({"text": "x", "labels": [1]}, 422, "invalid_request", "labels.0"),
        ({"text": "x", "labels": [], "group_id": 5}, 422, "invalid_request", "group_id"),
        ({"text": "   ", "labels": []}, 422, "invalid_request", "blank"),
        ({"text": "a\u0000b", "labels": []}, 422, "invalid_request", "NUL"),
        ({"text": "x", "labels": [], "group_id": "g" * 129}, 422, "invalid_request", "group_id"),
        ({"text": "x", "labels": [], "note": "n" * 2001}, 422, "invalid_request", "note"),
        ({"image": "not base64!", "labels": []}, 422, "invalid_base64", "image"),
        ({"image": "aGVsbG8=", "labels": []}, 422, "invalid_image", "image"),
    ],
)
def test_invalid_reports_are_clear_422s(
    client: TestClient, report: dict[str, Any], status: int, code: str, says: str
) -> None:
    before = len(all_reports(client))
    body = assert_error(post(client, **report), status, code)
    assert says in body["error"]["message"]
    assert len(all_reports(client)) == before  # nothing stored


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/reports", content=b'{"text": ', headers={**USER, "Content-Type": "application/json"}
    )
    assert_error(response, 400, "malformed_json")


def test_keys_are_needed_and_listing_needs_an_admin_key(client: TestClient) -> None:
    assert_error(post(client, headers={}, text="x", labels=[]), 401, "unauthorized")
    bad = {"Authorization": "Bearer wrong"}
    assert_error(post(client, headers=bad, text="x", labels=[]), 401, "unauthorized")
    assert post(client, headers=ADMIN, text="admins may report", labels=[]).status_code == 201
    assert_error(client.get("/v1/reports"), 401, "unauthorized")
    assert_error(client.get("/v1/reports", headers=USER), 403, "forbidden")


def test_pages_follow_the_id_order(client: TestClient) -> None:
    ids = []
    for i in range(5):
        response = post(client, text=f"翻页测试第{i}条", labels=[], group_id="g-page")
        ids.append(response.json()["id"])
    assert ids == sorted(ids)
    seen, after, pages = [], ids[0] - 1, 0
    while after is not None:
        page = listed(client, f"?after_id={after}&limit=2")
        assert len(page["reports"]) <= 2
        seen += [r["id"] for r in page["reports"]]
        after, pages = page["next_after_id"], pages + 1
    assert seen[:5] == ids and seen == sorted(seen) and pages >= 3
    everything = listed(client)  # default limit 100
    assert [r["id"] for r in everything["reports"]] == sorted(
        r["id"] for r in everything["reports"]
    )
    assert listed(client, f"?after_id={seen[-1]}") == {"reports": [], "next_after_id": None}
    for query in ("?limit=0", "?limit=1001", "?after_id=-1", "?limit=x"):
        assert_error(client.get(f"/v1/reports{query}", headers=ADMIN), 422, "invalid_request")


def test_openapi_describes_the_reports_endpoints(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operations = spec["paths"]["/v1/reports"]
    assert set(operations) == {"get", "post"}
    assert {"200", "201", "422"} <= set(operations["post"]["responses"])
    schemas = spec["components"]["schemas"]
    assert set(schemas["ReportRequest"]["required"]) == {"labels"}
    assert "next_after_id" in schemas["ReportsPage"]["properties"]


@pytest.mark.parametrize("kind", DATABASES)
def test_reports_survive_a_restart(kind: str, tiny_releases: Path, tmp_path: Path) -> None:
    with database_url(kind, tmp_path) as url:
        settings = settings_for(tiny_releases, data_dir=tmp_path, database_url=url, warmup=False)
        with running(settings) as first:
            report_id = post(first, text=AD, labels=["ad"], group_id="g").json()["id"]
        with running(settings) as second:
            assert [r["id"] for r in all_reports(second)] == [report_id]
            assert post(second, text=AD, labels=["ad"], group_id="g").json() == {
                "id": report_id,
                "duplicate": True,
            }


def start_server(tiny_releases: Path, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "QUNGUARD_DATABASE_URL"}
    env.update(
        QUNGUARD_DATA_DIR=str(data_dir),
        QUNGUARD_ADMIN_KEYS=ADMIN_KEY,
        QUNGUARD_API_KEYS="",
        QUNGUARD_LOG_LEVEL="warning",
    )
    command = [sys.executable, "-m", "serving", "--port", str(port), "--no-warmup"]
    command += ["--models-dir", str(tiny_releases)]
    log = (data_dir / f"server-{port}.log").open("ab")
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log)
    log.close()
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, (data_dir / f"server-{port}.log").read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not start in 120 s"
        time.sleep(0.05)


def test_a_report_accepted_with_201_is_never_lost(tiny_releases: Path, tmp_path: Path) -> None:
    port = free_port()
    process = start_server(tiny_releases, tmp_path, port)
    try:
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/reports",
            json={"text": AD, "labels": ["ad"], "group_id": "g", "reporter": "mod-9"},
            headers=ADMIN,
            timeout=30,
        )
        process.send_signal(signal.SIGKILL)  # no shutdown, no flush: right after the 201
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert response.status_code == 201, response.text
    report_id = response.json()["id"]

    again = start_server(tiny_releases, tmp_path, port)
    try:
        page = httpx.get(f"http://127.0.0.1:{port}/v1/reports", headers=ADMIN, timeout=30)
    finally:
        again.terminate()
        again.wait(timeout=30)
    assert page.status_code == 200, page.text
    [stored] = page.json()["reports"]
    assert (stored["id"], stored["text"], stored["labels"]) == (report_id, AD, ["ad"])
    assert stored["reporter"] == "mod-9"
