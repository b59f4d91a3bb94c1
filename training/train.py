"""`python -m training.train`: train, choose thresholds, export, quantise, evaluate, release.

    python -m training.train --config training/configs/cnn.json
    python -m training.train --config training/configs/tiny.json --corpus-only --out /tmp/rel
    python -m training.train --config training/configs/cnn.json --init-from ~/chinese-roberta

A release folder `<out>/<version>/` is written only at the end, complete (see models/release.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.labels import TEXT_LABELS
from models.release import RELEASES_DIR, Manifest, list_releases, write_release
from training.classifier import NeuralTextClassifier, TrainConfig, prepare
from training.data import CORPUS_DIR, Example, Splits, build_splits, datasets_dir, read_jsonl
from training.export import export_checked, onnx_scores, quantize
from training.metrics import macro_f1, per_label, threshold_for_precision
from training.neural import ModelConfig

QUANTISE_TOLERANCE = 0.005  # int8 is kept when dev macro-F1 drops by at most 0.5 points


def load_config(path: Path) -> tuple[ModelConfig, TrainConfig]:
    """One JSON file per model: {"model": {...ModelConfig}, "train": {...TrainConfig}}."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return ModelConfig(**raw.get("model", {})), TrainConfig(**raw.get("train", {}))


def targets_of(examples: list[Example]) -> np.ndarray:
    return np.array([e.target() for e in examples], dtype=np.float32).reshape(-1, len(TEXT_LABELS))


def choose_thresholds(truth: np.ndarray, scores: np.ndarray, target: float) -> dict[str, float]:
    return {
        label: round(threshold_for_precision(truth[:, i], scores[:, i], target), 4)
        for i, label in enumerate(TEXT_LABELS)
    }


def next_version(root: Path, today: dt.date | None = None) -> str:
    stem = (today or dt.date.today()).strftime("%Y.%m.%d")
    taken = [p.name for p in list_releases(root) if p.name.startswith(stem + "-")]
    return f"{stem}-{1 + max((int(n.rsplit('-', 1)[1]) for n in taken), default=0)}"


def data_fingerprint(splits: Splits, corpus_dir: Path) -> dict[str, Any]:
    """What the model was trained on: file hashes and split sizes."""
    files: dict[str, str] = {}
    for path in sorted(corpus_dir.glob("*.jsonl")):
        files[f"data/corpus/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
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
    parser.add_argument("--out", type=Path, default=RELEASES_DIR, help="releases folder")
    parser.add_argument("--version", help="release version (default: today-N)")
    parser.add_argument("--target-precision", type=float, default=0.95)
    parser.add_argument("--init-from", help="local Hugging Face checkpoint to fine-tune")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--corpus-only", action="store_true", help="no ../shared datasets")
    parser.add_argument("--reports", type=Path, help="reports JSONL (training.reports export)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument(
        "--lccc-limit", type=int, default=20_000, help="LCCC clean utterances to train on"
    )
    parser.add_argument("--no-quantize", action="store_true")
    parser.add_argument("--no-evaluate", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    started = time.monotonic()
    model_cfg, train_cfg = load_config(args.config)
    if args.epochs is not None:
        train_cfg.epochs = args.epochs
    if args.init_from:
        train_cfg.init_from = args.init_from
    train_cfg.progress = not args.quiet
    say = (lambda *a: None) if args.quiet else print

    from training.data import load_corpus

    reports = list(read_jsonl(args.reports, "report")) if args.reports else None
    splits = build_splits(
        load_corpus(args.corpus),
        reports=reports,
        public=not args.corpus_only,
        lccc_train_limit=args.lccc_limit,
    )
    say(f"train {len(splits.train)}  dev {len(splits.dev)}  heldout {len(splits.heldout)}")
    repeats = [train_cfg.corpus_repeat if e.source.startswith("hand/") else 1 for e in splits.train]
    dev_texts = [e.text for e in splits.dev]
    dev_truth = targets_of(splits.dev)
    classifier = NeuralTextClassifier(model_cfg, train_cfg).fit(
        [e.text for e in splits.train], targets_of(splits.train), dev_texts, dev_truth, repeats
    )

    dev_prepared = prepare(dev_texts)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        gap = export_checked(
            classifier.model, classifier.tokenizer, dev_prepared[:512], fp32, model_cfg.max_len
        )
        say(f"ONNX export matches torch (max gap {gap:.1e})")
        dev_scores = onnx_scores(fp32, classifier.tokenizer, dev_prepared, model_cfg.max_len)
        thresholds = choose_thresholds(dev_truth, dev_scores, args.target_precision)
        dev_f1 = macro_f1(per_label(dev_truth, dev_scores, list(thresholds.values()), TEXT_LABELS))
        chosen, quantized, notes = fp32, False, []
        if not args.no_quantize:
            int8 = Path(tmp) / "model.int8.onnx"
            quantize(fp32, int8)
            q_scores = onnx_scores(int8, classifier.tokenizer, dev_prepared, model_cfg.max_len)
            q_thresholds = choose_thresholds(dev_truth, q_scores, args.target_precision)
            q_f1 = macro_f1(
                per_label(dev_truth, q_scores, list(q_thresholds.values()), TEXT_LABELS)
            )
            notes.append(f"dev macro-F1 fp32 {dev_f1:.4f}, int8 {q_f1:.4f}")
            if dev_f1 - q_f1 <= QUANTISE_TOLERANCE:
                chosen, quantized, thresholds, dev_f1 = int8, True, q_thresholds, q_f1
            say(notes[-1], "-> int8" if quantized else "-> fp32")

        version = args.version or next_version(args.out)
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
                    "target_precision": args.target_precision,
                    "config_file": str(args.config),
                },
                "data": data_fingerprint(splits, args.corpus),
                "metrics": {
                    "dev_macro_f1": round(dev_f1, 4),
                    "onnx_max_gap": gap,
                    "history": classifier.history,
                    "train_minutes": round((time.monotonic() - started) / 60, 1),
                },
                "notes": notes + train_cfg.log,
            },
            model_card=f"# qunguard text model {version}\n\n(evaluation pending)\n",
        )
    folder = args.out / version
    say(f"release written: {folder}")
    if not args.no_evaluate:
        from training.evaluate import evaluate_release, write_model_card

        report = evaluate_release(folder, splits=splits)
        write_model_card(folder, Manifest.model_validate(manifest.model_dump()), report)
        say(report.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
