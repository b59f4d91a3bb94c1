"""Shared fixtures: a tiny but real text-model release built with the training code."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_VERSION = "2026.01.01-1"


@pytest.fixture(scope="session")
def tiny_releases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A releases folder holding one tiny trained release (version TINY_VERSION)."""
    from training.tiny import build_tiny_release

    root = tmp_path_factory.mktemp("releases")
    build_tiny_release(root / TINY_VERSION)
    return root
