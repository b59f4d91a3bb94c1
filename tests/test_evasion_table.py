"""Real-looking evasions must be caught; ordinary chat must produce nothing at all.

The tables live in tests/data (evasion_cases.tsv, ordinary_lines.txt) so they can be read,
extended and reused (benchmarks/text_pipeline.py builds its message mix from them).
"""

import re
from pathlib import Path

import pytest

from models.text.pipeline import analyze

DATA = Path(__file__).parent / "data"
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _rows(name: str) -> list[str]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def _decode(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


EVASIONS = [
    (_decode(text), [e.strip() for e in expected.split(";")])
    for text, expected in (row.split("\t") for row in _rows("evasion_cases.tsv"))
]
ORDINARY = _rows("ordinary_lines.txt")


def test_tables_are_big_enough() -> None:
    assert len(EVASIONS) >= 60
    assert len(ORDINARY) >= 60
    kinds = {e.split("=")[0] for _, expected in EVASIONS for e in expected}
    assert kinds == {"wechat", "qq", "phone", "url", "email", "lexicon"}


@pytest.mark.parametrize(("text", "expected"), EVASIONS, ids=[t for t, _ in EVASIONS])
def test_evasion_is_caught(text: str, expected: list[str]) -> None:
    analysis = analyze(text)
    found = {f"{c.type}={c.value}" for c in analysis.contacts}
    found |= {f"lexicon={h.label}" for h in analysis.hits}
    for item in expected:
        normalised = analysis.normalized.text
        assert item in found, f"{item} not in {sorted(found)} (normalised: {normalised!r})"


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_line_finds_nothing(text: str) -> None:
    analysis = analyze(text)
    assert analysis.contacts == []
    assert analysis.hits == []
