"""Time of one CPU training step of a text model configuration, split into forward, backward
and optimiser, with the unfused and the fused AdamW that `training.classifier` uses.

    .venv/bin/python -m benchmarks.train_step [--config training/configs/cnn_large_pinyin.json]
        [--steps 20] [--length 24]

Random ids stand in for a batch (the step's cost does not depend on which ids they are), one
thread as in training (`threads: 1` in the large configurations). Prints Markdown.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from models.labels import TEXT_LABELS
from training.neural import CharCNN
from training.train import load_config


def time_steps(
    model: torch.nn.Module, sizes: list[int], fused: bool, batch: int, length: int, steps: int
) -> dict[str, float]:
    """Mean milliseconds of forward, backward and optimiser over `steps` steps (after 3);
    `sizes` are the id ranges of the six inputs (models.release.INPUT_NAMES)."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused)
    ids = [torch.randint(1, max(size, 2), (batch, length)) for size in sizes]
    targets = torch.rand(batch, len(TEXT_LABELS))
    spent = {"forward": 0.0, "backward": 0.0, "optimiser": 0.0}
    for step in range(steps + 3):
        t0 = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model.logits(*ids), targets)
        t1 = time.perf_counter()
        optimiser.zero_grad()
        loss.backward()
        t2 = time.perf_counter()
        optimiser.step()
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
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--length", type=int, default=24, help="characters per message")
    args = parser.parse_args(argv)
    model_cfg, train_cfg = load_config(args.config)
    if model_cfg.architecture != "cnn":
        parser.error("only cnn configurations are timed here")
    torch.set_num_threads(1)
    print(f"{args.config}: batch {train_cfg.batch_size}, length {args.length}, 1 thread\n")
    print("| AdamW | forward ms | backward ms | optimiser ms | step ms |")
    print("|---|---|---|---|---|")
    for fused in (False, True):
        torch.manual_seed(0)
        model = CharCNN(
            train_cfg.max_vocab,
            train_cfg.ngram_buckets,
            len(TEXT_LABELS),
            model_cfg,
            train_cfg.pinyin_buckets,
        )
        ngrams, pinyin = train_cfg.ngram_buckets, train_cfg.pinyin_buckets
        sizes = [train_cfg.max_vocab, ngrams, ngrams, 2, pinyin, pinyin]  # 2: the mask is 1
        ms = time_steps(model, sizes, fused, train_cfg.batch_size, args.length, args.steps)
        cells = " | ".join(f"{ms[k]:.1f}" for k in ("forward", "backward", "optimiser"))
        print(f"| {'fused' if fused else 'unfused'} | {cells} | {sum(ms.values()):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
