"""`python -m training.merge`: one release whose model averages the scores of candidates that
were trained apart, for example two seeds of one configuration run side by side.

A configuration with `"members": 2` trains both members in one process on one thread. On a
2-core machine two single-member runs, one per core, train the same kind of pair in about
half the wall time, each with its own seed (initial weights and batch order). This command
joins their ONNX graphs into one that feeds both the same inputs and outputs the mean of
their scores, which is what `CharCNNEnsemble` computes, so serving and the release format do
not change. Thresholds and fusion weights are then chosen on dev for the averaged scores, by
the rule `training.train` uses.

    python -m training.merge --members models/candidates/2026.11.25-39 \\
        models/candidates/2026.11.25-40 --target-precision 0.9 --max-clean-fpr 0.002 \\
        --label-clean-fpr insult=0.003

The members must share the labels, input length, vocabulary and the data they were trained
on, and that data must be what this checkout holds now (the dev split that chooses the
thresholds is rebuilt from it). Anything else is refused before any scoring.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import compose, helper

from models.labels import TEXT_LABELS
from models.release import OUTPUT_NAME, Manifest, ReleaseError, TextModel, write_release
from models.text.pipeline import analyze, model_text
from training.data import CORPUS_DIR
from training.evaluate import evaluate_into_card
from training.export import onnx_scores
from training.fusion_tuning import tune_fusion
from training.rollout import CANDIDATES_DIR
from training.threshold_rule import (
    add_rule_arguments,
    clean_caps,
    clean_rows,
    masks_of,
    rule_config,
    targets_of,
    threshold_rows,
)
from training.train import data_fingerprint, next_version, version_folders, version_problem

PARITY_TOLERANCE = 1e-5  # the joined graph against the mean of its members, run apart
PARITY_ROWS = 512


class MergeError(ValueError):
    """The members cannot be joined (they differ in what they read or were trained on)."""


def mean_graph(paths: Sequence[Path]) -> onnx.ModelProto:
    """One ONNX model: every member's graph on the shared inputs, then the mean of their
    `scores` outputs. Each member's nodes, initialisers and inner tensors get a prefix
    (m0/, m1/, ...) so their names cannot collide; the input names stay as they are."""
    members = [onnx.load(str(path)) for path in paths]
    opsets = {(o.domain, o.version) for m in members for o in m.opset_import}
    inputs = [[i.name for i in m.graph.input] for m in members]
    if any(names != inputs[0] for names in inputs):
        raise MergeError(f"the members' inputs differ: {inputs}")
    renamed = [
        compose.add_prefix(m, f"m{k}/", rename_inputs=False, rename_outputs=True)
        for k, m in enumerate(members)
    ]
    outputs = [f"m{k}/{OUTPUT_NAME}" for k in range(len(members))]
    graph = helper.make_graph(
        nodes=[node for m in renamed for node in m.graph.node]
        + [helper.make_node("Mean", outputs, [OUTPUT_NAME], name="mean_of_members")],
        name=f"mean_of_{len(members)}_members",
        inputs=list(renamed[0].graph.input),
        outputs=[
            helper.make_tensor_value_info(
                OUTPUT_NAME,
                renamed[0].graph.output[0].type.tensor_type.elem_type,
                ["batch", len(TEXT_LABELS)],
            )
        ],
        initializer=[t for m in renamed for t in m.graph.initializer],
        value_info=[v for m in renamed for v in m.graph.value_info],
    )
    # Mean is in the default domain from opset 8 on; keep the highest version of each domain.
    best: dict[str, int] = {}
    for domain, version in opsets:
        best[domain] = max(version, best.get(domain, 0))
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(best.items())],
        producer_name="qunguard training.merge",
    )
    model.ir_version = max(m.ir_version for m in members)
    onnx.checker.check_model(model)
    return model


def check_members(models: Sequence[TextModel]) -> None:
    """Refuse members that do not read the same inputs the same way, or were trained on
    different data."""
    if len(models) < 2:
        raise MergeError("give two or more members")
    first = models[0]
    for other in models[1:]:
        a, b = first.manifest, other.manifest
        if a.version == b.version:
            raise MergeError(f"{a.version} is given twice")
        if a.data != b.data:
            raise MergeError(f"{a.version} and {b.version} were trained on different data")
        if a.max_len != b.max_len:
            raise MergeError(f"max_len differs: {a.version} {a.max_len}, {b.version} {b.max_len}")
        ta, tb = first.tokenizer, other.tokenizer
        if (ta.tokens, ta.ngram_buckets, ta.pinyin_buckets) != (
            tb.tokens,
            tb.ngram_buckets,
            tb.pinyin_buckets,
        ):
            raise MergeError(f"the vocabularies of {a.version} and {b.version} differ")


def _member_record(manifest: Manifest) -> dict[str, Any]:
    return {
        "version": manifest.version,
        "config_file": manifest.config.get("config_file"),
        "seed": manifest.config.get("train", {}).get("seed"),
        "dev_macro_f1": manifest.metrics.get("dev_macro_f1"),
        "train_minutes": manifest.metrics.get("train_minutes"),
        "history": manifest.metrics.get("history"),
    }


def main(argv: list[str] | None = None) -> int:
    from training.data import build_splits, load_corpus

    parser = argparse.ArgumentParser(
        prog="python -m training.merge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--members", type=Path, nargs="+", required=True, metavar="FOLDER")
    parser.add_argument("--out", type=Path, default=CANDIDATES_DIR)
    parser.add_argument("--version", help="release version (default: today-N)")
    add_rule_arguments(parser)
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--corpus-only", action="store_true", help="no ../shared datasets")
    parser.add_argument("--no-evaluate", action="store_true")
    args = parser.parse_args(argv)

    version = args.version or next_version(version_folders(args.out))
    problem = version_problem(version, args.out)
    if problem:
        parser.error(problem)
    try:
        members = [TextModel.load(folder) for folder in args.members]
        check_members(members)
    except (ReleaseError, MergeError) as exc:
        parser.error(str(exc))
    try:
        splits = build_splits(load_corpus(args.corpus), public=not args.corpus_only)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    fingerprint = data_fingerprint(splits, args.corpus)
    if fingerprint != members[0].manifest.data:
        parser.error(
            "the data here is not what the members were trained on (a file changed since, "
            "or they trained with --lccc-limit or --reports): the dev split that chooses "
            "thresholds cannot be rebuilt"
        )

    dev = splits.dev
    analyses = [analyze(e.text) for e in dev]
    prepared = [model_text(a) for a in analyses]
    tokenizer, max_len = members[0].tokenizer, members[0].manifest.max_len
    with tempfile.TemporaryDirectory() as tmp:
        joined = Path(tmp) / "model.onnx"
        onnx.save(mean_graph([m.folder / m.manifest.model_file for m in members]), str(joined))
        scores = onnx_scores(joined, tokenizer, prepared, max_len)
        # Checked on the first PARITY_ROWS dev rows (as training checks its export), not all
        # of dev: scoring every member on all of it again would double the command's time.
        sample = prepared[:PARITY_ROWS]
        apart = np.mean(
            [
                onnx_scores(m.folder / m.manifest.model_file, tokenizer, sample, max_len)
                for m in members
            ],
            axis=0,
        )
        gap = float(np.max(np.abs(scores[: len(sample)] - apart))) if sample else 0.0
        if gap > PARITY_TOLERANCE:
            parser.error(f"the joined graph differs from its members' mean by {gap:.1e}")
        choice = tune_fusion(
            scores,
            analyses,
            targets_of(dev),
            masks_of(dev) * threshold_rows(dev, args.threshold_on)[:, None],
            clean_rows(dev),
            args.target_precision,
            clean_caps(args.max_clean_fpr, args.label_clean_fpr),
        )
        first = members[0].manifest
        records = [_member_record(m.manifest) for m in members]
        minutes = [r["train_minutes"] for r in records if r["train_minutes"] is not None]
        print(f"dev macro-F1 of the mean: {choice.dev_macro_f1:.4f}")
        print(f"dev clean chat flagged by any label: {choice.clean_flagged:.3%}")
        print("members:", ", ".join(f"{r['version']} {r['dev_macro_f1']}" for r in records))
        manifest = write_release(
            args.out / version,
            model_path=joined,
            tokenizer=tokenizer,
            manifest_fields={
                "version": version,
                "labels": list(TEXT_LABELS),
                "thresholds": choice.thresholds,
                "max_len": max_len,
                "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "quantized": all(m.manifest.quantized for m in members),
                "architecture": f"mean of {len(members)}: {first.architecture}",
                "config": {
                    "model": {**first.config.get("model", {}), "members": len(members)},
                    "merged_from": [r["version"] for r in records],
                    **rule_config(args),
                },
                "data": first.data,
                "metrics": {
                    "dev_macro_f1": round(choice.dev_macro_f1, 4),
                    "onnx_max_gap": gap,
                    "members": records,
                    # Wall time when the members trained side by side, one per core.
                    "train_minutes": max(minutes) if minutes else None,
                },
                "notes": [
                    "scores are the mean of "
                    + ", ".join(r["version"] for r in records)
                    + " (training.merge); thresholds and fusion weights chosen on dev for them"
                ],
                "fusion": choice.overrides(),
            },
            model_card=f"# qunguard text model {version}\n\n(evaluation pending)\n",
        )
    folder = args.out / version
    print(f"release written: {folder}")
    if not args.no_evaluate:
        print(evaluate_into_card(folder, manifest, splits).markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
