"""Check corpus files: valid JSON lines, known labels, lengths, duplicates, counts per label.

Usage: python3 -m training.corpus_check data/corpus/*.jsonl
Standard library only, so corpus writers can run it before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from models.labels import TEXT_LABELS


def check_files(paths: list[Path]) -> list[str]:
    """Return a list of problems; print counts per label and per file."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    label_counts: Counter[str] = Counter()
    for path in paths:
        rows = 0
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read ({exc})")
            continue
        for lineno, line in enumerate(lines, 1):
            where = f"{path}:{lineno}"
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{where}: not JSON ({exc})")
                continue
            if not isinstance(row, dict):
                problems.append(f"{where}: not a JSON object")
                continue
            text, labels, source = row.get("text"), row.get("labels"), row.get("source")
            if not isinstance(text, str) or not isinstance(labels, list) or not source:
                problems.append(f"{where}: needs text (str), labels (list), source")
                continue
            unknown = [label for label in labels if label not in TEXT_LABELS]
            if unknown:
                problems.append(f"{where}: unknown labels {unknown}")
            if not 2 <= len(text) <= 200:
                problems.append(f"{where}: length {len(text)} outside 2..200")
            key = "".join(text.split())
            if key in seen:
                problems.append(f"{where}: duplicate of {seen[key]}")
            else:
                seen[key] = where
            rows += 1
            label_counts.update(labels or ["clean"])
        print(f"{path}: {rows} rows")
    print("per label:", dict(sorted(label_counts.items())))
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.corpus_check", description=__doc__.split("\n")[0]
    )
    parser.add_argument("files", nargs="+", type=Path, help="corpus JSONL files")
    problems = check_files(parser.parse_args(argv).files)
    for problem in problems[:50]:
        print(problem)
    if len(problems) > 50:
        print(f"... and {len(problems) - 50} more")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
