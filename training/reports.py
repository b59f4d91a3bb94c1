"""Moderator reports as training examples.

A report says how a message should have been labelled: `labels` lists the right labels, empty
for "this message is fine" (a false positive). Reports are exported as JSONL, one object a line:

    {"id": "r-17", "text": "...", "labels": ["ad"], "group_id": "g1", "reporter": "mod-3",
     "note": "引流, missed", "created_at": "2026-11-24T10:00:00+00:00"}

Each becomes an `Example` with source `report/<id>`. `training.data.build_splits(reports=...)`
(`python -m training.train --reports FILE`) lets a report replace the corpus example of the
same normalised text in training and dev, and adds the others to training. When two reports
name the same normalised text, the later line wins (exports are oldest first).
"""

from __future__ import annotations

import json
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
