"""argparse types the benchmarks share: a count of 0 or a negative duration would otherwise
run nothing, divide by zero or loop forever instead of saying what is wrong."""

from __future__ import annotations

import argparse


def at_least_one(value: str) -> int:
    """A whole number of 1 or more."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {number}")
    return number


def more_than_zero(value: str) -> float:
    """A finite number above 0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {value!r}") from None
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 and finite, not {value}")
    return number
