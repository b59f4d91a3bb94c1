"""`python -m training.lccc_audit`: the LCCC lines of our review, with their labels.

`data/lccc_audit.jsonl` names each reviewed line by a hash of its normalised text (it holds our
labels, not a copy of LCCC); this joins it with `../shared/datasets/lccc_base_small/` to show
the lines. See `data/LCCC_AUDIT.md`.

    python -m training.lccc_audit          # the lines the review found violating
    python -m training.lccc_audit --all    # and the ones it found clean
"""

from __future__ import annotations

import argparse
import sys

from training.data import audit_key, load_lccc, load_lccc_audit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.lccc_audit", description=__doc__)
    parser.add_argument("--all", action="store_true", help="also the lines reviewed clean")
    args = parser.parse_args(argv)
    try:
        audit, lines = load_lccc_audit(), load_lccc()
    except (OSError, ValueError) as exc:  # no ../shared beside the repository, a bad audit line
        parser.error(str(exc))
    try:
        for example in lines:
            labels = audit.get(audit_key(example.text))
            if labels or (args.all and labels is not None):
                print(f"{','.join(labels) or 'clean'}\t{example.text}")
    except BrokenPipeError:  # piped into head: the reader has what it wanted
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
