"""`python -m training.gate`: a trained candidate is served only if it is no worse.

    python -m training.gate --candidate models/candidates/2026.11.25-1 --reports reports.jsonl
    python -m training.gate --candidate models/candidates/2026.11.25-1 \\
        --force --reason "ad recall matters more than COLD this week"

The candidate and the current release (default: the served one, the newest under --releases)
are scored the same way (training.evaluate) on the same fixed evaluation sets: our held-out
corpus, COLD test, the QQ-group ad test and the false-positive rate on unseen clean chat. The
candidate passes when
- no label's F1 on any set, no macro-F1 and no false-positive rate is worse than the current
  release's by more than --tolerance, and
- with --reports (the reports it was trained to fix): it gets more of the reported messages
  right (exactly the reported labels) than the current release, or all of them.

A passing candidate moves from candidates/ into releases/ (one os.rename; see
training/rollout.py) and is served after `POST /v1/admin/reload`. A refused one stays where it
is and the command exits with 1; `--force --reason` promotes it anyway. Whenever the two were
compared, the verdict, whether it was forced, the reason and the comparison go into the
candidate's manifest.json (`metrics.gate` and a line in `notes`). A candidate that does not
load, or is not newer than the served release (it would never be served), is refused before.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.labels import TEXT_LABELS
from models.release import (
    RELEASES_DIR,
    ReleaseError,
    TextModel,
    list_releases,
    read_manifest,
    version_key,
)
from training.data import CORPUS_DIR, Example, Splits, build_splits, load_corpus
from training.evaluate import QQ_OUR_READING, Report, evaluate_release, score_texts
from training.reports import read_reports
from training.rollout import RELOAD_HINT, Layout, RolloutError, check_servable, move

DEFAULT_TOLERANCE = 0.01
DEFAULT_SAMPLES = 1000
# A drop beyond the tolerance refuses when the candidate is no worse on fewer than this share
# of the bootstrap resamples (a one-sided test at the 5% level).
NOISE_LEVEL = 0.05
# Not gated: a 259-line smoke test of the real moderation sample (see training/evaluate.py).
UNGATED_SECTIONS = frozenset({"QQ review sample (smoke)", QQ_OUR_READING})


@dataclass(frozen=True)
class Row:
    """One compared number: a label's F1 on one set, a summary figure, or the reports."""

    section: str
    label: str
    metric: str
    current: float
    candidate: float
    verdict: str  # better | same | within tolerance | within noise | WORSE | NOT BETTER
    passed: bool
    not_worse_share: float | None = None  # bootstrap: resamples where the candidate is no worse


def compare_metric(
    section: str,
    label: str,
    metric: str,
    current: float,
    candidate: float,
    tolerance: float,
    *,
    higher_is_better: bool = True,
) -> Row:
    gain = round((candidate - current) * (1 if higher_is_better else -1), 4)
    if gain > 0:
        verdict = "better"
    elif gain == 0:
        verdict = "same"
    elif gain >= -tolerance:
        verdict = "within tolerance"
    else:
        verdict = "WORSE"
    return Row(section, label, metric, current, candidate, verdict, verdict != "WORSE")


def not_worse_share(
    current: Report,
    candidate: Report,
    key: tuple[str, str],
    samples: int,
    *,
    higher_is_better: bool = True,
    seed: int = 0,
) -> float | None:
    """On what share of bootstrap resamples of the set's rows the candidate is no worse than
    the current release (both scored on the same resamples); None when the figure cannot be
    resampled (not recorded, or the two were evaluated on different sets)."""
    if key not in current.resamplers or key not in candidate.resamplers:
        return None
    (size, old), (new_size, new) = current.resamplers[key], candidate.resamplers[key]
    if size != new_size or size == 0 or samples < 1:
        return None
    sign = 1 if higher_is_better else -1
    rng = np.random.default_rng(seed)
    not_worse = 0
    for _ in range(samples):
        idx = rng.integers(0, size, size)
        not_worse += sign * (new(idx) - old(idx)) >= 0
    return not_worse / samples


def compare_evaluations(
    current: Report, candidate: Report, tolerance: float, samples: int = DEFAULT_SAMPLES
) -> list[Row]:
    """Every label of every gated set, then the summary figures (FPR: lower is better); a drop
    beyond the tolerance that the bootstrap finds within noise passes as `within noise`."""
    rows = []
    for section, results in candidate.sections.items():
        if section in UNGATED_SECTIONS or section not in current.sections:
            continue
        for label, new in results.items():
            old = current.sections[section][label]
            rows.append(compare_metric(section, label, "F1", old.f1, new.f1, tolerance))
    for name, new_value in candidate.extra.items():
        if name not in current.extra:
            continue
        lower = name.startswith("FPR")
        rows.append(
            compare_metric(
                "summary",
                name,
                "FPR" if lower else "score",
                current.extra[name],
                new_value,
                tolerance,
                higher_is_better=not lower,
            )
        )
    return [_within_noise(row, current, candidate, samples) for row in rows]


def _within_noise(row: Row, current: Report, candidate: Report, samples: int) -> Row:
    if row.verdict != "WORSE":
        return row
    key = (row.section, row.label)
    share = not_worse_share(current, candidate, key, samples, higher_is_better=row.metric != "FPR")
    if share is None or share < NOISE_LEVEL:
        return replace(row, not_worse_share=share)
    return replace(row, verdict="within noise", passed=True, not_worse_share=share)


def reports_row(current_right: int, candidate_right: int, total: int) -> Row:
    """The candidate must get more reports right than the current release, or all of them."""
    passed = candidate_right > current_right or candidate_right == total
    verdict = "better" if candidate_right > current_right else "same" if passed else "NOT BETTER"
    return Row(
        "reports", f"right of {total}", "count", current_right, candidate_right, verdict, passed
    )


def reports_right(model: TextModel, reports: Sequence[Example]) -> int:
    """How many reported messages get exactly the reported labels at the model's thresholds."""
    if not reports:
        return 0
    thresholds = np.array([model.thresholds[label] for label in TEXT_LABELS])
    predicted = score_texts(model, [r.text for r in reports]) >= thresholds
    truth = np.array([r.target() for r in reports], dtype=bool)
    return int((predicted == truth).all(axis=1).sum())


@dataclass
class GateResult:
    candidate: str
    current: str | None
    tolerance: float
    rows: list[Row] = field(default_factory=list)
    samples: int = DEFAULT_SAMPLES

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    def table(self) -> str:
        """The comparison side by side, one row per set and label."""
        lines = [
            f"Gate: candidate {self.candidate} against current {self.current or '(none)'}, "
            f"tolerance {self.tolerance:g}, {self.samples} bootstrap resamples",
            "",
            "| set | label | metric | current | candidate | delta | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            if r.metric == "count":
                values = f"{r.current:.0f} | {r.candidate:.0f} | {r.candidate - r.current:+.0f}"
            else:
                values = f"{r.current:.4f} | {r.candidate:.4f} | {r.candidate - r.current:+.4f}"
            verdict = r.verdict
            if r.not_worse_share is not None:
                verdict += f" (no worse on {r.not_worse_share:.0%} of resamples)"
            lines.append(f"| {r.section} | {r.label} | {r.metric} | {values} | {verdict} |")
        if not self.rows:
            lines.append("| - | - | - | - | - | - | nothing to compare: no current release |")
        lines += ["", f"Verdict: {'PASSED' if self.passed else 'REFUSED'}"]
        return "\n".join(lines)


def run_gate(
    candidate: Path,
    current: Path | None,
    splits: Splits,
    *,
    reports: Sequence[Example] = (),
    tolerance: float = DEFAULT_TOLERANCE,
    samples: int = DEFAULT_SAMPLES,
    public: bool = True,
) -> GateResult:
    """Compare the candidate with the current release on `splits` (and the reports)."""
    new_model = TextModel.load(candidate)
    result = GateResult(new_model.version, None, tolerance, samples=samples)
    if current is None:
        return result
    old_model = TextModel.load(current)
    result.current = old_model.version
    old = evaluate_release(current, splits, public=public)
    new = evaluate_release(candidate, splits, public=public)
    result.rows = compare_evaluations(old, new, tolerance, samples)
    if reports:
        result.rows.append(
            reports_row(
                reports_right(old_model, reports), reports_right(new_model, reports), len(reports)
            )
        )
    return result


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


def record(candidate: Path, result: GateResult, *, forced: bool, reason: str | None) -> None:
    """Write the verdict into the candidate's manifest.json (atomically, other keys kept)."""
    path = candidate / "manifest.json"
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    verdict = "passed" if result.passed else "refused"
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    raw.setdefault("metrics", {})["gate"] = {
        "verdict": verdict,
        "forced": forced,
        "reason": reason,
        "current": result.current,
        "tolerance": result.tolerance,
        "samples": result.samples,
        "at": at,
        "by": _user(),
        "comparison": [asdict(row) for row in result.rows],
    }
    note = f"gate {at}: {verdict} against {result.current or 'no current release'}"
    if forced:
        note += f", forced: {reason}"
    raw.setdefault("notes", []).append(note)
    staging = candidate / ".manifest.json.tmp"
    staging.write_text(json.dumps(raw, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, path)
    read_manifest(candidate)  # still valid


def _default_current(layout: Layout, candidate: Path) -> Path | None:
    others = [p for p in list_releases(layout.releases) if p.resolve() != candidate.resolve()]
    return others[-1] if others else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.gate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--candidate", type=Path, required=True, help="candidate release folder")
    parser.add_argument("--current", type=Path, help="release to beat (default: the served one)")
    parser.add_argument("--releases", type=Path, default=RELEASES_DIR, help="served releases")
    parser.add_argument("--reports", type=Path, help="reports JSONL the candidate should fix")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument(
        "--samples",
        type=int,
        default=DEFAULT_SAMPLES,
        help="bootstrap resamples that tell a drop from noise (0: any drop beyond the "
        "tolerance refuses)",
    )
    parser.add_argument("--force", action="store_true", help="promote even when refused")
    parser.add_argument("--reason", help="why --force (required with it)")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--corpus-only", action="store_true", help="no ../shared datasets")
    args = parser.parse_args(argv)
    if args.force and not (args.reason and args.reason.strip()):
        parser.error("--force needs --reason")
    if not 0 <= args.tolerance <= 1:
        parser.error("--tolerance must lie in [0, 1]")
    if args.samples < 0:
        parser.error("--samples must be 0 or more")

    layout = Layout(args.releases)
    candidate = args.candidate
    current = args.current or _default_current(layout, candidate)
    served = _default_current(layout, candidate)
    in_place = candidate.parent.resolve() == layout.releases.resolve()
    try:
        check_servable(candidate)
    except RolloutError as exc:
        print(f"refused: {exc}")
        return 1
    if read_manifest(candidate).version != candidate.name:
        print(f"refused: {candidate} is not named after its manifest's version")
        return 1
    if served and not in_place and version_key(candidate.name) <= version_key(served.name):
        print(
            f"refused: {candidate.name} is not newer than the served {served.name}, so it would "
            "never be served; retrain, or pass --version to training.train"
        )
        return 1

    public = not args.corpus_only
    try:
        splits = build_splits(load_corpus(args.corpus), public=public)
    except (OSError, ValueError) as exc:  # ../shared/datasets missing, or a bad data line
        parser.error(str(exc))
    reports = read_reports(args.reports) if args.reports else []
    try:
        result = run_gate(
            candidate,
            current,
            splits,
            reports=reports,
            tolerance=args.tolerance,
            samples=args.samples,
            public=public,
        )
    except ReleaseError as exc:  # the current release does not load: name one with --current
        print(f"cannot compare: {exc}")
        return 2
    print(result.table())
    promote = result.passed or args.force
    record(candidate, result, forced=args.force and not result.passed, reason=args.reason)
    if not promote:
        print(f"\n{candidate} stays a candidate (--force --reason '...' to promote it anyway)")
        return 1
    if not in_place:
        candidate = move(candidate, layout.releases)
    forced = " (forced)" if not result.passed else ""
    print(f"\npromoted{forced}: {candidate}; the service serves it after reload:\n  {RELOAD_HINT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
