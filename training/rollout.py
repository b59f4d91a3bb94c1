"""`python -m training.rollout`: which release is served, and going back to an older one.

Releases move between three folders beside each other (`models/` by default), one folder per
release named by its version (see models/release.py); a version names one folder in all three:

- `candidates/<version>/`: written by `training.train`, not yet through `training.gate`; never
  served, because the service only looks at `releases/`;
- `releases/<version>/`: passed the gate (or written by `training.thresholds`); the service
  serves the newest one here, and `POST /v1/admin/reload` loads the newest one again;
- `retired/<version>/`: taken out of service by `restore` or `retire`, kept to go back to.

Every move is one `os.rename` of a whole folder within one file system, so the service never
sees a half-moved release.

    python -m training.rollout list
    python -m training.rollout restore 2026.11.24-2   # newer releases move to retired/
    python -m training.rollout retire 2026.11.25-1    # the next newest release is served
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from models.fusion import FusionConfigError, load_fusion_weights
from models.release import (
    RELEASES_DIR,
    ReleaseError,
    TextModel,
    list_releases,
    read_manifest,
    version_key,
)

RELOAD_HINT = "curl -X POST localhost:8000/v1/admin/reload -H 'Authorization: Bearer ADMIN_KEY'"


class RolloutError(RuntimeError):
    """A move that would break the layout or leave nothing servable."""


@dataclass(frozen=True)
class Layout:
    """The candidates/releases/retired folders; `releases` is what the service reads."""

    releases: Path = RELEASES_DIR

    @classmethod
    def beside(cls, folder: Path) -> Layout:
        """The layout that a folder such as `models/candidates` belongs to."""
        return cls(Path(folder).parent / "releases")

    @property
    def candidates(self) -> Path:
        return self.releases.parent / "candidates"

    @property
    def retired(self) -> Path:
        return self.releases.parent / "retired"

    def folders(self) -> tuple[Path, Path, Path]:
        return (self.candidates, self.releases, self.retired)

    def find(self, version: str) -> Path | None:
        """The folder of a version, wherever it is."""
        for parent in self.folders():
            if (parent / version).is_dir():
                return parent / version
        return None

    def served(self) -> Path | None:
        """The newest release: what the service loads on reload."""
        releases = list_releases(self.releases)
        return releases[-1] if releases else None


CANDIDATES_DIR = Layout().candidates


def move(folder: Path, into: Path) -> Path:
    """Move a release folder into `into` with one atomic rename; never overwrites."""
    target = into / folder.name
    if target.exists():
        raise RolloutError(f"{target} exists already")
    into.mkdir(parents=True, exist_ok=True)
    os.rename(folder, target)
    return target


def check_servable(folder: Path) -> None:
    """Load the release as the service would; RolloutError when it would be refused."""
    try:
        TextModel.load(folder)
        load_fusion_weights(folder)
    except (ReleaseError, FusionConfigError) as exc:
        raise RolloutError(f"{folder} cannot be served: {exc}") from exc


def restore(layout: Layout, version: str) -> list[tuple[Path, Path]]:
    """Make `version` the served release again; returns the moves made (from, to).

    Every newer release moves to retired/; a retired `version` moves back into releases/.
    The release is loaded first, so a broken one is refused before anything moves.
    """
    folder = layout.find(version)
    if folder is None:
        raise RolloutError(f"no release {version} under {layout.releases.parent}")
    if folder.parent == layout.candidates:
        raise RolloutError(f"{version} is a candidate: pass it through `python -m training.gate`")
    check_servable(folder)
    plan = [
        (newer, layout.retired)
        for newer in reversed(list_releases(layout.releases))
        if version_key(newer.name) > version_key(version)
    ]
    if folder.parent == layout.retired:
        plan.append((folder, layout.releases))
    taken = [into / source.name for source, into in plan if (into / source.name).exists()]
    if taken:
        raise RolloutError(f"{taken[0]} exists already; nothing was moved")
    return [(source, move(source, into)) for source, into in plan]


def retire(layout: Layout, version: str) -> Path:
    """Move a release (or a candidate) to retired/; the last release is never retired."""
    folder = layout.find(version)
    if folder is None or folder.parent == layout.retired:
        raise RolloutError(f"no release or candidate {version} to retire")
    if folder.parent == layout.releases and len(list_releases(layout.releases)) == 1:
        raise RolloutError(f"{version} is the only release: retiring it leaves nothing to serve")
    return move(folder, layout.retired)


def describe(layout: Layout) -> list[dict[str, str]]:
    """One row per release in any of the three folders, newest first."""
    served = layout.served()
    rows = []
    for parent, state in zip(layout.folders(), ("candidate", "release", "retired"), strict=True):
        for folder in list_releases(parent):
            row = {"version": folder.name, "state": state, "created": "", "gate": "", "f1": ""}
            if folder == served:
                row["state"] = "SERVED"
            try:
                manifest = read_manifest(folder)
            except ReleaseError:
                row["gate"] = "invalid manifest"
                rows.append(row)
                continue
            row["created"] = manifest.created_at
            gate = manifest.metrics.get("gate") or {}
            if gate:
                row["gate"] = gate.get("verdict", "") + (" (forced)" if gate.get("forced") else "")
            evaluation = manifest.metrics.get("evaluation") or {}
            if "heldout macro-F1" in evaluation:
                row["f1"] = f"{evaluation['heldout macro-F1']:.3f}"
            rows.append(row)
    return sorted(rows, key=lambda r: version_key(r["version"]), reverse=True)


def _print_list(layout: Layout) -> None:
    rows = describe(layout)
    print(f"{'version':<16}{'state':<11}{'created':<27}{'gate':<18}heldout macro-F1")
    for r in rows:
        print(f"{r['version']:<16}{r['state']:<11}{r['created']:<27}{r['gate']:<18}{r['f1']}")
    if not rows:
        print(f"(no release under {layout.releases.parent})")
    print(f"\nSERVED: the newest release under {layout.releases}, loaded on start and reload.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.rollout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--releases",
        type=Path,
        default=RELEASES_DIR,
        help="the served releases folder; candidates/ and retired/ lie beside it",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every release, candidate and retired release")
    commands.add_parser("restore", help="serve an older release again").add_argument("version")
    commands.add_parser("retire", help="take a release out of service").add_argument("version")
    args = parser.parse_args(argv)
    layout = Layout(args.releases)

    try:
        if args.command == "list":
            _print_list(layout)
            return 0
        if args.command == "restore":
            for source, target in restore(layout, args.version):
                print(f"moved {source} -> {target}")
        else:
            print(f"moved {args.version} -> {retire(layout, args.version)}")
    except RolloutError as exc:
        print(f"refused: {exc}")
        return 1
    served = layout.served()
    print(f"served after reload: {served.name if served else 'nothing'}\n  {RELOAD_HINT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
