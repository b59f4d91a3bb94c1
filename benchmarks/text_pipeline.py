"""Messages per second of the text pipeline on one core, stage by stage.

    .venv/bin/python benchmarks/text_pipeline.py [--messages 20000] [--repeat 5] [--profile]

The mix: the evasion and ordinary tables of tests/data plus a sample of LCCC-base clean chat
(../shared/datasets/lccc_base_small), or the tables alone when ../shared is absent. The
per-character caches are warmed by one pass first, as they are in a running server. Rates are
CPU time of this one process (time.process_time), so other load on the machine does not count.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.arguments import at_least_one  # noqa: E402
from models.paths import REPO_ROOT, SHARED_DATASETS_DIR  # noqa: E402
from models.text.contacts import extract_contacts  # noqa: E402
from models.text.normalize import normalize  # noqa: E402
from models.text.pinyin import pinyin_view  # noqa: E402
from models.text.pipeline import analyze, default_lexicon, model_text  # noqa: E402

TARGET = 20_000  # messages per second, one core, the whole pipeline
TABLES = REPO_ROOT / "tests" / "data"
LCCC_DIR = SHARED_DATASETS_DIR / "lccc_base_small"
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _table_lines() -> list[str]:
    lines = []
    for name in ("evasion_cases.tsv", "ordinary_lines.txt"):
        for line in (TABLES / name).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                text = line.split("\t")[0]
                lines.append(_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text))
    return lines


def _lccc_lines() -> list[str]:
    lines: list[str] = []
    for path in sorted(LCCC_DIR.glob("*.json")):
        for dialogue in json.loads(path.read_text(encoding="utf-8")):
            lines.extend(utterance.replace(" ", "") for utterance in dialogue)
    return lines


def build_mix(size: int, seed: int = 0) -> tuple[list[str], str]:
    """`size` messages: table lines (a tenth, ads and evasions) and LCCC chat."""
    rng = random.Random(seed)
    tables = _table_lines()
    lccc = _lccc_lines() if LCCC_DIR.is_dir() else []
    if not lccc:
        return [rng.choice(tables) for _ in range(size)], "tables only (no ../shared)"
    n_tables = size // 10
    mix = [rng.choice(tables) for _ in range(n_tables)]
    mix += rng.sample(lccc, min(size - n_tables, len(lccc)))
    rng.shuffle(mix)
    return mix, f"{n_tables} table lines + {len(mix) - n_tables} LCCC utterances"


def _stages() -> list[tuple[str, Callable[[str], object]]]:
    lexicon = default_lexicon()

    def norm_contacts(text: str) -> object:
        return extract_contacts(text, normalize(text))

    def norm_pinyin(text: str) -> object:
        return pinyin_view(normalize(text))

    def norm_lexicon(text: str) -> object:
        n = normalize(text)
        return lexicon.match(n, pinyin_view(n))

    def full(text: str) -> object:
        return model_text(analyze(text, lexicon))

    return [
        ("normalize", normalize),
        ("normalize + contacts", norm_contacts),
        ("normalize + pinyin view", norm_pinyin),
        ("normalize + pinyin + lexicon", norm_lexicon),
        ("analyze (all) + model_text", full),
    ]


def _rate(fn: Callable[[str], object], messages: list[str], repeat: int) -> float:
    rates = []
    for _ in range(repeat):
        start = time.process_time()
        for text in messages:
            fn(text)
        rates.append(len(messages) / (time.process_time() - start))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=at_least_one, default=20_000)
    parser.add_argument("--repeat", type=at_least_one, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile the full pipeline")
    args = parser.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    messages, origin = build_mix(args.messages)
    lengths = sorted(len(m) for m in messages)
    short = sum(5 <= n <= 60 for n in lengths) / len(lengths)
    print(f"mix: {len(messages)} messages ({origin}); median length {lengths[len(lengths) // 2]},")
    print(f"     {short:.0%} of them 5 to 60 characters; one core, median of {args.repeat} runs")

    stages = _stages()
    for _, fn in stages:  # warm the per-character caches and the lexicon
        for text in messages:
            fn(text)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [stages[-1][1](t) for t in messages])
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        return
    print(f"{'stage':<32}{'msg/s':>10}{'µs/msg':>9}")
    rate = 0.0
    for name, fn in stages:
        rate = _rate(fn, messages, args.repeat)
        print(f"{name:<32}{rate:>10,.0f}{1e6 / rate:>9.1f}")
    verdict = "met" if rate >= TARGET else "NOT met"
    print(f"target {TARGET:,} msg/s for the whole pipeline on one core: {verdict}")


if __name__ == "__main__":
    main()
