"""Where the project's data lives, found relative to the package so it works from any cwd."""

from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parents[1]
DATA_DIR: Path = REPO_ROOT / "data"
# Public datasets are staged next to the repository (../shared/datasets), never inside it.
SHARED_DATASETS_DIR: Path = REPO_ROOT.parent / "shared" / "datasets"
MODELS_DIR: Path = REPO_ROOT / "models"
