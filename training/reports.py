"""Moderator reports as training examples.

A report says how a message should have been labelled: `labels` lists the right labels, empty
for "this message is fine" (a false positive). Reports are exported as JSONL, one object a line:

    {"id": "r-17", "text": "...", "labels": ["ad"], "group_id": "g1", "reporter": "mod-3",
     "note": "引流, missed", "created_at": "2026-11-24T10:00:00+00:00"}

Each becomes an `Example` with source `report/<id>`. `training.data.build_splits(reports=...)`
(`python -m training.train --reports FILE`) lets a report replace the corpus example of the
same normalised text in training and dev, and adds the others to training. When two reports
name the same normalised text, the later line wins (exports are oldest first).

The service stores reports (`POST /v1/reports`) in its database; export them with

    python -m training.reports export --db URL --out reports.jsonl [--after-id N]

(`--db` defaults to the service's database: QUNGUARD_DATABASE_URL, else the SQLite file
`qunguard.db` in QUNGUARD_DATA_DIR, `var/`). Reports with a picture and no text are skipped:
the text model cannot learn from them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.labels import TEXT_LABELS
from training.data import Example

REPORT_FIELDS = ("id", "text", "labels", "group_id", "reporter", "note", "created_at")


class ReportError(ValueError):
    """A reports file line that cannot be used."""


def report_example(row: Mapping[str, Any], where: str = "report") -> Example:
    """One report object as an Example; ReportError names `where` when it is malformed."""
    text, labels, report_id = row.get("text"), row.get("labels"), row.get("id")
    if not isinstance(text, str) or not text.strip():
        raise ReportError(f"{where}: `text` must be a non-empty string")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise ReportError(f"{where}: `labels` must be a list of label names")
    unknown = sorted(set(labels) - set(TEXT_LABELS))
    if unknown:
        raise ReportError(f"{where}: unknown labels {unknown}")
    if report_id is None or isinstance(report_id, bool) or str(report_id) == "":
        raise ReportError(f"{where}: `id` is missing")
    ordered = tuple(label for label in TEXT_LABELS if label in labels)
    return Example(text, ordered, f"report/{report_id}")


def read_reports(path: Path) -> list[Example]:
    """Every report of a JSONL file, in file order."""
    examples = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReportError(f"{path}:{lineno}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise ReportError(f"{path}:{lineno}: not a JSON object")
        examples.append(report_example(row, f"{path}:{lineno}"))
    return examples


def default_database_url() -> str:
    """The service's database, as `python -m serving` finds it in the environment."""
    from serving.store.db import SQLITE_FILE

    url = os.environ.get("QUNGUARD_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{Path(os.environ.get('QUNGUARD_DATA_DIR') or 'var') / SQLITE_FILE}"


def export_reports(url: str, out: Path, after_id: int = 0, batch: int = 1000) -> tuple[int, int]:
    """Write the stored reports with id > after_id, oldest first, as JSONL `read_reports`
    reads; returns (written, skipped) where skipped are reports without text."""
    from sqlalchemy.engine import make_url

    from serving.store.db import make_engine
    from serving.store.reports import read_page

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise ReportError(f"no database at {url}")
    engine = make_engine(url)
    written = skipped = 0
    staging = out.with_name(out.name + ".tmp")
    try:
        with staging.open("w", encoding="utf-8") as file:
            while True:
                with engine.connect() as connection:
                    rows = read_page(connection, after_id, batch)
                for row in rows:
                    after_id = row["id"]
                    if row["text"] is None:
                        skipped += 1
                        continue
                    report = {
                        "id": row["id"],
                        "text": row["text"],
                        "labels": row["labels"],
                        "group_id": row["group_id"],
                        "reporter": row["reporter"],
                        "note": row["note"],
                        "created_at": row["created_at"].isoformat(),
                        "message_id": row["message_id"],
                    }
                    file.write(json.dumps(report, ensure_ascii=False) + "\n")
                    written += 1
                if len(rows) < batch:
                    break
        os.replace(staging, out)
    finally:
        staging.unlink(missing_ok=True)
        engine.dispose()
    return written, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.reports",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the stored reports as JSONL")
    export.add_argument("--db", default=None, help="database URL (default: the service's)")
    export.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    export.add_argument("--after-id", type=int, default=0, help="only reports with a larger id")
    args = parser.parse_args(argv)
    url = args.db or default_database_url()
    try:
        written, skipped = export_reports(url, args.out, args.after_id)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    note = f" ({skipped} with a picture and no text skipped)" if skipped else ""
    print(f"exported {written} reports to {args.out}{note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
