"""Group policies through HTTP: /v1/classify's actions, the admin endpoints for policies and
strikes, restarts on SQLite and PostgreSQL, and a day of a company group's chat replayed.

Labels come from the lexicons alone here: the tiny model's scores are replaced with zeros (the
loaded engine's `predict_proba`), so each message carries exactly the labels its lexicon words
give (fusion turns a hit into a score of at least the label's lexicon weight, over 0.5).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from models.labels import TEXT_LABELS
from tests.serving_fixtures import ADMIN, USER, assert_error, running, settings_for
from tests.test_store_databases import DATABASES, database_url

SHANGHAI = ZoneInfo("Asia/Shanghai")
AD = "兼职刷单, 日结300, 加vx"  # ad (lexicon)
INSULT = "你个傻逼"  # insult (lexicon)


def lexicon_only(client: TestClient) -> None:
    """Make the served model score every text 0, so that labels come from lexicon hits."""
    model = client.app.state.service.engine.model  # type: ignore[attr-defined]
    model.predict_proba = lambda texts: np.zeros((len(texts), len(TEXT_LABELS)), np.float32)


@pytest.fixture(scope="module")
def client(tiny_releases: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir = tmp_path_factory.mktemp("policy-api")
    with running(settings_for(tiny_releases, data_dir=data_dir)) as client:
        lexicon_only(client)
        yield client


def noon_yesterday() -> str:
    """A time out of every quiet hours, recent enough for strikes to count now."""
    day = datetime.now(SHANGHAI) - timedelta(days=1)
    return day.replace(hour=12, minute=0, second=0, microsecond=0).isoformat()


def send(client: TestClient, *messages: dict[str, Any], dry_run: bool = False) -> list[Any]:
    """Classify `messages` (sent at noon yesterday unless they say when)."""
    noon = noon_yesterday()
    body = {"messages": [{"sent_at": noon, **m} for m in messages], "dry_run": dry_run}
    response = client.post("/v1/classify", json=body, headers=USER)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def act(client: TestClient, **message: Any) -> dict[str, Any] | None:
    return send(client, message)[0]["action"]


def strikes(client: TestClient, group: str, user: str) -> dict[str, Any]:
    response = client.get(f"/v1/groups/{group}/users/{user}/strikes", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def test_actions_follow_the_contract(client: TestClient) -> None:
    no_group = send(client, {"text": AD, "user_id": "u"})[0]
    assert no_group["labels"] == ["ad"] and no_group["action"] is None
    clean = act(client, text="明天上午九点开会", group_id="a1", user_id="u")
    assert clean == {"type": "none", "rule": None, "strike": None, "reply": None}
    warned = act(client, text=AD, group_id="a1", user_id="u", nickname="张三")
    assert warned == {
        "type": "warn",
        "rule": "ad",
        "strike": 1,
        "reply": "@张三 请勿在群内发布广告，这是第1次警告，再次违规将被移出群聊。",
    }


def test_a_dry_run_records_nothing(client: TestClient) -> None:
    for _ in range(2):
        [result] = send(client, {"text": AD, "group_id": "a2", "user_id": "u"}, dry_run=True)
        assert (result["action"]["type"], result["action"]["strike"]) == ("warn", 1)
    assert strikes(client, "a2", "u")["active"] == 0


def test_messages_of_one_request_count_in_order(client: TestClient) -> None:
    message = {"text": AD, "group_id": "a3", "user_id": "u"}
    results = send(client, message, message, message)
    assert [(r["action"]["type"], r["action"]["strike"]) for r in results] == [
        ("warn", 1),
        ("remove", 2),
        ("remove", 3),
    ]


def test_strikes_are_listed_and_pardoned(client: TestClient) -> None:
    act(client, id="m1", text=AD, group_id="a4", user_id="u")
    act(client, id="m2", text=INSULT, group_id="a4", user_id="u")
    listed = strikes(client, "a4", "u")
    assert listed["active"] == 2 and listed["strike_window_days"] == 30
    assert [(s["rule"], s["action"], s["message_id"]) for s in listed["strikes"]] == [
        ("ad", "warn", "m1"),
        ("insult", "warn", "m2"),
    ]
    pardon = client.delete("/v1/groups/a4/users/u/strikes", headers=ADMIN)
    assert pardon.status_code == 200
    assert pardon.json()["pardoned"] == 2 and pardon.json()["active"] == 0
    assert strikes(client, "a4", "u")["strikes"] == []
    # Pardoned: the next ad is a first warning again.
    assert act(client, text=AD, group_id="a4", user_id="u")["strike"] == 1
    assert strikes(client, "a4", "nobody") == {
        "group_id": "a4",
        "user_id": "nobody",
        "active": 0,
        "strike_window_days": 30.0,
        "strikes": [],
        "pardoned": None,
    }


def test_a_group_without_a_policy_gets_the_default(client: TestClient) -> None:
    response = client.get("/v1/groups/new-group/policy", headers=ADMIN)
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "default" and body["updated_at"] is None
    assert body["policy"]["preset"] == "company"
    assert body["policy"]["labels"]["ad"] == {
        "action": "warn",
        "remove_on_strike": 2,
        "reply": None,
    }


def test_a_policy_is_set_as_json_or_yaml_and_acts_at_once(client: TestClient) -> None:
    put = client.put("/v1/groups/a5/policy", json={"preset": "trade_association"}, headers=ADMIN)
    assert put.status_code == 200, put.text
    assert put.json()["source"] == "group" and put.json()["updated_at"]
    assert act(client, text=AD, group_id="a5", user_id="u")["type"] == "none"  # ads allowed
    assert act(client, text=AD, group_id="a5", user_id="v")["rule"] == "duplicates"
    yaml_policy = b"labels:\n  ad:\n    action: remove\nquiet_hours: null\n"
    put = client.put(
        "/v1/groups/a5/policy",
        content=yaml_policy,
        headers={**ADMIN, "Content-Type": "application/yaml"},
    )
    assert put.status_code == 200, put.text
    policy = client.get("/v1/groups/a5/policy", headers=ADMIN).json()["policy"]
    assert policy["preset"] == "company" and policy["quiet_hours"] is None
    assert policy["labels"]["ad"]["action"] == "remove"
    assert act(client, text=AD, group_id="a5", user_id="w")["type"] == "remove"
    reset = client.delete("/v1/groups/a5/policy", headers=ADMIN)
    assert reset.status_code == 200 and reset.json()["source"] == "default"
    assert act(client, text=AD, group_id="a5", user_id="x")["type"] == "warn"


def test_a_bad_policy_is_refused_and_the_old_one_stays(client: TestClient) -> None:
    good = client.put("/v1/groups/a6/policy", json={"preset": "community"}, headers=ADMIN)
    assert good.status_code == 200
    bad = client.put(
        "/v1/groups/a6/policy",
        json={"labels": {"ad": {"action": "ban"}}, "timezone": "Moon/Base"},
        headers=ADMIN,
    )
    body = assert_error(bad, 422, "invalid_policy")
    assert "labels.ad.action" in body["error"]["message"]
    assert "unknown time zone 'Moon/Base'" in body["error"]["message"]
    assert_error(
        client.put("/v1/groups/a6/policy", content=b"{nope", headers=ADMIN), 400, "malformed_json"
    )
    yaml_headers = {**ADMIN, "Content-Type": "application/yaml"}
    assert_error(
        client.put("/v1/groups/a6/policy", content=b"labels: [", headers=yaml_headers),
        400,
        "malformed_json",
    )
    assert_error(
        client.put("/v1/groups/a6/policy", content=b"- a list", headers=yaml_headers),
        422,
        "invalid_policy",
    )
    huge = {"description": "x" * 70_000}
    assert_error(
        client.put("/v1/groups/a6/policy", json=huge, headers=ADMIN), 413, "payload_too_large"
    )
    kept = client.get("/v1/groups/a6/policy", headers=ADMIN).json()
    assert kept["source"] == "group" and kept["policy"]["preset"] == "community"


def test_admin_endpoints_need_an_admin_key(client: TestClient) -> None:
    for method, path in [
        ("GET", "/v1/groups/g/policy"),
        ("PUT", "/v1/groups/g/policy"),
        ("DELETE", "/v1/groups/g/policy"),
        ("GET", "/v1/groups/g/users/u/strikes"),
        ("DELETE", "/v1/groups/g/users/u/strikes"),
    ]:
        assert_error(client.request(method, path, json={}, headers=USER), 403, "forbidden")
        assert_error(client.request(method, path, json={}), 401, "unauthorized")


def test_ids_that_cannot_be_stored_are_refused(client: TestClient) -> None:
    long_id = "g" * 129
    assert_error(client.get(f"/v1/groups/{long_id}/policy", headers=ADMIN), 422, "invalid_request")
    assert_error(
        client.get("/v1/groups/g%01x/users/u/strikes", headers=ADMIN), 422, "invalid_request"
    )
    for bad in (f'"group_id": "{long_id}"', '"user_id": "u\\u0000"', '"group_id": "\\ud800"'):
        body = '{"messages": [{"text": "hi", ' + bad + "}]}"
        response = client.post(
            "/v1/classify", content=body, headers={**USER, "Content-Type": "application/json"}
        )
        assert_error(response, 422, "invalid_request")
    # A client's message id is free text: kept (cut and cleaned) with the strike.
    odd_id = "m\x00" + "i" * 300
    assert act(client, id=odd_id, text=AD, group_id="a7", user_id="u")["strike"] == 1
    [strike] = strikes(client, "a7", "u")["strikes"]
    assert strike["message_id"].startswith("m\ufffdi") and len(strike["message_id"]) == 128


def test_openapi_describes_the_group_endpoints(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    policy = spec["paths"]["/v1/groups/{group_id}/policy"]
    assert set(policy) == {"get", "put", "delete"}
    assert set(policy["put"]["requestBody"]["content"]) == {"application/json", "application/yaml"}
    assert set(spec["paths"]["/v1/groups/{group_id}/users/{user_id}/strikes"]) == {"get", "delete"}
    schemas = spec["components"]["schemas"]
    assert {"Policy", "Rule", "QuietHours", "PolicyResponse", "StrikesResponse"} <= set(schemas)
    assert schemas["Message"]["properties"]["group_id"]["anyOf"][0]["maxLength"] == 128


@pytest.mark.parametrize("kind", DATABASES)
def test_strikes_and_policies_survive_a_restart(
    kind: str, tiny_releases: Path, tmp_path: Path
) -> None:
    with database_url(kind, tmp_path) as url:
        settings = settings_for(tiny_releases, data_dir=tmp_path, database_url=url, warmup=False)
        with running(settings) as first:
            lexicon_only(first)
            put = client_put(
                first, "g", {"labels": {"insult": {"action": "warn", "remove_on_strike": 3}}}
            )
            assert put.status_code == 200
            assert act(first, text=INSULT, group_id="g", user_id="u")["strike"] == 1
            assert act(first, text=INSULT, group_id="g", user_id="u")["strike"] == 2
        with running(settings) as second:  # a new app (process) on the same database
            lexicon_only(second)
            assert strikes(second, "g", "u")["active"] == 2
            policy = second.get("/v1/groups/g/policy", headers=ADMIN).json()
            assert policy["policy"]["labels"]["insult"]["remove_on_strike"] == 3
            third = act(second, text=INSULT, group_id="g", user_id="u")
            assert (third["type"], third["strike"]) == ("remove", 3)


def client_put(client: TestClient, group: str, document: dict[str, Any]) -> Any:
    return client.put(f"/v1/groups/{group}/policy", json=document, headers=ADMIN)


def test_a_day_of_a_company_group(client: TestClient) -> None:
    """The default (company) rules over one day of a group's chat, every action checked."""
    day = (datetime.now(SHANGHAI) - timedelta(days=1)).date()

    def at(clock: str) -> str:
        hour, minute = map(int, clock.split(":"))
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).isoformat()

    group = "company-day"
    chat: list[tuple[dict[str, Any], tuple[str, str | None, int | None]]] = [
        (
            {"user_id": "u1", "nickname": "财务部+王芳", "text": "早上好", "sent_at": at("07:10")},
            ("remind", "quiet_hours", None),
        ),
        (
            {"user_id": "u1", "nickname": "财务部+王芳", "text": "早上好", "sent_at": at("07:40")},
            ("none", None, None),
        ),
        (
            {"event": "join", "user_id": "u7", "nickname": "小明", "sent_at": at("08:00")},
            ("remind", "nickname", None),
        ),
        (
            {"event": "rename", "user_id": "u7", "nickname": "技术部-李明", "sent_at": at("08:05")},
            ("none", None, None),
        ),
        (
            {
                "user_id": "boss",
                "nickname": "行政部+周总",
                "is_admin": True,
                "sent_at": at("09:00"),
                "text": "报名链接 https://example.com/signup 扫码进群领福利, 宝妈兼职",
            },
            ("none", None, None),
        ),
        (
            {"user_id": "u2", "nickname": "销售部+赵强", "text": AD, "sent_at": at("10:00")},
            ("warn", "ad", 1),
        ),
        (
            {
                "user_id": "u3",
                "nickname": "技术部-孙丽",
                "sent_at": at("10:30"),
                "text": "今天的会议纪要如下，" * 30,
            },
            ("remind", "max_length", None),
        ),
        (
            {"user_id": "u2", "nickname": "销售部+赵强", "text": AD, "sent_at": at("11:00")},
            ("remove", "ad", 2),
        ),
        (
            {"user_id": "u4", "nickname": "市场部+钱伟", "text": INSULT, "sent_at": at("14:00")},
            ("warn", "insult", 1),
        ),
        (
            {"event": "invite", "user_id": "u5", "nickname": "市场部+吴敏", "sent_at": at("15:00")},
            ("remind", "invitations", None),
        ),
        (
            {"event": "invite", "user_id": "boss", "is_admin": True, "sent_at": at("15:05")},
            ("none", None, None),
        ),
        (
            {
                "user_id": "u4",
                "nickname": "市场部+钱伟",
                "text": "收到，谢谢",
                "sent_at": at("16:00"),
            },
            ("none", None, None),
        ),
        (
            {"user_id": "u6", "nickname": "技术部-郑凯", "text": "晚安", "sent_at": at("22:30")},
            ("remind", "quiet_hours", None),
        ),
        # An insult in quiet hours: the warning outranks the reminder; the second insult removes.
        (
            {
                "user_id": "u4",
                "nickname": "市场部+钱伟",
                "text": "傻逼 脑残",
                "sent_at": at("23:00"),
            },
            ("remove", "insult", 2),
        ),
    ]
    messages = [{"id": f"m{i}", "group_id": group, **m} for i, (m, _) in enumerate(chat)]
    results = send(client, *messages)
    for (message, expected), result in zip(chat, results, strict=True):
        action = result["action"]
        assert (action["type"], action["rule"], action["strike"]) == expected, message
        assert (action["reply"] is None) == (expected[0] == "none")
    assert results[4]["labels"] == ["ad"]  # the admin's link was an ad, and exempt
    replies = [r["action"]["reply"] for r in results]
    assert replies[0] == "@财务部+王芳 现在是本群休息时间（22:00-07:30），请勿在群内聊天。"
    assert replies[2] == "@小明 请按群规修改群昵称，格式如：财务部+张三。"
    assert (
        replies[7] == "@销售部+赵强 因多次违反群规（本次：在群内发布广告，第2次），将被移出群聊。"
    )
    assert [
        strikes(client, group, user)["active"] for user in ("u1", "u2", "u4", "u5", "boss")
    ] == [
        0,
        2,
        2,
        0,
        0,
    ]


def test_an_unreachable_database_answers_503(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = client.app.state.policies  # type: ignore[attr-defined]

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(engine.ledger, "record", down)
    monkeypatch.setattr(engine.ledger, "active", down)
    response = client.post(
        "/v1/classify",
        json={
            "messages": [
                {"text": AD, "group_id": "a8", "user_id": "u", "sent_at": noon_yesterday()}
            ]
        },
        headers=USER,
    )
    assert_error(response, 503, "store_unavailable")
    assert response.headers["retry-after"] == "1"
    listed = client.get("/v1/groups/a8/users/u/strikes", headers=ADMIN)
    assert_error(listed, 503, "store_unavailable")
