"""A tiny release trained in seconds, for tests and demos of the serving path.

It runs the same model, export and release code as full training, on a handful of examples.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.labels import TEXT_LABELS
from models.release import Manifest, write_release
from models.text.tokenizer import CharTokenizer
from training.classifier import as_tensors
from training.neural import ModelConfig, build_model, export_onnx

TINY_EXAMPLES: list[tuple[str, list[str]]] = [
    ("加我微信领取福利, 兼职日结", ["ad"]),
    ("代购面膜, 需要的私聊我", ["ad"]),
    ("你个傻逼, 滚出去", ["insult"]),
    ("脑残吧你, 废物一个", ["insult"]),
    ("明天都去政府门口拉横幅闹大", ["politics"]),
    ("同城上门服务, 约吗", ["porn"]),
    ("澳门线上赌场, 首充送彩金", ["gambling"]),
    ("我是你们领导, 换了新号, 马上转账", ["fraud"]),
    ("出冰, 叶子, 枪支, 代开发票", ["contraband"]),
    ("帮我砍一刀, 拼多多助力, 谢谢", ["vote_bargain"]),
    ("明天上午九点开会, 大家准时", []),
    ("收到, 谢谢老师", []),
    ("今晚吃什么呀", []),
    ("小区明天停水, 大家提前接水", []),
]


def build_tiny_release(folder: Path, steps: int = 60, seed: int = 0) -> Manifest:
    """Train a tiny CNN on TINY_EXAMPLES and write it as a release folder."""
    from models.text.pipeline import analyze, model_text

    torch.manual_seed(seed)
    texts = [model_text(analyze(text)) for text, _ in TINY_EXAMPLES]
    tokenizer = CharTokenizer.build(texts, min_freq=1, ngram_buckets=997, version="tiny")
    cfg = ModelConfig(embed_dim=16, kernel_sizes=[1, 2, 3], filters=16, hidden=16, dropout=0.0)
    model = build_model(cfg, tokenizer, len(TEXT_LABELS))
    batch = tokenizer.encode(texts, cfg.max_len)
    inputs = as_tensors(batch)
    targets = torch.tensor(
        [[float(label in labels) for label in TEXT_LABELS] for _, labels in TINY_EXAMPLES]
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model.logits(*inputs), targets)
        loss.backward()
        optimiser.step()
    onnx_path = folder.parent / f".{folder.name}.onnx"
    export_onnx(model, onnx_path, cfg.max_len)
    try:
        return write_release(
            folder,
            model_path=onnx_path,
            tokenizer=tokenizer,
            manifest_fields={
                "version": folder.name,
                "labels": list(TEXT_LABELS),
                "thresholds": dict.fromkeys(TEXT_LABELS, 0.5),
                "max_len": cfg.max_len,
                "created_at": "tiny",
                "architecture": cfg.architecture,
                "config": cfg.to_dict(),
                "data": {"examples": len(TINY_EXAMPLES), "source": "training/tiny.py"},
                "notes": ["tiny test model: not for production"],
            },
            model_card="# Tiny test model\n\nTrained on 14 examples by training/tiny.py.\n",
        )
    finally:
        onnx_path.unlink(missing_ok=True)
