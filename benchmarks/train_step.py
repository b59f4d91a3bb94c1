"""Time of one CPU training step of a text model configuration, split into forward, backward
and optimiser, with the unfused and the fused AdamW that `training.classifier` uses, and the
fused one followed by the weight-averaging update (`ema_decay`; counted as optimiser time).

    .venv/bin/python -m benchmarks.train_step [--config training/configs/cnn_large_pinyin.json]
        [--steps 20] [--length 24] [--threads N]

Random ids stand in for a batch (the step's cost does not depend on which ids they are), on
the configuration's threads unless `--threads` says otherwise (`threads: 1` in the large
configurations). Prints Markdown.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from benchmarks.arguments import at_least_one
from models.labels import TEXT_LABELS
from training.neural import ScoringModel, build_cnn
from training.train import load_config


def time_steps(
    model: ScoringModel,
    sizes: list[int],
    fused: bool,
    batch: int,
    length: int,
    steps: int,
    averaging: bool = False,
) -> dict[str, float]:
    """Mean milliseconds of forward, backward and optimiser over `steps` steps (after 3);
    `sizes` are the id ranges of the six inputs (models.release.INPUT_NAMES). With
    `averaging`, the optimiser's time includes the weight-averaging update."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused)
    averaged = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9995), use_buffers=True)
        if averaging
        else None
    )
    ids = [torch.randint(1, max(size, 2), (batch, length)) for size in sizes]
    targets = torch.rand(batch, len(TEXT_LABELS))
    spent = {"forward": 0.0, "backward": 0.0, "optimiser": 0.0}
    for step in range(steps + 3):
        t0 = time.perf_counter()
        logits = model.member_logits(*ids)  # members x batch x labels, as training computes
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, targets.expand_as(logits)
        )
        t1 = time.perf_counter()
        optimiser.zero_grad()
        loss.backward()
        t2 = time.perf_counter()
        optimiser.step()
        if averaged is not None:
            averaged.update_parameters(model)
        t3 = time.perf_counter()
        if step >= 3:
            spent["forward"] += t1 - t0
            spent["backward"] += t2 - t1
            spent["optimiser"] += t3 - t2
    return {name: 1000 * total / steps for name, total in spent.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_step", description=__doc__)
    parser.add_argument(
        "--config", type=Path, default=Path("training/configs/cnn_large_pinyin.json")
    )
    parser.add_argument("--steps", type=at_least_one, default=20)
    parser.add_argument("--length", type=at_least_one, default=24, help="characters per message")
    parser.add_argument("--threads", type=at_least_one, help="default: the configuration's")
    args = parser.parse_args(argv)
    model_cfg, train_cfg = load_config(args.config)
    if model_cfg.architecture != "cnn":
        parser.error("only cnn configurations are timed here")
    threads = train_cfg.threads if args.threads is None else args.threads
    torch.set_num_threads(threads)
    on = f"{threads} thread" + ("s" if threads > 1 else "")
    members = f", {model_cfg.members} members" if model_cfg.members > 1 else ""
    print(f"{args.config}: batch {train_cfg.batch_size}, length {args.length}, {on}{members}\n")
    print("| AdamW | forward ms | backward ms | optimiser ms | step ms |")
    print("|---|---|---|---|---|")
    for fused, averaging in ((False, False), (True, False), (True, True)):
        torch.manual_seed(0)
        model = build_cnn(
            model_cfg,
            train_cfg.max_vocab,
            train_cfg.ngram_buckets,
            len(TEXT_LABELS),
            train_cfg.pinyin_buckets,
        )
        ngrams, pinyin = train_cfg.ngram_buckets, train_cfg.pinyin_buckets
        sizes = [train_cfg.max_vocab, ngrams, ngrams, 2, pinyin, pinyin]  # 2: the mask is 1
        ms = time_steps(
            model, sizes, fused, train_cfg.batch_size, args.length, args.steps, averaging
        )
        cells = " | ".join(f"{ms[k]:.1f}" for k in ("forward", "backward", "optimiser"))
        name = ("fused" if fused else "unfused") + (" + averaging" if averaging else "")
        print(f"| {name} | {cells} | {sum(ms.values()):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
