"""`python -m training.reports export`: stored reports as the JSONL `read_reports` reads, and
the ML engineers' loop end to end through the HTTP API: a missed evasion spelling is reported,
exported, trained on, gated, reloaded, and then flagged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from serving.store import open_store
from serving.store.reports import ReportTable
from tests.ml_fixtures import train_tiny, write_tiny_corpus
from tests.serving_fixtures import ADMIN, USER, running, settings_for
from tests.test_store_databases import DATABASES, database_url
from training.gate import main as gate_main
from training.reports import ReportError, main, read_reports
from training.rollout import Layout

AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("kind", DATABASES)
def test_exported_reports_round_trip_through_read_reports(kind: str, tmp_path: Path) -> None:
    with database_url(kind, tmp_path) as url:
        store = open_store(tmp_path, url)
        table = ReportTable(store)
        first = table.add(
            text="加 薇信 领福利", labels=["fraud", "ad"], image=None, group_id="g", reporter="m",
            note="引流", message_id="m-1", at=AT,
        ).id  # fmt: skip
        table.add(text=None, image=b"\x89PNG...", labels=[], at=AT)  # a picture: skipped
        last = table.add(text="好的 收到", labels=[], image=None, at=AT).id
        store.close()

        out = tmp_path / "reports.jsonl"
        assert main(["export", "--db", url, "--out", str(out)]) == 0
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [r["id"] for r in rows] == [first, last]
        assert rows[0] == {
            "id": first,
            "text": "加 薇信 领福利",
            "labels": ["ad", "fraud"],
            "group_id": "g",
            "reporter": "m",
            "note": "引流",
            "created_at": "2026-11-24T10:00:00+00:00",
            "message_id": "m-1",
        }
        examples = read_reports(out)
        assert [(e.text, e.labels, e.source) for e in examples] == [
            ("加 薇信 领福利", ("ad", "fraud"), f"report/{first}"),
            ("好的 收到", (), f"report/{last}"),
        ]
        assert main(["export", "--db", url, "--out", str(out), "--after-id", str(first)]) == 0
        assert [e.source for e in read_reports(out)] == [f"report/{last}"]


def test_export_defaults_to_the_service_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("QUNGUARD_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNGUARD_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "r.jsonl"
    assert main(["export", "--out", str(out)]) == 1  # no database yet: an error, none created
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
    store = open_store(tmp_path / "data")
    ReportTable(store).add(text="兼职刷单", labels=["ad"], image=None, at=AT)
    store.close()
    assert main(["export", "--out", str(out)]) == 0
    assert [e.labels for e in read_reports(out)] == [("ad",)]
    assert "exported 1 reports" in capsys.readouterr().err


def test_read_reports_rejects_what_export_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": 1, "labels": []}\n', encoding="utf-8")
    with pytest.raises(ReportError, match="text"):
        read_reports(path)


# An invented ad slang ("the little bear cabinet is full again, old friends knock on the window
# for samples"): no contact, no lexicon term, and the tiny model trained on our corpus does not
# score it as an ad (the earlier "喵喵铺子上新啦" became one when the corpus grew: 上新).
SLANG_AD = "小熊柜子又满了，老朋友敲窗领小样"
# Moderators report the slang in the several messages it came in, not just the one.
SLANG_MORE = [
    "小熊柜子满啦，敲窗领小样",
    "老朋友敲窗，小熊柜子有小样",
    "小熊柜子今天又满了 敲窗来拿",
]
CLEAN = ["谢谢大家", "中午吃什么", "下午三点开会"]
# Tiny models on a 40-line corpus: more epochs than tiny.json's 2, so that they learn at all.
EPOCHS = ["--epochs", "40"]
# Per-label F1 on the tiny held-out set (two or three positives per label) swings by up to 0.7
# between two tiny trainings that differ by a few examples, so here the gate's per-label rows
# cannot bind (tests/test_gate.py checks that they do); the reports row still has to improve.
TINY_TOLERANCE = "1.0"


def classify_texts(client, texts: list[str]) -> dict:  # type: ignore[no-untyped-def]
    body = {"messages": [{"id": f"m{i}", "text": t} for i, t in enumerate(texts)]}
    response = client.post("/v1/classify", json=body, headers=USER)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Train on one thread: the same numbers on every machine, and no thread contention with
    whatever else runs (two threads on a busy two-core machine were 10x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_torch_thread")
def test_the_loop_from_a_report_to_a_served_model(tmp_path: Path) -> None:
    corpus = write_tiny_corpus(tmp_path / "corpus")
    layout = Layout(tmp_path / "models" / "releases")
    train_tiny(corpus, layout.releases, "2020.01.01-1", *EPOCHS)
    settings = settings_for(layout.releases, data_dir=tmp_path / "var", warmup=False)
    with running(settings) as client:
        before = classify_texts(client, [SLANG_AD, *CLEAN])
        assert before["model_version"]["text"] == "2020.01.01-1"
        # The tiny model misses the ad slang (what it does with the clean lines is noise: the
        # reports below teach it those too).
        assert "ad" not in before["results"][0]["labels"], before["results"][0]

        # Moderators report the missed ad, and a few clean messages as clean.
        reports = [{"text": SLANG_AD, "labels": ["ad"], "message_id": "m0", "note": "新黑话"}]
        reports += [{"text": text, "labels": ["ad"]} for text in SLANG_MORE]
        reports += [{"text": text, "labels": []} for text in CLEAN]
        for report in reports:
            response = client.post(
                "/v1/reports", json={**report, "group_id": "g1", "reporter": "mod-1"}, headers=USER
            )
            assert response.status_code == 201, response.text

        exported = tmp_path / "reports.jsonl"
        url = f"sqlite:///{tmp_path / 'var' / 'qunguard.db'}"
        assert main(["export", "--db", url, "--out", str(exported)]) == 0
        assert [(e.text, e.labels) for e in read_reports(exported)] == [
            (SLANG_AD, ("ad",)),
            *((text, ("ad",)) for text in SLANG_MORE),
            *((text, ()) for text in CLEAN),
        ]

        candidate = train_tiny(
            corpus, layout.candidates, "2020.01.02-1", *EPOCHS, "--reports", str(exported)
        )
        manifest = json.loads((candidate / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["data"]["train_sources"]["report"] == len(reports)
        gate = [
            "--candidate", str(candidate), "--releases", str(layout.releases),
            "--corpus", str(corpus), "--corpus-only", "--reports", str(exported),
            "--tolerance", TINY_TOLERANCE,
        ]  # fmt: skip
        assert gate_main(gate) == 0
        assert layout.served() == layout.releases / "2020.01.02-1"
        verdict = json.loads((layout.served() / "manifest.json").read_text())["metrics"]["gate"]
        assert verdict["verdict"] == "passed" and verdict["forced"] is False
        [reports_row] = [r for r in verdict["comparison"] if r["section"] == "reports"]
        assert reports_row["candidate"] > reports_row["current"]

        reload = client.post("/v1/admin/reload", headers=ADMIN)
        assert reload.status_code == 200, reload.text
        after = classify_texts(client, [r["text"] for r in reports])
        assert after["model_version"]["text"] == "2020.01.02-1"
        slang = after["results"][0]
        clean = after["results"][len(reports) - len(CLEAN) :]
        assert slang["flagged"] and slang["labels"] == ["ad"], slang
        assert [r["flagged"] for r in clean] == [False] * 3, clean
        # The service gives the reported labels exactly where the gate counted them right.
        right = sum(
            sorted(result["labels"]) == sorted(report["labels"])
            for result, report in zip(after["results"], reports, strict=True)
        )
        assert right == reports_row["candidate"], after["results"]
