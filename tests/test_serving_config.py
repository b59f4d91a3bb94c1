"""Settings from the environment and CLI, binding without keys, key checks, JSON logs."""

from __future__ import annotations

import hmac
import json
import logging
from pathlib import Path
from typing import Any

import pytest

import serving.__main__ as cli
from serving.keys import KeyRing
from serving.logs import JsonFormatter
from serving.settings import Settings
from tests.serving_fixtures import USER, classify, running, settings_for


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNGUARD_API_KEYS", " a1, b2 ,,")
    monkeypatch.setenv("QUNGUARD_ADMIN_KEYS", "root")
    monkeypatch.setenv("QUNGUARD_MAX_BATCH", "1")
    monkeypatch.setenv("QUNGUARD_MODELS_DIR", "/srv/models")
    monkeypatch.setenv("QUNGUARD_LOG_TEXT", "1")
    settings = Settings()
    assert settings.api_keys == ("a1", "b2")
    assert settings.admin_keys == ("root",)
    assert settings.max_batch == 1
    assert settings.models_dir == Path("/srv/models")
    assert settings.log_text is True


def test_invalid_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNGUARD_MAX_BATCH", "0")
    with pytest.raises(ValueError):
        Settings()


def test_cli_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNGUARD_MAX_BATCH", "16")
    monkeypatch.setenv("QUNGUARD_PORT", "9000")
    settings = cli.parse_settings(["--port", "8123", "--models-dir", "/m", "--no-warmup"])
    assert (settings.port, settings.max_batch) == (8123, 16)
    assert settings.models_dir == Path("/m") and settings.warmup is False
    assert cli.parse_settings(["--max-batch", "1"]).max_batch == 1


def test_without_keys_only_loopback_is_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **kw: calls.append(kw))
    monkeypatch.setattr(cli.logging.config, "dictConfig", lambda config: None)
    monkeypatch.delenv("QUNGUARD_API_KEYS", raising=False)
    monkeypatch.delenv("QUNGUARD_ADMIN_KEYS", raising=False)
    cli.main(["--host", "0.0.0.0", "--port", "8555", "--models-dir", "/nonexistent"])
    assert calls[-1]["host"] == "127.0.0.1" and calls[-1]["port"] == 8555
    assert calls[-1]["loop"] == "uvloop" and calls[-1]["http"] == "httptools"
    monkeypatch.setenv("QUNGUARD_API_KEYS", "k")
    cli.main(["--host", "0.0.0.0", "--models-dir", "/nonexistent"])
    assert calls[-1]["host"] == "0.0.0.0"


def test_keys_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    keys = KeyRing(["u1", "u2"], ["admin"])
    assert keys.is_user("u1")  # matches the first key, yet every key is compared
    assert len(compared) == 3
    assert keys.is_user("admin") and not keys.is_admin("u2")
    assert not keys.is_user("ü-not-a-key") and not KeyRing([], []).enabled


def test_open_server_without_keys(tiny_releases: Path) -> None:
    settings = settings_for(tiny_releases, api_keys=(), admin_keys=())
    with running(settings) as client:
        assert classify(client, "你好", headers={}).status_code == 200
        assert client.post("/v1/admin/reload").status_code == 200


def test_json_formatter_writes_one_object_a_line() -> None:
    record = logging.LogRecord("qunguard.x", logging.WARNING, "f", 1, "hello %s", ("世界",), None)
    record.detail = {"n": 1}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "hello 世界" and entry["level"] == "warning"
    assert entry["detail"] == {"n": 1} and entry["logger"] == "qunguard.x"
    record.detail = "\ud800"  # a lone surrogate still gives a writable line
    line = JsonFormatter().format(record)
    line.encode("utf-8")
    assert json.loads(line)["detail"] == "\ud800"


@pytest.mark.parametrize("log_text", [False, True])
def test_message_text_is_logged_only_when_asked(
    tiny_releases: Path, caplog: pytest.LogCaptureFixture, log_text: bool
) -> None:
    settings = settings_for(tiny_releases, access_log=True, log_text=log_text)
    secret = "机密消息内容"
    with running(settings) as client, caplog.at_level(logging.INFO, logger="qunguard"):
        assert classify(client, secret, headers=USER).status_code == 200
    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert any('"route"' in line or '"path"' in line for line in lines)  # the access log
    classified = [json.loads(line) for line in lines if '"classified"' in line]
    assert classified and classified[0]["detail"]["messages"] == 1
    assert any(secret in line for line in lines) is log_text
