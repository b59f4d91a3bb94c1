"""Two service processes sharing one PostgreSQL count one user's strikes correctly.

Two real servers (`python -m serving`, uvicorn, two loopback ports) run on the same database;
violations of one user are sent to both at once. Every strike number is given exactly once:
one warning, then removals, and both servers then report the same strikes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from models.labels import IMAGE_LABELS, TEXT_LABELS
from models.paths import REPO_ROOT
from tests.test_store_databases import postgres_schema

INSULT = "你个傻逼"  # insult through the lexicon, whatever the tiny model says
VIOLATIONS = 40


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server(models_dir: Path, database_url: str, data_dir: Path) -> Iterator[str]:
    """A `python -m serving` process on a free loopback port; yields its base URL."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("QUNGUARD_API_KEYS", "QUNGUARD_ADMIN_KEYS")
    }
    env.update(
        QUNGUARD_DATABASE_URL=database_url,
        QUNGUARD_DATA_DIR=str(data_dir),
        QUNGUARD_LOG_LEVEL="warning",
    )
    command = [sys.executable, "-m", "serving", "--port", str(port), "--no-warmup"]
    command += ["--models-dir", str(models_dir)]
    log = (data_dir / f"server-{port}.log").open("w")
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (data_dir / f"server-{port}.log").read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not get ready in 120 s"
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_two_servers_on_one_postgres_count_strikes_once(
    tiny_releases: Path, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        url = stack.enter_context(postgres_schema())
        bases = [
            stack.enter_context(server(tiny_releases, url, tmp_path)),
            stack.enter_context(server(tiny_releases, url, tmp_path)),
        ]
        # Only insults count in this group, so the tiny model's other guesses cannot interfere.
        labels = {label: {"action": "none"} for label in TEXT_LABELS + IMAGE_LABELS}
        labels["insult"] = {"action": "warn", "remove_on_strike": 2}
        policy = {"labels": labels, "quiet_hours": None, "max_length": None}
        put = httpx.put(f"{bases[0]}/v1/groups/g/policy", json=policy, timeout=10)
        assert put.status_code == 200, put.text

        noon = datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(days=1)
        sent_at = noon.replace(hour=12, minute=0).isoformat()
        start = threading.Barrier(VIOLATIONS)
        actions: list[dict[str, object]] = []
        failures: list[str] = []

        def violate(i: int) -> None:
            message = {"id": f"m{i}", "text": INSULT, "group_id": "g", "user_id": "u"}
            body = {"messages": [{**message, "sent_at": sent_at}]}
            with httpx.Client(timeout=60) as client:
                start.wait()
                response = client.post(f"{bases[i % 2]}/v1/classify", json=body)
            if response.status_code != 200:
                failures.append(response.text)
                return
            actions.append(response.json()["results"][0]["action"])

        threads = [threading.Thread(target=violate, args=(i,)) for i in range(VIOLATIONS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures[:3]
        assert sorted(a["strike"] for a in actions) == list(range(1, VIOLATIONS + 1))
        assert Counter(a["type"] for a in actions) == {"warn": 1, "remove": VIOLATIONS - 1}
        assert {a["rule"] for a in actions} == {"insult"}
        for base in bases:
            listed = httpx.get(f"{base}/v1/groups/g/users/u/strikes", timeout=10).json()
            assert listed["active"] == VIOLATIONS
            assert sorted(s["message_id"] for s in listed["strikes"]) == sorted(
                f"m{i}" for i in range(VIOLATIONS)
            )
