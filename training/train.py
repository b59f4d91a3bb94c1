"""`python -m training.train`: train, choose thresholds, export, quantise, evaluate, release.

    python -m training.train --config training/configs/cnn.json
    python -m training.train --config training/configs/tiny.json --corpus-only --out /tmp/rel
    python -m training.train --config training/configs/cnn.json --init-from ~/chinese-roberta
    python -m training.train --config training/configs/cnn.json --reports reports.jsonl

A release folder `<out>/<version>/` is written only at the end, complete (see models/release.py).
By default it is a candidate under models/candidates/, which the service never serves:
`python -m training.gate --candidate models/candidates/<version>` compares it with the served
release and moves it into models/releases/ when it is no worse (see training/rollout.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from models.labels import TEXT_LABELS
from models.release import (
    ReleaseError,
    TextModel,
    list_releases,
    version_key,
    write_release,
)
from models.text.pipeline import analyze, model_text
from training.classifier import NeuralTextClassifier, TrainConfig, repeats_for
from training.data import (
    CORPUS_DIR,
    LCCC_AUDIT,
    LCCC_TRAIN_LIMIT,
    Splits,
    build_splits,
    datasets_dir,
)
from training.export import export_checked, onnx_scores, quantize
from training.fusion_tuning import FusionChoice, tune_fusion
from training.hard_examples import hard_multipliers
from training.neural import ModelConfig
from training.reports import read_reports
from training.rollout import CANDIDATES_DIR, Layout
from training.threshold_rule import (
    add_rule_arguments,
    clean_caps,
    clean_rows,
    masks_of,
    rule_config,
    targets_of,
    threshold_rows,
)

QUANTISE_TOLERANCE = 0.005  # int8 is kept when dev macro-F1 drops by at most 0.5 points


def load_config(path: Path) -> tuple[ModelConfig, TrainConfig]:
    """One JSON file per model: {"model": {...ModelConfig}, "train": {...TrainConfig}}, or
    {"extends": "other.json", ...} for a variant that changes a few settings of another file
    (named relative to this one). Bad settings raise ValueError naming them."""
    raw = _read_config(Path(path), seen=())
    try:
        return ModelConfig(**raw.get("model", {})), TrainConfig(**raw.get("train", {}))
    except ValidationError as exc:
        raise ValueError("; ".join(map(_setting_error, exc.errors()))) from None


def _setting_error(error: Any) -> str:
    """pydantic's error as one line: "seed: Input should be a valid integer"; the range checks'
    own messages already name their setting."""
    where = ".".join(map(str, error["loc"]))
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _read_config(path: Path, seen: tuple[Path, ...]) -> dict[str, dict[str, Any]]:
    if path.resolve() in seen:
        raise ValueError(f"{path} extends itself (through {', '.join(map(str, seen))})")
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path} is not a JSON object")
    base = raw.pop("extends", None)
    if base is None:
        return raw
    merged = _read_config(path.parent / str(base), (*seen, path.resolve()))
    for part, settings in raw.items():
        merged[part] = {**merged.get(part, {}), **settings}
    return merged


def version_folders(out: Path) -> list[Path]:
    """Where a version must be unique: candidates/, releases/ and retired/ (training.rollout)."""
    return [out, *Layout.beside(out).folders()]


def version_problem(version: str, out: Path) -> str | None:
    """Why a new release cannot be written as `version` under `out` (None: it can), checked
    before any long work."""
    try:
        version_key(version)
    except ValueError:
        return f"--version must look like 2026.11.24-1, not {version!r}"
    taken = [f for f in version_folders(out) if (f / version).exists()]
    return f"--version {version} exists already in {taken[0]}" if taken else None


def next_version(root: Path | Iterable[Path], today: dt.date | None = None) -> str:
    """Today's first free version `YYYY.MM.DD-N` in `root` (one folder, or several together)."""
    stem = (today or dt.date.today()).strftime("%Y.%m.%d")
    roots = [root] if isinstance(root, Path) else list(root)
    taken = [p.name for r in roots for p in list_releases(r) if p.name.startswith(stem + "-")]
    return f"{stem}-{1 + max((int(n.rsplit('-', 1)[1]) for n in taken), default=0)}"


def data_fingerprint(splits: Splits, corpus_dir: Path) -> dict[str, Any]:
    """What the model was trained on: file hashes and split sizes."""
    files: dict[str, str] = {}
    for path in sorted(corpus_dir.glob("*.jsonl")):
        files[f"data/corpus/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    if splits.clean_unseen and LCCC_AUDIT.is_file():  # public data, with our LCCC review
        files["data/lccc_audit.jsonl"] = hashlib.sha256(LCCC_AUDIT.read_bytes()).hexdigest()
    shared = datasets_dir()
    for rel in (
        "cold/train.csv",
        "cold/dev.csv",
        "swsr/SexComment.csv",
        "mc_qq_group_ads/train.txt",
        "mc_qq_group_ads/ads.txt",
        "mc_qq_group_ads/chatting.txt",
        "lccc_base_small/LCCC-base_valid.json",
        "lccc_base_small/LCCC-base_test.json",
    ):
        path = shared / rel
        if path.is_file():
            files[f"shared/datasets/{rel}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "files": files,
        "sizes": {
            "train": len(splits.train),
            "dev": len(splits.dev),
            "heldout": len(splits.heldout),
            "clean_unseen": len(splits.clean_unseen),
        },
        "train_sources": splits.sources,
        "train_positives": {
            label: int(sum(label in e.labels for e in splits.train)) for label in TEXT_LABELS
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=Path("training/configs/cnn.json"))
    parser.add_argument(
        "--out", type=Path, default=CANDIDATES_DIR, help="folder of release folders (candidates)"
    )
    parser.add_argument("--version", help="release version (default: today-N)")
    add_rule_arguments(parser)
    parser.add_argument("--init-from", help="local Hugging Face checkpoint to fine-tune")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--corpus-only", action="store_true", help="no ../shared datasets")
    parser.add_argument("--reports", type=Path, help="reports JSONL (training.reports export)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument(
        "--lccc-limit",
        type=int,
        default=LCCC_TRAIN_LIMIT,
        help="LCCC clean utterances to train on (default: all)",
    )
    parser.add_argument("--no-quantize", action="store_true")
    parser.add_argument("--no-evaluate", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    started = time.monotonic()
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be 1 or more, not {args.epochs}")
    if args.lccc_limit is not None and args.lccc_limit < 0:
        parser.error(f"--lccc-limit must be 0 or more, not {args.lccc_limit}")
    if args.version is not None:  # refuse a bad version now, not after an hour of training
        problem = version_problem(args.version, args.out)
        if problem:
            parser.error(problem)
    try:
        model_cfg, train_cfg = load_config(args.config)
    except (OSError, ValueError, TypeError) as exc:
        parser.error(f"cannot use the configuration {args.config}: {exc}")
    mining = train_cfg.hard_mining_release
    mining_model = None
    if mining:  # a release that cannot score would fail only after the data has loaded
        try:
            mining_model = TextModel.load(Path(mining))
        except ReleaseError as exc:
            parser.error(f"hard_mining_release {mining} cannot be used: {exc}")
    if args.epochs is not None:
        train_cfg.epochs = args.epochs
    if args.init_from:
        train_cfg.init_from = args.init_from
    if train_cfg.init_from and model_cfg.members > 1:
        parser.error(
            "--init-from fine-tunes one transformer; the configuration's members must be 1"
        )
    train_cfg.progress = not args.quiet
    say = (lambda *a: None) if args.quiet else print

    from training.data import load_corpus

    try:
        reports = read_reports(args.reports) if args.reports else None
        splits = build_splits(
            load_corpus(args.corpus),
            reports=reports,
            public=not args.corpus_only,
            lccc_train_limit=args.lccc_limit,
        )
    except (OSError, ValueError) as exc:  # a missing or malformed data file: say which
        parser.error(str(exc))
    # Hashed now, not when the release is written: the corpus may change during a long run.
    fingerprint = data_fingerprint(splits, args.corpus)
    say(f"train {len(splits.train)}  dev {len(splits.dev)}  heldout {len(splits.heldout)}")
    repeats = repeats_for([e.source for e in splits.train], train_cfg)
    if mining_model is not None:
        multipliers, mined = hard_multipliers(
            splits.train,
            mining_model,
            negatives=train_cfg.hard_negatives,
            negative_repeat=train_cfg.hard_negative_repeat,
            positive_repeat=train_cfg.hard_positive_repeat,
            negative_labels=train_cfg.hard_negative_labels,
        )
        repeats = [r * m for r, m in zip(repeats, multipliers, strict=True)]
        train_cfg.log.append(mined)
        say(mined)
    dev_texts = [e.text for e in splits.dev]
    dev_truth, dev_masks = targets_of(splits.dev), masks_of(splits.dev)
    # Thresholds are chosen on annotated rows of the chosen sources only.
    pick_masks = dev_masks * threshold_rows(splits.dev, args.threshold_on)[:, None]
    dev_clean = clean_rows(splits.dev)

    dev_analyses = [analyze(text) for text in dev_texts]

    def tuned(scores: np.ndarray) -> FusionChoice:
        """Fusion weights and thresholds chosen together on dev, on the scores as served."""
        return tune_fusion(
            scores,
            dev_analyses,
            dev_truth,
            pick_masks,
            dev_clean,
            args.target_precision,
            clean_caps(args.max_clean_fpr, args.label_clean_fpr),
        )

    classifier = NeuralTextClassifier(model_cfg, train_cfg).fit(
        [e.text for e in splits.train],
        targets_of(splits.train),
        dev_texts,
        dev_truth,
        repeats,
        masks=masks_of(splits.train),
        dev_masks=dev_masks,
    )

    dev_prepared = [model_text(a) for a in dev_analyses]  # what prepare() gives, analysed once
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        gap = export_checked(
            classifier.model, classifier.tokenizer, dev_prepared[:512], fp32, model_cfg.max_len
        )
        say(f"ONNX export matches torch (max gap {gap:.1e})")
        dev_scores = onnx_scores(fp32, classifier.tokenizer, dev_prepared, model_cfg.max_len)
        choice = tuned(dev_scores)
        dev_f1 = choice.dev_macro_f1
        chosen, quantized, notes = fp32, False, []
        if not args.no_quantize:
            int8 = Path(tmp) / "model.int8.onnx"
            quantize(fp32, int8)
            q_scores = onnx_scores(int8, classifier.tokenizer, dev_prepared, model_cfg.max_len)
            q_choice = tuned(q_scores)
            q_f1 = q_choice.dev_macro_f1
            notes.append(f"dev macro-F1 fp32 {dev_f1:.4f}, int8 {q_f1:.4f}")
            if dev_f1 - q_f1 <= QUANTISE_TOLERANCE:
                chosen, quantized, choice, dev_f1 = int8, True, q_choice, q_f1
            say(notes[-1], "-> int8" if quantized else "-> fp32")
        thresholds = choice.thresholds

        # A version named by --version can be taken while this run trains (a tuned copy
        # takes the next free number): the run is then written under the next free one
        # instead of being lost to "exists already".
        folders = version_folders(args.out)
        version = args.version
        if version is None:
            version = next_version(folders)
        elif any((f / version).exists() for f in folders):
            day = dt.datetime.strptime(version.split("-")[0], "%Y.%m.%d").date()
            version = next_version(folders, day)
            say(f"{args.version} was taken while this run trained; writing {version}")
        manifest = write_release(
            args.out / version,
            model_path=chosen,
            tokenizer=classifier.tokenizer,
            manifest_fields={
                "version": version,
                "labels": list(TEXT_LABELS),
                "thresholds": thresholds,
                "max_len": model_cfg.max_len,
                "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "quantized": quantized,
                "architecture": model_cfg.architecture,
                "config": {
                    "model": model_cfg.to_dict(),
                    "train": {k: v for k, v in vars(train_cfg).items() if k != "log"},
                    **rule_config(args),
                    "config_file": str(args.config),
                },
                "data": fingerprint,
                "metrics": {
                    "dev_macro_f1": round(dev_f1, 4),
                    "onnx_max_gap": gap,
                    "history": classifier.history,
                    "train_minutes": round((time.monotonic() - started) / 60, 1),
                },
                "notes": notes + train_cfg.log,
                "fusion": choice.overrides(),
            },
            model_card=f"# qunguard text model {version}\n\n(evaluation pending)\n",
        )
    folder = args.out / version
    say(f"release written: {folder}")
    if not args.no_evaluate:
        from training.evaluate import evaluate_into_card

        say(evaluate_into_card(folder, manifest, splits).markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
