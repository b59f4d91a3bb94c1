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

With `--halves`, each cap is also tuned on each half of the dev clean chat alone and the
share flagged on the other half is printed (the mean of the two): how far the in-sample share
that the rule reads can be from chat the thresholds were not fitted to.

The target precision and per-label caps default to those the release's manifest records.

    python -m training.cap_sweep --release models/candidates/2026.11.26-3 --write
    # the tuned copy lands beside it, in models/candidates/ (--releases to put it elsewhere)
"""

from __future__ import annotations

import argparse
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from models.fusion import FusionWeights
from models.release import RELEASES_DIR, ReleaseError
from training.fusion_tuning import (
    RELEASES_HELP,
    DevRows,
    FusionChoice,
    copy_destination,
    flagged_share,
    load_for_tuning,
    recorded_rule,
    write_choice,
)
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


def flagged_on_other_halves(
    rows: DevRows, target: float, caps: Mapping[str, float], current: FusionWeights
) -> tuple[float, float]:
    """Share of dev clean chat flagged when the thresholds (and fusion weights) are chosen
    with the other half of it as the clean-chat rows: one figure per half."""
    first = np.array([zlib.crc32(e.text.encode("utf-8")) % 2 == 0 for e in rows.dev])
    shares = []
    for fitted in (first, ~first):
        choice = replace(rows, clean=rows.clean & fitted).tune(target, caps, current)
        held = rows.clean & ~fitted
        shares.append(
            flagged_share(rows.scores, rows.analyses, choice.weights, choice.thresholds, held)
        )
    return shares[0], shares[1]


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
    parser.add_argument("--releases", type=Path, help=RELEASES_HELP)
    parser.add_argument("--caps", type=_caps, default=list(DEFAULT_CAPS), metavar="C1,C2,...")
    parser.add_argument("--target-precision", type=fraction)
    parser.add_argument(
        "--label-clean-fpr", type=label_value, action="append", metavar="LABEL=SHARE"
    )
    parser.add_argument("--chat-limit", type=fraction, default=0.0085)
    parser.add_argument("--margin", type=fraction, default=0.001)
    parser.add_argument("--write", action="store_true", help="write the chosen tuned release")
    parser.add_argument(
        "--halves", action="store_true", help="also the out-of-sample check (docstring)"
    )
    args = parser.parse_args(argv)
    if args.write and args.releases and not args.releases.is_dir():  # before minutes of scoring
        parser.error(f"no releases folder at {args.releases}")
    found_in = args.releases or RELEASES_DIR
    folder, model, current, dev = load_for_tuning(parser, args.release, found_in)
    target, per_label = recorded_rule(
        model.manifest.config, args.target_precision, args.label_clean_fpr
    )
    rows = DevRows.score(model, dev)
    choices: dict[float, FusionChoice] = {}
    results = []
    extra = " flagged, fitted on the other half (each half; mean) |" if args.halves else ""
    print("| cap | dev macro-F1 | dev clean chat flagged |" + extra)
    print("|---|---|---|" + ("---|" if args.halves else ""))
    for cap in args.caps:
        caps = clean_caps(cap, per_label)
        choice = rows.tune(target, caps, current)
        choices[cap] = choice
        results.append(CapResult(cap, choice.dev_macro_f1, choice.clean_flagged))
        line = f"| {cap} | {choice.dev_macro_f1:.4f} | {choice.clean_flagged:.3%} |"
        if args.halves:
            a, b = flagged_on_other_halves(rows, target, caps, current)
            line += f" {a:.3%}, {b:.3%}; {(a + b) / 2:.3%} |"
        print(line, flush=True)
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
            copy_destination(args.releases, folder),
            target,
            chosen.cap,
            per_label,
            command="training.cap_sweep",
        )
    except ReleaseError as exc:
        parser.error(str(exc))
    print(f"written: {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
