"""`python -m training.cap_sweep`: the dev rule that picks a release's clean-chat cap, as one
command instead of a table filled by hand from `training.fusion_tuning --dry-run` runs.

For each default cap in `--caps` (the per-label caps and the target precision held), fusion
weights and thresholds are tuned on dev as `training.fusion_tuning` does, and the dev
macro-F1 and the share of dev clean chat flagged by any label are printed. The rule:
- only caps that flag at most `--chat-limit` of dev clean chat (default 0.85%, a margin
  below the 1% target for unseen chat) are eligible;
- of those, the best dev macro-F1 wins, except that the smallest cap within `--margin`
  (default 0.001) of it is taken instead: a gain that small is below dev's noise, and a
  larger cap buys it with more flagged chat.

    python -m training.cap_sweep --release models/candidates/2026.11.26-3 \\
        --target-precision 0.9 --label-clean-fpr insult=0.004 --write
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from models.release import RELEASES_DIR, ReleaseError
from training.fusion_tuning import DevRows, FusionChoice, load_for_tuning, write_choice
from training.threshold_rule import clean_caps, fraction, label_value

DEFAULT_CAPS = (0.00075, 0.001, 0.00125, 0.0015, 0.002)


@dataclass(frozen=True)
class CapResult:
    cap: float
    dev_macro_f1: float
    clean_flagged: float


def choose_cap(results: Sequence[CapResult], chat_limit: float, margin: float) -> CapResult | None:
    """The rule of the module docstring; None when no cap keeps dev chat within the limit."""
    eligible = [r for r in results if r.clean_flagged <= chat_limit]
    if not eligible:
        return None
    best = max(r.dev_macro_f1 for r in eligible)
    return min((r for r in eligible if r.dev_macro_f1 >= best - margin), key=lambda r: r.cap)


def _caps(text: str) -> list[float]:
    """`0.001,0.0015` -> [0.001, 0.0015], for argparse."""
    try:
        caps = [fraction(part) for part in text.split(",")]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"--caps: {exc}") from None
    if len(set(caps)) != len(caps):
        raise argparse.ArgumentTypeError(f"--caps names a cap twice: {text}")
    return sorted(caps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.cap_sweep", description=__doc__)
    parser.add_argument("--release", type=Path, help="release folder (default: the served one)")
    parser.add_argument("--releases", type=Path, default=RELEASES_DIR)
    parser.add_argument("--caps", type=_caps, default=list(DEFAULT_CAPS), metavar="C1,C2,...")
    parser.add_argument("--target-precision", type=fraction, default=0.9)
    parser.add_argument(
        "--label-clean-fpr", type=label_value, action="append", default=[], metavar="LABEL=SHARE"
    )
    parser.add_argument("--chat-limit", type=fraction, default=0.0085)
    parser.add_argument("--margin", type=fraction, default=0.001)
    parser.add_argument("--write", action="store_true", help="write the chosen tuned release")
    args = parser.parse_args(argv)
    if args.write and not args.releases.is_dir():  # refuse before minutes of scoring
        parser.error(f"no releases folder at {args.releases}")
    folder, model, current, dev = load_for_tuning(parser, args.release, args.releases)
    rows = DevRows.score(model, dev)
    choices: dict[float, FusionChoice] = {}
    results = []
    print("| cap | dev macro-F1 | dev clean chat flagged |")
    print("|---|---|---|")
    for cap in args.caps:
        choice = rows.tune(args.target_precision, clean_caps(cap, args.label_clean_fpr), current)
        choices[cap] = choice
        results.append(CapResult(cap, choice.dev_macro_f1, choice.clean_flagged))
        print(f"| {cap} | {choice.dev_macro_f1:.4f} | {choice.clean_flagged:.3%} |", flush=True)
    chosen = choose_cap(results, args.chat_limit, args.margin)
    if chosen is None:
        print(f"\nno cap keeps dev clean chat within {args.chat_limit:.2%}: nothing chosen")
        return 1
    print(
        f"\nchosen: cap {chosen.cap} (dev macro-F1 {chosen.dev_macro_f1:.4f}, "
        f"{chosen.clean_flagged:.3%} of dev chat; limit {args.chat_limit:.2%}, "
        f"margin {args.margin})"
    )
    if not args.write:
        return 0
    try:
        written = write_choice(
            folder,
            choices[chosen.cap],
            args.releases,
            args.target_precision,
            chosen.cap,
            args.label_clean_fpr,
        )
    except ReleaseError as exc:
        parser.error(str(exc))
    print(f"written: {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
