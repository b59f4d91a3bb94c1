"""`python -m training.evaluate`: the one evaluation command.

Scores a release exactly as serving does (pipeline -> ONNX -> fusion) and prints per-label
precision, recall and F1 on:
- COLD test (insult; also COLD's macro-F1 over the offensive and safe classes),
- the QQ-group ad test (ad),
- our held-out corpus (every label),
- the false-positive rate on clean chat that training never saw (held-out LCCC, and the clean
  part of our held-out corpus),
- the 259-line real QQ moderation sample (any label vs. violating), as a smoke test.

    python -m training.evaluate                        # newest release under models/releases
    python -m training.evaluate --release models/releases/2026.11.24-2 --no-fusion
    python -m training.evaluate --compare-fusion       # both, side by side
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.labels import TEXT_LABELS
from models.release import RELEASES_DIR, Manifest, TextModel, read_manifest
from models.text.pipeline import TextAnalysis, analyze, model_text
from training.data import (
    Example,
    Splits,
    audit_key,
    build_splits,
    load_qq_review,
    load_qq_test_audit,
)
from training.metrics import PRF, binary_macro_f1, macro_f1, prf
from training.rollout import Layout

# The QQ-group ad test scored against data/qq_test_audit.jsonl's reading of some of its lines.
QQ_OUR_READING = "QQ-group ad test, LABELS.md reading"


def model_scores(model: TextModel, texts: Sequence[str]) -> tuple[np.ndarray, list[TextAnalysis]]:
    """The model's own scores (n x labels, before fusion) and the analyses fusion needs."""
    analyses = [analyze(text) for text in texts]
    scores = np.zeros((len(texts), len(TEXT_LABELS)), dtype=np.float32)
    for start in range(0, len(texts), 256):
        chunk = analyses[start : start + 256]
        scores[start : start + len(chunk)] = model.predict_proba([model_text(a) for a in chunk])
    return scores, analyses


def score_texts(model: TextModel, texts: Sequence[str], fusion: bool = True) -> np.ndarray:
    """Final scores (n x labels) for raw texts, through the same path as serving."""
    scores, analyses = model_scores(model, texts)
    return as_served(model, scores, analyses) if fusion else rounded(scores)


def as_served(model: TextModel, scores: np.ndarray, analyses: list[TextAnalysis]) -> np.ndarray:
    """The model's scores fused with the release's weights, rounded as serving compares them."""
    from models.fusion import fused_scores, load_fusion_weights

    return rounded(fused_scores(scores, analyses, load_fusion_weights(model.folder)))


def rounded(scores: np.ndarray) -> np.ndarray:
    """Rounded in float64 to the decimals serving compares with the thresholds (fusion
    SCORE_DECIMALS), so a threshold rounded to 4 decimals cuts here where it cuts in serving."""
    from models.fusion import SCORE_DECIMALS

    return np.round(scores.astype(np.float64), SCORE_DECIMALS)


# A figure recomputed on a resample of its set: (rows in the set, metric of an index array).
Resampler = tuple[int, Callable[[np.ndarray], float]]


@dataclass
class Report:
    version: str
    fusion: bool
    sections: dict[str, dict[str, PRF]] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)
    # For the gate's paired bootstrap (training.gate): each F1 as (section, label), each summary
    # figure as ("summary", name). Not serialised.
    resamplers: dict[tuple[str, str], Resampler] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "fusion": self.fusion,
            "sections": {
                name: {label: r.as_dict() for label, r in rows.items()}
                for name, rows in self.sections.items()
            },
            **{k: round(v, 4) for k, v in self.extra.items()},
        }

    def markdown(self) -> str:
        lines = [f"Release {self.version}, fusion {'on' if self.fusion else 'off'}", ""]
        lines += [
            "| set | label | precision | recall | F1 | support |",
            "|---|---|---|---|---|---|",
        ]
        for name, rows in self.sections.items():
            for label, r in rows.items():
                lines.append(
                    f"| {name} | {label} | {r.precision:.3f} | {r.recall:.3f} | {r.f1:.3f} "
                    f"| {r.support} |"
                )
        lines.append("")
        lines += [f"- {key}: {value:.4f}" for key, value in self.extra.items()]
        return "\n".join(lines)


def _truth(examples: Sequence[Example]) -> np.ndarray:
    return np.array([e.target() for e in examples], dtype=bool).reshape(-1, len(TEXT_LABELS))


def _f1_on(truth: np.ndarray, predicted: np.ndarray) -> Resampler:
    return len(truth), lambda idx: prf(truth[idx], predicted[idx]).f1


def _macro_f1_on(truth: np.ndarray, predicted: np.ndarray) -> Resampler:
    def metric(idx: np.ndarray) -> float:
        t, p = truth[idx], predicted[idx]
        return macro_f1({label: prf(t[:, i], p[:, i]) for i, label in enumerate(TEXT_LABELS)})

    return len(truth), metric


def _binary_macro_f1_on(truth: np.ndarray, predicted: np.ndarray) -> Resampler:
    return len(truth), lambda idx: binary_macro_f1(truth[idx], predicted[idx])


def _share_on(flags: np.ndarray) -> Resampler:
    return len(flags), lambda idx: float(flags[idx].mean())


def evaluate_release(
    folder: Path, splits: Splits | None = None, fusion: bool = True, public: bool = True
) -> Report:
    model = TextModel.load(folder)
    thresholds = np.array([model.thresholds[label] for label in TEXT_LABELS])
    return evaluate_scorer(
        model.version,
        lambda texts: score_texts(model, texts, fusion),
        thresholds,
        splits or build_splits(public=public),
        fusion=fusion,
        public=public,
    )


def evaluate_scorer(
    name: str,
    scorer: Callable[[Sequence[str]], np.ndarray],
    thresholds: np.ndarray,
    splits: Splits,
    *,
    fusion: bool,
    public: bool = True,
) -> Report:
    """Evaluate any scorer (raw texts -> n x labels scores) on every evaluation set."""
    report = Report(name, fusion)

    def flagged(examples: Sequence[Example]) -> np.ndarray:
        return scorer([e.text for e in examples]) >= thresholds

    if splits.heldout:
        predicted, truth = flagged(splits.heldout), _truth(splits.heldout)
        rows = {label: prf(truth[:, i], predicted[:, i]) for i, label in enumerate(TEXT_LABELS)}
        report.sections["heldout (ours)"] = rows
        report.extra["heldout macro-F1"] = macro_f1(rows)
        for i, label in enumerate(TEXT_LABELS):
            report.resamplers[("heldout (ours)", label)] = _f1_on(truth[:, i], predicted[:, i])
        report.resamplers[("summary", "heldout macro-F1")] = _macro_f1_on(truth, predicted)
        clean = ~truth.any(axis=1)
        if clean.any():
            clean_flagged = predicted[clean].any(axis=1)
            report.extra["FPR clean heldout (ours)"] = float(clean_flagged.mean())
            report.resamplers[("summary", "FPR clean heldout (ours)")] = _share_on(clean_flagged)
    if splits.cold_test:
        i = TEXT_LABELS.index("insult")
        predicted, truth = flagged(splits.cold_test)[:, i], _truth(splits.cold_test)[:, i]
        report.sections["COLD test"] = {"insult": prf(truth, predicted)}
        report.extra["COLD test macro-F1"] = binary_macro_f1(truth, predicted)
        report.resamplers[("COLD test", "insult")] = _f1_on(truth, predicted)
        report.resamplers[("summary", "COLD test macro-F1")] = _binary_macro_f1_on(truth, predicted)
    if splits.qq_ad_test:
        i = TEXT_LABELS.index("ad")
        predicted, truth = flagged(splits.qq_ad_test)[:, i], _truth(splits.qq_ad_test)[:, i]
        report.sections["QQ-group ad test"] = {"ad": prf(truth, predicted)}
        report.resamplers[("QQ-group ad test", "ad")] = _f1_on(truth, predicted)
        audit = load_qq_test_audit()
        if audit:
            # The same predictions against our reading of the lines LABELS.md reads otherwise
            # (data/QQ_TEST_AUDIT.md): asking for something is not an ad there. Not gated.
            ours = np.array(
                ["ad" in audit.get(audit_key(e.text), e.labels) for e in splits.qq_ad_test]
            )
            report.sections[QQ_OUR_READING] = {"ad": prf(ours, predicted)}
    if splits.clean_unseen:
        # As published (every held-out LCCC line), and without the lines our audit found
        # violating (data/lccc_audit.jsonl): a model that flags a real insult there is right.
        unseen = flagged(splits.clean_unseen).any(axis=1)
        report.extra["FPR unseen clean chat (LCCC)"] = float(unseen.mean())
        report.resamplers[("summary", "FPR unseen clean chat (LCCC)")] = _share_on(unseen)
        clean = ~_truth(splits.clean_unseen).any(axis=1)
        if not clean.all():
            name = "FPR unseen clean chat (LCCC, audited)"
            report.extra[name] = float(unseen[clean].mean())
            report.resamplers[("summary", name)] = _share_on(unseen[clean])
    if public:
        try:
            sample = load_qq_review()
        except OSError:
            sample = []
        if sample:
            texts = [Example(t, (), "qq_review") for t, _ in sample]
            predicted = flagged(texts).any(axis=1)
            truth = np.array([label for _, label in sample], dtype=bool)
            report.sections["QQ review sample (smoke)"] = {"any": prf(truth, predicted)}
    return report


def evaluate_into_card(folder: Path, manifest: Manifest, splits: Splits) -> Report:
    """Evaluate a freshly written release on `splits` and put the result into its manifest
    and model card (training.train and training.merge end with this)."""
    report = evaluate_release(folder, splits=splits)
    write_model_card(folder, Manifest.model_validate(manifest.model_dump()), report)
    return report


def write_model_card(folder: Path, manifest: Manifest, report: Report) -> None:
    """Put the evaluation into the manifest's metrics and the model card."""
    manifest.metrics["evaluation"] = report.as_dict()
    (folder / "manifest.json").write_text(
        json.dumps(manifest.model_dump(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    sizes = manifest.data.get("sizes", {})
    thresholds = ", ".join(f"{k} {v}" for k, v in manifest.thresholds.items())
    minutes = manifest.metrics.get("train_minutes")
    card = f"""# qunguard text model {manifest.version}

Multi-label classifier for Chinese group-chat messages over the labels {", ".join(TEXT_LABELS)}.
Architecture `{manifest.architecture}` trained from scratch (no pretrained weights), exported to
ONNX{" and quantised to int8" if manifest.quantized else ""}. Input is the shared text pipeline's
`model_text` (normalised text, contacts replaced by placeholders).

## Data
Trained on our hand-written corpus (`data/corpus/`) and the public sets in `../shared/datasets/`
(COLD train/dev, SWSR, Minecraft QQ-group ads train, LCCC clean chat). Split sizes when
trained: {sizes}; the evaluation below scores today's sets (its support column).
Trained by `{train_command(manifest)}` in {minutes} minutes.{_members_line(manifest)}
File hashes are in `manifest.json` (`data.files`). COLD test, the QQ-group ad test, our held-out
corpus part and the held-out LCCC part were never trained on.

## Thresholds
Chosen on the dev split, per label: the lowest threshold reaching precision
{manifest.config.get("target_precision")} on our hand-written dev messages, raised where needed so
that at most {manifest.config.get("max_clean_fpr", 0)}{_label_caps(manifest)} of the dev clean
chat (LCCC) passes it; on fused scores, as served: {thresholds}.
{_fusion_line(manifest)}
## Evaluation
Produced by `python -m training.evaluate --release models/releases/{manifest.version}`:

{report.markdown()}
{_reading_line(report)}{_gate_section(manifest)}
## Limits
Trained without pretraining on about a hundred thousand messages. Written corpus messages are
our own and may not cover every way real spammers write; moderator reports feed retraining.
"""
    (folder / "MODEL_CARD.md").write_text(card, encoding="utf-8")


def _fusion_line(manifest: Manifest) -> str:
    """The release's own fusion weights and where its thresholds came from, if not training."""
    lines = []
    if manifest.fusion:
        weights = ", ".join(f"{key} {value}" for key, value in manifest.fusion.items())
        lines.append(f"Fusion weights (chosen on dev with the thresholds): {weights}.")
    tuned = manifest.metrics.get("tuned_from")
    if isinstance(tuned, dict):
        lines.append(
            f"Thresholds and fusion weights were tuned on dev from release {tuned.get('release')} "
            "(the same model files; see `notes` in manifest.json)."
        )
    return "\n".join(lines) + ("\n" if lines else "")


def _reading_line(report: Report) -> str:
    if QQ_OUR_READING not in report.sections:
        return ""
    return (
        f'\n"{QQ_OUR_READING}" scores the same predictions against our reading of the test '
        "lines that `data/LABELS.md` reads otherwise (`data/qq_test_audit.jsonl`, see "
        "`data/QQ_TEST_AUDIT.md`); the published labels above are the target's.\n"
    )


def _members_line(manifest: Manifest) -> str:
    """For a release joined by training.merge: the runs it averages."""
    members = manifest.metrics.get("members")
    if not isinstance(members, list):
        return ""
    runs = ", ".join(f"{m.get('version')} (`{m.get('config_file')}`)" for m in members)
    return (
        f" Its model averages the scores of the runs {runs}, which trained side by side; the"
        " minutes are the longer run's."
    )


def _label_caps(manifest: Manifest) -> str:
    caps = manifest.config.get("label_clean_fpr") or {}
    return "".join(f" ({label}: {share})" for label, share in caps.items())  # " (insult: 0.003)"


def train_command(manifest: Manifest) -> str:
    """The training command as run: a tuned copy's config holds the tuning's settings, and
    `tuned_from.config` the ones training ran with."""
    tuned = manifest.metrics.get("tuned_from")
    before = tuned.get("config") if isinstance(tuned, dict) else None
    config = {**manifest.config, **(before or {})}
    rule = f"--target-precision {config.get('target_precision')} --max-clean-fpr " + str(
        config.get("max_clean_fpr", 0)
    )
    rule += "".join(
        f" --label-clean-fpr {label}={share}"
        for label, share in config.get("label_clean_fpr", {}).items()
    )
    if config.get("merged_from"):  # training.merge
        folders = " ".join(f"models/candidates/{v}" for v in config["merged_from"])
        return f"python -m training.merge --members {folders} {rule}"
    return f"python -m training.train --config {config.get('config_file')} {rule}"


def _gate_section(manifest: Manifest) -> str:
    """How the release got into releases/ (training.gate's verdict), when it went through it."""
    gate = manifest.metrics.get("gate")
    if not isinstance(gate, dict):
        return ""
    how = "forced past a refusal" if gate.get("forced") else str(gate.get("verdict"))
    reason = f" Reason given: {gate['reason']}." if gate.get("reason") else ""
    return (
        f"\n## Release gate\nCompared with {gate.get('current')} by `python -m training.gate` "
        f"on {gate.get('at')}: {how}.{reason} The comparison is in `manifest.json` "
        "(`metrics.gate`).\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--release", type=Path, help="release folder (default: newest)")
    parser.add_argument("--no-fusion", action="store_true")
    parser.add_argument("--compare-fusion", action="store_true")
    parser.add_argument("--corpus-only", action="store_true", help="no ../shared datasets")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    folder = args.release or Layout().served()
    if folder is None:
        parser.error(f"no release under {RELEASES_DIR}; pass --release")
    read_manifest(folder)
    try:
        splits = build_splits(public=not args.corpus_only)
    except (OSError, ValueError) as exc:  # ../shared/datasets missing, or a bad data line
        parser.error(str(exc))
    modes = [True, False] if args.compare_fusion else [not args.no_fusion]
    results = {}
    for fusion in modes:
        report = evaluate_release(folder, splits, fusion, public=not args.corpus_only)
        print(report.markdown(), "\n", flush=True)
        results["fusion" if fusion else "no_fusion"] = report.as_dict()
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
